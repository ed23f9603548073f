//! The memory domain: sessions, facts, turns, and what the engines share.

pub mod chunking;
pub mod context_block;
pub mod declarative;
pub mod engine;
pub mod facts;
pub mod graph;
pub mod graph_extraction;
pub mod query;
pub mod session_config;
pub mod vector;

pub use session_config::SessionConfig;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const MEM0_ENGINE: &str = "mem0";
pub const COGNEE_ENGINE: &str = "cognee";
pub const MAX_MEMORY_ID_LEN: usize = 128;

/// A memory session: facts of one org under one `memory_id`.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    #[serde(skip)]
    pub id: i64,
    pub org_id: String,
    pub memory_id: String,
    pub engine: String,
    pub config: SessionConfig,
    /// Facts stored when the session was read, where the store keeps the count (Postgres,
    /// which picks its search strategy by it); 0 on the embedded store.
    #[serde(skip)]
    pub stored_facts: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub updated_at: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Fact {
    pub id: String,
    pub text: String,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// One change to a fact, as Mem0's history reports it.
#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct FactHistoryEvent {
    pub id: i64,
    pub fact_id: String,
    /// `ADD`, `UPDATE` or `DELETE`.
    pub event: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    /// `ingest`, `api`, `expired` or `capacity`.
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScoredFact {
    pub id: String,
    pub text: String,
    pub score: f32,
    /// The relationship, for a cognee session's GRAPH_COMPLETION results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triplet: Option<graph::Triplet>,
}

/// One message of a conversation as the engines see it: role and plain text.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnMessage {
    pub role: String,
    pub content: String,
}

/// `[A-Za-z0-9._:@-]{1,128}`: safe in a URL path, a log line and the context block header.
pub fn is_valid_memory_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MEMORY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_id_shape() {
        assert!(is_valid_memory_id("user-alice"));
        assert!(is_valid_memory_id("org:team@x.y_z-1"));
        assert!(is_valid_memory_id(&"a".repeat(128)));
        assert!(!is_valid_memory_id(&"a".repeat(129)));
        assert!(!is_valid_memory_id(""));
        assert!(!is_valid_memory_id("user alice"));
        assert!(!is_valid_memory_id("user/alice"));
        assert!(!is_valid_memory_id("ali]ce\n"));
    }
}
