//! A session's contents: ingest without a chat turn, search, list, delete one fact, and the
//! history of every change.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

use super::query::{HistoryPage, MemoryId, Page, PathParams, QueryParams};
use super::responses::{
    AdminOnly, BodyErrors, KeyErrors, StorageError, BAD_QUERY, NO_SESSION, UPSTREAM_FAILED,
};
use super::sessions::owned_session;
use super::views::{
    AddResult, Answer, ErrorBody, FactDeleted, FactList, HistoryList, SearchResult,
};
use super::{Caller, JsonBody};
use crate::app::AppState;
use crate::domain::{FieldError, TurnMessage};
use crate::http_error::ApiError;
use crate::memory::engine::{Engines, SearchPlan};
use crate::memory::graph::{GraphSearchType, NoAnswer};
use crate::memory::query::{classify, QueryKind};
use crate::metrics::Metrics;
use crate::proxy::api::message_text;
use crate::store::FactStore;
use std::time::Duration;

const MAX_SEARCH_LIMIT: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFacts {
    #[schema(value_type = MemoryId)]
    memory_id: String,
    /// Chat messages as in a chat completion; the facts worth keeping are extracted from
    /// them.
    #[schema(value_type = Vec<ChatMessage>, min_items = 1)]
    messages: Vec<Value>,
}

/// A chat message; other keys (`name`, …) are ignored.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "only describes `AddFacts::messages`, read by `add`"
)]
struct ChatMessage {
    /// `system`, `user`, `assistant`, …
    role: String,
    content: MessageContent,
}

/// A message's `content`, as the proxy reads it too ([`message_text`]).
struct MessageContent;

impl utoipa::PartialSchema for MessageContent {
    fn schema() -> RefOr<Schema> {
        let parts = ArrayBuilder::new()
            .items(TextPart::schema())
            .min_items(Some(1));
        OneOfBuilder::new()
            .description(Some(
                "A string, or text parts. Parts of other types (images, …) may come along and \
                 are skipped, but at least one text part is needed.",
            ))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(parts)
            .into()
    }
}

impl ToSchema for MessageContent {}

#[derive(ToSchema)]
#[expect(dead_code, reason = "only describes `MessageContent`")]
struct TextPart {
    #[schema(value_type = TextPartType, inline)]
    r#type: String,
    text: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[expect(dead_code, reason = "only describes `TextPart::type`")]
enum TextPartType {
    Text,
}

/// Ingests messages into a session without a chat turn.
#[utoipa::path(post, path = "/memory/session/add", operation_id = "add_memory", tag = "facts", request_body = AddFacts,
    responses((status = 200, body = AddResult), (status = 404, description = NO_SESSION, body = ErrorBody),
        (status = 502, description = UPSTREAM_FAILED, body = ErrorBody),
        BodyErrors, KeyErrors, StorageError))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<AddFacts>,
) -> Result<Json<AddResult>, ApiError> {
    let session = owned_session(&state, &caller, &body.memory_id).await?;
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str);
        let content = m.get("content").and_then(message_text);
        match (role, content) {
            (Some(role), Some(content)) => messages.push(TurnMessage {
                role: role.to_string(),
                content,
            }),
            _ => {
                return Err(FieldError::invalid(
                    format!("messages[{i}]"),
                    "needs a `role` and a text `content`",
                )
                .into())
            }
        }
    }
    if messages.is_empty() {
        return Err(FieldError::invalid("messages", "must not be empty").into());
    }
    let rules = state.redactor.rules(session.config.redaction.as_ref());
    let turn = state.redactor.redact_turn(rules, messages).await;
    let results = state.engine.ingest(&session, &turn).await?;
    Ok(Json(AddResult {
        memory_id: session.memory_id,
        results,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchFacts {
    #[schema(value_type = MemoryId)]
    memory_id: String,
    query: String,
    /// Results wanted; the session's `top_k` when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// mem0 sessions: `FACTS` (the default). cognee sessions: `GRAPH_COMPLETION` (the
    /// default), `CHUNKS` or `SUMMARIES`. Another engine's type answers 422
    /// (`unsupported_search_type`). Matched without regard to case.
    #[serde(default)]
    #[schema(value_type = Option<SearchType>)]
    search_type: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
#[expect(
    dead_code,
    reason = "only describes `SearchFacts::search_type`, read by `search`"
)]
enum SearchType {
    Facts,
    GraphCompletion,
    Chunks,
    Summaries,
}

/// Searches a session. mem0: questions by meaning, keyword-like queries by meaning fused
/// with full-text ranking. cognee: GRAPH_COMPLETION walks the knowledge graph from the
/// entities and relationships nearest to the query and answers over the triplets found
/// (from chunks when the graph cannot answer; `answered_by` and `fallback` say so); CHUNKS
/// and SUMMARIES return the turns' nearest chunks or summaries.
#[utoipa::path(post, path = "/memory/session/search", operation_id = "search_memory", tag = "facts", request_body = SearchFacts,
    responses((status = 200, body = SearchResult), (status = 404, description = NO_SESSION, body = ErrorBody),
        (status = 502, description = UPSTREAM_FAILED, body = ErrorBody),
        BodyErrors, KeyErrors, StorageError))]
pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<SearchFacts>,
) -> Result<Json<SearchResult>, ApiError> {
    let session = owned_session(&state, &caller, &body.memory_id).await?;
    let graph_type = match Engines::search_plan(&session, body.search_type.as_deref())? {
        SearchPlan::Facts => None,
        SearchPlan::Graph(search_type) => Some(search_type),
    };
    let limit = body
        .limit
        .or(session.config.top_k)
        .unwrap_or(state.config.memory.top_k);
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(FieldError::invalid(
            "limit",
            format!("must be between 1 and {MAX_SEARCH_LIMIT}"),
        )
        .into());
    }
    // Embedded and sent to the answering model as the facts were kept: redacted.
    let rules = state.redactor.rules(session.config.redaction.as_ref());
    let query = state.redactor.redact_query(rules, &body.query).await;
    let query_kind = match classify(&body.query) {
        QueryKind::Question => "question",
        QueryKind::Keywords => "keywords",
    };
    let Some(search_type) = graph_type else {
        let results = state.engine.facts.search(&session, &query, limit).await?;
        return Ok(Json(SearchResult {
            memory_id: session.memory_id,
            query: body.query,
            query_kind: query_kind.into(),
            search_type: "FACTS".into(),
            answered_by: "facts".into(),
            fallback: None,
            answer: Answer::NotAsked,
            answer_unavailable: None,
            results,
        }));
    };
    let graph = &state.engine.graph;
    let found = graph
        .search(
            &session,
            &query,
            limit,
            search_type,
            Duration::from_millis(state.config.graph.timeout_ms),
        )
        .await?;
    let mut answer = Answer::NotAsked;
    if search_type == GraphSearchType::GraphCompletion {
        state.metrics.graph_search(found.fallback);
        let context: Vec<String> = found.results.iter().map(|r| r.text.clone()).collect();
        let answered = if context.is_empty() {
            Err(NoAnswer::NoResults)
        } else {
            graph.answer(&session, &query, &context).await
        };
        if matches!(
            answered,
            Err(NoAnswer::ModelFailed | NoAnswer::MalformedAnswer)
        ) {
            Metrics::inc(&state.metrics.graph_answers_failed_total);
        }
        answer = Answer::from(answered);
    }
    Ok(Json(SearchResult {
        memory_id: session.memory_id,
        query: body.query,
        query_kind: query_kind.into(),
        search_type: search_type.as_str().into(),
        answered_by: found.answered_by.as_str().into(),
        fallback: found.fallback.map(|f| f.as_str().to_string()),
        answer_unavailable: answer.unavailable_reason(),
        answer,
        results: found.results,
    }))
}

/// Every fact of a session, oldest first; facts past the session's TTL are not listed.
#[utoipa::path(get, path = "/memory/session/{memory_id}/facts", operation_id = "list_facts", tag = "facts",
    params(("memory_id" = MemoryId, Path), Page),
    responses((status = 200, body = FactList), (status = 400, description = BAD_QUERY, body = ErrorBody),
        (status = 404, description = NO_SESSION, body = ErrorBody), KeyErrors, StorageError))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<FactList>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    let (facts, total) = state.engine.list_facts(&session, limit, offset).await?;
    Ok(Json(FactList {
        memory_id: session.memory_id,
        facts,
        total,
        limit,
        offset,
    }))
}

/// Deletes one fact (admin keys only); the deletion is kept in the history.
#[utoipa::path(delete, path = "/memory/session/{memory_id}/facts/{fact_id}", operation_id = "delete_fact", tag = "facts",
    params(("memory_id" = MemoryId, Path), ("fact_id" = String, Path)),
    responses((status = 200, body = FactDeleted),
        (status = 404, description = "No such session (`memory_session_not_found`) or no such fact in it (`fact_not_found`).", body = ErrorBody),
        KeyErrors, AdminOnly, StorageError))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((memory_id, fact_id)): PathParams<(String, String)>,
) -> Result<Json<FactDeleted>, ApiError> {
    caller.require_admin()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    let deleted = state.engine.delete_fact(&session, &fact_id).await?;
    if !deleted {
        return Err(ApiError::resource_not_found(
            "fact_not_found",
            format!("fact `{fact_id}` not found in memory session `{memory_id}`"),
        ));
    }
    Ok(Json(FactDeleted {
        id: fact_id,
        memory_id,
        deleted: true,
    }))
}

/// The ADD, UPDATE and DELETE events of a session's facts, oldest first.
#[utoipa::path(get, path = "/memory/session/{memory_id}/history", operation_id = "get_history", tag = "facts",
    params(("memory_id" = MemoryId, Path), HistoryPage),
    responses((status = 200, body = HistoryList), (status = 400, description = BAD_QUERY, body = ErrorBody),
        (status = 404, description = NO_SESSION, body = ErrorBody), KeyErrors, StorageError))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams(memory_id): PathParams<String>,
    QueryParams(query): QueryParams<HistoryPage>,
) -> Result<Json<HistoryList>, ApiError> {
    let (limit, offset) = Page {
        limit: query.limit,
        offset: query.offset,
    }
    .resolve()?;
    let session = owned_session(&state, &caller, &memory_id).await?;
    let (history, total) = state
        .store
        .fact_history(&session, query.fact_id.as_deref(), limit, offset)
        .await?;
    Ok(Json(HistoryList {
        memory_id: session.memory_id,
        history,
        total,
        limit,
        offset,
    }))
}
