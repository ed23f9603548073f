//! Storage backends: the embedded SQLite store (the default, no server needed) and Postgres +
//! pgvector (production, shared by replicas), chosen by the scheme of `storage.url`. Both
//! offer the same operations; [`Store`] forwards each to the one configured.

/// Sends a call to the configured backend; defined before the submodules so that
/// `graph_items` forwards its operations the same way.
macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

pub mod graph_items;
pub mod neo4j;
pub mod postgres;
mod postgres_graph;
pub mod sqlite;
mod sqlite_graph;
pub mod vector_cache;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::StorageConfig;
use crate::error::StoreError;
use crate::memory::{Fact, FactHistoryEvent, Session, SessionConfig, TurnMessage};
use crate::usage::UsageEvent;
use postgres::PostgresStore;
use sqlite::SqliteStore;

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

/// A fact with its vector, as the embedded store caches them.
#[derive(Clone, Debug)]
pub struct StoredVector {
    pub org_id: String,
    pub fact_id: String,
    pub text: String,
    /// When the fact was last written (ms), for the session's TTL.
    pub updated_at: i64,
    pub embedding: Vec<f32>,
}

/// A stored fact near a query vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbour {
    pub fact_id: String,
    pub text: String,
    /// Cosine similarity, 1 for the same direction.
    pub similarity: f32,
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

/// What a session holds, for the management API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionStats {
    pub fact_count: i64,
    pub pending_turns: i64,
    pub dead_turns: i64,
}

/// A turn in the outbox, as the management API shows it (dead letters in particular).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct OutboxEntry {
    pub id: i64,
    pub memory_id: String,
    #[schema(value_type = OutboxState)]
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(serialize_with = "crate::timestamp::serialize_ms")]
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

/// Platform spend of one org for one day, kind of call and model (and session, when asked).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct UsageRow {
    /// UTC date, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub day: String,
    /// `query_embedding`, `fact_embedding`, `extraction`, `memory_update`, `graph_embedding`,
    /// `graph_extraction`, `summary` or `graph_completion`.
    #[sqlx(rename = "purpose")]
    pub kind: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_id: Option<String>,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub done: i64,
    pub dead: i64,
    /// When the oldest pending turn was written (ms).
    pub oldest_pending_ms: Option<i64>,
}

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// `dimensions` is the embedding dimension, which sizes the Postgres search strategy.
    pub async fn connect(config: &StorageConfig, dimensions: usize) -> Result<Self, StoreError> {
        if is_postgres_url(&config.url) {
            Ok(Self::Postgres(
                PostgresStore::connect(config, dimensions).await?,
            ))
        } else {
            Ok(Self::Sqlite(
                SqliteStore::connect(&config.url, config.max_connections).await?,
            ))
        }
    }

    /// What the engines' data lives in, as `GET /memory/engines` lists it.
    pub fn backends(&self) -> &'static [&'static str] {
        match self {
            Store::Sqlite(_) => &["sqlite"],
            Store::Postgres(_) => &["postgres", "pgvector"],
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        forward!(self, s => s.migrate().await)
    }

    /// Refuses to start on vectors of another embedding model (Postgres also fixes the
    /// column's dimension on first start).
    pub async fn check_embeddings(&self, model: &str, dimensions: usize) -> Result<(), StoreError> {
        forward!(self, s => s.check_embeddings(model, dimensions).await)
    }

    /// Closes the connections, after the queries under way.
    pub async fn close(&self) {
        forward!(self, s => s.close().await)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, s => s.ping().await)
    }

    pub async fn create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: &str,
        config: &SessionConfig,
    ) -> Result<Session, StoreError> {
        forward!(self, s => s.create_session(org_id, memory_id, engine, config).await)
    }

    pub async fn find_session(
        &self,
        org_id: &str,
        memory_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        forward!(self, s => s.find_session(org_id, memory_id).await)
    }

    /// The session, created with `engine` when it does not exist yet (race-free).
    pub async fn find_or_create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: &str,
    ) -> Result<Session, StoreError> {
        forward!(self, s => s.find_or_create_session(org_id, memory_id, engine).await)
    }

    /// A page of the org's sessions, oldest first, with what each holds.
    pub async fn list_sessions(
        &self,
        org_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(Session, SessionStats)>, i64), StoreError> {
        forward!(self, s => s.list_sessions(org_id, limit, offset).await)
    }

    pub async fn session_stats(&self, session: &Session) -> Result<SessionStats, StoreError> {
        forward!(self, s => s.session_stats(session).await)
    }

    /// Replaces the session's config; `None` when the org has no such session.
    pub async fn update_session_config(
        &self,
        org_id: &str,
        memory_id: &str,
        config: &SessionConfig,
    ) -> Result<Option<Session>, StoreError> {
        forward!(self, s => s.update_session_config(org_id, memory_id, config).await)
    }

    /// Deletes the session with its facts, graph items, history and pending turns in one
    /// transaction; returns how many facts (or graph edges) went, or `None` when the org has
    /// no such session. With `purge_graph`, a cognee session's data on the graph server is
    /// queued for deletion in the same transaction.
    pub async fn delete_session(
        &self,
        org_id: &str,
        memory_id: &str,
        purge_graph: bool,
    ) -> Result<Option<i64>, StoreError> {
        forward!(self, s => s.delete_session(org_id, memory_id, purge_graph).await)
    }

    /// Every session that has a fact TTL, for the periodic purge.
    pub async fn sessions_with_ttl(&self) -> Result<Vec<Session>, StoreError> {
        forward!(self, s => s.sessions_with_ttl().await)
    }

    /// The session's `k` facts nearest to `query`, best first, among those written since
    /// `fresh_since`.
    pub async fn nearest(
        &self,
        session: &Session,
        query: &[f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<Neighbour>, StoreError> {
        forward!(self, s => s.nearest(session, query, k, fresh_since).await)
    }

    /// Facts (id, text) matching any of `terms`, best first.
    pub async fn keyword_search(
        &self,
        session: &Session,
        terms: &[String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        forward!(self, s => s.keyword_search(session, terms, limit, fresh_since).await)
    }

    /// A page of the session's facts, oldest first; facts written before `fresh_since` are
    /// left out as if already purged.
    pub async fn list_facts(
        &self,
        session: &Session,
        fresh_since: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), StoreError> {
        forward!(self, s => s.list_facts(session, fresh_since, limit, offset).await)
    }

    /// Applies changes with their history rows in one transaction, then trims the session
    /// to its `max_facts`; returns the ids touched, in order (a new id for each ADD).
    /// Updates and deletes of facts that are not there are skipped; a session deleted
    /// meanwhile gets nothing ([`StoreError::SessionGone`]).
    pub async fn apply_fact_changes(
        &self,
        session: &Session,
        changes: &[FactChange],
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        forward!(self, s => s.apply_fact_changes(session, changes, reason).await)
    }

    /// Applies the session's TTL and cap now; returns how many facts went.
    pub async fn enforce_retention(&self, session: &Session) -> Result<u64, StoreError> {
        forward!(self, s => s.enforce_retention(session).await)
    }

    /// A page of the ADD/UPDATE/DELETE events of the session's facts, oldest first.
    pub async fn fact_history(
        &self,
        session: &Session,
        fact_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FactHistoryEvent>, i64), StoreError> {
        forward!(self, s => s.fact_history(session, fact_id, limit, offset).await)
    }

    /// Stores a finished turn for ingestion. Idempotent on `idempotency_key`.
    pub async fn enqueue_turn(
        &self,
        idempotency_key: &str,
        org_id: &str,
        session_id: i64,
        payload: &TurnPayload,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.enqueue_turn(idempotency_key, org_id, session_id, payload).await)
    }

    /// Claims up to `limit` due rows under a lease: a worker that dies mid-ingest leaves them
    /// to be claimed again when the lease runs out.
    pub async fn claim_outbox(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        forward!(self, s => s.claim_outbox(limit, lease).await)
    }

    /// At start on the embedded store (one process per file): frees the leases of turns a
    /// killed process had claimed. Replicas sharing Postgres wait for the leases to expire.
    pub async fn release_stale_leases(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.release_leases().await,
            Store::Postgres(_) => Ok(0),
        }
    }

    pub async fn complete_outbox(&self, id: i64) -> Result<(), StoreError> {
        forward!(self, s => s.complete_outbox(id).await)
    }

    /// Records a failed attempt: retried at `retry_at`, or dead-lettered when `None`.
    pub async fn fail_outbox(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        forward!(self, s => s.fail_outbox(id, error, retry_at).await)
    }

    /// Forgets ingested rows finished before `before_ms`; dead rows stay for inspection.
    pub async fn purge_done_outbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        forward!(self, s => s.purge_done_outbox(before_ms).await)
    }

    /// A page of the org's outbox rows in `state`, oldest first.
    pub async fn list_outbox(
        &self,
        org_id: &str,
        state: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OutboxEntry>, i64), StoreError> {
        forward!(self, s => s.list_outbox(org_id, state, limit, offset).await)
    }

    /// Puts one of the org's dead turns back in the queue with a fresh attempt budget;
    /// `false` when the org has no such dead turn.
    pub async fn retry_outbox(&self, org_id: &str, id: i64) -> Result<bool, StoreError> {
        forward!(self, s => s.retry_outbox(org_id, id).await)
    }

    /// Rows by state, for readiness, metrics and tests.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        forward!(self, s => s.outbox_counts().await)
    }

    pub async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        forward!(self, s => s.record_usage(events).await)
    }

    /// The org's platform spend between `from_ms` (inclusive) and `to_ms` (exclusive), by UTC
    /// day, kind and model, and by session when `by_session`.
    pub async fn usage_report(
        &self,
        org_id: &str,
        from_ms: i64,
        to_ms: i64,
        by_session: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        forward!(self, s => s.usage_report(org_id, from_ms, to_ms, by_session).await)
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
