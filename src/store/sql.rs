//! The SQL layer both relational backends share. Every statement is written once, with `$N`
//! placeholders (which SQLite reads as numbered parameters too), and run through a
//! [`Dialect`]: the few things SQLite and Postgres do differently (binding vectors and JSON,
//! locking a row, claiming a queue, searching text) are the dialect's, nothing else is.
//!
//! Parameters go as [`Param`] values and rows come back behind [`SqlRow`], so the shared code
//! is plain Rust, generic over one trait, with no sqlx bounds to repeat on every function.

use std::fmt::Debug;
use std::future::Future;

use serde::de::DeserializeOwned;
use sqlx::{Database, Pool, Transaction};

use crate::domain::graph::{GraphItem, ScoredGraphItem};
use crate::domain::outbox::OutboxEntry;
use crate::domain::usage::UsageRow;
use crate::domain::{Fact, FactHistoryEvent, KeywordMatch, Neighbour, Session, SessionStats};
use crate::error::StoreError;

/// A value bound to a statement.
#[derive(Clone, Debug)]
pub enum Param<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    /// An embedding: a little-endian f32 blob on SQLite, a pgvector `vector` on Postgres.
    Vector(&'a [f32]),
    /// A document: text on SQLite, `jsonb` on Postgres; `null` binds SQL NULL.
    Json(serde_json::Value),
    /// A list of keys, for Postgres's `= ANY($n)` (SQLite gets one parameter per key).
    Texts(&'a [String]),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::OptText(v)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::OptText(v.as_deref())
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::OptInt(v)
    }
}

/// `params![a, b, c]`: the values of a statement's `$1, $2, $3`, in order.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Param::from($value)),*]
    };
}
pub(crate) use params;

/// A JSON document to bind.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Param<'static>, StoreError> {
    serde_json::to_value(value)
        .map(Param::Json)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode as JSON: {e}")))
}

/// A result row, read by column name.
pub trait SqlRow {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, column: &str) -> Result<f64, StoreError>;
    fn vector(&self, column: &str) -> Result<Vec<f32>, StoreError>;
    /// A document column, decoded as `T`.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError>;
}

/// The four scalar readers of [`SqlRow`], for a sqlx row type: the same code on both
/// backends, which differ only in how they read vectors and documents.
macro_rules! scalar_columns {
    () => {
        fn text(&self, column: &str) -> Result<String, StoreError> {
            Ok(sqlx::Row::try_get(self, column)?)
        }

        fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
            Ok(sqlx::Row::try_get(self, column)?)
        }

        fn int(&self, column: &str) -> Result<i64, StoreError> {
            Ok(sqlx::Row::try_get(self, column)?)
        }

        fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::Row::try_get(self, column)?)
        }

        fn real(&self, column: &str) -> Result<f64, StoreError> {
            Ok(sqlx::Row::try_get(self, column)?)
        }
    };
}
pub(crate) use scalar_columns;

/// [`Dialect::fetch_all`], [`Dialect::fetch_optional`] and [`Dialect::execute`] over the
/// dialect's own `bind(query, params)`: the same code on both backends, which differ only in
/// how a [`Param`] is bound.
macro_rules! statements_through_bind {
    () => {
        async fn fetch_all<'c>(
            conn: &'c mut $crate::store::sql::Conn<Self>,
            sql: &'c str,
            params: Vec<Param<'c>>,
        ) -> Result<Vec<Self::Row>, StoreError> {
            Ok(bind(sqlx::query(sql), params).fetch_all(conn).await?)
        }

        async fn fetch_optional<'c>(
            conn: &'c mut $crate::store::sql::Conn<Self>,
            sql: &'c str,
            params: Vec<Param<'c>>,
        ) -> Result<Option<Self::Row>, StoreError> {
            Ok(bind(sqlx::query(sql), params).fetch_optional(conn).await?)
        }

        async fn execute<'c>(
            conn: &'c mut $crate::store::sql::Conn<Self>,
            sql: &'c str,
            params: Vec<Param<'c>>,
        ) -> Result<u64, StoreError> {
            let done = bind(sqlx::query(sql), params).execute(conn).await?;
            Ok(done.rows_affected())
        }
    };
}
pub(crate) use statements_through_bind;

/// A fact as a committed write left it, for [`Dialect::facts_committed`].
#[derive(Clone, Debug)]
pub enum FactWrite<'a> {
    Stored {
        fact_id: String,
        text: &'a str,
        embedding: &'a [f32],
        updated_at: i64,
    },
    Removed(String),
}

/// A connection of the dialect's database: a pooled one or an open transaction.
pub type Conn<D> = <<D as Dialect>::Db as Database>::Connection;

/// What SQLite and Postgres do differently. Everything else is in the shared statements.
pub trait Dialect: Clone + Debug + Send + Sync + Sized + 'static {
    type Db: Database;
    type Row: SqlRow + Send;

    /// The columns of a session row. `stored_facts` is the count Postgres keeps on the row to
    /// choose its search strategy; SQLite keeps none.
    const SESSION_COLUMNS: &'static str;
    /// Ends the read of the session row a write transaction starts with. Postgres locks it
    /// (writers of one session queue there, and a concurrent delete waits); SQLite's write
    /// transaction already holds the file's write lock.
    const LOCK_FOR_WRITE: &'static str;
    /// As [`Self::LOCK_FOR_WRITE`], for a row about to be changed or deleted.
    const LOCK_FOR_UPDATE: &'static str;
    /// `OFFSET n` with no limit: SQLite's grammar wants a `LIMIT -1` before it.
    const UNLIMITED_OFFSET: &'static str;
    /// The UTC day (`YYYY-MM-DD`) of the `created_at` column (Unix ms).
    const DAY_OF_CREATED_AT: &'static str;
    /// True for a session whose config sets `fact_ttl_seconds`.
    const HAS_FACT_TTL: &'static str;
    /// Claims due outbox rows under a lease: `$1` now, `$2` limit, `$3` lease end; returns
    /// `id, org_id, session_id, payload, attempts`.
    const CLAIM_OUTBOX: &'static str;
    /// As [`Self::CLAIM_OUTBOX`] for graph purges; returns
    /// `id, org_id, scope, edge_ids, entity_keys, attempts`.
    const CLAIM_GRAPH_PURGES: &'static str;
    /// One process owns the store (SQLite), so at start every lease is a dead process's.
    const ONE_PROCESS_PER_STORE: bool;
    /// The end of the hint in [`StoreError::EmbeddingsChanged`].
    const NEW_STORE: &'static str;

    fn fetch_all<'c>(
        conn: &'c mut Conn<Self>,
        sql: &'c str,
        params: Vec<Param<'c>>,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send + 'c;

    fn fetch_optional<'c>(
        conn: &'c mut Conn<Self>,
        sql: &'c str,
        params: Vec<Param<'c>>,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send + 'c;

    /// Runs a statement; how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Conn<Self>,
        sql: &'c str,
        params: Vec<Param<'c>>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'c;

    /// Starts a transaction that will write.
    fn begin_write(
        pool: &Pool<Self::Db>,
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send + '_;

    /// `column IN (…)` over `values`, its placeholders numbered from `$first`, with the
    /// parameters to append.
    fn any_of<'a>(column: &str, first: usize, values: &'a [String]) -> (String, Vec<Param<'a>>);

    // ---- hooks: where one dialect does more than the other ----

    /// The session gained `added` facts (negative: lost), inside the writing transaction,
    /// which holds the session row's lock (Postgres keeps the count on that row).
    fn facts_written<'c>(
        conn: &'c mut Conn<Self>,
        org_id: &'c str,
        session_id: i64,
        added: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'c;

    /// The session's facts changed, after the commit: `writes` says how, or is `None` when
    /// that is not known (SQLite's cached vectors follow).
    fn facts_committed(&self, session_id: i64, writes: Option<&[FactWrite<'_>]>);

    /// Held from before a fact write's transaction until [`Self::facts_committed`] has run,
    /// when the dialect needs commits and their hooks in the same order (SQLite's cache).
    fn fact_write_order(&self) -> Option<&tokio::sync::Mutex<()>>;

    /// After an erasure has committed: whatever the dialect keeps of deleted rows outside
    /// its tables (SQLite's write-ahead log) goes too.
    fn erased(pool: &Pool<Self::Db>) -> impl Future<Output = Result<(), StoreError>> + Send + '_;

    /// Inside the transaction of the embedding check, before the stored model is read:
    /// keeps replicas that start together from both fixing the column.
    fn lock_meta(conn: &mut Conn<Self>)
        -> impl Future<Output = Result<(), StoreError>> + Send + '_;

    /// On first start, inside the check's transaction: sizes the vector columns.
    fn fix_dimensions(
        conn: &mut Conn<Self>,
        dimensions: usize,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + '_;

    /// At the end of the check's transaction: the vector index, on the typed column.
    fn index_vectors(
        conn: &mut Conn<Self>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + '_;

    // ---- searches each dialect does its own way ----

    /// See [`crate::store::FactStore::nearest`].
    fn nearest<'a>(
        store: &'a SqlStore<Self>,
        session: &'a Session,
        query: &'a [f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> impl Future<Output = Result<Vec<Neighbour>, StoreError>> + Send + 'a;

    /// See [`crate::store::FactStore::keyword_search`]; `terms` is not empty and `limit` is
    /// not 0.
    fn keyword_search<'a>(
        store: &'a SqlStore<Self>,
        session: &'a Session,
        terms: &'a [String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> impl Future<Output = Result<Vec<KeywordMatch>, StoreError>> + Send + 'a;

    /// See [`crate::store::GraphItemStore::nearest_graph_items`]; `kinds` (their names) is
    /// not empty and `k` is not 0.
    fn nearest_graph_items<'a>(
        store: &'a SqlStore<Self>,
        session: &'a Session,
        kinds: &'a [String],
        query: &'a [f32],
        k: usize,
    ) -> impl Future<Output = Result<Vec<ScoredGraphItem>, StoreError>> + Send + 'a;
}

/// One relational store: a pool of its dialect's connections and the dialect's own state.
#[derive(Debug)]
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D::Db>,
    pub(crate) dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            dialect: self.dialect.clone(),
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Held from before a fact write's transaction until its cache hook has run, where the
    /// dialect needs the two in the same order (see [`Dialect::fact_write_order`]).
    pub(crate) async fn fact_writes_in_order(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.dialect.fact_write_order() {
            Some(order) => Some(order.lock().await),
            None => None,
        }
    }

    pub(crate) async fn fetch_all(
        &self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Vec<D::Row>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        D::fetch_all(&mut conn, sql, params).await
    }

    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<Option<D::Row>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        D::fetch_optional(&mut conn, sql, params).await
    }

    pub(crate) async fn fetch_one(
        &self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<D::Row, StoreError> {
        self.fetch_optional(sql, params)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: Vec<Param<'_>>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        D::execute(&mut conn, sql, params).await
    }

    /// A page's rows and the count of all of them.
    pub(crate) async fn page<T>(
        &self,
        rows_sql: &str,
        rows_params: Vec<Param<'_>>,
        count_sql: &str,
        count_params: Vec<Param<'_>>,
        map: impl Fn(&D::Row) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, i64), StoreError> {
        let rows = self.fetch_all(rows_sql, rows_params).await?;
        let total = self.fetch_one(count_sql, count_params).await?.int("n")?;
        let items = rows.iter().map(map).collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads the first row of a statement inside `conn`, or fails: for aggregates.
pub(crate) async fn fetch_one_in<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &str,
    params: Vec<Param<'_>>,
) -> Result<D::Row, StoreError> {
    D::fetch_optional(conn, sql, params)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
}

// ---- row mappers ----

pub fn session(r: &impl SqlRow) -> Result<Session, StoreError> {
    let engine = r.text("engine")?;
    Ok(Session {
        id: r.int("id")?,
        org_id: r.text("org_id")?,
        memory_id: r.text("memory_id")?,
        engine: engine
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("session engine: {e}")))?,
        config: r.json("config")?,
        stored_facts: r.int("stored_facts")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

pub fn session_stats(r: &impl SqlRow) -> Result<SessionStats, StoreError> {
    Ok(SessionStats {
        fact_count: r.int("fact_count")?,
        pending_turns: r.int("pending_turns")?,
        dead_turns: r.int("dead_turns")?,
        last_written_at: r.opt_int("last_written_at")?,
    })
}

pub fn fact(r: &impl SqlRow) -> Result<Fact, StoreError> {
    Ok(Fact {
        id: r.text("id")?,
        text: r.text("text")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

pub fn fact_history_event(r: &impl SqlRow) -> Result<FactHistoryEvent, StoreError> {
    Ok(FactHistoryEvent {
        id: r.int("id")?,
        fact_id: r.text("fact_id")?,
        event: r.text("event")?,
        old_text: r.opt_text("old_text")?,
        new_text: r.opt_text("new_text")?,
        reason: r.opt_text("reason")?,
        redacted: r.int("redacted")? != 0,
        created_at: r.int("created_at")?,
    })
}

pub fn outbox_entry(r: &impl SqlRow) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        id: r.int("id")?,
        memory_id: r.text("memory_id")?,
        state: r.text("state")?,
        attempts: r.int("attempts")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.int("created_at")?,
        next_attempt_at: r.int("next_attempt_at")?,
    })
}

pub fn usage_row(r: &impl SqlRow) -> Result<UsageRow, StoreError> {
    Ok(UsageRow {
        day: r.text("day")?,
        kind: r.text("purpose")?,
        provider: r.text("provider")?,
        model: r.text("model")?,
        memory_id: r.opt_text("memory_id")?,
        calls: r.int("calls")?,
        prompt_tokens: r.int("prompt_tokens")?,
        completion_tokens: r.int("completion_tokens")?,
    })
}

/// The columns [`graph_item`] reads.
pub const GRAPH_ITEM_COLUMNS: &str = "id, kind, text, entity_key, entity_type, source_key, \
                                      relation, target_key, sentence, created_at, updated_at";

pub fn graph_item(r: &impl SqlRow) -> Result<GraphItem, StoreError> {
    Ok(GraphItem {
        id: r.text("id")?,
        kind: r.text("kind")?,
        text: r.text("text")?,
        entity_key: r.opt_text("entity_key")?,
        entity_type: r.opt_text("entity_type")?,
        source_key: r.opt_text("source_key")?,
        relation: r.opt_text("relation")?,
        target_key: r.opt_text("target_key")?,
        sentence: r.opt_text("sentence")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

/// After an erasure has committed: [`Dialect::erased`]. The erasure itself stands whatever
/// happens here, so a failure is logged, not returned.
pub(crate) async fn erased<D: Dialect>(pool: &Pool<D::Db>) {
    if let Err(e) = D::erased(pool).await {
        tracing::warn!(error = %e, "deleted rows may linger outside the tables until the next checkpoint");
    }
}
