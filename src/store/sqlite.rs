//! The embedded store: one SQLite file (WAL), FTS5 for keywords, vectors as little-endian f32
//! blobs searched exactly in Rust. Every statement that touches memory data is scoped by
//! `org_id` in its WHERE clause.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, Row, SqlitePool};

use crate::error::StoreError;
use crate::memory::query::fts_match_expression;
use crate::memory::{now_ms, vector, Fact, FactHistoryEvent, Session, SessionConfig};
use crate::store::vector_cache::{SessionVectors, VectorCache};
use crate::store::{
    FactChange, Neighbour, OutboxCounts, OutboxEntry, OutboxRow, SessionStats, StoredVector,
    TurnPayload, UsageRow,
};
use crate::usage::UsageEvent;

/// Write transactions take the write lock up front. A deferred one that reads first would
/// fail with SQLITE_BUSY_SNAPSHOT (which no busy timeout retries) whenever another connection
/// commits between its read and its first write.
pub(super) const WRITE_TRANSACTION: &str = "BEGIN IMMEDIATE";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    vectors: Arc<VectorCache>,
}

/// Room for about 10k facts of 1536 dimensions.
const VECTOR_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
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
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            vectors: Arc::new(VectorCache::new(VECTOR_CACHE_BYTES)),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Records the embedding model on first start and refuses to run against vectors of
    /// another one afterwards: distances between them mean nothing.
    pub async fn check_embeddings(&self, model: &str, dimensions: usize) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        let stored: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, value FROM memgate_meta WHERE key IN ('embedding_dimensions', 'embedding_model')",
        )
        .fetch_all(&mut *tx)
        .await?;
        let get = |k: &str| {
            stored
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        match (get("embedding_dimensions"), get("embedding_model")) {
            (None, _) => {
                sqlx::query(
                    "INSERT INTO memgate_meta (key, value) VALUES ('embedding_dimensions', ?), ('embedding_model', ?)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(dimensions.to_string())
                .bind(model)
                .execute(&mut *tx)
                .await?;
            }
            (Some(d), Some(m)) if d == dimensions.to_string() && m == model => {}
            (Some(d), m) => {
                return Err(StoreError::EmbeddingsChanged(format!(
                    "the store holds {d}-dimensional embeddings of `{}`, but the config asks for {dimensions} of `{model}`; \
                     vectors of two models cannot be compared. Keep embeddings.model and embeddings.dimensions, \
                     or start on a new database file (stored facts would have to be re-embedded)",
                    m.unwrap_or_default()
                )))
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- sessions ----

    pub async fn create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: &str,
        config: &SessionConfig,
    ) -> Result<Session, StoreError> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO sessions (org_id, memory_id, engine, config, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (org_id, memory_id) DO NOTHING
             RETURNING id",
        )
        .bind(org_id)
        .bind(memory_id)
        .bind(engine)
        .bind(config_json(config)?)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = inserted else {
            return Err(StoreError::Conflict(format!(
                "memory session `{memory_id}`"
            )));
        };
        Ok(Session {
            id: row.get("id"),
            org_id: org_id.into(),
            memory_id: memory_id.into(),
            engine: engine.into(),
            config: config.clone(),
            stored_facts: 0,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn find_session(
        &self,
        org_id: &str,
        memory_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT id, org_id, memory_id, engine, config, created_at, updated_at
             FROM sessions WHERE org_id = ? AND memory_id = ?",
        )
        .bind(org_id)
        .bind(memory_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// The session, created with `engine` when it does not exist yet (race-free). Looks first,
    /// so the common case costs a read, not a write.
    pub async fn find_or_create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: &str,
    ) -> Result<Session, StoreError> {
        if let Some(session) = self.find_session(org_id, memory_id).await? {
            return Ok(session);
        }
        match self
            .create_session(org_id, memory_id, engine, &SessionConfig::default())
            .await
        {
            Ok(s) => Ok(s),
            Err(StoreError::Conflict(_)) => self
                .find_session(org_id, memory_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt("session vanished after conflict".into())),
            Err(e) => Err(e),
        }
    }

    /// A page of the org's sessions, oldest first, with their fact counts.
    pub async fn list_sessions(
        &self,
        org_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(Session, SessionStats)>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.org_id, s.memory_id, s.engine, s.config, s.created_at, s.updated_at,
                    (SELECT COUNT(*) FROM facts f WHERE f.org_id = s.org_id AND f.session_id = s.id)
                      + (SELECT COUNT(*) FROM graph_items g WHERE g.org_id = s.org_id AND g.session_id = s.id AND g.kind = 'edge') AS fact_count,
                    (SELECT COUNT(*) FROM outbox o WHERE o.org_id = s.org_id AND o.session_id = s.id AND o.state = 'pending') AS pending_turns,
                    (SELECT COUNT(*) FROM outbox o WHERE o.org_id = s.org_id AND o.session_id = s.id AND o.state = 'dead') AS dead_turns
             FROM sessions s WHERE s.org_id = ?
             ORDER BY s.id LIMIT ? OFFSET ?",
        )
        .bind(org_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE org_id = ?")
            .bind(org_id)
            .fetch_one(&self.pool)
            .await?;
        let sessions = rows
            .iter()
            .map(|r| Ok((session_from_row(r)?, SessionStats::from_row(r)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((sessions, total))
    }

    pub async fn session_stats(&self, session: &Session) -> Result<SessionStats, StoreError> {
        let row = sqlx::query(
            "SELECT
                (SELECT COUNT(*) FROM facts WHERE org_id = ?1 AND session_id = ?2)
                  + (SELECT COUNT(*) FROM graph_items WHERE org_id = ?1 AND session_id = ?2 AND kind = 'edge') AS fact_count,
                (SELECT COUNT(*) FROM outbox WHERE org_id = ?1 AND session_id = ?2 AND state = 'pending') AS pending_turns,
                (SELECT COUNT(*) FROM outbox WHERE org_id = ?1 AND session_id = ?2 AND state = 'dead') AS dead_turns",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(SessionStats::from_row(&row)?)
    }

    /// Replaces the session's config; `None` when the org has no such session.
    pub async fn update_session_config(
        &self,
        org_id: &str,
        memory_id: &str,
        config: &SessionConfig,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "UPDATE sessions SET config = ?, updated_at = ?
             WHERE org_id = ? AND memory_id = ?
             RETURNING id, org_id, memory_id, engine, config, created_at, updated_at",
        )
        .bind(config_json(config)?)
        .bind(now_ms())
        .bind(org_id)
        .bind(memory_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// Deletes the session with its facts, history and pending turns in one transaction;
    /// returns how many facts went, or `None` when the org has no such session.
    pub async fn delete_session(
        &self,
        org_id: &str,
        memory_id: &str,
        purge_graph: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        let Some((session_id, created_at, engine)): Option<(i64, i64, String)> = sqlx::query_as(
            "SELECT id, created_at, engine FROM sessions WHERE org_id = ? AND memory_id = ?",
        )
        .bind(org_id)
        .bind(memory_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let facts: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM facts WHERE org_id = ?1 AND session_id = ?2)
                  + (SELECT COUNT(*) FROM graph_items WHERE org_id = ?1 AND session_id = ?2 AND kind = 'edge')",
        )
        .bind(org_id)
        .bind(session_id)
        .fetch_one(&mut *tx)
        .await?;
        // The FTS table has no foreign key to cascade through.
        sqlx::query("DELETE FROM facts_fts WHERE session_id = ?")
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        // Facts, graph items, history and outbox rows go by ON DELETE CASCADE.
        sqlx::query("DELETE FROM sessions WHERE id = ? AND org_id = ?")
            .bind(session_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?;
        if purge_graph && engine == crate::memory::COGNEE_ENGINE {
            let scope = super::graph_items::graph_scope(session_id, created_at);
            super::sqlite_graph::insert_purge(&mut tx, org_id, &scope, None, None).await?;
        }
        tx.commit().await?;
        self.vectors.invalidate(session_id);
        Ok(Some(facts))
    }

    // ---- facts ----

    /// Every fact of the session with its vector, from memory when it was read before.
    pub async fn session_vectors(
        &self,
        org_id: &str,
        session_id: i64,
    ) -> Result<SessionVectors, StoreError> {
        if let Some(hit) = self.vectors.get(session_id) {
            // Session ids are global; the org check keeps the cache as scoped as the query.
            if hit.first().is_none_or(|v| v.org_id == org_id) {
                return Ok(hit);
            }
        }
        let loaded_at = self.vectors.generation();
        let rows = sqlx::query(
            "SELECT id, text, embedding, updated_at FROM facts WHERE org_id = ? AND session_id = ?",
        )
        .bind(org_id)
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        let vectors = rows
            .iter()
            .map(|r| {
                let blob: Vec<u8> = r.get("embedding");
                Ok(StoredVector {
                    org_id: org_id.to_string(),
                    fact_id: r.get("id"),
                    text: r.get("text"),
                    updated_at: r.get("updated_at"),
                    embedding: vector::decode(&blob).ok_or_else(|| {
                        StoreError::Corrupt("embedding blob length is not a multiple of 4".into())
                    })?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let vectors = Arc::new(vectors);
        self.vectors.insert(session_id, vectors.clone(), loaded_at);
        Ok(vectors)
    }

    /// The session's `k` facts nearest to `query` (cosine similarity, best first), among
    /// those written since `fresh_since`. Exact, over the cached vectors.
    pub async fn nearest(
        &self,
        session: &Session,
        query: &[f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<Neighbour>, StoreError> {
        let all = self.session_vectors(&session.org_id, session.id).await?;
        let since = fresh_since.unwrap_or(i64::MIN);
        let live: Vec<&StoredVector> = all.iter().filter(|s| s.updated_at >= since).collect();
        Ok(
            vector::top_k(query, live.iter().map(|s| s.embedding.as_slice()), k)
                .into_iter()
                .map(|(i, similarity)| Neighbour {
                    fact_id: live[i].fact_id.clone(),
                    text: live[i].text.clone(),
                    similarity,
                })
                .collect(),
        )
    }

    /// Facts (id, text) matching any of `terms`, best BM25 first.
    pub async fn keyword_search(
        &self,
        session: &Session,
        terms: &[String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let Some(expression) = fts_match_expression(terms) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT f.id AS id, f.text AS text
             FROM facts_fts
             JOIN facts f ON f.id = facts_fts.fact_id
             WHERE facts_fts MATCH ? AND facts_fts.session_id = ?
               AND f.org_id = ? AND f.session_id = ? AND f.updated_at >= ?
             ORDER BY bm25(facts_fts)
             LIMIT ?",
        )
        .bind(expression)
        .bind(session.id)
        .bind(&session.org_id)
        .bind(session.id)
        .bind(fresh_since.unwrap_or(i64::MIN))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get("id"), r.get("text"))).collect())
    }

    /// A page of the session's facts, oldest first; facts written before `fresh_since` (the
    /// session's TTL) are left out as if already purged.
    pub async fn list_facts(
        &self,
        session: &Session,
        fresh_since: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), StoreError> {
        let since = fresh_since.unwrap_or(i64::MIN);
        let rows = sqlx::query(
            "SELECT id, text, created_at, updated_at FROM facts
             WHERE org_id = ? AND session_id = ? AND updated_at >= ?
             ORDER BY created_at, id LIMIT ? OFFSET ?",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(since)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM facts WHERE org_id = ? AND session_id = ? AND updated_at >= ?",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        let facts = rows.iter().map(Fact::from_row).collect::<Result<_, _>>()?;
        Ok((facts, total))
    }

    /// Applies changes with their history rows in one transaction, then trims the session to
    /// its `max_facts`; returns the ids touched, in order (a new id for each ADD). Updates and
    /// deletes of facts that are not there are skipped. A session deleted meanwhile gets
    /// nothing: its rows are checked inside the transaction, creation time included, because
    /// SQLite may hand a deleted session's id to the next one created.
    pub async fn apply_fact_changes(
        &self,
        session: &Session,
        changes: &[FactChange],
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let (org_id, session_id) = (session.org_id.as_str(), session.id);
        let now = now_ms();
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        ensure_live_session(&mut tx, session).await?;
        let mut ids = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                FactChange::Add { text, embedding } => {
                    let id = uuid::Uuid::now_v7().to_string();
                    sqlx::query(
                        "INSERT INTO facts (id, org_id, session_id, text, embedding, created_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&id)
                    .bind(org_id)
                    .bind(session_id)
                    .bind(text)
                    .bind(vector::encode(embedding))
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO facts_fts (text, fact_id, session_id) VALUES (?, ?, ?)",
                    )
                    .bind(text)
                    .bind(&id)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                    insert_history(
                        &mut tx,
                        org_id,
                        session_id,
                        &id,
                        "ADD",
                        None,
                        Some(text),
                        reason,
                        now,
                    )
                    .await?;
                    ids.push(id);
                }
                FactChange::Update {
                    fact_id,
                    text,
                    embedding,
                } => {
                    let Some(old) = fact_text(&mut tx, org_id, session_id, fact_id).await? else {
                        continue;
                    };
                    sqlx::query(
                        "UPDATE facts SET text = ?, embedding = ?, updated_at = ?
                         WHERE id = ? AND org_id = ? AND session_id = ?",
                    )
                    .bind(text)
                    .bind(vector::encode(embedding))
                    .bind(now)
                    .bind(fact_id)
                    .bind(org_id)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE facts_fts SET text = ? WHERE fact_id = ? AND session_id = ?",
                    )
                    .bind(text)
                    .bind(fact_id)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                    insert_history(
                        &mut tx,
                        org_id,
                        session_id,
                        fact_id,
                        "UPDATE",
                        Some(&old),
                        Some(text),
                        reason,
                        now,
                    )
                    .await?;
                    ids.push(fact_id.clone());
                }
                FactChange::Delete { fact_id } => {
                    let Some(old) = fact_text(&mut tx, org_id, session_id, fact_id).await? else {
                        continue;
                    };
                    delete_fact(&mut tx, org_id, session_id, fact_id, &old, reason, now).await?;
                    ids.push(fact_id.clone());
                }
            }
        }
        if let Some(cap) = session.config.max_facts {
            trim_to_cap(&mut tx, org_id, session_id, cap, now).await?;
        }
        tx.commit().await?;
        self.vectors.invalidate(session_id);
        Ok(ids)
    }

    /// Applies the session's retention now: facts past its TTL and beyond its cap go, each
    /// with a history row. Returns how many were removed.
    pub async fn enforce_retention(&self, session: &Session) -> Result<u64, StoreError> {
        let (org_id, session_id) = (session.org_id.as_str(), session.id);
        let now = now_ms();
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        let mut removed = 0;
        if let Some(since) = session.config.fresh_since(now) {
            let expired = sqlx::query(
                "SELECT id, text FROM facts WHERE org_id = ? AND session_id = ? AND updated_at < ?",
            )
            .bind(org_id)
            .bind(session_id)
            .bind(since)
            .fetch_all(&mut *tx)
            .await?;
            for r in &expired {
                let (id, text): (String, String) = (r.get("id"), r.get("text"));
                delete_fact(&mut tx, org_id, session_id, &id, &text, "expired", now).await?;
            }
            removed += expired.len() as u64;
        }
        if let Some(cap) = session.config.max_facts {
            removed += trim_to_cap(&mut tx, org_id, session_id, cap, now).await?;
        }
        tx.commit().await?;
        if removed > 0 {
            self.vectors.invalidate(session_id);
        }
        Ok(removed)
    }

    /// Every session that has a fact TTL, for the periodic purge.
    pub async fn sessions_with_ttl(&self) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, org_id, memory_id, engine, config, created_at, updated_at FROM sessions
             WHERE json_extract(config, '$.fact_ttl_seconds') IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// A page of the ADD/UPDATE/DELETE events of the session's facts, oldest first.
    pub async fn fact_history(
        &self,
        session: &Session,
        fact_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FactHistoryEvent>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT id, fact_id, event, old_text, new_text, reason, created_at FROM fact_history
             WHERE org_id = ? AND session_id = ? AND (? IS NULL OR fact_id = ?)
             ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(fact_id)
        .bind(fact_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fact_history
             WHERE org_id = ? AND session_id = ? AND (? IS NULL OR fact_id = ?)",
        )
        .bind(&session.org_id)
        .bind(session.id)
        .bind(fact_id)
        .bind(fact_id)
        .fetch_one(&self.pool)
        .await?;
        let events = rows
            .iter()
            .map(FactHistoryEvent::from_row)
            .collect::<Result<_, _>>()?;
        Ok((events, total))
    }

    // ---- outbox ----

    /// Stores a finished turn for ingestion. Idempotent on `idempotency_key`.
    pub async fn enqueue_turn(
        &self,
        idempotency_key: &str,
        org_id: &str,
        session_id: i64,
        payload: &TurnPayload,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let payload = serde_json::to_string(payload)
            .map_err(|e| StoreError::Corrupt(format!("turn payload: {e}")))?;
        sqlx::query(
            "INSERT INTO outbox (idempotency_key, org_id, session_id, payload, next_attempt_at, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(idempotency_key)
        .bind(org_id)
        .bind(session_id)
        .bind(payload)
        .bind(now)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` due rows under a lease: a worker that dies mid-ingest leaves them
    /// to be claimed again when the lease runs out.
    pub async fn claim_outbox(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE outbox SET lease_until = ?, attempts = attempts + 1, updated_at = ?
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE state = 'pending' AND next_attempt_at <= ?
                   AND (lease_until IS NULL OR lease_until < ?)
                 ORDER BY id LIMIT ?)
             RETURNING id, org_id, session_id, payload, attempts",
        )
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            let payload: String = r.get("payload");
            claimed.push(OutboxRow {
                id: r.get("id"),
                org_id: r.get("org_id"),
                session_id: r.get("session_id"),
                payload: serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
                attempts: r.get("attempts"),
            });
        }
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    /// Frees the leases a killed process left. One process owns an SQLite file, so at start
    /// every lease is a dead process's, and its turns need not wait for the lease to run out.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let freed = sqlx::query(
            "UPDATE outbox SET lease_until = NULL WHERE state = 'pending' AND lease_until IS NOT NULL",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query("UPDATE graph_purges SET lease_until = NULL WHERE lease_until IS NOT NULL")
            .execute(&self.pool)
            .await?;
        Ok(freed)
    }

    pub async fn complete_outbox(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = ?
             WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or dead-lettered when `None`.
    pub async fn fail_outbox(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (state, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now_ms()),
        };
        sqlx::query(
            "UPDATE outbox SET state = ?, next_attempt_at = ?, lease_until = NULL, last_error = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets ingested rows finished before `before_ms`; dead rows stay for inspection.
    pub async fn purge_done_outbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM outbox WHERE state = 'done' AND updated_at < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn list_outbox(
        &self,
        org_id: &str,
        state: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OutboxEntry>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, s.memory_id, o.state, o.attempts, o.last_error, o.created_at, o.next_attempt_at
             FROM outbox o JOIN sessions s ON s.id = o.session_id AND s.org_id = o.org_id
             WHERE o.org_id = ? AND o.state = ?
             ORDER BY o.id LIMIT ? OFFSET ?",
        )
        .bind(org_id)
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE org_id = ? AND state = ?")
                .bind(org_id)
                .bind(state)
                .fetch_one(&self.pool)
                .await?;
        let entries = rows
            .iter()
            .map(OutboxEntry::from_row)
            .collect::<Result<_, _>>()?;
        Ok((entries, total))
    }

    pub async fn retry_outbox(&self, org_id: &str, id: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, updated_at = ?
             WHERE id = ? AND org_id = ? AND state = 'dead'",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(org_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Rows by state, for readiness, metrics and tests.
    pub async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = OutboxCounts::default();
        for r in rows {
            let n: i64 = r.get("n");
            match r.get::<String, _>("state").as_str() {
                "pending" => counts.pending = n,
                "done" => counts.done = n,
                "dead" => counts.dead = n,
                _ => {}
            }
        }
        counts.oldest_pending_ms =
            sqlx::query_scalar("SELECT MIN(created_at) FROM outbox WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(counts)
    }

    pub async fn usage_report(
        &self,
        org_id: &str,
        from_ms: i64,
        to_ms: i64,
        by_session: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let session = if by_session { "memory_id" } else { "NULL" };
        let rows = sqlx::query(&format!(
            "SELECT date(created_at / 1000, 'unixepoch') AS day, purpose, model, CAST({session} AS TEXT) AS memory_id,
                    COUNT(*) AS calls,
                    CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                    CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens
             FROM usage WHERE org_id = ? AND created_at >= ? AND created_at < ?
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ))
        .bind(org_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(UsageRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    // ---- usage ----

    pub async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin_with(WRITE_TRANSACTION).await?;
        for e in events {
            sqlx::query(
                "INSERT INTO usage (org_id, memory_id, purpose, model, prompt_tokens, completion_tokens, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&e.org)
            .bind(&e.memory_id)
            .bind(e.purpose.as_str())
            .bind(&e.model)
            .bind(e.prompt_tokens)
            .bind(e.completion_tokens)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn config_json(config: &SessionConfig) -> Result<String, StoreError> {
    serde_json::to_string(config).map_err(|e| StoreError::Corrupt(format!("session config: {e}")))
}

/// Inside a write transaction: the session is still the one that was read (SQLite may give a
/// deleted session's id to the next one, hence the creation time), or
/// [`StoreError::SessionGone`].
pub(super) async fn ensure_live_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    session: &Session,
) -> Result<(), StoreError> {
    let alive: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE id = ? AND org_id = ? AND memory_id = ? AND created_at = ?",
    )
    .bind(session.id)
    .bind(&session.org_id)
    .bind(&session.memory_id)
    .bind(session.created_at)
    .fetch_optional(&mut **tx)
    .await?;
    match alive {
        Some(_) => Ok(()),
        None => Err(StoreError::SessionGone(session.memory_id.clone())),
    }
}

fn session_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<Session, StoreError> {
    let config: String = r.get("config");
    Ok(Session {
        id: r.get("id"),
        org_id: r.get("org_id"),
        memory_id: r.get("memory_id"),
        engine: r.get("engine"),
        config: serde_json::from_str(&config)
            .map_err(|e| StoreError::Corrupt(format!("session config: {e}")))?,
        stored_facts: 0,
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

async fn fact_text(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    org_id: &str,
    session_id: i64,
    fact_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT text FROM facts WHERE id = ? AND org_id = ? AND session_id = ?")
            .bind(fact_id)
            .bind(org_id)
            .bind(session_id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

#[allow(clippy::too_many_arguments)]
async fn insert_history(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    org_id: &str,
    session_id: i64,
    fact_id: &str,
    event: &str,
    old_text: Option<&str>,
    new_text: Option<&str>,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO fact_history (org_id, session_id, fact_id, event, old_text, new_text, reason, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(org_id)
    .bind(session_id)
    .bind(fact_id)
    .bind(event)
    .bind(old_text)
    .bind(new_text)
    .bind(reason)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete_fact(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    org_id: &str,
    session_id: i64,
    fact_id: &str,
    old_text: &str,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM facts WHERE id = ? AND org_id = ? AND session_id = ?")
        .bind(fact_id)
        .bind(org_id)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM facts_fts WHERE fact_id = ? AND session_id = ?")
        .bind(fact_id)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    insert_history(
        tx,
        org_id,
        session_id,
        fact_id,
        "DELETE",
        Some(old_text),
        None,
        reason,
        at,
    )
    .await
}

/// Deletes the least recently written facts beyond `cap`.
async fn trim_to_cap(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    org_id: &str,
    session_id: i64,
    cap: u64,
    at: i64,
) -> Result<u64, StoreError> {
    let surplus = sqlx::query(
        "SELECT id, text FROM facts WHERE org_id = ? AND session_id = ?
         ORDER BY updated_at DESC, id DESC LIMIT -1 OFFSET ?",
    )
    .bind(org_id)
    .bind(session_id)
    .bind(cap.min(i64::MAX as u64) as i64)
    .fetch_all(&mut **tx)
    .await?;
    for r in &surplus {
        let (id, text): (String, String) = (r.get("id"), r.get("text"));
        delete_fact(tx, org_id, session_id, &id, &text, "capacity", at).await?;
    }
    Ok(surplus.len() as u64)
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

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/m.db", dir.path().display());
        let s = SqliteStore::connect(&url, 2).await.unwrap();
        s.migrate().await.unwrap();
        (s, dir)
    }

    #[tokio::test]
    async fn sessions_are_unique_per_org_and_invisible_across_orgs() {
        let (s, _d) = store().await;
        let a = s
            .create_session("acme", "alice", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        assert!(matches!(
            s.create_session("acme", "alice", "mem0", &SessionConfig::default())
                .await,
            Err(StoreError::Conflict(_))
        ));
        let b = s
            .create_session("globex", "alice", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        assert_ne!(a.id, b.id);
        assert!(s.find_session("initech", "alice").await.unwrap().is_none());
        assert_eq!(
            s.find_session("globex", "alice").await.unwrap().unwrap().id,
            b.id
        );
    }

    #[tokio::test]
    async fn fact_changes_write_history_and_keep_fts_in_step() {
        let (s, _d) = store().await;
        let sess = s
            .create_session("acme", "alice", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        let ids = s
            .apply_fact_changes(
                &sess,
                &[FactChange::Add {
                    text: "Team is in Singapore".into(),
                    embedding: vec![1.0, 0.0],
                }],
                "ingest",
            )
            .await
            .unwrap();
        let singapore = ["singapore".to_string()];
        let hits = s.keyword_search(&sess, &singapore, 5, None).await.unwrap();
        assert_eq!(
            hits,
            vec![(ids[0].clone(), "Team is in Singapore".to_string())]
        );
        let mut foreign = sess.clone();
        foreign.org_id = "globex".into();
        assert!(s
            .keyword_search(&foreign, &singapore, 5, None)
            .await
            .unwrap()
            .is_empty());
        s.apply_fact_changes(
            &sess,
            &[FactChange::Update {
                fact_id: ids[0].clone(),
                text: "Team is in Tokyo".into(),
                embedding: vec![0.0, 1.0],
            }],
            "ingest",
        )
        .await
        .unwrap();
        assert!(s
            .keyword_search(&sess, &singapore, 5, None)
            .await
            .unwrap()
            .is_empty());
        s.apply_fact_changes(
            &sess,
            &[FactChange::Delete {
                fact_id: ids[0].clone(),
            }],
            "api",
        )
        .await
        .unwrap();
        assert!(s.session_vectors("acme", sess.id).await.unwrap().is_empty());
        let history: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fact_history WHERE org_id = 'acme' AND session_id = ?",
        )
        .bind(sess.id)
        .fetch_one(&s.pool)
        .await
        .unwrap();
        assert_eq!(history, 3);
    }

    #[tokio::test]
    async fn outbox_claims_under_a_lease_and_dead_letters() {
        let (s, _d) = store().await;
        let sess = s
            .create_session("acme", "alice", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        let payload = TurnPayload {
            memory_id: "alice".into(),
            messages: vec![],
            request_id: None,
            traceparent: None,
        };
        s.enqueue_turn("k1", "acme", sess.id, &payload)
            .await
            .unwrap();
        s.enqueue_turn("k1", "acme", sess.id, &payload)
            .await
            .unwrap();
        let claimed = s.claim_outbox(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claimed.len(), 1, "idempotency key deduplicates");
        assert!(s
            .claim_outbox(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty());
        s.fail_outbox(claimed[0].id, "boom", Some(0)).await.unwrap();
        let again = s.claim_outbox(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(again[0].attempts, 2);
        s.fail_outbox(again[0].id, "boom", None).await.unwrap();
        assert_eq!(s.outbox_counts().await.unwrap().dead, 1);

        s.enqueue_turn("k2", "acme", sess.id, &payload)
            .await
            .unwrap();
        let k2 = s.claim_outbox(10, Duration::from_secs(60)).await.unwrap();
        s.complete_outbox(k2[0].id).await.unwrap();
        assert_eq!(s.purge_done_outbox(now_ms() + 1).await.unwrap(), 1);
        let left = s.outbox_counts().await.unwrap();
        assert_eq!((left.done, left.dead), (0, 1), "dead rows are kept");
    }

    fn add(text: &str) -> FactChange {
        FactChange::Add {
            text: text.into(),
            embedding: vec![1.0, 0.0],
        }
    }

    #[tokio::test]
    async fn cap_evicts_the_least_recently_written_with_history() {
        let (s, _d) = store().await;
        let config = SessionConfig {
            max_facts: Some(2),
            ..Default::default()
        };
        let sess = s
            .create_session("acme", "capped", "mem0", &config)
            .await
            .unwrap();
        for text in ["first", "second", "third"] {
            s.apply_fact_changes(&sess, &[add(text)], "ingest")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let (facts, total) = s.list_facts(&sess, None, 10, 0).await.unwrap();
        assert_eq!(total, 2);
        let texts: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["second", "third"]);
        let (history, _) = s.fact_history(&sess, None, 10, 0).await.unwrap();
        let evicted: Vec<_> = history
            .iter()
            .filter(|h| h.reason.as_deref() == Some("capacity"))
            .collect();
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].old_text.as_deref(), Some("first"));
    }

    #[tokio::test]
    async fn ttl_hides_then_purges() {
        let (s, _d) = store().await;
        let sess = s
            .create_session("acme", "ttl", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        s.apply_fact_changes(&sess, &[add("old news")], "ingest")
            .await
            .unwrap();
        let future = now_ms() + 10;
        assert_eq!(s.list_facts(&sess, Some(future), 10, 0).await.unwrap().1, 0);
        assert_eq!(s.list_facts(&sess, None, 10, 0).await.unwrap().1, 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let expiring = s
            .update_session_config(
                "acme",
                "ttl",
                &SessionConfig {
                    fact_ttl_seconds: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.sessions_with_ttl().await.unwrap().len(), 1);
        assert_eq!(s.enforce_retention(&expiring).await.unwrap(), 1);
        assert_eq!(s.list_facts(&sess, None, 10, 0).await.unwrap().1, 0);
        let (history, _) = s.fact_history(&sess, None, 10, 0).await.unwrap();
        assert_eq!(history.last().unwrap().reason.as_deref(), Some("expired"));
    }

    #[tokio::test]
    async fn deleted_session_takes_everything_and_refuses_late_writes() {
        let (s, _d) = store().await;
        let sess = s
            .create_session("acme", "gone", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        s.apply_fact_changes(&sess, &[add("Team is in Singapore")], "ingest")
            .await
            .unwrap();
        s.enqueue_turn(
            "k",
            "acme",
            sess.id,
            &TurnPayload {
                memory_id: "gone".into(),
                messages: vec![],
                request_id: None,
                traceparent: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.delete_session("globex", "gone", false).await.unwrap(),
            None
        );
        assert_eq!(
            s.delete_session("acme", "gone", false).await.unwrap(),
            Some(1)
        );
        assert_eq!(s.delete_session("acme", "gone", false).await.unwrap(), None);
        for table in ["facts", "facts_fts", "fact_history", "outbox"] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&s.pool)
                .await
                .unwrap();
            assert_eq!(n, 0, "{table} keeps rows of a deleted session");
        }
        // An ingest that was under way when the session went must not bring it back, even
        // if a new session took the same row id.
        let reborn = s
            .create_session("acme", "gone", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        let late = s
            .apply_fact_changes(&sess, &[add("late fact")], "ingest")
            .await;
        assert!(matches!(late, Err(StoreError::SessionGone(_))), "{late:?}");
        assert_eq!(s.list_facts(&reborn, None, 10, 0).await.unwrap().1, 0);
    }

    #[tokio::test]
    async fn sessions_list_per_org_with_counts() {
        let (s, _d) = store().await;
        let a = s
            .create_session("acme", "a", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        s.create_session("acme", "b", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        s.create_session("globex", "c", "mem0", &SessionConfig::default())
            .await
            .unwrap();
        s.apply_fact_changes(&a, &[add("x"), add("y")], "ingest")
            .await
            .unwrap();
        let (page, total) = s.list_sessions("acme", 1, 0).await.unwrap();
        assert_eq!((total, page.len()), (2, 1));
        assert_eq!(page[0].0.memory_id, "a");
        assert_eq!(page[0].1.fact_count, 2);
        let (page, _) = s.list_sessions("acme", 10, 1).await.unwrap();
        assert_eq!(page[0].0.memory_id, "b");
        assert_eq!(s.list_sessions("initech", 10, 0).await.unwrap().1, 0);
    }

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
