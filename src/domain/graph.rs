//! The cognee engine's vocabulary: graph items as the relational store keeps them, the purges
//! a graph server still owes, and which path answered a graph search.

use serde::Serialize;

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
#[derive(Clone, Debug, PartialEq)]
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

/// Why GRAPH_COMPLETION was answered from chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The graph server failed or did not answer in time.
    GraphUnavailable,
    /// No entry point near the query, or no relationship around them.
    NoGraphMatch,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GraphUnavailable => "graph_unavailable",
            Self::NoGraphMatch => "no_graph_match",
        }
    }
}
