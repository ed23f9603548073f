//! The vocabulary every layer shares: sessions, facts, turns, graph items, platform spend.
//! A leaf: it imports nothing of memgate's, so the store, the engines, the config and the
//! listeners can all depend on it without depending on each other.

pub mod erasure;
pub mod graph;
pub mod outbox;
pub mod redaction;
pub mod session_config;
pub mod time;
pub mod transfer;
pub mod usage;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use session_config::SessionConfig;
pub use time::now_ms;

pub const MAX_MEMORY_ID_LEN: usize = 128;

/// The engine a session was created with; it never changes afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// Extracted facts with vectors and keyword search.
    Mem0,
    /// A knowledge graph of entities and relationships, with chunks and summaries.
    Cognee,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Mem0, EngineKind::Cognee];

    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Mem0 => "mem0",
            EngineKind::Cognee => "cognee",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine name that is not one of [`EngineKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEngine(pub String);

impl fmt::Display for UnknownEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown engine `{}`: expected mem0 or cognee", self.0)
    }
}

impl FromStr for EngineKind {
    type Err = UnknownEngine;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .into_iter()
            .find(|e| e.as_str() == name)
            .ok_or_else(|| UnknownEngine(name.to_string()))
    }
}

/// What a caller's key may do: read and write memory (member), or manage sessions (admin).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

/// A request field that breaks a rule: the API answers it as 422 with `code`, naming the
/// field in `param` so that a form can show the error beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    /// The field's path in the request body (`config.top_k`, `messages[0]`).
    pub param: String,
    pub message: String,
}

impl FieldError {
    pub fn new(code: &'static str, param: impl Into<String>, rule: impl std::fmt::Display) -> Self {
        let param = param.into();
        Self {
            code,
            message: format!("field `{param}`: {rule}"),
            param,
        }
    }

    pub fn invalid(param: impl Into<String>, rule: impl std::fmt::Display) -> Self {
        Self::new("invalid_field", param, rule)
    }

    pub fn unsupported(param: impl Into<String>, rule: impl std::fmt::Display) -> Self {
        Self::new("unsupported_setting", param, rule)
    }
}

/// A memory session: facts of one org under one `memory_id`.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    #[serde(skip)]
    pub id: i64,
    pub org_id: String,
    pub memory_id: String,
    pub engine: EngineKind,
    pub config: SessionConfig,
    /// Facts stored when the session was read, where the store keeps the count (Postgres,
    /// which picks its search strategy by it); 0 on the embedded store.
    #[serde(skip)]
    pub stored_facts: i64,
    #[serde(serialize_with = "time::serialize_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "time::serialize_ms")]
    pub updated_at: i64,
}

impl Session {
    /// What names the session's data on a graph server (see [`graph::graph_scope`]).
    pub fn graph_scope(&self) -> String {
        graph::graph_scope(self.id, self.created_at)
    }
}

/// What a session holds, for the management API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub fact_count: i64,
    pub pending_turns: i64,
    pub dead_turns: i64,
    /// When its memory last changed or a turn still waiting arrived (ms); none yet when absent.
    pub last_written_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Fact {
    pub id: String,
    pub text: String,
    #[serde(serialize_with = "time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// One change to a fact, as Mem0's history reports it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct FactHistoryEvent {
    pub id: i64,
    pub fact_id: String,
    /// `ADD`, `UPDATE` or `DELETE`.
    pub event: String,
    pub old_text: Option<String>,
    pub new_text: Option<String>,
    /// `ingest`, `api`, `expired`, `capacity`, `forget` or `import`.
    pub reason: Option<String>,
    /// The turn the fact was written from had something redacted before it was kept (what,
    /// or by which detector, is never kept).
    pub redacted: bool,
    #[serde(serialize_with = "time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A change to a session's facts, applied with its history row in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum FactChange {
    Add {
        text: String,
        embedding: Vec<f32>,
    },
    Update {
        fact_id: String,
        text: String,
        embedding: Vec<f32>,
    },
    Delete {
        fact_id: String,
    },
}

/// A stored fact near a query vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    pub fact_id: String,
    pub text: String,
    /// When the fact was last written (ms).
    pub updated_at: i64,
    /// Cosine similarity, 1 for the same direction.
    pub similarity: f32,
}

/// A stored fact matching a query's words.
#[derive(Clone, Debug, PartialEq)]
pub struct KeywordMatch {
    pub fact_id: String,
    pub text: String,
    pub updated_at: i64,
    /// The store's own relevance (FTS5 bm25 negated, Postgres `ts_rank_cd`): higher is
    /// better; comparable only within one answer.
    pub score: f64,
}

/// One message of a conversation as the engines see it: role and plain text.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnMessage {
    pub role: String,
    pub content: String,
}

/// Request headers that carry the memory fields for clients that cannot add body fields
/// (Claude Code's `ANTHROPIC_CUSTOM_HEADERS`, gateways' header passthrough). Addressed to
/// memgate alone: they never reach the upstream, on any route.
pub const MEMORY_ID_HEADER: &str = "x-memgate-memory-id";
pub const STORE_MEMORY_HEADER: &str = "x-memgate-store-memory";

/// Where the context block goes in a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Into the system prompt (the first system message, `instructions`, `system`), as the
    /// product description shows it.
    #[default]
    System,
    /// Right before the latest user message, so that everything before it stays byte-identical
    /// from turn to turn and the provider's prompt cache keeps hitting.
    BeforeLastUser,
}

/// `[A-Za-z0-9._:@-]{1,128}`: safe in a URL path, a log line and the context block header.
pub fn is_valid_memory_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MEMORY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
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

    #[test]
    fn engine_names_round_trip() {
        for engine in EngineKind::ALL {
            assert_eq!(engine.as_str().parse::<EngineKind>(), Ok(engine));
            assert_eq!(
                serde_json::to_value(engine).unwrap(),
                serde_json::json!(engine.as_str())
            );
        }
        assert_eq!(
            "Mem0".parse::<EngineKind>(),
            Err(UnknownEngine("Mem0".into()))
        );
    }
}
