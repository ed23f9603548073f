//! Export and import of a whole session, and erasure by content: what the management API's
//! `export`, `import` and `forget` do beyond the store's transaction (reading a dump, embedding
//! again, redacting, and keeping a graph server in step).

use crate::domain::erasure::{ForgetReceipt, ForgetSelection};
use crate::domain::transfer::{
    ExportEnd, ExportLine, ExportedFact, ExportedGraphItem, ExportedSession, ImportReceipt,
    SessionImport, EXPORT_FORMAT,
};
use crate::domain::usage::{CallScope, Purpose};
use crate::domain::{is_valid_memory_id, EngineKind, FieldError, Session, SessionConfig};
use crate::error::MemoryError;
use crate::graph_server::{GraphEdge, GraphNode};
use crate::memory::engine::Engines;
use crate::redaction::Redactor;
use crate::store::{ErasureStore, TransferStore};

/// Texts embedded per call when an import embeds again.
const EMBED_BATCH: usize = 64;
/// Items read back per page to mirror an imported graph on the graph server.
const MIRROR_PAGE: i64 = 500;

/// An export read and checked, line by line, before anything is written.
#[derive(Debug)]
pub struct Dump {
    pub session: ExportedSession,
    pub import: SessionImport,
}

/// Why a dump cannot be imported: a line that is not what the format says, with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => f.write_str(&self.message),
            line => write!(f, "line {line}: {}", self.message),
        }
    }
}

/// Reads an export: a `session` line first, records, and an `end` line whose counts match.
pub fn read_dump(text: &str) -> Result<Dump, DumpError> {
    let mut session = None;
    let (mut facts, mut graph_items, mut history) = (Vec::new(), Vec::new(), Vec::new());
    let mut end = None;
    let mut number = 0;
    for (index, line) in text.lines().enumerate() {
        number = index + 1;
        let at = |message: String| DumpError {
            line: number,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        if end.is_some() {
            return Err(at("nothing may follow the `end` line".into()));
        }
        let record: ExportLine = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        match (record, &session) {
            (ExportLine::Session(s), None) => {
                if s.format != EXPORT_FORMAT {
                    return Err(at(format!(
                        "format {} is not supported (this version reads {EXPORT_FORMAT})",
                        s.format
                    )));
                }
                session = Some(s);
            }
            (ExportLine::Session(_), Some(_)) => {
                return Err(at("a second `session` line".into()));
            }
            (_, None) => return Err(at("the first line must be the `session`".into())),
            (ExportLine::Fact(f), Some(_)) => facts.push(f),
            (ExportLine::GraphItem(g), Some(_)) => graph_items.push(g),
            (ExportLine::History(h), Some(_)) => history.push(h),
            (ExportLine::End(e), Some(_)) => end = Some(e),
        }
    }
    let Some(session) = session else {
        return Err(DumpError {
            line: 1,
            message: "empty: an export starts with its `session` line".into(),
        });
    };
    let Some(end) = end else {
        return Err(DumpError {
            line: number,
            message: "no `end` line: the export was cut short".into(),
        });
    };
    let counted = ExportEnd {
        facts: facts.len() as u64,
        graph_items: graph_items.len() as u64,
        history: history.len() as u64,
    };
    if counted != end {
        return Err(DumpError {
            line: number,
            message: format!(
                "the `end` line counts {} facts, {} graph items and {} history events; the export holds {}, {} and {}",
                end.facts, end.graph_items, end.history, counted.facts, counted.graph_items, counted.history
            ),
        });
    }
    if session.engine == EngineKind::Mem0 && !graph_items.is_empty()
        || session.engine == EngineKind::Cognee && !facts.is_empty()
    {
        return Err(DumpError {
            line: 1,
            message: format!(
                "a {} session holds {}",
                session.engine,
                if session.engine == EngineKind::Mem0 {
                    "facts, not graph items"
                } else {
                    "graph items, not facts"
                }
            ),
        });
    }
    for (index, fact) in facts.iter().enumerate() {
        if fact.id.is_empty() || fact.id.len() > MAX_ID_LEN {
            return Err(record_error(
                "fact",
                index,
                "`id` must be 1 to 128 characters",
            ));
        }
    }
    for (index, item) in graph_items.iter().enumerate() {
        if !GRAPH_KINDS.contains(&item.kind.as_str()) {
            return Err(record_error(
                "graph_item",
                index,
                "`kind` must be chunk, summary, entity or edge",
            ));
        }
    }
    for (index, event) in history.iter().enumerate() {
        if !HISTORY_EVENTS.contains(&event.event.as_str()) {
            return Err(record_error(
                "history",
                index,
                "`event` must be ADD, UPDATE or DELETE",
            ));
        }
    }
    let import = SessionImport {
        memory_id: session.memory_id.clone(),
        engine: session.engine,
        config: session.config.clone(),
        facts,
        graph_items,
        history,
    };
    Ok(Dump { session, import })
}

const MAX_ID_LEN: usize = 128;
const GRAPH_KINDS: [&str; 4] = ["chunk", "summary", "entity", "edge"];
const HISTORY_EVENTS: [&str; 3] = ["ADD", "UPDATE", "DELETE"];

/// A record that breaks a rule the store would refuse it for, named by its kind and its place
/// among the records of that kind (its line number is lost once lines are grouped).
fn record_error(kind: &str, index: usize, rule: &str) -> DumpError {
    DumpError {
        line: 0,
        message: format!("{kind} record {}: {rule}", index + 1),
    }
}

impl Engines {
    /// Writes a dump as a new session of `org` (named `memory_id`, or as exported). Every text
    /// goes through the session's redaction; vectors are kept when they come from the model
    /// configured here and the text is unchanged, and embedded again otherwise.
    pub async fn import(
        &self,
        org: &str,
        mut dump: Dump,
        memory_id: Option<String>,
        redactor: &Redactor,
    ) -> Result<ImportReceipt, ImportError> {
        if dump.session.org != org {
            return Err(ImportError::ForeignOrg(dump.session.org));
        }
        if let Some(name) = memory_id {
            dump.import.memory_id = name;
        }
        if !is_valid_memory_id(&dump.import.memory_id) {
            return Err(ImportError::Field(FieldError::invalid(
                "memory_id",
                "must match [A-Za-z0-9._:@-]{1,128}",
            )));
        }
        let engine = dump.session.engine;
        // Checked as a config sent to the API is: ranges, custom rules, the engine's keys.
        let config = serde_json::to_value(&dump.import.config).unwrap_or_default();
        dump.import.config = SessionConfig::from_request(config).map_err(ImportError::Field)?;
        dump.import
            .config
            .check_engine(engine)
            .map_err(ImportError::Field)?;
        let embedder = &self.embedder;
        let dimensions = self.embedding_model.dimensions;
        let same_model = dump.session.embedding_model == self.embedding_model.name
            && dump.session.embedding_dimensions == dimensions;
        let rules = redactor.rules(dump.import.config.redaction.as_ref());
        let scope = CallScope {
            org,
            memory_id: &dump.import.memory_id,
        };
        let mut stale: Vec<(usize, String)> = Vec::new();
        for (i, fact) in dump.import.facts.iter_mut().enumerate() {
            let changed = redact_in_place(redactor, &rules, &mut fact.text);
            if changed || !same_model || fact.embedding.len() != dimensions {
                stale.push((i, fact.text.clone()));
            }
        }
        let mut reembedded = 0;
        for batch in stale.chunks(EMBED_BATCH) {
            let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            let vectors = embedder
                .embed(scope, Purpose::FactEmbedding, &texts)
                .await
                .map_err(|e| ImportError::Memory(e.into()))?;
            for ((i, _), vector) in batch.iter().zip(vectors) {
                dump.import.facts[*i].embedding = vector;
                reembedded += 1;
            }
        }
        let mut stale = Vec::new();
        for (i, item) in dump.import.graph_items.iter_mut().enumerate() {
            let mut changed = redact_in_place(redactor, &rules, &mut item.text);
            if let Some(sentence) = item.sentence.as_mut() {
                changed |= redact_in_place(redactor, &rules, sentence);
            }
            if changed || !same_model || item.embedding.len() != dimensions {
                stale.push((i, item.text.clone()));
            }
        }
        for batch in stale.chunks(EMBED_BATCH) {
            let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            let vectors = embedder
                .embed(scope, Purpose::GraphEmbedding, &texts)
                .await
                .map_err(|e| ImportError::Memory(e.into()))?;
            for ((i, _), vector) in batch.iter().zip(vectors) {
                dump.import.graph_items[*i].embedding = vector;
                reembedded += 1;
            }
        }
        for event in &mut dump.import.history {
            for text in [&mut event.old_text, &mut event.new_text]
                .into_iter()
                .flatten()
            {
                if redact_in_place(redactor, &rules, text) {
                    event.redacted = true;
                }
            }
        }
        let session = self
            .store
            .import_session(org, &dump.import)
            .await
            .map_err(|e| ImportError::Memory(e.into()))?;
        if engine == EngineKind::Cognee {
            self.mirror_graph(&session)
                .await
                .map_err(ImportError::Memory)?;
        }
        Ok(ImportReceipt {
            memory_id: session.memory_id,
            facts: dump.import.facts.len() as u64,
            graph_items: dump.import.graph_items.len() as u64,
            history: dump.import.history.len() as u64,
            reembedded,
        })
    }

    /// Puts an imported cognee session's entities and relationships on the graph server, when
    /// there is one.
    async fn mirror_graph(&self, session: &Session) -> Result<(), MemoryError> {
        let Some(bolt) = self.graph.bolt() else {
            return Ok(());
        };
        let scope = session.graph_scope();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .export_graph_items(session, after.as_deref(), MIRROR_PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.item.id.clone());
            let mut nodes = Vec::new();
            let mut edges = Vec::new();
            for stored in page {
                let item = stored.item;
                match item.kind.as_str() {
                    "entity" => nodes.push(GraphNode {
                        key: item.entity_key.unwrap_or_default(),
                        name: item.text,
                        entity_type: item.entity_type.unwrap_or_default(),
                    }),
                    "edge" => edges.push(GraphEdge {
                        id: item.id,
                        source_key: item.source_key.unwrap_or_default(),
                        relation: item.relation.unwrap_or_default(),
                        target_key: item.target_key.unwrap_or_default(),
                        sentence: item.sentence.unwrap_or_default(),
                    }),
                    _ => {}
                }
            }
            bolt.merge(&session.org_id, &scope, &nodes, &edges).await?;
        }
    }

    /// The export's lines after the `session` line, one page at a time: `fact`s or
    /// `graph_item`s (by id, after `after`), then the caller pages the history.
    pub async fn export_page(
        &self,
        session: &Session,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<ExportLine>, Option<String>), MemoryError> {
        match session.engine {
            EngineKind::Mem0 => {
                let facts: Vec<ExportedFact> =
                    self.store.export_facts(session, after, limit).await?;
                let last = facts.last().map(|f| f.id.clone());
                Ok((facts.into_iter().map(ExportLine::Fact).collect(), last))
            }
            EngineKind::Cognee => {
                let items = self.store.export_graph_items(session, after, limit).await?;
                let last = items.last().map(|i| i.item.id.clone());
                let lines = items
                    .into_iter()
                    .map(|i| ExportLine::GraphItem(ExportedGraphItem::new(i.item, i.embedding)))
                    .collect();
                Ok((lines, last))
            }
        }
    }

    /// The `session` line of an export.
    pub fn export_header(&self, session: &Session) -> ExportLine {
        ExportLine::Session(ExportedSession {
            format: EXPORT_FORMAT,
            org: session.org_id.clone(),
            memory_id: session.memory_id.clone(),
            engine: session.engine,
            config: session.config.clone(),
            embedding_model: self.embedding_model.name.clone(),
            embedding_dimensions: self.embedding_model.dimensions,
            created_at: session.created_at,
        })
    }

    /// Erasure by content (see [`ErasureStore::forget`]); the graph server's copies are
    /// queued for deletion when there is one.
    pub async fn forget(
        &self,
        session: &Session,
        selection: &ForgetSelection,
        dry_run: bool,
    ) -> Result<ForgetReceipt, MemoryError> {
        let purge_graph = self.graph.remote_graph();
        Ok(self
            .store
            .forget(session, selection, purge_graph, dry_run)
            .await?)
    }
}

/// Redacts `text` in place; whether it changed.
fn redact_in_place(
    redactor: &Redactor,
    rules: &crate::redaction::Rules,
    text: &mut String,
) -> bool {
    match redactor.redact_text(rules, text) {
        Some(redacted) => {
            *text = redacted;
            true
        }
        None => false,
    }
}

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the export belongs to org `{0}`, not to the caller's")]
    ForeignOrg(String),
    #[error("{}", .0.message)]
    Field(FieldError),
    #[error(transparent)]
    Memory(MemoryError),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: &str = r#"{"type":"session","format":1,"org":"acme","memory_id":"alice","engine":"mem0","config":{},"embedding_model":"m","embedding_dimensions":2,"created_at":1}"#;
    const FACT: &str = r#"{"type":"fact","id":"f1","text":"Lives in Lisbon","created_at":1,"updated_at":2,"embedding":[0.5,0.25]}"#;
    const EVENT: &str = r#"{"type":"history","fact_id":"f1","event":"ADD","new_text":"Lives in Lisbon","reason":"ingest","redacted":false,"created_at":1}"#;
    const END: &str = r#"{"type":"end","facts":1,"graph_items":0,"history":1}"#;

    fn dump(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn a_whole_export_is_read_with_its_records() {
        let read = read_dump(&dump(&[SESSION, FACT, EVENT, END])).unwrap();
        assert_eq!(read.import.memory_id, "alice");
        assert_eq!(read.import.facts[0].embedding, vec![0.5, 0.25]);
        assert_eq!(read.import.history[0].event, "ADD");
    }

    #[test]
    fn a_broken_export_is_refused_with_where() {
        let cases: [(&[&str], &str); 7] = [
            (&[], "empty"),
            (&[FACT, END], "line 1: the first line must be the `session`"),
            (&[SESSION, FACT, EVENT], "no `end` line"),
            (&[SESSION, SESSION, END], "line 2: a second `session` line"),
            (
                &[SESSION, FACT, END],
                "counts 1 facts, 0 graph items and 1 history events",
            ),
            (
                &[SESSION, FACT, EVENT, END, FACT],
                "line 5: nothing may follow",
            ),
            (&[SESSION, "{\"type\":\"fact\"}", END], "line 2:"),
        ];
        for (lines, expected) in cases {
            let e = read_dump(&dump(lines)).unwrap_err().to_string();
            assert!(e.contains(expected), "{lines:?}: {e}");
        }
        let wrong_event = EVENT.replace("\"ADD\"", "\"MERGE\"");
        let e = read_dump(&dump(&[SESSION, FACT, &wrong_event, END])).unwrap_err();
        assert!(e.to_string().contains("history record 1"), "{e}");
        let cognee = SESSION.replace("\"mem0\"", "\"cognee\"");
        let e = read_dump(&dump(&[&cognee, FACT, EVENT, END])).unwrap_err();
        assert!(e.to_string().contains("graph items, not facts"), "{e}");
        let future = SESSION.replace("\"format\":1", "\"format\":2");
        let e = read_dump(&dump(&[&future, END])).unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
    }
}
