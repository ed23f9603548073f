//! Storage backends. The embedded SQLite store is the default and, for now, the only one.

pub mod sqlite;
pub mod vector_cache;

pub use sqlite::SqliteStore as Store;

use crate::memory::TurnMessage;
use serde::{Deserialize, Serialize};

/// What the outbox keeps of a finished request: enough to ingest it later, by any replica.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnPayload {
    pub memory_id: String,
    pub messages: Vec<TurnMessage>,
}

#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub org_id: String,
    pub session_id: i64,
    pub payload: TurnPayload,
    pub attempts: i64,
}

/// A fact with its vector, as the engines search and deduplicate over them.
#[derive(Clone, Debug)]
pub struct StoredVector {
    pub org_id: String,
    pub fact_id: String,
    pub text: String,
    /// When the fact was last written (ms), for the session's TTL.
    pub updated_at: i64,
    pub embedding: Vec<f32>,
}
