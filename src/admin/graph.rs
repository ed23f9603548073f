//! A cognee session's knowledge graph as data to draw: a page of relationships and the
//! entities they join.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::query::{MemoryId, Page, PathParams, QueryParams};
use super::responses::{KeyErrors, StorageError, BAD_QUERY};
use super::sessions::owned_session;
use super::views::{ErrorBody, GraphView};
use super::Caller;
use crate::app::AppState;
use crate::domain::EngineKind;
use crate::http_error::ApiError;

/// A page of a cognee session's relationships, oldest first, with every entity they join.
#[utoipa::path(get, path = "/memory/session/{memory_id}/graph", operation_id = "get_graph", tag = "facts",
    params(("memory_id" = MemoryId, Path), Page),
    responses((status = 200, body = GraphView), (status = 400, description = BAD_QUERY, body = ErrorBody),
        (status = 404, description = "No such session in the caller's org (`memory_session_not_found`).", body = ErrorBody),
        (status = 409, description = "The session's engine keeps no graph (`engine_has_no_graph`).", body = ErrorBody),
        KeyErrors, StorageError))]
pub async fn picture(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<GraphView>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    if session.engine != EngineKind::Cognee {
        return Err(ApiError::conflict(
            "engine_has_no_graph",
            format!(
                "memory session `{memory_id}` uses the {} engine, which keeps no graph",
                session.engine
            ),
        ));
    }
    let picture = state.engine.graph.picture(&session, limit, offset).await?;
    Ok(Json(GraphView::new(
        session.memory_id,
        picture,
        limit,
        offset,
    )))
}
