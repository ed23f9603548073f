//! The relational store: the embedded SQLite file (the default, no server needed) or Postgres +
//! pgvector (production, shared by replicas), chosen by `storage.url`.
//!
//! The contract is written on the capability traits below, one per concern. Both backends
//! implement them with the same code (`sessions.rs`, `facts.rs`, `outbox.rs`, `usage.rs`,
//! `graph_items.rs`, over the shared SQL layer in `sql.rs`); what differs between SQLite and
//! Postgres is in `sqlite/` and `postgres/` only. [`Store`] is the closed set of the two and
//! implements each trait by `match`, so callers hold one type and dispatch stays static.
//! `tests/store_contract.rs` runs every operation on both.

macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

/// Declares a capability trait and implements it for [`Store`] by forwarding each method to
/// the configured backend, so a method's signature and contract are written once here.
///
/// The traits use `async fn`: the store types implement them, whose futures are `Send`, and
/// no caller is generic over a trait.
macro_rules! capability {
    (
        $(#[$trait_doc:meta])*
        pub trait $trait:ident {
            $(
                $(#[$doc:meta])*
                async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$trait_doc])*
        #[allow(async_fn_in_trait)]
        pub trait $trait {
            $(
                $(#[$doc])*
                async fn $method(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        impl $trait for Store {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    forward!(self, s => s.$method($($arg),*).await)
                }
            )*
        }
    };
}

mod erasure;
mod facts;
mod graph_items;
mod meta;
mod outbox;
pub mod postgres;
mod sessions;
pub(crate) mod sql;
pub mod sqlite;
mod transfer;
mod usage;

use std::time::Duration;

use crate::config::{StorageBackend, StorageConfig};
use crate::domain::erasure::{ForgetReceipt, ForgetSelection};
use crate::domain::graph::{
    GraphItem, GraphItemVector, GraphKind, GraphPurge, GraphPurgeCounts, NewGraphItem,
    ScoredGraphItem,
};
use crate::domain::outbox::{
    OutboxCounts, OutboxEntry, OutboxRow, TurnOutcome, TurnPayload, TurnReceipt,
};
use crate::domain::transfer::{ExportedFact, SessionImport};
use crate::domain::usage::{UsageEvent, UsageRow};
use crate::domain::{
    EngineKind, Fact, FactChange, FactHistoryEvent, KeywordMatch, Neighbour, Session,
    SessionConfig, SessionStats,
};
use crate::error::StoreError;
use postgres::PostgresStore;
use sqlite::SqliteStore;

capability! {
    /// Memory sessions, each owned by one org. Every lookup is scoped by the org in the query.
    pub trait SessionStore {
        /// A new session; [`StoreError::Conflict`] when the org has one by that name.
        async fn create_session(
            &self,
            org_id: &str,
            memory_id: &str,
            engine: EngineKind,
            config: &SessionConfig,
        ) -> Result<Session, StoreError>;

        /// The org's session by name; another org's is not found.
        async fn find_session(
            &self,
            org_id: &str,
            memory_id: &str,
        ) -> Result<Option<Session>, StoreError>;

        /// The session, created with `engine` when it does not exist yet (race-free). Looks
        /// first, so the common case costs a read, not a write.
        async fn find_or_create_session(
            &self,
            org_id: &str,
            memory_id: &str,
            engine: EngineKind,
        ) -> Result<Session, StoreError>;

        /// A page of the org's sessions, oldest first, with what each holds, and how many the
        /// org has.
        async fn list_sessions(
            &self,
            org_id: &str,
            limit: i64,
            offset: i64,
        ) -> Result<(Vec<(Session, SessionStats)>, i64), StoreError>;

        /// What the session holds: facts (a cognee session's relationships), pending and dead
        /// turns.
        async fn session_stats(&self, session: &Session) -> Result<SessionStats, StoreError>;

        /// Replaces the session's config; `None` when the org has no such session.
        async fn update_session_config(
            &self,
            org_id: &str,
            memory_id: &str,
            config: &SessionConfig,
        ) -> Result<Option<Session>, StoreError>;

        /// Deletes the session with its facts, graph items, history and pending turns in one
        /// transaction; returns how many facts (or graph edges) went, or `None` when the org has
        /// no such session. With `purge_graph`, a cognee session's data on the graph server is
        /// queued for deletion in the same transaction.
        async fn delete_session(
            &self,
            org_id: &str,
            memory_id: &str,
            purge_graph: bool,
        ) -> Result<Option<i64>, StoreError>;

        /// Every session that has a fact TTL, for the periodic purge.
        async fn sessions_with_ttl(&self) -> Result<Vec<Session>, StoreError>;
    }
}

capability! {
    /// The mem0 engine's facts, their vectors and their history.
    pub trait FactStore {
        /// The session's `k` facts nearest to `query` (cosine similarity, best first), among
        /// those written since `fresh_since`.
        async fn nearest(
            &self,
            session: &Session,
            query: &[f32],
            k: usize,
            fresh_since: Option<i64>,
        ) -> Result<Vec<Neighbour>, StoreError>;

        /// Facts (id, text) matching any of `terms`, best first.
        async fn keyword_search(
            &self,
            session: &Session,
            terms: &[String],
            limit: usize,
            fresh_since: Option<i64>,
        ) -> Result<Vec<KeywordMatch>, StoreError>;

        /// A page of the session's facts, oldest first, and how many there are; facts written
        /// before `fresh_since` (the session's TTL) are left out as if already purged.
        async fn list_facts(
            &self,
            session: &Session,
            fresh_since: Option<i64>,
            limit: i64,
            offset: i64,
        ) -> Result<(Vec<Fact>, i64), StoreError>;

        /// Applies changes with their history rows in one transaction, then trims the session
        /// to its `max_facts`; returns the ids touched, in order (a new id for each ADD).
        /// Updates and deletes of facts that are not there are skipped. A session deleted
        /// meanwhile gets nothing ([`StoreError::SessionGone`]): its row is checked inside the
        /// transaction, creation time included, because SQLite may hand a deleted session's id
        /// to the next one created.
        async fn apply_fact_changes(
            &self,
            session: &Session,
            changes: &[FactChange],
            reason: &str,
            // The turn the changes come from had something redacted: their history says so.
            redacted: bool,
        ) -> Result<Vec<String>, StoreError>;

        /// Applies the session's retention now: facts past its TTL and beyond its cap go, each
        /// with a history row. Returns how many were removed.
        async fn enforce_retention(&self, session: &Session) -> Result<u64, StoreError>;

        /// A page of the ADD/UPDATE/DELETE events of the session's facts (of one fact, when
        /// given), oldest first, and how many there are.
        async fn fact_history(
            &self,
            session: &Session,
            fact_id: Option<&str>,
            limit: i64,
            offset: i64,
        ) -> Result<(Vec<FactHistoryEvent>, i64), StoreError>;
    }
}

capability! {
    /// Finished turns waiting for ingestion, claimed by any replica under a lease.
    pub trait OutboxStore {
        /// Stores a finished turn for ingestion. Idempotent on `idempotency_key`.
        async fn enqueue_turn(
            &self,
            idempotency_key: &str,
            org_id: &str,
            session_id: i64,
            payload: &TurnPayload,
        ) -> Result<(), StoreError>;

        /// Claims up to `limit` due rows under a lease, oldest first: a worker that dies
        /// mid-ingest leaves them to be claimed again when the lease runs out.
        async fn claim_outbox(
            &self,
            limit: usize,
            lease: Duration,
        ) -> Result<Vec<OutboxRow>, StoreError>;

        /// At start on the embedded store (one process per file): frees the leases of turns (and
        /// graph purges) a killed process had claimed, and says how many turns. Replicas sharing
        /// Postgres wait for the leases to expire, so there it frees nothing.
        async fn release_stale_leases(&self) -> Result<u64, StoreError>;

        async fn complete_outbox(&self, id: i64) -> Result<(), StoreError>;

        /// Records a failed attempt: retried at `retry_at`, or dead-lettered when `None`.
        async fn fail_outbox(
            &self,
            id: i64,
            error: &str,
            retry_at: Option<i64>,
        ) -> Result<(), StoreError>;

        /// Forgets ingested rows finished before `before_ms`, and the receipts of turns settled
        /// before then; dead rows stay for inspection.
        async fn purge_done_outbox(&self, before_ms: i64) -> Result<u64, StoreError>;

        /// Keeps what became of a turn (stored with its facts, or dropped and why) under its
        /// id. The first settlement stands: a turn ingested again after a crash (its facts
        /// then already known) keeps the receipt of its first ingestion.
        async fn settle_turn(
            &self,
            turn_id: &str,
            org_id: &str,
            memory_id: &str,
            outcome: &TurnOutcome,
        ) -> Result<(), StoreError>;

        /// The org's turn `turn_id`: its receipt once settled, else the state of its outbox
        /// row; `None` when the store knows no such turn of the org's.
        async fn turn_receipt(
            &self,
            org_id: &str,
            turn_id: &str,
        ) -> Result<Option<TurnReceipt>, StoreError>;

        /// A page of the org's outbox rows in `state`, oldest first, and how many there are.
        async fn list_outbox(
            &self,
            org_id: &str,
            state: &str,
            limit: i64,
            offset: i64,
        ) -> Result<(Vec<OutboxEntry>, i64), StoreError>;

        /// Puts one of the org's dead turns back in the queue with a fresh attempt budget;
        /// `false` when the org has no such dead turn.
        async fn retry_outbox(&self, org_id: &str, id: i64) -> Result<bool, StoreError>;

        /// Rows by state, for readiness, metrics and tests.
        async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;
    }
}

capability! {
    /// Platform spend: token usage of internal calls.
    pub trait UsageStore {
        /// Writes a batch of events at once.
        async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError>;

        /// The org's platform spend between `from_ms` (inclusive) and `to_ms` (exclusive), by UTC
        /// day, kind and model, and by session when `by_session`.
        async fn usage_report(
            &self,
            org_id: &str,
            from_ms: i64,
            to_ms: i64,
            by_session: bool,
        ) -> Result<Vec<UsageRow>, StoreError>;
    }
}

capability! {
    /// The cognee engine's rows: chunks, summaries, entities and relationship edges with their
    /// vectors, and the purges a graph server still owes. Without a graph server these rows are
    /// the graph itself (edges join entities by key).
    pub trait GraphItemStore {
        /// Writes a turn's items in one transaction: chunks and summaries once, entities and
        /// edges updated in place. Returns, for each item, whether it was new. A session deleted
        /// meanwhile gets nothing ([`StoreError::SessionGone`]).
        async fn write_graph_items(
            &self,
            session: &Session,
            items: &[NewGraphItem],
            redacted: bool,
        ) -> Result<Vec<bool>, StoreError>;

        /// The session's `k` items of `kinds` nearest to `query`, best first.
        async fn nearest_graph_items(
            &self,
            session: &Session,
            kinds: &[GraphKind],
            query: &[f32],
            k: usize,
        ) -> Result<Vec<ScoredGraphItem>, StoreError>;

        /// The session's live items among `ids`, with their vectors; deleted ones are absent.
        async fn graph_items_by_id(
            &self,
            session: &Session,
            ids: &[String],
        ) -> Result<Vec<GraphItemVector>, StoreError>;

        /// The session's entities among `keys`, with their vectors.
        async fn graph_entities(
            &self,
            session: &Session,
            keys: &[String],
        ) -> Result<Vec<GraphItemVector>, StoreError>;

        /// The session's entities among `keys`, without their vectors (to show them).
        async fn graph_entities_named(
            &self,
            session: &Session,
            keys: &[String],
        ) -> Result<Vec<GraphItem>, StoreError>;

        /// The session's edges from or to any of `keys` (at most `limit`, oldest first): one hop
        /// of the embedded graph.
        async fn graph_edges_touching(
            &self,
            session: &Session,
            keys: &[String],
            limit: usize,
        ) -> Result<Vec<GraphItem>, StoreError>;

        /// A page of the session's items of `kind`, oldest first, and how many there are.
        async fn list_graph_items(
            &self,
            session: &Session,
            kind: GraphKind,
            limit: i64,
            offset: i64,
        ) -> Result<(Vec<GraphItem>, i64), StoreError>;

        /// Deletes one edge, and the entities it leaves without an edge, in one transaction;
        /// with `purge_graph` the graph server's copy is queued for deletion in the same
        /// transaction. `false` when the session has no such edge.
        async fn delete_graph_edge(
            &self,
            session: &Session,
            edge_id: &str,
            purge_graph: bool,
        ) -> Result<bool, StoreError>;

        /// Queues a purge of what a graph server holds under `scope`: everything, or the edges
        /// and entities named.
        async fn enqueue_graph_purge(
            &self,
            org_id: &str,
            scope: &str,
            edge_ids: Option<&[String]>,
            entity_keys: Option<&[String]>,
        ) -> Result<(), StoreError>;

        /// Claims due purges under a lease, like the outbox.
        async fn claim_graph_purges(
            &self,
            limit: usize,
            lease: Duration,
        ) -> Result<Vec<GraphPurge>, StoreError>;

        async fn complete_graph_purge(&self, id: i64) -> Result<(), StoreError>;

        /// Records a failed attempt; a purge is retried until it succeeds.
        async fn fail_graph_purge(&self, id: i64, error: &str, retry_at: i64)
            -> Result<(), StoreError>;

        async fn graph_purge_counts(&self) -> Result<GraphPurgeCounts, StoreError>;
    }
}

capability! {
    /// Erasure by content: what a session must forget, gone in one transaction.
    pub trait ErasureStore {
        /// Removes the session's facts named in `selection` or holding its text; a cognee
        /// session's graph items (with the relationships of an entity that goes, and the
        /// entities left without one); the session's turns whose messages hold the text,
        /// whatever their state (their receipts then say `dropped`); and the texts of every
        /// history event of what went or holding the text. With `purge_graph` the graph
        /// server's copies are queued for deletion in the same transaction. With `dry_run`
        /// nothing changes and the receipt says what would go. [`StoreError::Busy`] when a
        /// turn holding the text is being ingested at this moment.
        async fn forget(
            &self,
            session: &Session,
            selection: &ForgetSelection,
            purge_graph: bool,
            dry_run: bool,
        ) -> Result<ForgetReceipt, StoreError>;
    }
}

capability! {
    /// A session read out whole and written back: export and import.
    pub trait TransferStore {
        /// The session's facts with their vectors, by id, after `after_id`.
        async fn export_facts(
            &self,
            session: &Session,
            after_id: Option<&str>,
            limit: i64,
        ) -> Result<Vec<ExportedFact>, StoreError>;

        /// The session's graph items with their vectors, by id, after `after_id`.
        async fn export_graph_items(
            &self,
            session: &Session,
            after_id: Option<&str>,
            limit: i64,
        ) -> Result<Vec<GraphItemVector>, StoreError>;

        /// Creates the session in `org_id` with its facts (ids kept), graph items (ids
        /// derived again for the new session) and history, in one transaction.
        /// [`StoreError::Conflict`] when the org has a session by that name or an id is
        /// taken (by any org): nothing is written then.
        async fn import_session(
            &self,
            org_id: &str,
            import: &SessionImport,
        ) -> Result<Session, StoreError>;
    }
}

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// `dimensions` is the embedding dimension, which sizes the Postgres search strategy.
    pub async fn connect(config: &StorageConfig, dimensions: usize) -> Result<Self, StoreError> {
        match config.backend() {
            StorageBackend::Postgres => {
                Ok(Self::Postgres(postgres::connect(config, dimensions).await?))
            }
            StorageBackend::Sqlite => Ok(Self::Sqlite(
                sqlite::connect(config.url.as_str(), config.max_connections).await?,
            )),
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
        match self {
            Store::Sqlite(s) => sqlite::migrate(s).await,
            Store::Postgres(s) => postgres::migrate(s).await,
        }
    }

    /// Records the embedding model on first start and refuses to run against vectors of
    /// another one afterwards ([`StoreError::EmbeddingsChanged`]): distances between them
    /// mean nothing. Postgres also fixes the vector column's dimension on first start.
    pub async fn check_embeddings(&self, model: &str, dimensions: usize) -> Result<(), StoreError> {
        forward!(self, s => s.check_embeddings(model, dimensions).await)
    }

    /// Closes the connections, after the queries under way.
    pub async fn close(&self) {
        forward!(self, s => s.close().await)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        forward!(self, s => s.execute("SELECT 1", Vec::new()).await.map(drop))
    }
}
