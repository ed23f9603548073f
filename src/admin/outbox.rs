//! The ingestion queue as an operator sees it: turns waiting, and dead letters (turns whose
//! ingestion failed for good) with their last error, which can be sent back to the queue.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::{Page, PathParams, QueryParams};
use super::responses::{AdminOnly, KeyErrors, StorageError, BAD_QUERY};
use super::views::ErrorBody;
use super::Caller;
use crate::app::AppState;
use crate::domain::outbox::{OutboxEntry, OutboxState};
use crate::http_error::ApiError;
use crate::journal::JournalError;
use crate::store::OutboxStore;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `dead` when absent.
    #[param(value_type = Option<OutboxState>, inline)]
    state: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxList {
    #[schema(value_type = OutboxState)]
    pub state: String,
    pub turns: Vec<OutboxEntry>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxRetried {
    pub id: i64,
    /// Always `pending`.
    #[schema(value_type = OutboxState)]
    pub state: String,
}

/// The org's turns in one state of the ingestion queue, oldest first (admin keys only).
#[utoipa::path(get, path = "/memory/outbox", tag = "operations", operation_id = "list_outbox",
    params(OutboxQuery),
    responses((status = 200, body = OutboxList), (status = 400, description = BAD_QUERY, body = ErrorBody),
        KeyErrors, AdminOnly, StorageError))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(query): QueryParams<OutboxQuery>,
) -> Result<Json<OutboxList>, ApiError> {
    caller.require_admin()?;
    let wanted = query.state.unwrap_or_else(|| "dead".into());
    if !matches!(wanted.as_str(), "dead" | "pending" | "done") {
        return Err(ApiError::bad_request(
            "invalid_query",
            "query parameter `state`: must be dead, pending or done",
        ));
    }
    let (limit, offset) = Page {
        limit: query.limit,
        offset: query.offset,
    }
    .resolve()?;
    let (turns, total) = state
        .store
        .list_outbox(&caller.0.org, &wanted, limit, offset)
        .await?;
    Ok(Json(OutboxList {
        state: wanted,
        turns,
        total,
        limit,
        offset,
    }))
}

/// Sends a dead turn back to the queue with a fresh attempt budget (admin keys only).
#[utoipa::path(post, path = "/memory/outbox/{id}/retry", tag = "operations",
    operation_id = "retry_outbox", params(("id" = i64, Path)),
    responses((status = 200, body = OutboxRetried),
        (status = 404, description = "No dead turn of that id in the org's outbox (`turn_not_found`).", body = ErrorBody),
        KeyErrors, AdminOnly, StorageError))]
pub async fn retry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
) -> Result<Json<OutboxRetried>, ApiError> {
    caller.require_admin()?;
    if !state.store.retry_outbox(&caller.0.org, id).await? {
        return Err(ApiError::resource_not_found(
            "turn_not_found",
            format!("no dead turn {id} in this org's outbox"),
        ));
    }
    state.outbox_ready.notify_one();
    Ok(Json(OutboxRetried {
        id,
        state: "pending".into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct JournalBacklog {
    /// The org's finished turns waiting in this process's local journal because the store
    /// could not take them; they move to the outbox once it can.
    pub journaled_turns: u64,
}

/// The org's turns waiting in the local journal (admin keys only). Answers while the store is
/// down, which is when the journal fills.
#[utoipa::path(get, path = "/memory/outbox/journal", tag = "operations",
    operation_id = "journal_backlog",
    responses((status = 200, body = JournalBacklog),
        (status = 500, description = "The journal file could not be read (`internal_error`).", body = ErrorBody),
        KeyErrors, AdminOnly))]
pub async fn journal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<JournalBacklog>, ApiError> {
    caller.require_admin()?;
    let journaled_turns = state
        .journal
        .pending_for(&caller.0.org)
        .await
        .map_err(journal_unreadable)?;
    Ok(Json(JournalBacklog { journaled_turns }))
}

/// The journal file could not be read: the operator's problem (logged), a 500 to the caller.
pub(super) fn journal_unreadable(e: JournalError) -> ApiError {
    tracing::error!(error = %e, "cannot read the turn journal");
    ApiError::internal("cannot read the turn journal")
}
