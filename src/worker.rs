//! The ingest worker: claims outbox rows, ingests each turn into its session, and retries
//! failures with exponential backoff until they are dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::app::AppState;
use crate::domain::now_ms;
use crate::domain::outbox::{FactChanges, OutboxRow, TurnOutcome};
use crate::error::{MemoryError, StoreError};
use crate::memory::facts::FactEvent;
use crate::metrics::Metrics;
use crate::store::{FactStore, GraphItemStore, OutboxStore, SessionStore};

/// Ingested rows are kept this long (for inspection), then purged.
const KEEP_DONE: Duration = Duration::from_secs(24 * 3600);
const PURGE_EVERY: Duration = Duration::from_secs(600);

pub fn spawn(state: Arc<AppState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let idle = Duration::from_millis(state.config.worker.poll_interval_ms.max(10));
        let batch = state.config.worker.concurrency.max(1);
        let retention_every =
            Duration::from_millis(state.config.worker.retention_interval_ms.max(10));
        let mut last_purge = std::time::Instant::now();
        let mut last_retention = std::time::Instant::now();
        loop {
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = std::time::Instant::now();
                let before = now_ms() - KEEP_DONE.as_millis() as i64;
                if let Err(e) = state.store.purge_done_outbox(before).await {
                    tracing::warn!(error = %e, "cannot purge ingested outbox rows");
                }
            }
            if last_retention.elapsed() >= retention_every {
                last_retention = std::time::Instant::now();
                purge_expired_facts(&state).await;
            }
            purge_graph(&state).await;
            replay_journal(&state).await;
            let Some(ingesting) = state.drain.ingestion() else {
                // Drained and about to exit: rows due later are the next process's.
                tokio::time::sleep(idle).await;
                continue;
            };
            let lease = Duration::from_millis(state.config.worker.lease_ms.max(1_000));
            let claimed = match state.store.claim_outbox(batch, lease).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim outbox rows");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                state.drain.outbox_empty();
                drop(ingesting);
                let _ = tokio::time::timeout(idle, state.outbox_ready.notified()).await;
                continue;
            }
            let tasks: Vec<_> = claimed
                .into_iter()
                .map(|row| {
                    let state = state.clone();
                    let span = tracing::info_span!(
                        "ingest",
                        outbox_id = row.id,
                        request_id = row.payload.request_id.as_deref().unwrap_or("-"),
                        memory_id = %row.payload.memory_id,
                        org = %row.org_id
                    );
                    crate::telemetry::continue_trace(&span, row.payload.traceparent.as_deref());
                    tokio::spawn(async move { process(&state, row).await }.instrument(span))
                })
                .collect();
            for task in tasks {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "ingest task panicked");
                }
            }
            drop(ingesting);
        }
    })
}

/// Moves journaled turns (finished while the store was down) into the outbox once the store
/// takes writes again.
async fn replay_journal(state: &AppState) {
    if state.journal.pending() == 0 {
        return;
    }
    let memory = &state.config.memory;
    let auto_create = memory.auto_create_sessions.then_some(memory.default_engine);
    match state
        .journal
        .replay(&state.store, auto_create, &state.redactor)
        .await
    {
        Ok(replayed) => {
            Metrics::add(&state.metrics.turns_replayed_total, replayed.written as u64);
            Metrics::add(
                &state.metrics.journal_turns_dropped_total,
                replayed.dropped as u64,
            );
            if replayed.written + replayed.dropped + replayed.declined > 0 {
                tracing::info!(
                    written = replayed.written,
                    dropped = replayed.dropped,
                    declined = replayed.declined,
                    left = state.journal.pending(),
                    "journaled turns replayed"
                );
            }
            if replayed.written > 0 {
                state.outbox_ready.notify_one();
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot replay the turn journal"),
    }
}

/// Carries out the deletions a graph server still owes. The data is already invisible (its
/// rows went in the transaction that queued the purge); a purge is retried, with backoff,
/// until the server confirms it.
async fn purge_graph(state: &AppState) {
    if !state.engine.graph.remote_graph() {
        return;
    }
    let lease = Duration::from_millis(state.config.worker.lease_ms.max(1_000));
    let purges = match state.store.claim_graph_purges(16, lease).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim graph purges");
            return;
        }
    };
    for purge in purges {
        let outcome = match state.engine.graph.purge(&purge).await {
            Ok(()) => {
                Metrics::inc(&state.metrics.graph_purges_done_total);
                tracing::info!(org = %purge.org_id, scope = %purge.scope, attempts = purge.attempts, "graph purge done");
                state.store.complete_graph_purge(purge.id).await
            }
            Err(e) => {
                Metrics::inc(&state.metrics.graph_purge_failures_total);
                tracing::warn!(error = %e, org = %purge.org_id, scope = %purge.scope, attempts = purge.attempts, "graph purge failed; will retry");
                let retry_at = now_ms() + backoff_ms(purge.attempts, 1_000, 60_000);
                state
                    .store
                    .fail_graph_purge(purge.id, &e.to_string(), retry_at)
                    .await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "cannot record a graph purge's outcome; its lease will expire and it will be retried");
        }
    }
}

/// Deletes facts past their session's TTL. They are already invisible to reads; this gives
/// the space back and writes their DELETE history.
async fn purge_expired_facts(state: &AppState) {
    let sessions = match state.store.sessions_with_ttl().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list sessions with a fact TTL");
            return;
        }
    };
    for session in sessions {
        match state.store.enforce_retention(&session).await {
            Ok(0) => {}
            Ok(n) => {
                Metrics::add(&state.metrics.facts_expired_total, n);
                tracing::info!(memory_id = %session.memory_id, org = %session.org_id, purged = n, "expired facts purged");
            }
            Err(e) => {
                tracing::warn!(error = %e, memory_id = %session.memory_id, "cannot purge expired facts")
            }
        }
    }
}

async fn process(state: &AppState, row: OutboxRow) {
    let started = std::time::Instant::now();
    let outcome = ingest(state, &row).await;
    state
        .metrics
        .latency
        .ingest(outcome.is_ok(), started.elapsed());
    let result = match outcome {
        Ok(outcome) => {
            Metrics::inc(&state.metrics.turns_ingested_total);
            // The receipt first: a crash before the row is complete has the turn ingested
            // again, and the first receipt stands.
            let settled = state
                .store
                .settle_turn(&row.turn_id, &row.org_id, &row.payload.memory_id, &outcome)
                .await;
            if let Err(e) = settled {
                tracing::warn!(error = %e, "cannot keep the turn's receipt");
            }
            state.store.complete_outbox(row.id).await
        }
        Err(error) => {
            Metrics::inc(&state.metrics.ingest_failures_total);
            let worker = &state.config.worker;
            let retry_at = (row.attempts < i64::from(worker.max_attempts)).then(|| {
                now_ms() + backoff_ms(row.attempts, worker.backoff_base_ms, worker.backoff_max_ms)
            });
            if retry_at.is_none() {
                Metrics::inc(&state.metrics.turns_dead_lettered_total);
                tracing::error!(%error, attempts = row.attempts, "turn dead-lettered");
            } else {
                tracing::warn!(%error, attempts = row.attempts, "ingest failed; will retry");
            }
            state.store.fail_outbox(row.id, &error, retry_at).await
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record the outcome of an outbox row; its lease will expire and it will be retried");
    }
}

/// Why a turn whose session went away is not stored.
const SESSION_DELETED: &str = "the session was deleted before the turn was ingested";

async fn ingest(state: &AppState, row: &OutboxRow) -> Result<TurnOutcome, String> {
    let dropped = || TurnOutcome::Dropped {
        reason: SESSION_DELETED.to_string(),
    };
    let Some(session) = state
        .store
        .find_session(&row.org_id, &row.payload.memory_id)
        .await
        .map_err(|e| e.to_string())?
        .filter(|s| s.id == row.session_id)
    else {
        // The session was deleted (or recreated) since the turn: nothing to store it in.
        tracing::info!("session is gone; dropping its pending turn");
        return Ok(dropped());
    };
    // Again, with the session's settings as they are now: a turn written before they changed
    // (or by an older version) is redacted as the session asks. Redacting twice changes
    // nothing.
    let rules = state.redactor.rules(session.config.redaction.as_ref());
    let turn = state
        .redactor
        .redact_turn(rules, row.payload.messages.clone())
        .await
        .with_earlier_redaction(row.payload.redacted);
    match state.engine.ingest(&session, &turn).await {
        Ok(events) => {
            let written = events.iter().filter(|e| e.event != "NONE").count();
            tracing::info!(facts = events.len(), written, "turn ingested");
            Ok(TurnOutcome::Stored {
                facts: fact_changes(&events),
            })
        }
        // Deleted while its turn was being ingested: the turn went with it.
        Err(MemoryError::Store(StoreError::SessionGone(_))) => {
            tracing::info!("session deleted during ingestion; turn dropped");
            Ok(dropped())
        }
        Err(other) => Err(other.to_string()),
    }
}

/// The ids an ingestion wrote, by kind of change (`NONE`, a fact already known, changes
/// nothing).
fn fact_changes(events: &[FactEvent]) -> FactChanges {
    let mut changes = FactChanges::default();
    for event in events {
        let Some(id) = event.id.clone() else {
            continue;
        };
        match event.event {
            "ADD" => changes.added.push(id),
            "UPDATE" => changes.updated.push(id),
            "DELETE" => changes.deleted.push(id),
            _ => {}
        }
    }
    changes
}

/// `base * 2^(attempt-1)`, capped, with ±20% jitter so replicas do not retry in lockstep.
fn backoff_ms(attempt: i64, base: u64, max: u64) -> i64 {
    let exp = attempt.clamp(1, 30) as u32 - 1;
    let raw = base.saturating_mul(1u64 << exp.min(20)).min(max);
    let jitter = rand::random::<f64>() * 0.4 + 0.8;
    (raw as f64 * jitter) as i64
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_and_is_capped() {
        let first = backoff_ms(1, 500, 300_000);
        assert!((400..=600).contains(&first), "{first}");
        let fifth = backoff_ms(5, 500, 300_000);
        assert!((6_400..=9_600).contains(&fifth), "{fifth}");
        assert!(backoff_ms(30, 500, 300_000) <= 360_000);
    }
}
