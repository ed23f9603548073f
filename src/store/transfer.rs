//! A session read out whole, in pages keyed by id, and written back in one transaction: the
//! same on both backends.

use std::collections::HashMap;

use crate::domain::graph::{graph_item_id, graph_scope, GraphItemVector, GraphKind};
use crate::domain::transfer::{ExportedFact, SessionImport};
use crate::domain::Session;
use crate::error::StoreError;
use crate::store::graph_items::graph_item_vector;
use crate::store::sessions::insert_session;
use crate::store::sql::{params, Dialect, Param, SqlRow, SqlStore, GRAPH_ITEM_COLUMNS};
use crate::store::TransferStore;

impl<D: Dialect> TransferStore for SqlStore<D> {
    async fn export_facts(
        &self,
        session: &Session,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ExportedFact>, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT id, text, embedding, created_at, updated_at FROM facts
                 WHERE org_id = $1 AND session_id = $2 AND id > $3
                 ORDER BY id LIMIT $4",
                params![&session.org_id, session.id, after_id.unwrap_or(""), limit],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ExportedFact {
                    id: r.text("id")?,
                    text: r.text("text")?,
                    created_at: r.int("created_at")?,
                    updated_at: r.int("updated_at")?,
                    embedding: r.vector("embedding")?,
                })
            })
            .collect()
    }

    async fn export_graph_items(
        &self,
        session: &Session,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        let sql = format!(
            "SELECT {GRAPH_ITEM_COLUMNS}, embedding FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND id > $3
             ORDER BY id LIMIT $4"
        );
        let rows = self
            .fetch_all(
                &sql,
                params![&session.org_id, session.id, after_id.unwrap_or(""), limit],
            )
            .await?;
        rows.iter().map(graph_item_vector).collect()
    }

    async fn import_session(
        &self,
        org_id: &str,
        import: &SessionImport,
    ) -> Result<Session, StoreError> {
        let engine = import.engine;
        let _in_order = self.fact_writes_in_order().await;
        let mut tx = D::begin_write(&self.pool).await?;
        let session =
            insert_session::<D>(&mut tx, org_id, &import.memory_id, engine, &import.config).await?;
        for fact in &import.facts {
            // Ids are kept, and unique across orgs: one another session holds is refused
            // rather than taken over.
            let mut values = params![&fact.id, org_id, session.id, &fact.text];
            values.extend([
                Param::Vector(&fact.embedding),
                Param::Int(fact.created_at),
                Param::Int(fact.updated_at),
            ]);
            let inserted = D::execute(
                &mut tx,
                "INSERT INTO facts (id, org_id, session_id, text, embedding, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING",
                values,
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("fact `{}`", fact.id)));
            }
        }
        // A graph item's id is derived from its session: each gets the one it would have had
        // here, and the history follows it.
        let scope = graph_scope(session.id, session.created_at);
        let mut renamed = HashMap::new();
        for item in &import.graph_items {
            let kind = match item.kind.as_str() {
                "chunk" => GraphKind::Chunk,
                "summary" => GraphKind::Summary,
                "entity" => GraphKind::Entity,
                "edge" => GraphKind::Edge,
                other => return Err(StoreError::Corrupt(format!("graph item kind `{other}`"))),
            };
            let id = graph_item_id(&scope, kind, &item.natural_key());
            let mut values = params![
                &id,
                org_id,
                session.id,
                kind.as_str(),
                &item.text,
                &item.entity_key,
                &item.entity_type,
                &item.source_key,
                &item.relation,
                &item.target_key,
                &item.sentence
            ];
            values.extend([
                Param::Vector(&item.embedding),
                Param::Int(item.created_at),
                Param::Int(item.updated_at),
            ]);
            let inserted = D::execute(
                &mut tx,
                "INSERT INTO graph_items (id, org_id, session_id, kind, text, entity_key,
                     entity_type, source_key, relation, target_key, sentence, embedding,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (id) DO NOTHING",
                values,
            )
            .await?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("graph item `{}`", item.id)));
            }
            renamed.insert(item.id.as_str(), id);
        }
        for event in &import.history {
            let fact_id = renamed
                .get(event.fact_id.as_str())
                .map_or(event.fact_id.as_str(), String::as_str);
            let mut values = params![
                org_id,
                session.id,
                fact_id,
                event.event.as_str(),
                &event.old_text,
                &event.new_text,
                &event.reason
            ];
            values.extend([
                Param::Int(event.created_at),
                Param::Int(i64::from(event.redacted)),
            ]);
            D::execute(
                &mut tx,
                "INSERT INTO fact_history (org_id, session_id, fact_id, event, old_text, new_text, reason, created_at, redacted)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                values,
            )
            .await?;
        }
        let stored = import.facts.len() as i64;
        D::facts_written(&mut tx, org_id, session.id, stored).await?;
        tx.commit().await?;
        self.dialect.facts_committed(session.id, None);
        Ok(Session {
            stored_facts: stored,
            ..session
        })
    }
}
