//! Finished turns on their way to ingestion: what the outbox keeps, and how the management
//! API shows its rows.

use serde::{Deserialize, Serialize};

use crate::domain::TurnMessage;

/// What the outbox keeps of a finished request: enough to ingest it later, by any replica.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TurnPayload {
    pub memory_id: String,
    pub messages: Vec<TurnMessage>,
    /// The request the turn came from, so the ingest worker's logs name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The request span's W3C `traceparent`, so the ingestion continues its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub org_id: String,
    pub session_id: i64,
    pub payload: TurnPayload,
    pub attempts: i64,
}

/// A turn in the outbox, as the management API shows it (dead letters in particular).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub memory_id: String,
    #[schema(value_type = OutboxState)]
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::domain::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::domain::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
}

/// A turn's state in the outbox: waiting for (another) ingestion attempt, ingested, or
/// failed for good (a dead letter, which can be retried).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum OutboxState {
    Pending,
    Done,
    Dead,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub done: i64,
    pub dead: i64,
    /// When the oldest pending turn was written (ms).
    pub oldest_pending_ms: Option<i64>,
}
