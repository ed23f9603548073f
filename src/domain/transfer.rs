//! A session moved out and back in: the lines of `GET /memory/session/{id}/export` and what
//! `POST /memory/session/import` writes.
//!
//! The export is JSON Lines, one record per line, each with a `type`: first the `session`
//! (engine, config, and the embedding model its vectors come from), then its `fact`s (a mem0
//! session) or `graph_item`s (a cognee session) with their vectors, then its `history`, and
//! last an `end` line with the counts, so that a cut-off export is told from a whole one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::graph::GraphItem;
use crate::domain::{EngineKind, SessionConfig};

/// The version of the export's line format.
pub const EXPORT_FORMAT: u32 = 1;

/// One line of an export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    Session(ExportedSession),
    Fact(ExportedFact),
    GraphItem(ExportedGraphItem),
    History(ExportedHistory),
    End(ExportEnd),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSession {
    pub format: u32,
    /// The org it was exported from: an import into another org is refused.
    pub org: String,
    pub memory_id: String,
    pub engine: EngineKind,
    pub config: SessionConfig,
    /// The model the vectors below come from, and their width: another model means the
    /// import embeds every text again.
    pub embedding_model: String,
    pub embedding_dimensions: usize,
    /// Unix ms.
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedFact {
    pub id: String,
    pub text: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub embedding: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedGraphItem {
    pub id: String,
    /// `chunk`, `summary`, `entity` or `edge`.
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub entity_key: Option<String>,
    #[serde(default)]
    pub entity_type: Option<String>,
    #[serde(default)]
    pub source_key: Option<String>,
    #[serde(default)]
    pub relation: Option<String>,
    #[serde(default)]
    pub target_key: Option<String>,
    #[serde(default)]
    pub sentence: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub embedding: Vec<f32>,
}

impl ExportedGraphItem {
    pub fn new(item: GraphItem, embedding: Vec<f32>) -> Self {
        Self {
            id: item.id,
            kind: item.kind,
            text: item.text,
            entity_key: item.entity_key,
            entity_type: item.entity_type,
            source_key: item.source_key,
            relation: item.relation,
            target_key: item.target_key,
            sentence: item.sentence,
            created_at: item.created_at,
            updated_at: item.updated_at,
            embedding,
        }
    }

    /// What the item's id is derived from within a session (see `graph::graph_item_id`): an
    /// imported item gets the id it would have had in its new session, so that later turns
    /// naming the same entity or relationship update it instead of adding a twin. A summary's
    /// key (its conversation) is not kept; its text stands in.
    pub fn natural_key(&self) -> String {
        match self.kind.as_str() {
            "entity" => self.entity_key.clone().unwrap_or_else(|| self.text.clone()),
            "edge" => format!(
                "{}|{}|{}",
                self.source_key.as_deref().unwrap_or_default(),
                self.relation.as_deref().unwrap_or_default(),
                self.target_key.as_deref().unwrap_or_default()
            ),
            _ => self.text.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedHistory {
    pub fact_id: String,
    pub event: String,
    #[serde(default)]
    pub old_text: Option<String>,
    #[serde(default)]
    pub new_text: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub redacted: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportEnd {
    pub facts: u64,
    pub graph_items: u64,
    pub history: u64,
}

/// A session to write in one transaction, as the import has read and checked it: ids are those
/// it keeps (a graph item's already derived for the new session), vectors those of the
/// configured model.
#[derive(Clone, Debug)]
pub struct SessionImport {
    pub memory_id: String,
    pub engine: EngineKind,
    pub config: SessionConfig,
    pub facts: Vec<ExportedFact>,
    pub graph_items: Vec<ExportedGraphItem>,
    pub history: Vec<ExportedHistory>,
}

/// What an import wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportReceipt {
    pub memory_id: String,
    pub facts: u64,
    pub graph_items: u64,
    pub history: u64,
    /// Texts embedded again because the export's model is not the configured one, or
    /// because redaction changed them.
    pub reembedded: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_their_type() {
        let end = ExportLine::End(ExportEnd {
            facts: 1,
            graph_items: 0,
            history: 2,
        });
        let text = serde_json::to_string(&end).unwrap();
        assert_eq!(
            text,
            r#"{"type":"end","facts":1,"graph_items":0,"history":2}"#
        );
        assert_eq!(serde_json::from_str::<ExportLine>(&text).unwrap(), end);
        assert!(serde_json::from_str::<ExportLine>(r#"{"type":"fact","id":"x"}"#).is_err());
    }
}
