//! The production store: Postgres + pgvector, shared by every memgate replica. What is
//! Postgres's own is here: vectors searched in the database within one session at a time
//! (exactly for small sessions, through the HNSW index for large ones), keywords through
//! Postgres full text, queues claimed with `FOR UPDATE SKIP LOCKED`, rows locked for writes,
//! and text made storable. The statements it shares with SQLite are in the store's capability
//! files.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use pgvector::Vector;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Pool, Postgres, Row, Transaction};

use crate::config::StorageConfig;
use crate::domain::graph::ScoredGraphItem;
use crate::domain::{KeywordMatch, Neighbour, Session};
use crate::error::StoreError;
use crate::store::sql::{
    self, params, Dialect, FactWrite, Param, SqlRow, SqlStore, GRAPH_ITEM_COLUMNS,
};

pub type PostgresStore = SqlStore<PostgresDialect>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Clone, Debug)]
pub struct PostgresDialect {
    hnsw_min_facts: i64,
    hnsw_ef_search: u32,
}

pub async fn connect(
    config: &StorageConfig,
    dimensions: usize,
) -> Result<PostgresStore, StoreError> {
    let options = PgConnectOptions::from_str(config.url.as_str())?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections.max(1))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok(SqlStore {
        pool,
        dialect: PostgresDialect {
            hnsw_min_facts: config.hnsw_threshold(dimensions),
            hnsw_ef_search: config.hnsw_ef_search.clamp(1, 1000),
        },
    })
}

pub async fn migrate(store: &PostgresStore) -> Result<(), StoreError> {
    MIGRATOR.run(&store.pool).await?;
    Ok(())
}

/// Postgres `text` and `jsonb` cannot hold U+0000, which HTTP bodies, SQLite and the rest of
/// memgate carry like any other character. Text bound here gets U+FFFD (the replacement
/// character) in its place: stored text keeps its shape, and a key looked up with a NUL in it
/// finds what was stored under that key, or nothing, instead of failing the statement.
fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `value` as JSON that `jsonb` takes: every string and key [`storable`].
fn storable_json(mut value: Value) -> Json<Value> {
    fn scrub(value: &mut Value) {
        match value {
            Value::String(s) if s.contains('\0') => *s = storable(s).into_owned(),
            Value::Array(items) => items.iter_mut().for_each(scrub),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (storable(&k).into_owned(), v))
                        .collect();
                }
                map.values_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    scrub(&mut value);
    Json(value)
}

fn bind<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: Vec<Param<'q>>,
) -> Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(storable(v)),
            Param::OptText(v) => query.bind(v.map(storable)),
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
            Param::Vector(v) => query.bind(Vector::from(v.to_vec())),
            Param::Json(Value::Null) => query.bind(None::<Json<Value>>),
            Param::Json(v) => query.bind(storable_json(v)),
            Param::Texts(v) => query.bind(
                v.iter()
                    .map(|k| storable(k).into_owned())
                    .collect::<Vec<_>>(),
            ),
        };
    }
    query
}

impl SqlRow for PgRow {
    sql::scalar_columns!();

    fn vector(&self, column: &str) -> Result<Vec<f32>, StoreError> {
        let v: Vector = self.try_get(column)?;
        Ok(v.to_vec())
    }

    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let value: Option<Json<Value>> = self.try_get(column)?;
        serde_json::from_value(value.map_or(Value::Null, |j| j.0))
            .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
    }
}

/// Neighbours of a `SELECT id, text, similarity`.
fn neighbours(rows: &[PgRow]) -> Result<Vec<Neighbour>, StoreError> {
    rows.iter()
        .map(|r| {
            Ok(Neighbour {
                fact_id: r.text("id")?,
                text: r.text("text")?,
                updated_at: r.int("updated_at")?,
                similarity: r.try_get("similarity")?,
            })
        })
        .collect()
}

impl Dialect for PostgresDialect {
    type Db = Postgres;
    type Row = PgRow;

    const SESSION_COLUMNS: &'static str = "id, org_id, memory_id, engine, config, \
                                           fact_count AS stored_facts, created_at, updated_at";
    const LOCK_FOR_WRITE: &'static str = " FOR NO KEY UPDATE";
    const LOCK_FOR_UPDATE: &'static str = " FOR UPDATE";
    const UNLIMITED_OFFSET: &'static str = "OFFSET";
    const DAY_OF_CREATED_AT: &'static str =
        "to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
    const HAS_FACT_TTL: &'static str = "jsonb_typeof(config->'fact_ttl_seconds') = 'number'";
    /// `FOR UPDATE SKIP LOCKED` lets replicas claim side by side without waiting on, or
    /// taking, each other's rows.
    const CLAIM_OUTBOX: &'static str = "WITH due AS (
             SELECT id FROM outbox
             WHERE state = 'pending' AND next_attempt_at <= $1
               AND (lease_until IS NULL OR lease_until < $1)
             ORDER BY next_attempt_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE outbox o SET lease_until = $3, attempts = o.attempts + 1, updated_at = $1
         FROM due WHERE o.id = due.id
         RETURNING o.id, o.idempotency_key, o.org_id, o.session_id, o.payload,
                   CAST(o.attempts AS BIGINT) AS attempts";
    const CLAIM_GRAPH_PURGES: &'static str =
        "UPDATE graph_purges SET lease_until = $3, attempts = attempts + 1
         WHERE id IN (
             SELECT id FROM graph_purges
             WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
             ORDER BY id LIMIT $2
             FOR UPDATE SKIP LOCKED)
         RETURNING id, org_id, scope, edge_ids, entity_keys, CAST(attempts AS BIGINT) AS attempts";
    const ONE_PROCESS_PER_STORE: bool = false;
    const NEW_STORE: &'static str = "a new database";
    sql::statements_through_bind!();

    async fn begin_write(
        pool: &Pool<Postgres>,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(pool.begin().await?)
    }

    fn any_of<'a>(column: &str, first: usize, values: &'a [String]) -> (String, Vec<Param<'a>>) {
        (
            format!("{column} = ANY(${first})"),
            vec![Param::Texts(values)],
        )
    }

    /// Keeps `sessions.fact_count` true, inside the writing transaction.
    /// By the difference, not by counting the session's rows: a count costs a scan of the
    /// session, and made each ingest into a 10,000-fact session slower than into a small one.
    async fn facts_written<'c>(
        conn: &'c mut PgConnection,
        org_id: &'c str,
        session_id: i64,
        added: i64,
    ) -> Result<(), StoreError> {
        if added == 0 {
            return Ok(());
        }
        Self::execute(
            conn,
            "UPDATE sessions SET fact_count = GREATEST(fact_count + $3, 0)
             WHERE id = $2 AND org_id = $1",
            params![org_id, session_id, added],
        )
        .await
        .map(drop)
    }

    fn facts_committed(&self, _session_id: i64, _writes: Option<&[FactWrite<'_>]>) {}

    fn fact_write_order(&self) -> Option<&tokio::sync::Mutex<()>> {
        // Nothing follows commits; concurrent writers of a session queue on its row lock.
        None
    }

    async fn erased(_pool: &sqlx::PgPool) -> Result<(), StoreError> {
        // Deleted rows stay in the table's pages until (auto)vacuum reclaims them; no query
        // can see them meanwhile.
        Ok(())
    }

    async fn lock_meta(conn: &mut PgConnection) -> Result<(), StoreError> {
        Self::execute(conn, "SELECT pg_advisory_xact_lock(7326011)", Vec::new())
            .await
            .map(drop)
    }

    async fn fix_dimensions(conn: &mut PgConnection, dimensions: usize) -> Result<(), StoreError> {
        let sql = format!("ALTER TABLE facts ALTER COLUMN embedding TYPE vector({dimensions})");
        Self::execute(conn, &sql, Vec::new()).await.map(drop)
    }

    async fn index_vectors(conn: &mut PgConnection) -> Result<(), StoreError> {
        // An HNSW index needs the typed column; on an empty table it is built at once.
        Self::execute(
            conn,
            "CREATE INDEX IF NOT EXISTS facts_embedding_hnsw ON facts
             USING hnsw (embedding vector_cosine_ops)",
            Vec::new(),
        )
        .await
        .map(drop)
    }

    /// Postgres full text (the generated `terms` column, English stemming, GIN index), best
    /// `ts_rank_cd` first. Terms are alphanumeric only (`memory::query::keyword_terms`), so
    /// they carry no tsquery syntax.
    async fn keyword_search<'a>(
        store: &'a PostgresStore,
        session: &'a Session,
        terms: &'a [String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<KeywordMatch>, StoreError> {
        let since = fresh_since.unwrap_or(i64::MIN);
        let expression = terms.join(" | ");
        let rows = store
            .fetch_all(
                "SELECT id, text, updated_at,
                        CAST(ts_rank_cd(terms, q) AS DOUBLE PRECISION) AS score
                 FROM facts, to_tsquery('english', $1) AS q
                 WHERE org_id = $2 AND session_id = $3 AND updated_at >= $4 AND terms @@ q
                 ORDER BY ts_rank_cd(terms, q) DESC, id
                 LIMIT $5",
                params![
                    &expression,
                    &session.org_id,
                    session.id,
                    since,
                    limit as i64
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeywordMatch {
                    fact_id: r.text("id")?,
                    text: r.text("text")?,
                    updated_at: r.int("updated_at")?,
                    score: r.real("score")?,
                })
            })
            .collect()
    }

    /// A session below the HNSW threshold is searched exactly (its rows by the btree, then
    /// distances), a larger one through the HNSW index with an iterative scan, which keeps
    /// going until `k` rows of the session are found. benches/pgvector measured both: at 1536
    /// dimensions exact takes 11 ms for 1k facts, 158 ms for 10k and 1.07 s for 100k, HNSW
    /// (ef_search 200) 11-22 ms throughout.
    async fn nearest<'a>(
        store: &'a PostgresStore,
        session: &'a Session,
        query: &'a [f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<Neighbour>, StoreError> {
        let since = fresh_since.unwrap_or(i64::MIN);
        let mut bound = vec![Param::Vector(query)];
        bound.extend(params![&session.org_id, session.id, since, k as i64]);
        if session.stored_facts < store.dialect.hnsw_min_facts {
            // MATERIALIZED keeps the planner from walking the HNSW index for a small
            // session, where most of what it visits belongs to other sessions.
            let rows = store
                .fetch_all(
                    "WITH own AS MATERIALIZED (
                         SELECT id, text, updated_at, embedding FROM facts
                         WHERE org_id = $2 AND session_id = $3 AND updated_at >= $4)
                     SELECT id, text, updated_at, (1 - (embedding <=> $1))::real AS similarity
                     FROM own ORDER BY embedding <=> $1 LIMIT $5",
                    bound,
                )
                .await?;
            return neighbours(&rows);
        }
        let mut tx = store.pool.begin().await?;
        // Seq scan off too: on a small table the planner would rather read it whole.
        for setting in [
            "SET LOCAL hnsw.iterative_scan = relaxed_order".to_string(),
            "SET LOCAL enable_seqscan = off".to_string(),
            format!(
                "SET LOCAL hnsw.ef_search = {}",
                store.dialect.hnsw_ef_search
            ),
        ] {
            Self::execute(&mut tx, &setting, Vec::new()).await?;
        }
        // The filter is written so that no btree can serve it (`|| ''`, `+ 0`): the
        // planner underestimates large sessions and would scan their rows (or a bitmap of
        // them) instead of walking the graph.
        // Relaxed order may return neighbours slightly out of order; the outer query
        // sorts them.
        let rows = Self::fetch_all(
            &mut tx,
            "SELECT id, text, updated_at, similarity FROM (
                 SELECT id, text, updated_at, (1 - (embedding <=> $1))::real AS similarity
                 FROM facts
                 WHERE org_id || '' = $2 AND session_id + 0 = $3 AND updated_at + 0 >= $4
                 ORDER BY embedding <=> $1 LIMIT $5) nearest
             ORDER BY similarity DESC",
            bound,
        )
        .await?;
        tx.commit().await?;
        neighbours(&rows)
    }

    /// A session's items are few next to the table, so they are searched exactly: the
    /// session's rows by btree first (MATERIALIZED, as for small fact sessions), then
    /// distances.
    async fn nearest_graph_items<'a>(
        store: &'a PostgresStore,
        session: &'a Session,
        kinds: &'a [String],
        query: &'a [f32],
        k: usize,
    ) -> Result<Vec<ScoredGraphItem>, StoreError> {
        let sql = format!(
            "WITH own AS MATERIALIZED (
                 SELECT {GRAPH_ITEM_COLUMNS}, embedding FROM graph_items
                 WHERE org_id = $2 AND session_id = $3 AND kind = ANY($4))
             SELECT {GRAPH_ITEM_COLUMNS}, (1 - (embedding <=> $1))::real AS similarity
             FROM own ORDER BY embedding <=> $1 LIMIT $5"
        );
        let mut bound = vec![Param::Vector(query)];
        bound.extend(params![&session.org_id, session.id]);
        bound.extend([Param::Texts(kinds), Param::Int(k as i64)]);
        let rows = store.fetch_all(&sql, bound).await?;
        rows.iter()
            .map(|row| {
                Ok(ScoredGraphItem {
                    item: sql::graph_item(row)?,
                    similarity: row.try_get::<Option<f32>, _>("similarity")?.unwrap_or(0.0),
                })
            })
            .collect()
    }
}
