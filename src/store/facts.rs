//! The mem0 engine's facts with their history, the same on both backends; vector and keyword
//! search are the dialect's.

use crate::domain::{now_ms, Fact, FactChange, FactHistoryEvent, KeywordMatch, Neighbour, Session};
use crate::error::StoreError;
use crate::store::sessions::lock_live_session;
use crate::store::sql::{self, params, Conn, Dialect, FactWrite, Param, SqlRow, SqlStore};
use crate::store::FactStore;

/// One row of a fact's history (a mem0 fact's, or a cognee session's relationship's).
pub(crate) struct HistoryEntry<'a> {
    pub fact_id: &'a str,
    pub event: &'a str,
    pub old_text: Option<&'a str>,
    pub new_text: Option<&'a str>,
    /// The turn it came from had something redacted.
    pub redacted: bool,
}

impl<D: Dialect> FactStore for SqlStore<D> {
    async fn nearest(
        &self,
        session: &Session,
        query: &[f32],
        k: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<Neighbour>, StoreError> {
        D::nearest(self, session, query, k, fresh_since).await
    }

    async fn keyword_search(
        &self,
        session: &Session,
        terms: &[String],
        limit: usize,
        fresh_since: Option<i64>,
    ) -> Result<Vec<KeywordMatch>, StoreError> {
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        D::keyword_search(self, session, terms, limit, fresh_since).await
    }

    async fn list_facts(
        &self,
        session: &Session,
        fresh_since: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), StoreError> {
        let since = fresh_since.unwrap_or(i64::MIN);
        self.page(
            "SELECT id, text, created_at, updated_at FROM facts
             WHERE org_id = $1 AND session_id = $2 AND updated_at >= $3
             ORDER BY created_at, id LIMIT $4 OFFSET $5",
            params![&session.org_id, session.id, since, limit, offset],
            "SELECT COUNT(*) AS n FROM facts
             WHERE org_id = $1 AND session_id = $2 AND updated_at >= $3",
            params![&session.org_id, session.id, since],
            sql::fact,
        )
        .await
    }

    async fn apply_fact_changes(
        &self,
        session: &Session,
        changes: &[FactChange],
        reason: &str,
        redacted: bool,
    ) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let _in_order = self.fact_writes_in_order().await;
        let mut tx = D::begin_write(&self.pool).await?;
        lock_live_session::<D>(&mut tx, session).await?;
        let mut ids = Vec::with_capacity(changes.len());
        let mut writes = Vec::with_capacity(changes.len());
        // Facts the session gains (negative: loses), for the count Postgres keeps.
        let mut added: i64 = 0;
        for change in changes {
            let touched = match change {
                FactChange::Add { text, embedding } => {
                    let origin = Origin { reason, redacted };
                    let id = add_fact::<D>(&mut tx, session, text, embedding, origin, now).await?;
                    writes.push(stored(&id, text, embedding, now));
                    added += 1;
                    Some(id)
                }
                FactChange::Update {
                    fact_id,
                    text,
                    embedding,
                } => {
                    let edit = FactEdit { text, embedding };
                    let origin = Origin { reason, redacted };
                    let id = update_fact::<D>(&mut tx, session, fact_id, edit, origin, now).await?;
                    if let Some(id) = &id {
                        writes.push(stored(id, text, embedding, now));
                    }
                    id
                }
                FactChange::Delete { fact_id } => {
                    let id = remove_fact::<D>(&mut tx, session, fact_id, reason, now).await?;
                    writes.extend(id.iter().cloned().map(FactWrite::Removed));
                    added -= i64::from(id.is_some());
                    id
                }
            };
            ids.extend(touched);
        }
        let mut trimmed = 0;
        if let Some(cap) = session.config.max_facts {
            trimmed = trim_to_cap::<D>(&mut tx, session, cap, now).await?;
        }
        added -= trimmed as i64;
        D::facts_written(&mut tx, &session.org_id, session.id, added).await?;
        tx.commit().await?;
        // Which facts the cap removed is not tracked here; the cache reads the session again.
        let writes = (trimmed == 0).then_some(writes.as_slice());
        self.dialect.facts_committed(session.id, writes);
        Ok(ids)
    }

    async fn enforce_retention(&self, session: &Session) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = D::begin_write(&self.pool).await?;
        match lock_live_session::<D>(&mut tx, session).await {
            // Its facts went with it.
            Err(StoreError::SessionGone(_)) => return Ok(0),
            other => other?,
        }
        let mut removed = 0;
        if let Some(since) = session.config.fresh_since(now) {
            let expired = D::fetch_all(
                &mut tx,
                "DELETE FROM facts WHERE org_id = $1 AND session_id = $2 AND updated_at < $3
                 RETURNING id, text",
                params![&session.org_id, session.id, since],
            )
            .await?;
            removed += forget_deleted::<D>(&mut tx, session, &expired, "expired", now).await?;
        }
        if let Some(cap) = session.config.max_facts {
            removed += trim_to_cap::<D>(&mut tx, session, cap, now).await?;
        }
        if removed > 0 {
            D::facts_written(&mut tx, &session.org_id, session.id, -(removed as i64)).await?;
        }
        tx.commit().await?;
        if removed > 0 {
            self.dialect.facts_committed(session.id, None);
        }
        Ok(removed)
    }

    async fn fact_history(
        &self,
        session: &Session,
        fact_id: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FactHistoryEvent>, i64), StoreError> {
        // The cast gives Postgres the type of a NULL `$3`.
        self.page(
            "SELECT id, fact_id, event, old_text, new_text, reason, redacted, created_at FROM fact_history
             WHERE org_id = $1 AND session_id = $2 AND (CAST($3 AS TEXT) IS NULL OR fact_id = $3)
             ORDER BY id LIMIT $4 OFFSET $5",
            params![&session.org_id, session.id, fact_id, limit, offset],
            "SELECT COUNT(*) AS n FROM fact_history
             WHERE org_id = $1 AND session_id = $2 AND (CAST($3 AS TEXT) IS NULL OR fact_id = $3)",
            params![&session.org_id, session.id, fact_id],
            sql::fact_history_event,
        )
        .await
    }
}

pub(crate) async fn record_history<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    entry: HistoryEntry<'_>,
    reason: &str,
    at: i64,
) -> Result<(), StoreError> {
    D::execute(
        conn,
        "INSERT INTO fact_history (org_id, session_id, fact_id, event, old_text, new_text, reason, created_at, redacted)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        params![
            &session.org_id,
            session.id,
            entry.fact_id,
            entry.event,
            entry.old_text,
            entry.new_text,
            reason,
            at,
            i64::from(entry.redacted)
        ],
    )
    .await?;
    Ok(())
}

/// Why a fact is written, for its history row.
#[derive(Clone, Copy)]
struct Origin<'a> {
    reason: &'a str,
    redacted: bool,
}

/// A fact's new wording and its vector.
struct FactEdit<'a> {
    text: &'a str,
    embedding: &'a [f32],
}

fn stored<'a>(fact_id: &str, text: &'a str, embedding: &'a [f32], at: i64) -> FactWrite<'a> {
    FactWrite::Stored {
        fact_id: fact_id.to_string(),
        text,
        embedding,
        updated_at: at,
    }
}

/// Inserts a fact with its history row; its new id.
async fn add_fact<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    text: &str,
    embedding: &[f32],
    origin: Origin<'_>,
    at: i64,
) -> Result<String, StoreError> {
    let id = uuid::Uuid::now_v7().to_string();
    let mut values = params![&id, &session.org_id, session.id, text];
    values.extend([Param::Vector(embedding), Param::Int(at)]);
    D::execute(
        conn,
        "INSERT INTO facts (id, org_id, session_id, text, embedding, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
        values,
    )
    .await?;
    let entry = HistoryEntry {
        fact_id: &id,
        event: "ADD",
        old_text: None,
        new_text: Some(text),
        redacted: origin.redacted,
    };
    record_history::<D>(conn, session, entry, origin.reason, at).await?;
    Ok(id)
}

/// Rewrites a fact with its history row; `None` when the session has no such fact.
async fn update_fact<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    fact_id: &str,
    edit: FactEdit<'_>,
    origin: Origin<'_>,
    at: i64,
) -> Result<Option<String>, StoreError> {
    let old = format!(
        "SELECT text FROM facts WHERE id = $1 AND org_id = $2 AND session_id = $3{}",
        D::LOCK_FOR_UPDATE
    );
    let Some(old) =
        D::fetch_optional(conn, &old, params![fact_id, &session.org_id, session.id]).await?
    else {
        return Ok(None);
    };
    let old = old.text("text")?;
    let mut values = params![edit.text];
    values.push(Param::Vector(edit.embedding));
    values.extend(params![at, fact_id, &session.org_id, session.id]);
    D::execute(
        conn,
        "UPDATE facts SET text = $1, embedding = $2, updated_at = $3
         WHERE id = $4 AND org_id = $5 AND session_id = $6",
        values,
    )
    .await?;
    let entry = HistoryEntry {
        fact_id,
        event: "UPDATE",
        old_text: Some(&old),
        new_text: Some(edit.text),
        redacted: origin.redacted,
    };
    record_history::<D>(conn, session, entry, origin.reason, at).await?;
    Ok(Some(fact_id.to_string()))
}

/// Deletes a fact with its history row; `None` when the session has no such fact.
async fn remove_fact<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    fact_id: &str,
    reason: &str,
    at: i64,
) -> Result<Option<String>, StoreError> {
    let Some(row) = D::fetch_optional(
        conn,
        "DELETE FROM facts WHERE id = $1 AND org_id = $2 AND session_id = $3 RETURNING id, text",
        params![fact_id, &session.org_id, session.id],
    )
    .await?
    else {
        return Ok(None);
    };
    forget_deleted::<D>(conn, session, &[row], reason, at).await?;
    Ok(Some(fact_id.to_string()))
}

/// After a `DELETE … RETURNING id, text`: the text index follows and each fact gets its
/// history row. How many went.
async fn forget_deleted<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    deleted: &[D::Row],
    reason: &str,
    at: i64,
) -> Result<u64, StoreError> {
    for row in deleted {
        let (id, text) = (row.text("id")?, row.text("text")?);
        let entry = HistoryEntry {
            fact_id: &id,
            event: "DELETE",
            old_text: Some(&text),
            new_text: None,
            redacted: false,
        };
        record_history::<D>(conn, session, entry, reason, at).await?;
    }
    Ok(deleted.len() as u64)
}

/// Deletes the least recently written facts beyond `cap`.
async fn trim_to_cap<D: Dialect>(
    conn: &mut Conn<D>,
    session: &Session,
    cap: u64,
    at: i64,
) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM facts WHERE id IN (
             SELECT id FROM facts WHERE org_id = $1 AND session_id = $2
             ORDER BY updated_at DESC, id DESC {} $3)
           AND org_id = $1 AND session_id = $2
         RETURNING id, text",
        D::UNLIMITED_OFFSET
    );
    let cap = cap.min(i64::MAX as u64) as i64;
    let surplus = D::fetch_all(conn, &sql, params![&session.org_id, session.id, cap]).await?;
    forget_deleted::<D>(conn, session, &surplus, "capacity", at).await
}
