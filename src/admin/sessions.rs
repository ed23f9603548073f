//! Memory sessions: create, ingest, search, list facts. Every query is scoped to the caller's
//! org; a session of another org is answered exactly like one that does not exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::error::ApiError;
use crate::memory::query::classify;
use crate::memory::{is_valid_memory_id, Session, TurnMessage, COGNEE_ENGINE, MEM0_ENGINE};
use crate::proxy::rewrite::content_text;
use crate::timestamp::rfc3339;

const MAX_PAGE: i64 = 500;
const MAX_SEARCH_LIMIT: usize = 100;

pub async fn engines() -> impl IntoResponse {
    Json(json!({
        "engines": [
            {
                "name": MEM0_ENGINE,
                "backends": ["sqlite"],
                "description": "Extracted facts with vectors: preferences, recent facts, short-to-medium semantic recall.",
                "search_types": ["FACTS"],
                "available": true
            },
            {
                "name": COGNEE_ENGINE,
                "backends": ["neo4j", "pgvector", "postgres"],
                "description": "Knowledge graph of entities and relationships.",
                "search_types": ["GRAPH_COMPLETION", "CHUNKS", "SUMMARIES"],
                "available": false
            }
        ]
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    session_name: String,
    engine_name: String,
    #[serde(default)]
    config: Option<Value>,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_admin()?;
    if !is_valid_memory_id(&body.session_name) {
        return Err(ApiError::unprocessable(
            "invalid_session_name",
            "field `session_name`: must match [A-Za-z0-9._:@-]{1,128}",
        ));
    }
    match body.engine_name.as_str() {
        MEM0_ENGINE => {}
        COGNEE_ENGINE => {
            return Err(ApiError::unprocessable(
                "engine_unavailable",
                "field `engine_name`: the cognee engine is not available in this build",
            ))
        }
        other => {
            return Err(ApiError::unprocessable(
                "unknown_engine",
                format!("field `engine_name`: unknown engine `{other}` (see GET /memory/engines)"),
            ))
        }
    }
    let config = body.config.unwrap_or_else(|| json!({}));
    if !config.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "field `config`: must be an object",
        ));
    }
    let session = state
        .store
        .create_session(
            &caller.0.org,
            &body.session_name,
            &body.engine_name,
            &config,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(session_json(&session))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddFacts {
    memory_id: String,
    messages: Vec<Value>,
}

pub async fn add(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<AddFacts>,
) -> Result<impl IntoResponse, ApiError> {
    let session = owned_session(&state, &caller, &body.memory_id).await?;
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(content_text);
        match (role, content) {
            (Some(role), Some(content)) => messages.push(TurnMessage {
                role: role.to_string(),
                content,
            }),
            _ => {
                return Err(ApiError::unprocessable(
                    "invalid_field",
                    format!("field `messages[{i}]`: needs a `role` and a text `content`"),
                ))
            }
        }
    }
    if messages.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "field `messages`: must not be empty",
        ));
    }
    let events = state.engine.ingest(&session, &messages).await?;
    Ok(Json(
        json!({"memory_id": session.memory_id, "results": events}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchFacts {
    memory_id: String,
    query: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    search_type: Option<String>,
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<SearchFacts>,
) -> Result<impl IntoResponse, ApiError> {
    let session = owned_session(&state, &caller, &body.memory_id).await?;
    if let Some(t) = body.search_type.as_deref() {
        if !t.eq_ignore_ascii_case("FACTS") {
            return Err(ApiError::unprocessable(
                "unsupported_search_type",
                format!(
                    "field `search_type`: `{t}` is not supported by the {} engine (FACTS)",
                    session.engine
                ),
            ));
        }
    }
    let limit = body.limit.unwrap_or(state.config.memory.top_k);
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("field `limit`: must be between 1 and {MAX_SEARCH_LIMIT}"),
        ));
    }
    let results = state.engine.search(&session, &body.query, limit).await?;
    let kind = match classify(&body.query) {
        crate::memory::query::QueryKind::Question => "question",
        crate::memory::query::QueryKind::Keywords => "keywords",
    };
    Ok(Json(json!({
        "memory_id": session.memory_id,
        "query": body.query,
        "query_kind": kind,
        "search_type": "FACTS",
        "results": results,
    })))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn facts(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(memory_id): Path<String>,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse, ApiError> {
    let session = owned_session(&state, &caller, &memory_id).await?;
    let limit = page.limit.unwrap_or(100);
    let offset = page.offset.unwrap_or(0);
    if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("`limit` must be 1..={MAX_PAGE} and `offset` at least 0"),
        ));
    }
    let (facts, total) = state
        .store
        .list_facts(&session.org_id, session.id, limit, offset)
        .await?;
    Ok(Json(json!({
        "memory_id": session.memory_id,
        "facts": facts,
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

/// The caller's org's session, or 404, whether it does not exist or belongs to another org.
async fn owned_session(
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

fn session_json(session: &Session) -> Value {
    json!({
        "memory_id": session.memory_id,
        "session_name": session.memory_id,
        "engine_name": session.engine,
        "config": session.config,
        "created_at": rfc3339(session.created_at),
        "updated_at": rfc3339(session.updated_at),
    })
}
