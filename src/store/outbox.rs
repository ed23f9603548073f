//! The outbox of finished turns, the same on both backends; how due rows are claimed is the
//! dialect's.

use std::time::Duration;

use crate::domain::now_ms;
use crate::domain::outbox::{
    OutboxCounts, OutboxEntry, OutboxRow, TurnOutcome, TurnPayload, TurnReceipt, TurnState,
};
use crate::error::StoreError;
use crate::store::sql::{self, params, Dialect, SqlRow, SqlStore};
use crate::store::OutboxStore;

impl<D: Dialect> OutboxStore for SqlStore<D> {
    async fn enqueue_turn(
        &self,
        idempotency_key: &str,
        org_id: &str,
        session_id: i64,
        payload: &TurnPayload,
    ) -> Result<(), StoreError> {
        let mut values = params![idempotency_key, org_id, session_id];
        values.extend([sql::json(payload)?, now_ms().into()]);
        self.execute(
            "INSERT INTO outbox (idempotency_key, org_id, session_id, payload, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5, $5)
             ON CONFLICT (idempotency_key) DO NOTHING",
            values,
        )
        .await?;
        Ok(())
    }

    async fn claim_outbox(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let now = now_ms();
        let rows = self
            .fetch_all(
                D::CLAIM_OUTBOX,
                params![now, limit as i64, now + lease.as_millis() as i64],
            )
            .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.int("id")?,
                    turn_id: r.text("idempotency_key")?,
                    org_id: r.text("org_id")?,
                    session_id: r.int("session_id")?,
                    payload: r.json("payload")?,
                    attempts: r.int("attempts")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    async fn release_stale_leases(&self) -> Result<u64, StoreError> {
        if !D::ONE_PROCESS_PER_STORE {
            return Ok(0);
        }
        // One process owns the store, so at start every lease is a dead process's, and its
        // turns need not wait for the lease to run out.
        let freed = self
            .execute(
                "UPDATE outbox SET lease_until = NULL
                 WHERE state = 'pending' AND lease_until IS NOT NULL",
                Vec::new(),
            )
            .await?;
        self.execute(
            "UPDATE graph_purges SET lease_until = NULL WHERE lease_until IS NOT NULL",
            Vec::new(),
        )
        .await?;
        Ok(freed)
    }

    async fn complete_outbox(&self, id: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE outbox SET state = 'done', lease_until = NULL, last_error = NULL, updated_at = $1
             WHERE id = $2",
            params![now_ms(), id],
        )
        .await?;
        Ok(())
    }

    async fn fail_outbox(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (state, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now_ms()),
        };
        self.execute(
            "UPDATE outbox SET state = $1, next_attempt_at = $2, lease_until = NULL, last_error = $3, updated_at = $4
             WHERE id = $5",
            params![state, next, error, now_ms(), id],
        )
        .await?;
        Ok(())
    }

    async fn purge_done_outbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM turn_receipts WHERE settled_at < $1",
            params![before_ms],
        )
        .await?;
        self.execute(
            "DELETE FROM outbox WHERE state = 'done' AND updated_at < $1",
            params![before_ms],
        )
        .await
    }

    async fn settle_turn(
        &self,
        turn_id: &str,
        org_id: &str,
        memory_id: &str,
        outcome: &TurnOutcome,
    ) -> Result<(), StoreError> {
        let mut values = params![turn_id, org_id, memory_id];
        values.extend([sql::json(outcome)?, now_ms().into()]);
        self.execute(
            "INSERT INTO turn_receipts (turn_id, org_id, memory_id, outcome, settled_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (turn_id) DO NOTHING",
            values,
        )
        .await?;
        Ok(())
    }

    async fn turn_receipt(
        &self,
        org_id: &str,
        turn_id: &str,
    ) -> Result<Option<TurnReceipt>, StoreError> {
        let settled = self
            .fetch_optional(
                "SELECT memory_id, outcome FROM turn_receipts WHERE turn_id = $1 AND org_id = $2",
                params![turn_id, org_id],
            )
            .await?;
        if let Some(row) = settled {
            let outcome: TurnOutcome = row.json("outcome")?;
            return Ok(Some(TurnReceipt::settled(
                turn_id.to_string(),
                row.text("memory_id")?,
                outcome,
            )));
        }
        let queued = self
            .fetch_optional(
                "SELECT s.memory_id, o.state, CAST(o.attempts AS BIGINT) AS attempts, o.last_error
                 FROM outbox o JOIN sessions s ON s.id = o.session_id AND s.org_id = o.org_id
                 WHERE o.idempotency_key = $1 AND o.org_id = $2",
                params![turn_id, org_id],
            )
            .await?;
        let Some(row) = queued else {
            return Ok(None);
        };
        let state = match row.text("state")?.as_str() {
            "pending" => TurnState::Pending,
            "dead" => TurnState::Dead,
            // Ingested, its receipt lost to a crash in between.
            _ => TurnState::Stored,
        };
        let attempts = row.int("attempts")?;
        Ok(Some(TurnReceipt {
            turn_id: turn_id.to_string(),
            memory_id: row.text("memory_id")?,
            state,
            facts: None,
            attempts: (state != TurnState::Stored).then_some(attempts),
            last_error: row.opt_text("last_error")?,
            reason: None,
        }))
    }

    async fn list_outbox(
        &self,
        org_id: &str,
        state: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OutboxEntry>, i64), StoreError> {
        self.page(
            "SELECT o.id, s.memory_id, o.state, CAST(o.attempts AS BIGINT) AS attempts,
                    o.last_error, o.created_at, o.next_attempt_at
             FROM outbox o JOIN sessions s ON s.id = o.session_id AND s.org_id = o.org_id
             WHERE o.org_id = $1 AND o.state = $2
             ORDER BY o.id LIMIT $3 OFFSET $4",
            params![org_id, state, limit, offset],
            "SELECT COUNT(*) AS n FROM outbox WHERE org_id = $1 AND state = $2",
            params![org_id, state],
            sql::outbox_entry,
        )
        .await
    }

    async fn retry_outbox(&self, org_id: &str, id: i64) -> Result<bool, StoreError> {
        let retried = self
            .execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1,
                        lease_until = NULL, updated_at = $1
                 WHERE id = $2 AND org_id = $3 AND state = 'dead'",
                params![now_ms(), id, org_id],
            )
            .await?;
        Ok(retried == 1)
    }

    async fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        let rows = self
            .fetch_all(
                "SELECT state, COUNT(*) AS n FROM outbox GROUP BY state",
                Vec::new(),
            )
            .await?;
        let mut counts = OutboxCounts::default();
        for r in rows {
            let n = r.int("n")?;
            match r.text("state")?.as_str() {
                "pending" => counts.pending = n,
                "done" => counts.done = n,
                "dead" => counts.dead = n,
                _ => {}
            }
        }
        counts.oldest_pending_ms = self
            .fetch_one(
                "SELECT MIN(created_at) AS oldest FROM outbox WHERE state = 'pending'",
                Vec::new(),
            )
            .await?
            .opt_int("oldest")?;
        Ok(counts)
    }
}
