//! The memory domain: sessions, facts, turns, and what the engines share.

pub mod context_block;
pub mod declarative;
pub mod facts;
pub mod query;
pub mod vector;

use serde::{Deserialize, Serialize};

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
    pub config: serde_json::Value,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub updated_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fact {
    pub id: String,
    pub text: String,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    pub updated_at: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScoredFact {
    pub id: String,
    pub text: String,
    pub score: f32,
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
