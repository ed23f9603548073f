//! The cognee engine's rows in the relational store: chunks, summaries, entities and
//! relationship edges with their vectors, and the purges a graph server still owes. The
//! operations are forwarded to the configured backend like the rest of [`Store`].

use serde::Serialize;

use crate::error::StoreError;
use crate::memory::Session;
use crate::store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphKind {
    Chunk,
    Summary,
    Entity,
    Edge,
}

impl GraphKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GraphKind::Chunk => "chunk",
            GraphKind::Summary => "summary",
            GraphKind::Entity => "entity",
            GraphKind::Edge => "edge",
        }
    }
}

/// A row to write. Ids are derived from the session's graph scope and the item's natural
/// key, so ingesting the same turn twice writes nothing twice.
#[derive(Clone, Debug, PartialEq)]
pub struct NewGraphItem {
    pub id: String,
    pub kind: GraphKind,
    pub text: String,
    pub entity_key: Option<String>,
    pub entity_type: Option<String>,
    pub source_key: Option<String>,
    pub relation: Option<String>,
    pub target_key: Option<String>,
    pub sentence: Option<String>,
    pub embedding: Vec<f32>,
}

/// A stored row, without its vector.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct GraphItem {
    pub id: String,
    pub kind: String,
    pub text: String,
    pub entity_key: Option<String>,
    pub entity_type: Option<String>,
    pub source_key: Option<String>,
    pub relation: Option<String>,
    pub target_key: Option<String>,
    pub sentence: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A stored row with its vector, or with its similarity to a query.
#[derive(Clone, Debug)]
pub struct ScoredGraphItem {
    pub item: GraphItem,
    pub similarity: f32,
}

#[derive(Clone, Debug)]
pub struct GraphItemVector {
    pub item: GraphItem,
    pub embedding: Vec<f32>,
}

/// A deletion the graph server has yet to carry out: the whole scope, or some edges and the
/// entities they left without any.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphPurge {
    pub id: i64,
    pub org_id: String,
    pub scope: String,
    pub edge_ids: Option<Vec<String>>,
    pub entity_keys: Option<Vec<String>>,
    pub attempts: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GraphPurgeCounts {
    pub pending: i64,
    /// When the oldest pending purge was written (ms).
    pub oldest_ms: Option<i64>,
}

/// What names a session's data on a graph server. The store's id alone is not enough: SQLite
/// may give a deleted session's id to the next one, while its purge is still pending.
pub fn graph_scope(session_id: i64, created_at: i64) -> String {
    format!("{session_id}-{created_at}")
}

impl Session {
    pub fn graph_scope(&self) -> String {
        graph_scope(self.id, self.created_at)
    }
}

/// A stable id for an item of a session: the same natural key gives the same id.
pub fn graph_item_id(scope: &str, kind: GraphKind, natural_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(scope.as_bytes())
        .chain_update([0])
        .chain_update(kind.as_str().as_bytes())
        .chain_update([0])
        .chain_update(natural_key.as_bytes())
        .finalize();
    // A UUID's shape (version 8, RFC 9562's custom layout) so ids look like the mem0 engine's.
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

impl Store {
    /// Writes a turn's items in one transaction: chunks and summaries once, entities and
    /// edges updated in place. Returns, for each item, whether it was new. A session deleted
    /// meanwhile gets nothing ([`StoreError::SessionGone`]).
    pub async fn write_graph_items(
        &self,
        session: &Session,
        items: &[NewGraphItem],
    ) -> Result<Vec<bool>, StoreError> {
        forward!(self, s => s.write_graph_items(session, items).await)
    }

    /// The session's `k` items of `kinds` nearest to `query`, best first.
    pub async fn nearest_graph_items(
        &self,
        session: &Session,
        kinds: &[GraphKind],
        query: &[f32],
        k: usize,
    ) -> Result<Vec<ScoredGraphItem>, StoreError> {
        forward!(self, s => s.nearest_graph_items(session, kinds, query, k).await)
    }

    /// The session's live items among `ids`, with their vectors; deleted ones are absent.
    pub async fn graph_items_by_id(
        &self,
        session: &Session,
        ids: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        forward!(self, s => s.graph_items_by_id(session, ids).await)
    }

    /// The session's entities among `keys`, with their vectors.
    pub async fn graph_entities(
        &self,
        session: &Session,
        keys: &[String],
    ) -> Result<Vec<GraphItemVector>, StoreError> {
        forward!(self, s => s.graph_entities(session, keys).await)
    }

    /// The session's edges from or to any of `keys` (at most `limit`): one hop of the
    /// embedded graph.
    pub async fn graph_edges_touching(
        &self,
        session: &Session,
        keys: &[String],
        limit: usize,
    ) -> Result<Vec<GraphItem>, StoreError> {
        forward!(self, s => s.graph_edges_touching(session, keys, limit).await)
    }

    /// A page of the session's items of `kind`, oldest first, and how many there are.
    pub async fn list_graph_items(
        &self,
        session: &Session,
        kind: GraphKind,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<GraphItem>, i64), StoreError> {
        forward!(self, s => s.list_graph_items(session, kind, limit, offset).await)
    }

    /// Deletes one edge, and the entities it leaves without an edge, in one transaction;
    /// with `purge_graph` the graph server's copy is queued for deletion in the same
    /// transaction. `false` when the session has no such edge.
    pub async fn delete_graph_edge(
        &self,
        session: &Session,
        edge_id: &str,
        purge_graph: bool,
    ) -> Result<bool, StoreError> {
        forward!(self, s => s.delete_graph_edge(session, edge_id, purge_graph).await)
    }

    /// Queues a purge of what a graph server holds under `scope`: everything, or the edges
    /// and entities named.
    pub async fn enqueue_graph_purge(
        &self,
        org_id: &str,
        scope: &str,
        edge_ids: Option<&[String]>,
        entity_keys: Option<&[String]>,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.enqueue_graph_purge(org_id, scope, edge_ids, entity_keys).await)
    }

    /// Claims due purges under a lease, like the outbox.
    pub async fn claim_graph_purges(
        &self,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<GraphPurge>, StoreError> {
        forward!(self, s => s.claim_graph_purges(limit, lease).await)
    }

    pub async fn complete_graph_purge(&self, id: i64) -> Result<(), StoreError> {
        forward!(self, s => s.complete_graph_purge(id).await)
    }

    /// Records a failed attempt; a purge is retried until it succeeds.
    pub async fn fail_graph_purge(
        &self,
        id: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.fail_graph_purge(id, error, retry_at).await)
    }

    pub async fn graph_purge_counts(&self) -> Result<GraphPurgeCounts, StoreError> {
        forward!(self, s => s.graph_purge_counts().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_stable_and_scoped() {
        let a = graph_item_id("1-100", GraphKind::Entity, "person:alice");
        assert_eq!(a, graph_item_id("1-100", GraphKind::Entity, "person:alice"));
        assert_ne!(a, graph_item_id("2-100", GraphKind::Entity, "person:alice"));
        assert_ne!(a, graph_item_id("1-100", GraphKind::Edge, "person:alice"));
        assert_eq!(
            uuid::Uuid::parse_str(&a).map(|u| u.get_version_num()),
            Ok(8)
        );
    }
}
