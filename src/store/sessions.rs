//! Sessions, the same on both backends.

use crate::domain::graph::graph_scope;
use crate::domain::{now_ms, EngineKind, Session, SessionConfig, SessionStats};
use crate::error::StoreError;
use crate::store::graph_items::insert_purge;
use crate::store::sql::{
    self, erased, fetch_one_in, params, Conn, Dialect, Param, SqlRow, SqlStore,
};
use crate::store::SessionStore;

/// What a session holds, counted by subqueries on `s`, its row.
// The last activity: the latest history event (by id, one index probe), relationship, or
// turn still waiting. An ingested turn counts through the history it wrote: reading the
// arrival time of the day's ingested turns would scan all of them for every listed session.
const STATS_OF_S: &str = "
    (SELECT COUNT(*) FROM facts f WHERE f.org_id = s.org_id AND f.session_id = s.id)
      + (SELECT COUNT(*) FROM graph_items g
         WHERE g.org_id = s.org_id AND g.session_id = s.id AND g.kind = 'edge') AS fact_count,
    (SELECT COUNT(*) FROM outbox o
     WHERE o.org_id = s.org_id AND o.session_id = s.id AND o.state = 'pending') AS pending_turns,
    (SELECT COUNT(*) FROM outbox o
     WHERE o.org_id = s.org_id AND o.session_id = s.id AND o.state = 'dead') AS dead_turns,
    (SELECT MAX(at) FROM (
       SELECT (SELECT h.created_at FROM fact_history h
               WHERE h.org_id = s.org_id AND h.session_id = s.id
               ORDER BY h.id DESC LIMIT 1) AS at
       UNION ALL
       SELECT (SELECT MAX(g.created_at) FROM graph_items g
               WHERE g.org_id = s.org_id AND g.session_id = s.id AND g.kind = 'edge')
       UNION ALL
       SELECT (SELECT MAX(o.created_at) FROM outbox o
               WHERE o.org_id = s.org_id AND o.session_id = s.id
                 AND o.state IN ('pending', 'dead'))
     ) activity) AS last_written_at";

/// Inside a write transaction: the session is still the one that was read (SQLite may give a
/// deleted session's id to the next one, hence the creation time), locked as the dialect
/// locks it, or [`StoreError::SessionGone`].
pub(crate) async fn lock_live_session<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT id FROM sessions
         WHERE id = $1 AND org_id = $2 AND memory_id = $3 AND created_at = $4{}",
        D::LOCK_FOR_WRITE
    );
    let alive = D::fetch_optional(
        conn,
        &sql,
        params![
            session.id,
            &session.org_id,
            &session.memory_id,
            session.created_at
        ],
    )
    .await?;
    match alive {
        Some(_) => Ok(()),
        None => Err(StoreError::SessionGone(session.memory_id.clone())),
    }
}

/// A new session, inside `conn`'s transaction; [`StoreError::Conflict`] when the org has one
/// by that name.
pub(crate) async fn insert_session<D: Dialect>(
    conn: &mut Conn<D>,
    org_id: &str,
    memory_id: &str,
    engine: EngineKind,
    config: &SessionConfig,
) -> Result<Session, StoreError> {
    let sql = format!(
        "INSERT INTO sessions (org_id, memory_id, engine, config, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (org_id, memory_id) DO NOTHING
         RETURNING {}",
        D::SESSION_COLUMNS
    );
    let mut values = params![org_id, memory_id, engine.as_str()];
    values.extend([sql::json(config)?, Param::Int(now_ms())]);
    match D::fetch_optional(conn, &sql, values).await? {
        Some(row) => sql::session(&row),
        None => Err(StoreError::Conflict(format!(
            "memory session `{memory_id}`"
        ))),
    }
}

impl<D: Dialect> SessionStore for SqlStore<D> {
    async fn create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: EngineKind,
        config: &SessionConfig,
    ) -> Result<Session, StoreError> {
        let mut tx = D::begin_write(&self.pool).await?;
        let session = insert_session::<D>(&mut tx, org_id, memory_id, engine, config).await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn find_session(
        &self,
        org_id: &str,
        memory_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE org_id = $1 AND memory_id = $2",
            D::SESSION_COLUMNS
        );
        let row = self
            .fetch_optional(&sql, params![org_id, memory_id])
            .await?;
        row.as_ref().map(sql::session).transpose()
    }

    async fn find_or_create_session(
        &self,
        org_id: &str,
        memory_id: &str,
        engine: EngineKind,
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

    async fn list_sessions(
        &self,
        org_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<(Session, SessionStats)>, i64), StoreError> {
        // The session's own columns, unqualified, are `s`'s: the counts alias their tables.
        let rows = format!(
            "SELECT {}, {STATS_OF_S}
             FROM sessions s WHERE s.org_id = $1
             ORDER BY s.id LIMIT $2 OFFSET $3",
            D::SESSION_COLUMNS
        );
        self.page(
            &rows,
            params![org_id, limit, offset],
            "SELECT COUNT(*) AS n FROM sessions WHERE org_id = $1",
            params![org_id],
            |r| Ok((sql::session(r)?, sql::session_stats(r)?)),
        )
        .await
    }

    async fn session_stats(&self, session: &Session) -> Result<SessionStats, StoreError> {
        // The same counts as a listing's, of a session that may be gone by now (all zero).
        let sql = format!(
            "SELECT {STATS_OF_S} FROM (SELECT CAST($1 AS TEXT) AS org_id, CAST($2 AS BIGINT) AS id) s"
        );
        let row = self
            .fetch_one(&sql, params![&session.org_id, session.id])
            .await?;
        sql::session_stats(&row)
    }

    async fn update_session_config(
        &self,
        org_id: &str,
        memory_id: &str,
        config: &SessionConfig,
    ) -> Result<Option<Session>, StoreError> {
        let sql = format!(
            "UPDATE sessions SET config = $1, updated_at = $2
             WHERE org_id = $3 AND memory_id = $4
             RETURNING {}",
            D::SESSION_COLUMNS
        );
        let mut values = vec![sql::json(config)?];
        values.extend(params![now_ms(), org_id, memory_id]);
        let row = self.fetch_optional(&sql, values).await?;
        row.as_ref().map(sql::session).transpose()
    }

    async fn delete_session(
        &self,
        org_id: &str,
        memory_id: &str,
        purge_graph: bool,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = D::begin_write(&self.pool).await?;
        let find = format!(
            "SELECT id, created_at, engine FROM sessions WHERE org_id = $1 AND memory_id = $2{}",
            D::LOCK_FOR_UPDATE
        );
        let Some(row) = D::fetch_optional(&mut tx, &find, params![org_id, memory_id]).await? else {
            return Ok(None);
        };
        let (session_id, created_at) = (row.int("id")?, row.int("created_at")?);
        let engine = row.text("engine")?;
        let facts = fetch_one_in::<D>(
            &mut tx,
            "SELECT (SELECT COUNT(*) FROM facts WHERE org_id = $1 AND session_id = $2)
                  + (SELECT COUNT(*) FROM graph_items
                     WHERE org_id = $1 AND session_id = $2 AND kind = 'edge') AS n",
            params![org_id, session_id],
        )
        .await?
        .int("n")?;
        // Facts, graph items, history and outbox rows go by ON DELETE CASCADE.
        D::execute(
            &mut tx,
            "DELETE FROM sessions WHERE id = $1 AND org_id = $2",
            params![session_id, org_id],
        )
        .await?;
        if purge_graph && engine == EngineKind::Cognee.as_str() {
            let scope = graph_scope(session_id, created_at);
            insert_purge::<D>(&mut tx, org_id, &scope, None, None).await?;
        }
        tx.commit().await?;
        self.dialect.facts_committed(session_id, None);
        erased::<D>(&self.pool).await;
        Ok(Some(facts))
    }

    async fn sessions_with_ttl(&self) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {} FROM sessions WHERE {}",
            D::SESSION_COLUMNS,
            D::HAS_FACT_TTL
        );
        let rows = self.fetch_all(&sql, Vec::new()).await?;
        rows.iter().map(sql::session).collect()
    }
}
