//! A turn's receipt: what became of a turn the proxy told the client of (`x-memgate-turn`).
//! Any key of the turn's org may ask; another org's turn answers 404, as an unknown one does.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::outbox::journal_unreadable;
use super::query::PathParams;
use super::responses::{KeyErrors, StorageError};
use super::views::ErrorBody;
use super::Caller;
use crate::app::AppState;
use crate::domain::outbox::{TurnReceipt, TurnState};
use crate::http_error::ApiError;
use crate::store::OutboxStore;

/// Where a turn is on its way to memory: `pending` (in the outbox), `journaled` (in this
/// replica's journal while the store was unavailable), `stored` (with the ids of the facts it
/// added, updated or deleted), `dead` (with the last error) or `dropped` (with why). Receipts
/// are kept as long as ingested outbox rows are (24 hours).
#[utoipa::path(get, path = "/memory/turns/{turn_id}", tag = "facts", operation_id = "get_turn",
    params(("turn_id" = String, Path, description = "The `x-memgate-turn` header of the response")),
    responses((status = 200, body = TurnReceipt),
        (status = 404, description = "No such turn in the caller's org (`turn_not_found`).", body = ErrorBody),
        KeyErrors, StorageError))]
pub async fn receipt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(turn_id): PathParams<String>,
) -> Result<Json<TurnReceipt>, ApiError> {
    let org = &caller.0.org;
    // The journal first: it holds turns the store could not take, and answers while the
    // store is down, which is when it fills.
    let journaled = state
        .journal
        .find(org, &turn_id)
        .await
        .map_err(journal_unreadable)?;
    if let Some(memory_id) = journaled {
        return Ok(Json(TurnReceipt {
            turn_id,
            memory_id,
            state: TurnState::Journaled,
            facts: None,
            attempts: None,
            last_error: None,
            reason: None,
        }));
    }
    match state.store.turn_receipt(org, &turn_id).await? {
        Some(receipt) => Ok(Json(receipt)),
        None => Err(ApiError::resource_not_found(
            "turn_not_found",
            format!("no turn {turn_id} in this org"),
        )),
    }
}
