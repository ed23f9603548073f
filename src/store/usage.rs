//! Platform spend, the same on both backends.

use crate::domain::now_ms;
use crate::domain::usage::{UsageEvent, UsageRow};
use crate::error::StoreError;
use crate::store::sql::{self, params, Dialect, Param, SqlStore};
use crate::store::UsageStore;

/// Columns of one usage event, in the order [`event_params`] gives them.
const EVENT_COLUMNS: usize = 8;

/// Events written by one statement.
const ROWS_PER_INSERT: usize = 32;

/// The insert of `rows` events.
fn insert_of(rows: usize) -> String {
    let rows = (0..rows)
        .map(|i| {
            let placeholders = (1..=EVENT_COLUMNS)
                .map(|c| format!("${}", i * EVENT_COLUMNS + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({placeholders})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO usage (org_id, memory_id, purpose, provider, model, prompt_tokens, completion_tokens, created_at)
         VALUES {rows}"
    )
}

fn event_params(e: &UsageEvent, at: i64) -> Vec<Param<'_>> {
    params![
        &e.org,
        &e.memory_id,
        e.purpose.as_str(),
        e.provider.as_str(),
        &e.model,
        e.prompt_tokens,
        e.completion_tokens,
        at
    ]
}

impl<D: Dialect> UsageStore for SqlStore<D> {
    async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = D::begin_write(&self.pool).await?;
        // Full chunks in one statement each, the rest row by row: two statement texts at
        // most, so each connection's prepared-statement cache holds two, not one per batch
        // size the writer happens to flush.
        for chunk in events.chunks(ROWS_PER_INSERT) {
            let rows = if chunk.len() == ROWS_PER_INSERT {
                vec![chunk]
            } else {
                chunk.chunks(1).collect()
            };
            for rows in rows {
                let values = rows.iter().flat_map(|e| event_params(e, now)).collect();
                D::execute(&mut tx, &insert_of(rows.len()), values).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn usage_report(
        &self,
        org_id: &str,
        from_ms: i64,
        to_ms: i64,
        by_session: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let session = if by_session { "memory_id" } else { "NULL" };
        let sql = format!(
            "SELECT {} AS day, purpose, provider, model, CAST({session} AS TEXT) AS memory_id,
                    COUNT(*) AS calls,
                    CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens,
                    CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens
             FROM usage WHERE org_id = $1 AND created_at >= $2 AND created_at < $3
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            D::DAY_OF_CREATED_AT
        );
        let rows = self
            .fetch_all(&sql, params![org_id, from_ms, to_ms])
            .await?;
        rows.iter().map(sql::usage_row).collect()
    }
}
