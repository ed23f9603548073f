//! Memory sessions: create, list, read, change and delete. Every query is scoped to the
//! caller's org; a session of another org is answered exactly like one that does not exist.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::query::{MemoryId, Page, PathParams, QueryParams};
use super::responses::{AdminOnly, BodyErrors, KeyErrors, StorageError, BAD_QUERY, NO_SESSION};
use super::views::{ErrorBody, SessionDeleted, SessionList, SessionView};
use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::domain::redaction::CustomRedaction;
use crate::domain::SessionStats;
use crate::domain::{
    is_valid_memory_id, EngineKind, FieldError, Placement, Session, SessionConfig,
};
use crate::http_error::ApiError;
use crate::store::{FactStore, SessionStore};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Becomes the session's `memory_id`; unique in the org.
    #[schema(value_type = MemoryId)]
    session_name: String,
    /// See GET /memory/engines.
    #[schema(value_type = EngineName)]
    engine_name: String,
    /// Unset keys take the server's defaults. A cognee session refuses `fact_ttl_seconds`
    /// and `max_facts` (422 `unsupported_setting`): its graph has neither.
    #[serde(default)]
    #[schema(value_type = Option<SessionConfig>)]
    config: Option<Value>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only describes `engine_name`, checked by `check_engine`"
)]
enum EngineName {
    Mem0,
    Cognee,
}

/// Creates a memory session in the caller's org (admin keys only).
#[utoipa::path(post, path = "/memory/session/create", operation_id = "create_session", tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, body = SessionView),
        (status = 409, description = "The org already has a session of that name (`already_exists`).", body = ErrorBody),
        BodyErrors, KeyErrors, AdminOnly, StorageError))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    caller.require_admin()?;
    if !is_valid_memory_id(&body.session_name) {
        return Err(FieldError::new(
            "invalid_session_name",
            "session_name",
            "must match [A-Za-z0-9._:@-]{1,128}",
        )
        .into());
    }
    let engine = engine_named(&body.engine_name)?;
    let config = match body.config {
        Some(v) => SessionConfig::from_request(v)?,
        None => SessionConfig::default(),
    };
    config.check_engine(engine)?;
    let session = state
        .store
        .create_session(&caller.0.org, &body.session_name, engine, &config)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(SessionView::new(session, SessionStats::default())),
    ))
}

fn engine_named(name: &str) -> Result<EngineKind, ApiError> {
    name.parse().map_err(|_| {
        FieldError::new(
            "unknown_engine",
            "engine_name",
            format!("unknown engine `{name}` (see GET /memory/engines)"),
        )
        .into()
    })
}

/// The caller's org's sessions, oldest first.
#[utoipa::path(get, path = "/memory/sessions", operation_id = "list_sessions", tag = "sessions", params(Page),
    responses((status = 200, body = SessionList),
        (status = 400, description = BAD_QUERY, body = ErrorBody),
        KeyErrors, StorageError))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<SessionList>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let (sessions, total) = state
        .store
        .list_sessions(&caller.0.org, limit, offset)
        .await?;
    Ok(Json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|(s, stats)| SessionView::new(s, stats))
            .collect(),
        total,
        limit,
        offset,
    }))
}

/// A session's engine, config, counts and timestamps.
#[utoipa::path(get, path = "/memory/session/{memory_id}", operation_id = "get_session", tag = "sessions",
    params(("memory_id" = MemoryId, Path)),
    responses((status = 200, body = SessionView), (status = 404, description = NO_SESSION, body = ErrorBody),
        KeyErrors, StorageError))]
pub async fn details(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = owned_session(&state, &caller, &memory_id).await?;
    let stats = state.store.session_stats(&session).await?;
    Ok(Json(SessionView::new(session, stats)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSession {
    /// Merged into the current config (JSON merge patch): a key set to null goes back to
    /// its default, an absent key keeps its value.
    #[serde(default)]
    #[schema(value_type = Option<SessionConfigPatch>)]
    config: Option<Value>,
    /// Accepted only when it names the session's current engine (409 otherwise).
    #[serde(default)]
    engine_name: Option<String>,
    /// Accepted only when it is the session's current name (409 otherwise).
    #[serde(default)]
    session_name: Option<String>,
}

/// The keys of [`SessionConfig`], each of which may also be null (back to its default).
/// A cognee session refuses `fact_ttl_seconds` and `max_facts` (422 `unsupported_setting`).
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "only describes `PatchSession::config`, read by `SessionConfig::merged`"
)]
struct SessionConfigPatch {
    #[schema(minimum = 1, maximum = 50)]
    top_k: Option<usize>,
    retrieval: Option<bool>,
    store_memory: Option<bool>,
    #[schema(minimum = 1, maximum = 9223372036854775_u64)]
    fact_ttl_seconds: Option<u64>,
    #[schema(minimum = 1, maximum = 1000000)]
    max_facts: Option<u64>,
    placement: Option<Placement>,
    /// Merged key by key: a detector set to null follows the server again.
    redaction: Option<SessionRedactionPatch>,
}

/// The keys of [`SessionRedaction`], each of which may also be null (a detector: back to the
/// server's choice; `custom`: no rules of the session's own).
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "only describes `SessionConfigPatch::redaction`, read by `SessionConfig::merged`"
)]
struct SessionRedactionPatch {
    email: Option<bool>,
    phone: Option<bool>,
    card: Option<bool>,
    iban: Option<bool>,
    ip: Option<bool>,
    secret: Option<bool>,
    #[schema(max_items = 16)]
    custom: Option<Vec<CustomRedaction>>,
}

/// Changes a session's config (admin keys only). The engine cannot change: 409.
#[utoipa::path(patch, path = "/memory/session/{memory_id}", operation_id = "update_session", tag = "sessions",
    params(("memory_id" = MemoryId, Path)), request_body = PatchSession,
    responses((status = 200, body = SessionView), (status = 404, description = NO_SESSION, body = ErrorBody),
        (status = 409, description = "`engine_name` or `session_name` differs from the session's (`engine_immutable`, `session_name_immutable`).", body = ErrorBody),
        BodyErrors, KeyErrors, AdminOnly, StorageError))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
    JsonBody(body): JsonBody<PatchSession>,
) -> Result<Json<SessionView>, ApiError> {
    caller.require_admin()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    if body
        .engine_name
        .as_ref()
        .is_some_and(|e| e != session.engine.as_str())
    {
        return Err(ApiError::conflict(
            "engine_immutable",
            "Sessions cannot change engine after creation",
        ));
    }
    if body
        .session_name
        .as_ref()
        .is_some_and(|n| *n != session.memory_id)
    {
        return Err(ApiError::conflict(
            "session_name_immutable",
            "a session's name is its memory_id and cannot change; create a new session instead",
        ));
    }
    let config = match body.config {
        Some(patch) => session.config.merged(patch)?,
        None => session.config.clone(),
    };
    config.check_engine(session.engine)?;
    let updated = state
        .store
        .update_session_config(&caller.0.org, &memory_id, &config)
        .await?
        .ok_or_else(|| ApiError::session_not_found(&memory_id))?;
    state.sessions.invalidate(&caller.0.org, &memory_id);
    // A lower cap or a shorter TTL takes effect now, not at the next write.
    state.store.enforce_retention(&updated).await?;
    let stats = state.store.session_stats(&updated).await?;
    Ok(Json(SessionView::new(updated, stats)))
}

/// Deletes a session with every fact, history event and pending turn (admin keys only).
#[utoipa::path(delete, path = "/memory/session/{memory_id}", operation_id = "delete_session", tag = "sessions",
    params(("memory_id" = MemoryId, Path)),
    responses((status = 200, body = SessionDeleted), (status = 404, description = NO_SESSION, body = ErrorBody),
        KeyErrors, AdminOnly, StorageError))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
) -> Result<Json<SessionDeleted>, ApiError> {
    caller.require_admin()?;
    if !is_valid_memory_id(&memory_id) {
        return Err(ApiError::session_not_found(&memory_id));
    }
    let facts_deleted = state
        .store
        .delete_session(&caller.0.org, &memory_id, state.engine.graph.remote_graph())
        .await?
        .ok_or_else(|| ApiError::session_not_found(&memory_id))?;
    state.sessions.invalidate(&caller.0.org, &memory_id);
    tracing::info!(%memory_id, org = %caller.0.org, facts_deleted, "memory session deleted");
    Ok(Json(SessionDeleted {
        memory_id,
        deleted: true,
        facts_deleted,
    }))
}

/// The caller's org's session, or 404, whether it does not exist or belongs to another org.
pub async fn owned_session(
    state: &AppState,
    caller: &Caller,
    memory_id: &str,
) -> Result<Session, ApiError> {
    if !is_valid_memory_id(memory_id) {
        return Err(ApiError::session_not_found(memory_id));
    }
    state
        .store
        .find_session(&caller.0.org, memory_id)
        .await?
        .ok_or_else(|| ApiError::session_not_found(memory_id))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    /// The patch takes the config's keys with the config's ranges, each also nullable.
    #[test]
    fn the_patch_schema_follows_the_config() {
        let patch = serde_json::to_value(SessionConfigPatch::schema()).unwrap();
        let config = serde_json::to_value(SessionConfig::schema()).unwrap();
        let keys = |v: &Value| {
            let mut keys: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&patch), keys(&config));
        for key in keys(&config) {
            for bound in ["minimum", "maximum"] {
                assert_eq!(
                    patch["properties"][&key][bound], config["properties"][&key][bound],
                    "{key}.{bound}"
                );
            }
        }
    }
}
