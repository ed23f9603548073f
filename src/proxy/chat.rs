//! An intercepted request (chat completions, Responses, Anthropic Messages), from request
//! body to stored turn. What differs between the API shapes is in `api/`; the flow is one.
//!
//! The body has to be read whole and checked before anything goes upstream: a bad
//! `memory_id`, an unknown key or session must reach the upstream as nothing at all. Pingora
//! cannot forward a body that a filter has already read once it is over its 64 KiB retry buffer
//! (pingora #349, #688), so the request is forwarded here, with the same upstream, and the
//! answer streamed back chunk by chunk through the tee.
//!
//! A request goes through, in order: `read_body`, `prepare` (what memory does, with
//! `inject_facts` for the retrieval), then `forward`: `upstream_request`, `send_upstream`,
//! `response_header`, `relay` (the answer back to the client, its end held until the turn is
//! durable) and `finish_turn`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tracing::Instrument;

use crate::app::AppState;
use crate::domain::outbox::TurnPayload;
use crate::domain::{Placement, Session as MemorySession, TurnMessage};
use crate::http_error::ApiError;
use crate::journal::FinishedTurn;
use crate::memory::context_block;
use crate::metrics::{Metrics, Outcome};
use crate::proxy::api::ApiShape;
use crate::proxy::framing;
use crate::proxy::rewrite::{self, MemoryFields, RequestBody};
use crate::proxy::route::Route;
use crate::proxy::tee::ResponseTee;
use crate::proxy::turn_store::{self, DroppedTurn};
use crate::proxy::RequestCtx;
use crate::redaction::Rules;
use crate::store::SessionStore;
use crate::upstream::{client_response_header, Upstream, UpstreamResponse};

/// Response header saying what memory did for this request.
pub const MEMORY_STATUS_HEADER: &str = "x-memgate-memory";
/// Response header with the ids of the facts injected, comma-separated (empty when none).
pub const FACTS_HEADER: &str = "x-memgate-facts";
/// Response header with the id of the turn to be stored (`GET /memory/turns/{id}`).
pub const TURN_HEADER: &str = "x-memgate-turn";

/// What memory did for a request that named a `memory_id`: told to the client in
/// [`MEMORY_STATUS_HEADER`], and counted as the request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemoryStatus {
    /// Facts were put in front of the conversation.
    Injected,
    /// Retrieval ran but there was nothing to inject (nothing relevant stored yet).
    Empty,
    /// The session's retrieval is switched off.
    Off,
    /// Memory could not be consulted (retrieval failed or ran out of budget, or the caller or
    /// the session could not be checked): the request went on without context.
    Degraded,
}

impl MemoryStatus {
    /// The value of [`MEMORY_STATUS_HEADER`]. The README promises clients these strings, so
    /// they stay as they are.
    fn header_value(self) -> &'static str {
        match self {
            MemoryStatus::Injected => "injected",
            MemoryStatus::Empty => "empty",
            MemoryStatus::Off => "off",
            MemoryStatus::Degraded => "degraded",
        }
    }

    /// The request's outcome in the metrics.
    fn outcome(self) -> Outcome {
        match self {
            MemoryStatus::Injected => Outcome::ChatInjected,
            MemoryStatus::Empty => Outcome::ChatEmpty,
            MemoryStatus::Off => Outcome::ChatOff,
            MemoryStatus::Degraded => Outcome::ChatDegraded,
        }
    }
}

/// What memory does for one request, decided before it goes upstream.
struct MemoryUse {
    status: MemoryStatus,
    /// The ids of the facts injected.
    fact_ids: Vec<String>,
    /// Where the turn goes once the answer is complete; `None` when it is not to be stored.
    keep: Option<TurnTarget>,
}

/// Where a finished turn goes. The session id is `None` when the store could not say, while
/// the request was served, whether the session exists: the turn is then kept by org and
/// `memory_id`, and its session resolved once the store answers (see `journal.rs`).
struct TurnTarget {
    /// The turn's id, told to the client before the answer and kept as its idempotency key,
    /// so a journaled turn replayed more than once still makes one outbox row.
    turn_id: String,
    org_id: String,
    memory_id: String,
    session_id: Option<i64>,
    /// With an unknown session and no `store_memory` on the request: the session's own
    /// setting decides.
    unless_session_declines: bool,
    user_text: String,
    /// What the turn loses before it is kept: the session's redaction, or the server's when
    /// the session is unknown (the journal's replay then applies the session's).
    redaction: Arc<Rules>,
}

/// Response header carrying the request's id (the client's own `x-request-id` when it sent
/// a usable one), also in every log line of the request and of its turn's ingestion.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An intercepted request, answered whole. The request id and span are set first, so that
/// every log line of the request, refusals included, carries them.
pub async fn handle(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    route: Route,
) -> Result<()> {
    let request_id = request_id_of(session.req_header());
    ctx.request_id = Some(request_id.clone());
    let span = tracing::info_span!("chat", request_id = %request_id);
    let traceparent = session
        .req_header()
        .headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    crate::telemetry::continue_trace(&span, traceparent);
    handle_request(state, upstream, session, ctx, request_id, route)
        .instrument(span)
        .await
}

/// Anything refused here (body, route, caller, session) is answered by memgate and never
/// reaches the upstream.
async fn handle_request(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: String,
    route: Route,
) -> Result<()> {
    Metrics::inc(&state.metrics.chat_requests_total);
    let (shape, path_and_query) = match route {
        Route::Intercepted {
            shape,
            path_and_query,
        } => (shape, Some(path_and_query)),
        Route::Lookalike { shape } => (shape, None),
        Route::Other => (ApiShape::ChatCompletions, None),
    };
    ctx.shape = Some(shape);
    let refuse = Refusal {
        shape,
        request_id: &request_id,
    };
    // A body that fails to arrive (broken framing, a stall) ends the request as refused.
    ctx.outcome = Outcome::ChatRejected;
    let limit = state.config.proxy.max_body_bytes;
    let Some(body) = read_body(session, limit).await? else {
        session.set_keepalive(None);
        let error = ApiError::payload_too_large(limit);
        return refuse.send(state, session, ctx, error).await;
    };
    let fields =
        rewrite::probe(&body).and_then(|fields| fields.with_headers(&session.req_header().headers));
    let fields = match fields {
        Ok(f) => f,
        Err(e) => return refuse.send(state, session, ctx, e).await,
    };
    if path_and_query.is_none() && fields.asked() {
        // Whether the upstream serves this path as one memgate knows is unknown, so memory
        // cannot be applied to it, and its memory fields must not reach the upstream either.
        let error = ApiError::bad_request(
            "memory_fields_on_unknown_route",
            "memory_id and store_memory are accepted on /v1/chat/completions, /v1/responses and /v1/messages (and each without /v1) only",
        );
        return refuse.send(state, session, ctx, error).await;
    }
    let (outgoing, memory) = if fields.asked() {
        match prepare(state, session, shape, fields, &body).await {
            Ok(prepared) => prepared,
            Err(e) => return refuse.send(state, session, ctx, e).await,
        }
    } else {
        (body, None)
    };
    ctx.outcome = memory
        .as_ref()
        .map_or(Outcome::ChatNoMemory, |m| m.status.outcome());
    let request = Outgoing {
        shape,
        path_and_query,
        body: outgoing,
    };
    forward(state, upstream, session, ctx, &request_id, request, memory).await
}

/// What goes upstream: the body, and the normalised path when it differs from the one the
/// client sent (`None`: as sent).
struct Outgoing {
    shape: ApiShape,
    path_and_query: Option<String>,
    body: Bytes,
}

/// The client's `x-request-id` when it is a short printable token, else a new one.
fn request_id_of(request: &pingora::http::RequestHeader) -> String {
    request
        .headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string)
}

/// The whole body, or `None` when it is over `limit`.
async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // The client holds the body back until told to send it (curl waits a whole second).
        session
            .as_downstream_mut()
            .write_continue_response()
            .await?;
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    // A body that breaks off or is framed wrongly is the client's fault (see `framing`).
    while let Some(chunk) = session.read_request_body().await.map_err(|mut e| {
        e.as_down();
        e
    })? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// Checks the caller and the session, retrieves facts within the budget, and rewrites the body.
async fn prepare(
    state: &AppState,
    session: &Session,
    shape: ApiShape,
    fields: MemoryFields,
    body: &Bytes,
) -> std::result::Result<(Bytes, Option<MemoryUse>), ApiError> {
    let mut request = RequestBody::parse(body, shape)?;
    let Some(memory_id) = fields.memory_id else {
        // Only `store_memory`, with nothing to remember for: the body goes as it came, less
        // the field.
        let body = match fields.in_body {
            true => {
                request.strip_memory_fields();
                Bytes::from(request.to_bytes())
            }
            false => body.clone(),
        };
        return Ok((body, None));
    };
    request.strip_memory_fields();
    Metrics::inc(&state.metrics.memory_requests_total);
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let principal = match state
        .auth
        .resolve(&session.req_header().headers, peer)
        .await
    {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(ApiError::unauthorized(
                "a valid API key is required to use memory",
            ))
        }
        Err(e) => {
            // The LLM traffic must not stop because keys cannot be checked: the request goes
            // on without memory, and the gateway judges the key itself.
            // Without an org there is no session to keep the turn for.
            tracing::warn!(error = %e, %memory_id, "caller unresolvable; forwarding without memory");
            Metrics::inc(&state.metrics.auth_unavailable_total);
            return Ok(degraded(state, &request, None));
        }
    };

    let started = Instant::now();
    let budget = Duration::from_millis(state.config.memory.retrieval_budget_ms);
    let found = tokio::time::timeout(budget, find_session(state, &principal.org, &memory_id)).await;
    // A client that gets a complete answer can count on its turn being remembered, also when
    // the store cannot be asked about the session right now.
    let unresolved = |user_text: Option<String>| {
        user_text
            .filter(|_| fields.store_memory != Some(false))
            .map(|user_text| TurnTarget {
                turn_id: new_turn_id(),
                org_id: principal.org.clone(),
                memory_id: memory_id.clone(),
                session_id: None,
                unless_session_declines: fields.store_memory.is_none(),
                user_text,
                redaction: state.redactor.rules(None),
            })
    };
    let memory_session = match found {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return Err(ApiError::session_not_found(&memory_id)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %memory_id, "session lookup failed; forwarding without memory");
            let keep = unresolved(request.latest_user_text());
            return Ok(degraded(state, &request, keep));
        }
        Err(_) => {
            tracing::warn!(%memory_id, "session lookup ran out of the retrieval budget");
            let keep = unresolved(request.latest_user_text());
            return Ok(degraded(state, &request, keep));
        }
    };

    let config = &memory_session.config;
    let redaction = state.redactor.rules(config.redaction.as_ref());
    let store_turn = fields.store_memory.unwrap_or(config.store_memory);
    let placement = config.placement.unwrap_or(state.config.memory.placement);
    let user_text = request.latest_user_text();
    let (status, fact_ids) = match (config.retrieval, &user_text) {
        (false, _) => (MemoryStatus::Off, Vec::new()),
        // No user message to search with.
        (true, None) => (MemoryStatus::Empty, Vec::new()),
        (true, Some(query)) => {
            let retrieval = Retrieval {
                session: &memory_session,
                query,
                redaction: &redaction,
                started,
                budget,
            };
            inject_facts(state, retrieval, &mut request, placement).await
        }
    };
    let keep = user_text
        .filter(|_| store_turn)
        .map(|user_text| TurnTarget {
            turn_id: new_turn_id(),
            org_id: memory_session.org_id,
            memory_id: memory_session.memory_id,
            session_id: Some(memory_session.id),
            unless_session_declines: false,
            user_text,
            redaction,
        });
    let memory = MemoryUse {
        status,
        fact_ids,
        keep,
    };
    Ok((Bytes::from(request.to_bytes()), Some(memory)))
}

/// A turn id: time-ordered, so the outbox and the journal list turns in the order they came.
fn new_turn_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One request's search of its session. The budget counts from `started`: the session lookup
/// has spent part of it already.
struct Retrieval<'a> {
    session: &'a MemorySession,
    query: &'a str,
    /// The session's redaction: the query is embedded redacted, as the facts were.
    redaction: &'a Arc<Rules>,
    started: Instant,
    budget: Duration,
}

/// Searches the session's facts for the query and puts those found where `placement` says;
/// returns what memory did and the ids of the facts injected. A slow or failing search costs
/// the request its context, never its answer.
async fn inject_facts(
    state: &AppState,
    retrieval: Retrieval<'_>,
    request: &mut RequestBody,
    placement: Placement,
) -> (MemoryStatus, Vec<String>) {
    let Retrieval {
        session,
        query,
        redaction,
        started,
        budget,
    } = retrieval;
    let memory_id = session.memory_id.as_str();
    let remaining = budget.saturating_sub(started.elapsed());
    let top_k = session.config.top_k.unwrap_or(state.config.memory.top_k);
    let search = async {
        let query = state.redactor.redact_query(redaction.clone(), query).await;
        state
            .engine
            .context(session, &query, top_k, remaining, &state.metrics)
            .await
    };
    let outcome = match tokio::time::timeout(remaining, search).await {
        Ok(Ok(mut facts)) => {
            // A fact with no text to show is not injected, so its id is not reported either.
            facts.retain(|f| !context_block::is_blank(&f.text));
            let block = context_block::render(
                memory_id,
                facts.iter().map(|f| f.text.as_str()),
                state.config.memory.max_fact_chars,
            );
            match block {
                Some(block) => {
                    request.inject_context(&block, placement);
                    Metrics::inc(&state.metrics.context_injected_total);
                    Metrics::add(&state.metrics.facts_injected_total, facts.len() as u64);
                    let ids = facts.into_iter().map(|f| f.id).collect();
                    (MemoryStatus::Injected, ids)
                }
                None => (MemoryStatus::Empty, Vec::new()),
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %memory_id, "retrieval failed; forwarding without context");
            Metrics::inc(&state.metrics.retrieval_degraded_total);
            (MemoryStatus::Degraded, Vec::new())
        }
        Err(_) => {
            tracing::warn!(%memory_id, budget_ms = budget.as_millis() as u64, "retrieval ran out of budget; forwarding without context");
            Metrics::inc(&state.metrics.retrieval_degraded_total);
            (MemoryStatus::Degraded, Vec::new())
        }
    };
    state.metrics.latency.retrieval.observe(started.elapsed());
    outcome
}

/// Memory could not be consulted: the request goes on without context, flagged.
fn degraded(
    state: &AppState,
    request: &RequestBody,
    keep: Option<TurnTarget>,
) -> (Bytes, Option<MemoryUse>) {
    Metrics::inc(&state.metrics.retrieval_degraded_total);
    (
        Bytes::from(request.to_bytes()),
        Some(MemoryUse {
            status: MemoryStatus::Degraded,
            fact_ids: Vec::new(),
            keep,
        }),
    )
}

/// The session, from the cache when a fresh copy is kept (see `memory/session_cache.rs`).
async fn find_session(
    state: &AppState,
    org: &str,
    memory_id: &str,
) -> std::result::Result<Option<MemorySession>, crate::error::StoreError> {
    let lookup = match state.sessions.get(org, memory_id) {
        Ok(session) => return Ok(Some(session)),
        Err(lookup) => lookup,
    };
    let fetched = Instant::now();
    let found = if state.config.memory.auto_create_sessions {
        let engine = state.config.memory.default_engine;
        Some(
            state
                .store
                .find_or_create_session(org, memory_id, engine)
                .await?,
        )
    } else {
        state.store.find_session(org, memory_id).await?
    };
    if let Some(session) = &found {
        state.sessions.keep(lookup, session, fetched);
    }
    Ok(found)
}

/// Sends the body upstream and streams the answer back, teeing it when the turn is to be kept.
async fn forward(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: &str,
    outgoing: Outgoing,
    memory: Option<MemoryUse>,
) -> Result<()> {
    let request = upstream_request(upstream, session.req_header(), &outgoing, memory.is_some())?;
    let Some(response) = send_upstream(
        state,
        upstream,
        session,
        ctx,
        request_id,
        &request,
        &outgoing.body,
    )
    .await?
    else {
        return Ok(());
    };
    let client_version = session.req_header().version;
    let upstream_header = response.header();
    // An error answer is no turn to remember.
    let memory = memory.map(|mut m| {
        m.keep = m.keep.filter(|_| upstream_header.status.is_success());
        m
    });
    let header = response_header(upstream_header, client_version, request_id, memory.as_ref())?;
    let content_type = upstream_header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut kept = memory.and_then(|m| m.keep).map(|target| {
        (
            target,
            ResponseTee::for_answer(outgoing.shape, content_type),
        )
    });
    if let Err(e) = session.write_response_header(Box::new(header), false).await {
        drop_unfinished(state, &mut kept).await;
        return Err(e);
    }
    let relayed = relay(state, session, ctx, request_id, response, &mut kept).await;
    // The client has had all it will get: a turn not stored is settled as dropped now.
    drop_unfinished(state, &mut kept).await;
    if let Ok(Some(dropped)) = relayed {
        turn_store::settle_dropped(state, dropped).await;
        return Ok(());
    }
    relayed.map(|_| ())
}

/// The fact ids, comma-separated. Ids are memgate's (UUIDs, graph item ids); any byte that
/// could not stand in a header list (controls, non-ASCII, `,` and `%`) is percent-encoded, so
/// an odd id cannot break the response.
fn facts_header_value(ids: &[String]) -> String {
    let mut value = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            value.push(',');
        }
        for byte in id.bytes() {
            if byte.is_ascii_graphic() && byte != b',' && byte != b'%' {
                value.push(char::from(byte));
            } else {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    value
}

/// Why a turn the client was told of is not stored: its answer broke off.
const ANSWER_BROKE_OFF: &str = "the answer broke off before it was complete";

/// Settles as dropped a kept turn whose answer never completed (the gateway or the client
/// went away mid-answer).
async fn drop_unfinished(state: &AppState, kept: &mut Option<(TurnTarget, ResponseTee)>) {
    if let Some((target, _)) = kept.take() {
        turn_store::settle_dropped(state, target.dropped(ANSWER_BROKE_OFF)).await;
    }
}

impl TurnTarget {
    fn dropped(self, reason: &'static str) -> DroppedTurn {
        DroppedTurn {
            turn_id: self.turn_id,
            org_id: self.org_id,
            memory_id: self.memory_id,
            reason,
        }
    }
}

/// The client's request as it goes to the gateway: its headers, less those that belong to the
/// client's connection, with the body prepared here.
fn upstream_request(
    upstream: &Upstream,
    request: &pingora::http::RequestHeader,
    outgoing: &Outgoing,
    with_memory: bool,
) -> Result<pingora::http::RequestHeader> {
    let path_and_query = outgoing
        .path_and_query
        .as_deref()
        .unwrap_or_else(|| request.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut header = upstream.request_header(request, path_and_query)?;
    // The body goes out complete, with its length.
    header.insert_header(http::header::CONTENT_LENGTH, outgoing.body.len())?;
    if let Some(traceparent) = crate::telemetry::current_traceparent() {
        // The client's own, if any, is this span's parent: the gateway continues from here.
        header.insert_header("traceparent", traceparent)?;
    }
    if with_memory {
        // The tee reads the answer as text.
        header.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
    }
    Ok(header)
}

/// The gateway's answer (its header; the body is still to come), or `None` when the gateway
/// could not be reached or gave no answer in time, the client then having had a 502 or 504
/// from here.
async fn send_upstream<'u>(
    state: &AppState,
    upstream: &'u Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: &str,
    request: &pingora::http::RequestHeader,
    body: &[u8],
) -> Result<Option<UpstreamResponse<'u>>> {
    match upstream.send(request, body).await {
        Ok(response) => Ok(Some(response)),
        Err(e) => {
            Metrics::inc(&state.metrics.upstream_errors_total);
            ctx.outcome = Outcome::ChatUpstreamError;
            tracing::warn!(error = %e, "upstream unreachable");
            let error = framing::upstream_error(&e);
            let refusal = Refusal {
                shape: ctx.shape.unwrap_or(ApiShape::ChatCompletions),
                request_id,
            };
            refusal.respond(session, &error).await?;
            Ok(None)
        }
    }
}

/// The header the client gets: the gateway's, less its hop-by-hop headers, plus memgate's
/// own: what memory did, which facts it injected, and the turn it will store.
fn response_header(
    upstream: &ResponseHeader,
    client_version: http::Version,
    request_id: &str,
    memory: Option<&MemoryUse>,
) -> Result<ResponseHeader> {
    let mut header = client_response_header(upstream, client_version, 4)?;
    if let Some(memory) = memory {
        header.insert_header(MEMORY_STATUS_HEADER, memory.status.header_value())?;
        header.insert_header(FACTS_HEADER, facts_header_value(&memory.fact_ids))?;
        if let Some(target) = &memory.keep {
            header.insert_header(TURN_HEADER, &target.turn_id)?;
        }
    }
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    Ok(header)
}

/// Streams the answer body to the client, and stores the turn of a kept one (taking it out
/// of `kept`); says which turn it did not store, and why.
///
/// The end of a kept answer is held back until its turn is durable (the tee says where the
/// end starts); everything before goes out as it arrives. The turn is stored as soon as the
/// answer is complete, not when the upstream closes the stream, which may be later.
async fn relay(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: &str,
    mut response: UpstreamResponse<'_>,
    kept: &mut Option<(TurnTarget, ResponseTee)>,
) -> Result<Option<DroppedTurn>> {
    let mut dropped = None;
    let mut held = std::collections::VecDeque::<Bytes>::new();
    let mut sent: u64 = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let Some((_, tee)) = kept.as_mut() else {
                    session.write_response_body(Some(chunk), false).await?;
                    continue;
                };
                tee.feed(&chunk);
                held.push_back(chunk);
                release(session, &mut held, &mut sent, tee.releasable()).await?;
                if tee.is_complete() {
                    if let Some((target, tee)) = kept.take() {
                        dropped = finish_turn(state, request_id, target, tee).await;
                    }
                    release(session, &mut held, &mut sent, u64::MAX).await?;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Headers are gone already: the client sees the cut, as it would from the
                // gateway itself, and nothing is stored.
                Metrics::inc(&state.metrics.upstream_errors_total);
                ctx.outcome = Outcome::ChatUpstreamError;
                return Err(e.more_context("upstream answer cut mid-body"));
            }
        }
    }
    // The connection goes back to the pool before the client's last bytes: the next request
    // can have it while this one finishes.
    response.finish().await;
    // A JSON body (or a stream that never said `[DONE]`) is over only when the upstream ends
    // it; the tee still decides whether it is a complete answer.
    if let Some((target, tee)) = kept.take() {
        dropped = finish_turn(state, request_id, target, tee).await;
    }
    release(session, &mut held, &mut sent, u64::MAX).await?;
    session.write_response_body(None, true).await?;
    Ok(dropped)
}

/// Sends the held chunks up to stream offset `upto` (splitting one if needed).
async fn release(
    session: &mut Session,
    held: &mut std::collections::VecDeque<Bytes>,
    sent: &mut u64,
    upto: u64,
) -> Result<()> {
    while *sent < upto {
        let Some(mut front) = held.pop_front() else {
            break;
        };
        let room = usize::try_from(upto - *sent).unwrap_or(usize::MAX);
        if front.len() > room {
            held.push_front(front.split_off(room));
        }
        *sent += front.len() as u64;
        if !front.is_empty() {
            session.write_response_body(Some(front), false).await?;
        }
    }
    Ok(())
}

/// Makes the turn durable (outbox, else journal) when the tee holds a complete answer; else
/// it is dropped.
async fn finish_turn(
    state: &AppState,
    request_id: &str,
    target: TurnTarget,
    tee: ResponseTee,
) -> Option<DroppedTurn> {
    let Some(answer) = tee.finish() else {
        tracing::debug!("answer incomplete or unreadable; turn not stored");
        return Some(target.dropped("the answer was incomplete, failed or too large to keep"));
    };
    let redaction = target.redaction.clone();
    turn_store::persist(state, finished_turn(request_id, target, answer), redaction).await
}

/// The turn as the outbox and the journal keep it, under the id the client was given.
fn finished_turn(request_id: &str, target: TurnTarget, answer: String) -> FinishedTurn {
    let messages = vec![
        TurnMessage {
            role: "user".into(),
            content: target.user_text,
        },
        TurnMessage {
            role: "assistant".into(),
            content: answer,
        },
    ];
    FinishedTurn {
        idempotency_key: target.turn_id,
        org_id: target.org_id,
        session_id: target.session_id,
        unless_session_declines: target.unless_session_declines,
        payload: TurnPayload {
            memory_id: target.memory_id,
            messages,
            request_id: Some(request_id.to_string()),
            // The worker's ingestion of the turn continues this request's trace.
            traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
            redacted: false,
        },
    }
}

/// How memgate refuses a request: in its API's error shape, with its request id.
struct Refusal<'a> {
    shape: ApiShape,
    request_id: &'a str,
}

impl Refusal<'_> {
    /// Refuses the request as the client's fault; nothing went upstream.
    async fn send(
        &self,
        state: &AppState,
        session: &mut Session,
        ctx: &mut RequestCtx,
        error: ApiError,
    ) -> Result<()> {
        Metrics::inc(&state.metrics.rejected_requests_total);
        ctx.outcome = Outcome::ChatRejected;
        self.respond(session, &error).await
    }

    /// Answers `error`; the connection stays usable, as the body was read whole.
    async fn respond(&self, session: &mut Session, error: &ApiError) -> Result<()> {
        let (header, body) = framing::error_response(error, self.shape, Some(self.request_id))?;
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session.write_response_body(Some(body), true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_status_header_values() {
        assert_eq!(MemoryStatus::Injected.header_value(), "injected");
        assert_eq!(MemoryStatus::Empty.header_value(), "empty");
        assert_eq!(MemoryStatus::Off.header_value(), "off");
        assert_eq!(MemoryStatus::Degraded.header_value(), "degraded");
    }

    #[test]
    fn fact_ids_always_make_a_header_value() {
        let ids = ["0192f7a4-1".to_string(), "a,b %é\n".to_string()];
        let value = facts_header_value(&ids);
        assert_eq!(value, "0192f7a4-1,a%2Cb%20%25%C3%A9%0A");
        assert!(http::HeaderValue::from_str(&value).is_ok());
        assert_eq!(facts_header_value(&[]), "");
    }

    #[test]
    fn memory_status_outcomes() {
        assert_eq!(MemoryStatus::Injected.outcome(), Outcome::ChatInjected);
        assert_eq!(MemoryStatus::Empty.outcome(), Outcome::ChatEmpty);
        assert_eq!(MemoryStatus::Off.outcome(), Outcome::ChatOff);
        assert_eq!(MemoryStatus::Degraded.outcome(), Outcome::ChatDegraded);
    }
}
