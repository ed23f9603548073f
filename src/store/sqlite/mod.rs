//! The embedded store: one SQLite file (WAL), vectors as little-endian f32 blobs searched
//! exactly in Rust over rows cached between searches, keywords by BM25 over the same rows.
//! What is SQLite's own is here; the statements it shares with Postgres are in the store's
//! capability files.

mod lexical;
mod vector_cache;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Pool, Row, Sqlite, Transaction};

use crate::domain::graph::ScoredGraphItem;
use crate::domain::{KeywordMatch, Neighbour, Session};
use crate::error::StoreError;
use crate::store::graph_items::graph_item_vector;
use crate::store::sql::{
    self, params, Dialect, FactWrite, Param, SqlRow, SqlStore, GRAPH_ITEM_COLUMNS,
};
use crate::vector;
use vector_cache::{SessionVectors, VectorCache};

pub type SqliteStore = SqlStore<SqliteDialect>;

/// Write transactions take the write lock up front. A deferred one that reads first would
/// fail with SQLITE_BUSY_SNAPSHOT (which no busy timeout retries) whenever another connection
/// commits between its read and its first write.
const WRITE_TRANSACTION: &str = "BEGIN IMMEDIATE";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Room for about 10k facts of 1536 dimensions.
const VECTOR_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A fact with its vector, as the cache keeps them.
#[derive(Clone, Debug)]
pub struct StoredVector {
    pub org_id: String,
    pub fact_id: String,
    pub text: String,
    /// When the fact was last written (ms), for the session's TTL.
    pub updated_at: i64,
    pub embedding: Vec<f32>,
    /// The embedding's length, so a search computes one dot product per fact.
    pub norm: f32,
    /// Its words, for keyword search.
    pub terms: lexical::RowTerms,
}

impl StoredVector {
    pub fn new(
        org_id: String,
        fact_id: String,
        text: String,
        updated_at: i64,
        embedding: Vec<f32>,
    ) -> Self {
        Self {
            norm: vector::norm(&embedding),
            terms: lexical::RowTerms::of(&text),
            org_id,
            fact_id,
            text,
            updated_at,
            embedding,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SqliteDialect {
    vectors: Arc<VectorCache>,
    /// Fact writes commit and reach the cache in one order: two writers of a session whose
    /// hooks ran the other way round would leave the cache unlike the file.
    write_order: Arc<tokio::sync::Mutex<()>>,
}

pub async fn connect(url: &str, max_connections: u32) -> Result<SqliteStore, StoreError> {
    if let Some(dir) = sqlite_parent_dir(url) {
        std::fs::create_dir_all(&dir).map_err(|e| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create {}: {e}", dir.display()).into(),
            ))
        })?;
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // A deleted fact or turn is overwritten in the file, not only unlinked: erasure
        // (`forget`, a session's deletion) must not leave its text in free pages.
        .pragma("secure_delete", "on")
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        .connect_with(options)
        .await?;
    Ok(SqlStore {
        pool,
        dialect: SqliteDialect {
            vectors: Arc::new(VectorCache::new(VECTOR_CACHE_BYTES)),
            write_order: Arc::new(tokio::sync::Mutex::new(())),
        },
    })
}

pub async fn migrate(store: &SqliteStore) -> Result<(), StoreError> {
    MIGRATOR.run(&store.pool).await?;
    Ok(())
}

fn bind<'q>(
    mut query: Query<'q, Sqlite, SqliteArguments<'q>>,
    params: Vec<Param<'q>>,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
            Param::Vector(v) => query.bind(vector::encode(v)),
            Param::Json(serde_json::Value::Null) => query.bind(None::<String>),
            Param::Json(v) => query.bind(v.to_string()),
            // `any_of` spreads lists into one parameter per key.
            Param::Texts(v) => query.bind(serde_json::json!(v).to_string()),
        };
    }
    query
}

fn corrupt(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column `{column}`: {e}"))
}

impl SqlRow for SqliteRow {
    sql::scalar_columns!();

    fn vector(&self, column: &str) -> Result<Vec<f32>, StoreError> {
        let blob: Vec<u8> = self.try_get(column)?;
        vector::decode(&blob)
            .ok_or_else(|| corrupt(column, "embedding blob length is not a multiple of 4"))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: Option<String> = self.try_get(column)?;
        match text {
            Some(text) => serde_json::from_str(&text),
            None => serde_json::from_value(serde_json::Value::Null),
        }
        .map_err(|e| corrupt(column, e))
    }
}

impl SqliteDialect {
    /// Every fact of the session with its vector, from memory when it was read before.
    async fn session_vectors(
        store: &SqliteStore,
        org_id: &str,
        session_id: i64,
    ) -> Result<Arc<SessionVectors>, StoreError> {
        let cache = &store.dialect.vectors;
        if let Some(hit) = cache.get(session_id) {
            // Session ids are global; the org check keeps the cache as scoped as the query.
            if hit.org_id == org_id {
                return Ok(hit);
            }
        }
        let loaded_at = cache.generation(session_id);
        let rows = store
            .fetch_all(
                "SELECT id, text, embedding, updated_at FROM facts
                 WHERE org_id = $1 AND session_id = $2",
                params![org_id, session_id],
            )
            .await?;
        let vectors = rows
            .iter()
            .map(|r| {
                Ok(StoredVector::new(
                    org_id.to_string(),
                    r.text("id")?,
                    r.text("text")?,
                    r.int("updated_at")?,
                    r.vector("embedding")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let vectors = Arc::new(SessionVectors::new(org_id.to_string(), vectors));
        cache.insert(session_id, vectors.clone(), loaded_at);
        Ok(vectors)
    }
}

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Row = SqliteRow;

    const SESSION_COLUMNS: &'static str =
        "id, org_id, memory_id, engine, config, 0 AS stored_facts, created_at, updated_at";
    const LOCK_FOR_WRITE: &'static str = "";
    const LOCK_FOR_UPDATE: &'static str = "";
    const UNLIMITED_OFFSET: &'static str = "LIMIT -1 OFFSET";
    const DAY_OF_CREATED_AT: &'static str = "date(created_at / 1000, 'unixepoch')";
    const HAS_FACT_TTL: &'static str = "json_extract(config, '$.fact_ttl_seconds') IS NOT NULL";
    const CLAIM_OUTBOX: &'static str =
        "UPDATE outbox SET lease_until = $3, attempts = attempts + 1, updated_at = $1
         WHERE id IN (
             SELECT id FROM outbox
             WHERE state = 'pending' AND next_attempt_at <= $1
               AND (lease_until IS NULL OR lease_until < $1)
             ORDER BY id LIMIT $2)
         RETURNING id, idempotency_key, org_id, session_id, payload, attempts";
    const CLAIM_GRAPH_PURGES: &'static str =
        "UPDATE graph_purges SET lease_until = $3, attempts = attempts + 1
         WHERE id IN (
             SELECT id FROM graph_purges
             WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
             ORDER BY id LIMIT $2)
         RETURNING id, org_id, scope, edge_ids, entity_keys, attempts";
    const ONE_PROCESS_PER_STORE: bool = true;
    const NEW_STORE: &'static str = "a new database file";

    sql::statements_through_bind!();

    async fn begin_write(pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with(WRITE_TRANSACTION).await?)
    }

    fn any_of<'a>(column: &str, first: usize, values: &'a [String]) -> (String, Vec<Param<'a>>) {
        let placeholders = (first..first + values.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            format!("{column} IN ({placeholders})"),
            values.iter().map(Param::from).collect(),
        )
    }

    async fn facts_written<'c>(
        _conn: &'c mut SqliteConnection,
        _org_id: &'c str,
        _session_id: i64,
        _added: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn facts_committed(&self, session_id: i64, writes: Option<&[FactWrite<'_>]>) {
        match writes {
            Some(writes) => self.vectors.apply(session_id, writes),
            None => self.vectors.invalidate(session_id),
        }
    }

    fn fact_write_order(&self) -> Option<&tokio::sync::Mutex<()>> {
        Some(&self.write_order)
    }

    async fn erased(pool: &Pool<Sqlite>) -> Result<(), StoreError> {
        // The write-ahead log still holds the pages as they were before the erasure; they
        // are copied into the file (overwritten there) and the log is emptied.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn lock_meta(_conn: &mut SqliteConnection) -> Result<(), StoreError> {
        // The write transaction holds the file's lock already.
        Ok(())
    }

    async fn fix_dimensions(
        _conn: &mut SqliteConnection,
        _dimensions: usize,
    ) -> Result<(), StoreError> {
        // Blobs take any length.
        Ok(())
    }

    async fn index_vectors(_conn: &mut SqliteConnection) -> Result<(), StoreError> {
        // Searched exactly in Rust.
        Ok(())
    }

    /// BM25 over the session's rows, the ones [`Self::nearest`] searches (see `lexical.rs`).
    async fn keyword_search<'a>(
        store: &'a SqliteStore,
        session: &'a Session,
        terms: &'a [String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<KeywordMatch>, StoreError> {
        let session_vectors = Self::session_vectors(store, &session.org_id, session.id).await?;
        let since = fresh_since.unwrap_or(i64::MIN);
        Ok(session_vectors.read(|all| lexical::search(all, terms, since, limit)))
    }

    /// Exact, over the cached vectors.
    async fn nearest<'a>(
        store: &'a SqliteStore,
        session: &'a Session,
        query: &'a [f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<Neighbour>, StoreError> {
        let session_vectors = Self::session_vectors(store, &session.org_id, session.id).await?;
        let since = fresh_since.unwrap_or(i64::MIN);
        let query_norm = vector::norm(query);
        Ok(session_vectors.read(|all| {
            let live: Vec<&StoredVector> = all.iter().filter(|s| s.updated_at >= since).collect();
            let similarities = live.iter().map(|s| {
                let norms = query_norm * s.norm;
                if norms == 0.0 || s.embedding.len() != query.len() {
                    0.0
                } else {
                    vector::dot(query, &s.embedding) / norms
                }
            });
            vector::best_k(similarities, k)
                .into_iter()
                .map(|(i, similarity)| Neighbour {
                    fact_id: live[i].fact_id.clone(),
                    text: live[i].text.clone(),
                    updated_at: live[i].updated_at,
                    similarity,
                })
                .collect()
        }))
    }

    /// Exact, in Rust, over the session's rows of those kinds.
    async fn nearest_graph_items<'a>(
        store: &'a SqliteStore,
        session: &'a Session,
        kinds: &'a [String],
        query: &'a [f32],
        k: usize,
    ) -> Result<Vec<ScoredGraphItem>, StoreError> {
        let (listed, kind_params) = Self::any_of("kind", 3, kinds);
        let sql = format!(
            "SELECT {GRAPH_ITEM_COLUMNS}, embedding FROM graph_items
             WHERE org_id = $1 AND session_id = $2 AND {listed}"
        );
        let mut bound = params![&session.org_id, session.id];
        bound.extend(kind_params);
        let rows = store.fetch_all(&sql, bound).await?;
        let mut scored = rows
            .iter()
            .map(|row| {
                let found = graph_item_vector(row)?;
                Ok(ScoredGraphItem {
                    similarity: vector::cosine(query, &found.embedding),
                    item: found.item,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        scored.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        scored.truncate(k);
        Ok(scored)
    }
}

/// The directory a `sqlite://path` URL's file lives in, so a fresh checkout can start without
/// creating `data/` by hand.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let parent = std::path::Path::new(path).parent()?;
    (!parent.as_os_str().is_empty()).then(|| parent.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_dir_of_sqlite_urls() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/memgate.db").unwrap(),
            std::path::PathBuf::from("data")
        );
        assert!(sqlite_parent_dir("sqlite::memory:").is_none());
        assert!(sqlite_parent_dir("sqlite://m.db").is_none());
    }
}
