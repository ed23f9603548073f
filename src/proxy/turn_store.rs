//! Making a finished turn durable before the client sees the end of its answer: the outbox
//! when the store answers promptly, else the local journal. A client that has its complete
//! answer can then count on the turn being remembered, even if memgate is killed right after.
//!
//! The write is bounded: a store that hangs costs the end of an answer `OUTBOX_WRITE_TIMEOUT`
//! once, after which turns go straight to the journal for `STORE_DOWN_BACKOFF`, so an outage
//! does not slow every answer down. The worker moves journaled turns to the outbox.
//!
//! A turn whose session could not be looked up (the store failed or was slow while the request
//! was served) goes to the journal directly, by org and `memory_id`; the replay resolves it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::app::AppState;
use crate::domain::now_ms;
use crate::domain::outbox::TurnOutcome;
use crate::journal::FinishedTurn;
use crate::metrics::Metrics;
use crate::redaction::Rules;
use crate::store::OutboxStore;

/// A healthy outbox insert takes about a millisecond.
const OUTBOX_WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// After a failed write, turns skip the store for this long.
const STORE_DOWN_BACKOFF: Duration = Duration::from_secs(1);

/// A turn the client was told of (`x-memgate-turn`) that will not be stored, and why: its
/// receipt says so.
pub struct DroppedTurn {
    pub turn_id: String,
    pub org_id: String,
    pub memory_id: String,
    pub reason: &'static str,
}

/// Makes the turn durable, redacted by `redaction` first; says so when it cannot be stored
/// at all.
pub async fn persist(
    state: &AppState,
    mut turn: FinishedTurn,
    redaction: Arc<Rules>,
) -> Option<DroppedTurn> {
    let messages = std::mem::take(&mut turn.payload.messages);
    let redacted = state.redactor.redact_turn(redaction, messages).await;
    turn.payload.redacted |= redacted.redacted();
    turn.payload.messages = redacted.into_messages();
    let Some(session_id) = turn.session_id else {
        // The store could not say which session this is while the request was served: the
        // journal keeps the turn until it can.
        tracing::warn!(memory_id = %turn.payload.memory_id, "session unknown while the store is unavailable; journaling the turn");
        journal(state, turn).await;
        return None;
    };
    let recently_failed = store_recently_failed(state);
    let outcome = if recently_failed {
        Err("the store failed moments ago".to_string())
    } else {
        let write = state.store.enqueue_turn(
            &turn.idempotency_key,
            &turn.org_id,
            session_id,
            &turn.payload,
        );
        match tokio::time::timeout(OUTBOX_WRITE_TIMEOUT, write).await {
            Ok(Err(e)) if e.is_session_gone() => {
                // Deleted (through another replica, within the session cache's TTL) while
                // the answer was served: the turn has nowhere to go, as in the worker.
                Metrics::inc(&state.metrics.turns_session_gone_total);
                tracing::info!(memory_id = %turn.payload.memory_id, "session deleted while its turn was served; turn dropped");
                return Some(DroppedTurn {
                    turn_id: turn.idempotency_key,
                    org_id: turn.org_id,
                    memory_id: turn.payload.memory_id,
                    reason: "the session was deleted while its answer was served",
                });
            }
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms",
                OUTBOX_WRITE_TIMEOUT.as_millis()
            )),
        }
    };
    let error = match outcome {
        Ok(()) => {
            Metrics::inc(&state.metrics.turns_enqueued_total);
            state.outbox_ready.notify_one();
            return None;
        }
        Err(error) => error,
    };
    if !recently_failed {
        state.outbox_failed_at_ms.store(now_ms(), Ordering::Relaxed);
    }
    Metrics::inc(&state.metrics.turns_enqueue_failed_total);
    tracing::warn!(%error, memory_id = %turn.payload.memory_id, "cannot write a finished turn to the outbox; journaling it");
    journal(state, turn).await;
    None
}

/// Keeps the receipt of a turn that will not be stored. Runs once the client has its whole
/// answer; bounded like the outbox write, and skipped while the store is known to be down
/// (the receipt is then lost, the turn's fate being the same).
pub async fn settle_dropped(state: &AppState, turn: DroppedTurn) {
    if store_recently_failed(state) {
        return;
    }
    let outcome = TurnOutcome::Dropped {
        reason: turn.reason.to_string(),
    };
    let write = state
        .store
        .settle_turn(&turn.turn_id, &turn.org_id, &turn.memory_id, &outcome);
    match tokio::time::timeout(OUTBOX_WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep a dropped turn's receipt"),
        Err(_) => tracing::warn!("no answer from the store for a dropped turn's receipt"),
    }
}

fn store_recently_failed(state: &AppState) -> bool {
    now_ms().saturating_sub(state.outbox_failed_at_ms.load(Ordering::Relaxed))
        < STORE_DOWN_BACKOFF.as_millis() as i64
}

async fn journal(state: &AppState, turn: FinishedTurn) {
    match state.journal.append(&turn).await {
        Ok(()) => Metrics::inc(&state.metrics.turns_journaled_total),
        Err(e) => {
            Metrics::inc(&state.metrics.turns_lost_total);
            tracing::error!(error = %e, memory_id = %turn.payload.memory_id, "turn lost: neither the outbox nor the journal took it");
        }
    }
}
