//! `POST /memory/session/{id}/forget`: erasure by content.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::query::{MemoryId, PathParams};
use super::responses::{AdminOnly, BodyErrors, KeyErrors, StorageError, NO_SESSION};
use super::sessions::owned_session;
use super::views::ErrorBody;
use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::domain::erasure::{ForgetReceipt, ForgetSelection};
use crate::domain::FieldError;
use crate::http_error::ApiError;

/// The shortest text a forget matches by: shorter ones would take most of a session.
const MIN_QUERY_CHARS: usize = 3;
const MAX_FACT_IDS: usize = 1_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    /// Forget everything holding this text (at least 3 characters; without regard to case):
    /// facts, a cognee session's entities, relationships, chunks and summaries, turns not yet
    /// ingested, and the texts of history events.
    #[serde(default)]
    #[schema(min_length = 3)]
    query: Option<String>,
    /// Forget these facts (a cognee session's relationships or other graph items) by id.
    #[serde(default)]
    #[schema(max_items = 1000)]
    fact_ids: Vec<String>,
    /// Say what would be forgotten, and change nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ForgetResult {
    memory_id: String,
    dry_run: bool,
    /// What went (on a dry run: what would go).
    removed: ForgetReceipt,
    /// Turns held in this replica's journal (finished while the store was down) that held
    /// the text.
    journaled_turns: Vec<String>,
}

/// Forgets facts by id, or everything that holds a text, in one transaction (admin keys only).
/// A later search never returns what went. With neither, nothing matches: an empty receipt.
#[utoipa::path(post, path = "/memory/session/{memory_id}/forget", operation_id = "forget", tag = "facts",
    params(("memory_id" = MemoryId, Path)), request_body = ForgetRequest,
    responses((status = 200, body = ForgetResult), (status = 404, description = NO_SESSION, body = ErrorBody),
        (status = 409, description = "A turn holding the text is being ingested at this moment (`busy`): try again in a few seconds.", body = ErrorBody),
        BodyErrors, KeyErrors, AdminOnly, StorageError))]
pub async fn forget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
    JsonBody(body): JsonBody<ForgetRequest>,
) -> Result<Json<ForgetResult>, ApiError> {
    caller.require_admin()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    let query = body.query.map(|q| q.trim().to_string());
    if let Some(q) = &query {
        if q.chars().count() < MIN_QUERY_CHARS {
            return Err(FieldError::invalid(
                "query",
                format!("must be at least {MIN_QUERY_CHARS} characters"),
            )
            .into());
        }
    }
    if body.fact_ids.len() > MAX_FACT_IDS {
        return Err(FieldError::invalid("fact_ids", format!("at most {MAX_FACT_IDS} ids")).into());
    }
    let selection = ForgetSelection {
        fact_ids: body.fact_ids,
        text: query,
    };
    // The journal first: a turn left there would be replayed, and its text come back.
    let journaled_turns = match &selection.text {
        Some(_) => state
            .journal
            .forget(
                &session.org_id,
                &session.memory_id,
                |turn| {
                    turn.payload
                        .messages
                        .iter()
                        .any(|m| selection.mentioned_in(&m.content))
                },
                body.dry_run,
            )
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot erase from the turn journal");
                ApiError::internal("cannot erase from the turn journal")
            })?,
        None => Vec::new(),
    };
    let removed = state
        .engine
        .forget(&session, &selection, body.dry_run)
        .await?;
    if !body.dry_run {
        tracing::info!(
            %memory_id,
            org = %session.org_id,
            facts = removed.facts.len(),
            turns = removed.turns.len() + journaled_turns.len(),
            "session content forgotten"
        );
    }
    Ok(Json(ForgetResult {
        memory_id: session.memory_id,
        dry_run: body.dry_run,
        removed,
        journaled_turns,
    }))
}
