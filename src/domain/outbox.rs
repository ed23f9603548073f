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
    /// Something in the messages was replaced by a placeholder before they were kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub id: i64,
    /// The turn's id (its idempotency key), which its receipt is kept under.
    pub turn_id: String,
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

/// What became of a turn once settled, as its receipt keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum TurnOutcome {
    /// Ingested: the facts it wrote.
    Stored { facts: FactChanges },
    /// Never to be stored, and why.
    Dropped { reason: String },
}

/// The facts a stored turn added, updated or deleted (by id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FactChanges {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

/// Where a turn is on its way to memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TurnState {
    /// In the outbox, waiting for (another) ingestion attempt.
    Pending,
    /// In a replica's journal, the store having been unavailable when the answer ended; it
    /// moves to the outbox when the store is back.
    Journaled,
    /// Ingested.
    Stored,
    /// Failed every ingestion attempt (a dead letter, which can be retried).
    Dead,
    /// Never to be stored (see `reason`).
    Dropped,
}

/// A turn's receipt: `GET /memory/turns/{turn_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TurnReceipt {
    pub turn_id: String,
    pub memory_id: String,
    pub state: TurnState,
    /// `stored`: the facts the turn added, updated or deleted. Absent when a crash came
    /// between the ingestion and its receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<FactChanges>,
    /// `pending` and `dead`: ingestion attempts so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    /// `pending` (after a failed attempt) and `dead`: the last attempt's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// `dropped`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TurnReceipt {
    pub fn settled(turn_id: String, memory_id: String, outcome: TurnOutcome) -> Self {
        let (state, facts, reason) = match outcome {
            TurnOutcome::Stored { facts } => (TurnState::Stored, Some(facts), None),
            TurnOutcome::Dropped { reason } => (TurnState::Dropped, None, Some(reason)),
        };
        Self {
            turn_id,
            memory_id,
            state,
            facts,
            attempts: None,
            last_error: None,
            reason,
        }
    }
}
