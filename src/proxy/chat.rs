//! An intercepted chat completion, from request body to stored turn.
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

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tracing::Instrument;

use crate::app::AppState;
use crate::domain::outbox::TurnPayload;
use crate::domain::{Session as MemorySession, TurnMessage};
use crate::http_error::ApiError;
use crate::journal::FinishedTurn;
use crate::memory::context_block;
use crate::metrics::{Metrics, Outcome};
use crate::proxy::framing;
use crate::proxy::rewrite::{self, ChatBody, MemoryFields};
use crate::proxy::route::Route;
use crate::proxy::tee::ResponseTee;
use crate::proxy::turn_store;
use crate::proxy::RequestCtx;
use crate::store::SessionStore;
use crate::upstream::{client_response_header, Upstream, UpstreamResponse};

/// Response header saying what memory did for this request.
pub const MEMORY_STATUS_HEADER: &str = "x-memgate-memory";

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
    /// Where the turn goes once the answer is complete; `None` when it is not to be stored.
    keep: Option<TurnTarget>,
}

/// Where a finished turn goes. The session id is `None` when the store could not say, while
/// the request was served, whether the session exists: the turn is then kept by org and
/// `memory_id`, and its session resolved once the store answers (see `journal.rs`).
struct TurnTarget {
    org_id: String,
    memory_id: String,
    session_id: Option<i64>,
    /// With an unknown session and no `store_memory` on the request: the session's own
    /// setting decides.
    unless_session_declines: bool,
    user_text: String,
}

/// Response header carrying the request's id (the client's own `x-request-id` when it sent
/// a usable one), also in every log line of the request and of its turn's ingestion.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An intercepted chat completion, answered whole. The request id and span are set first, so
/// that every log line of the request, refusals included, carries them.
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
    // A body that fails to arrive (broken framing, a stall) ends the request as refused.
    ctx.outcome = Outcome::ChatRejected;
    let limit = state.config.proxy.max_body_bytes;
    let Some(body) = read_body(session, limit).await? else {
        session.set_keepalive(None);
        return reject(
            state,
            session,
            ctx,
            &request_id,
            ApiError::payload_too_large(limit),
        )
        .await;
    };
    let fields = match rewrite::probe(&body) {
        Ok(f) => f,
        Err(e) => return reject(state, session, ctx, &request_id, e).await,
    };
    let path_and_query = match route {
        Route::Chat { path_and_query } => Some(path_and_query),
        // Whether the upstream serves this path as chat is unknown, so memory cannot be
        // applied to it, and its memory fields must not reach the upstream either.
        Route::ChatLookalike if fields.present => {
            let error = ApiError::bad_request(
                "memory_fields_on_unknown_route",
                "memory_id and store_memory are accepted on /v1/chat/completions and /chat/completions only",
            );
            return reject(state, session, ctx, &request_id, error).await;
        }
        Route::ChatLookalike | Route::Other => None,
    };
    let (outgoing, memory) = if fields.present {
        match prepare(state, session, fields, &body).await {
            Ok(prepared) => prepared,
            Err(e) => return reject(state, session, ctx, &request_id, e).await,
        }
    } else {
        (body, None)
    };
    ctx.outcome = memory
        .as_ref()
        .map_or(Outcome::ChatNoMemory, |m| m.status.outcome());
    let request = Outgoing {
        path_and_query,
        body: outgoing,
    };
    forward(state, upstream, session, ctx, &request_id, request, memory).await
}

/// What goes upstream: the body, and the normalised path when it differs from the one the
/// client sent (`None`: as sent).
struct Outgoing {
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
    fields: MemoryFields,
    body: &[u8],
) -> std::result::Result<(Bytes, Option<MemoryUse>), ApiError> {
    let mut chat = ChatBody::parse(body)?;
    chat.strip_memory_fields();
    let Some(memory_id) = fields.memory_id else {
        return Ok((Bytes::from(chat.to_bytes()), None));
    };
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
            return Ok(degraded(state, &chat, None));
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
                org_id: principal.org.clone(),
                memory_id: memory_id.clone(),
                session_id: None,
                unless_session_declines: fields.store_memory.is_none(),
                user_text,
            })
    };
    let memory_session = match found {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return Err(ApiError::session_not_found(&memory_id)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %memory_id, "session lookup failed; forwarding without memory");
            let keep = unresolved(chat.latest_user_text());
            return Ok(degraded(state, &chat, keep));
        }
        Err(_) => {
            tracing::warn!(%memory_id, "session lookup ran out of the retrieval budget");
            let keep = unresolved(chat.latest_user_text());
            return Ok(degraded(state, &chat, keep));
        }
    };

    let config = &memory_session.config;
    let store_turn = fields.store_memory.unwrap_or(config.store_memory);
    let user_text = chat.latest_user_text();
    let status = match (config.retrieval, &user_text) {
        (false, _) => MemoryStatus::Off,
        // No user message to search with.
        (true, None) => MemoryStatus::Empty,
        (true, Some(query)) => {
            inject_facts(
                state,
                &memory_session,
                &memory_id,
                query,
                started,
                budget,
                &mut chat,
            )
            .await
        }
    };
    let keep = user_text
        .filter(|_| store_turn)
        .map(|user_text| TurnTarget {
            org_id: memory_session.org_id,
            memory_id: memory_session.memory_id,
            session_id: Some(memory_session.id),
            unless_session_declines: false,
            user_text,
        });
    Ok((
        Bytes::from(chat.to_bytes()),
        Some(MemoryUse { status, keep }),
    ))
}

/// Searches the session's facts for `query` and puts those found in front of the conversation.
/// The budget counts from `started`: the session lookup has spent part of it already. A slow or
/// failing search costs the request its context, never its answer.
async fn inject_facts(
    state: &AppState,
    session: &MemorySession,
    memory_id: &str,
    query: &str,
    started: Instant,
    budget: Duration,
    chat: &mut ChatBody,
) -> MemoryStatus {
    let remaining = budget.saturating_sub(started.elapsed());
    let top_k = session.config.top_k.unwrap_or(state.config.memory.top_k);
    let search = state
        .engine
        .context(session, query, top_k, remaining, &state.metrics);
    let status = match tokio::time::timeout(remaining, search).await {
        Ok(Ok(facts)) => {
            let block = context_block::render(
                memory_id,
                facts.iter().map(|f| f.text.as_str()),
                state.config.memory.max_fact_chars,
            );
            match block {
                Some(block) => {
                    chat.inject_context(&block);
                    Metrics::inc(&state.metrics.context_injected_total);
                    Metrics::add(&state.metrics.facts_injected_total, facts.len() as u64);
                    MemoryStatus::Injected
                }
                None => MemoryStatus::Empty,
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %memory_id, "retrieval failed; forwarding without context");
            Metrics::inc(&state.metrics.retrieval_degraded_total);
            MemoryStatus::Degraded
        }
        Err(_) => {
            tracing::warn!(%memory_id, budget_ms = budget.as_millis() as u64, "retrieval ran out of budget; forwarding without context");
            Metrics::inc(&state.metrics.retrieval_degraded_total);
            MemoryStatus::Degraded
        }
    };
    state.metrics.latency.retrieval.observe(started.elapsed());
    status
}

/// Memory could not be consulted: the request goes on without context, flagged.
fn degraded(
    state: &AppState,
    chat: &ChatBody,
    keep: Option<TurnTarget>,
) -> (Bytes, Option<MemoryUse>) {
    Metrics::inc(&state.metrics.retrieval_degraded_total);
    (
        Bytes::from(chat.to_bytes()),
        Some(MemoryUse {
            status: MemoryStatus::Degraded,
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
    let status = memory.as_ref().map(|m| m.status);
    let upstream_header = response.header();
    let header = response_header(upstream_header, client_version, request_id, status)?;
    let content_type = upstream_header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // An error answer is no turn to remember.
    let kept = memory
        .and_then(|m| m.keep)
        .filter(|_| upstream_header.status.is_success())
        .map(|target| (target, ResponseTee::for_content_type(content_type)));
    session
        .write_response_header(Box::new(header), false)
        .await?;
    relay(state, session, ctx, request_id, response, kept).await
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
            respond(session, request_id, &error).await?;
            Ok(None)
        }
    }
}

/// The header the client gets: the gateway's, less its hop-by-hop headers, plus memgate's own.
fn response_header(
    upstream: &ResponseHeader,
    client_version: http::Version,
    request_id: &str,
    memory: Option<MemoryStatus>,
) -> Result<ResponseHeader> {
    let mut header = client_response_header(upstream, client_version, 2)?;
    if let Some(status) = memory {
        header.insert_header(MEMORY_STATUS_HEADER, status.header_value())?;
    }
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    Ok(header)
}

/// Streams the answer body to the client, and stores the turn of a kept one.
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
    mut kept: Option<(TurnTarget, ResponseTee)>,
) -> Result<()> {
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
                        finish_turn(state, request_id, target, tee).await;
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
    if let Some((target, tee)) = kept {
        finish_turn(state, request_id, target, tee).await;
    }
    release(session, &mut held, &mut sent, u64::MAX).await?;
    session.write_response_body(None, true).await?;
    Ok(())
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

/// Makes the turn durable (outbox, else journal) when the tee holds a complete answer.
async fn finish_turn(state: &AppState, request_id: &str, target: TurnTarget, tee: ResponseTee) {
    let Some(answer) = tee.finish() else {
        tracing::debug!("answer incomplete or unreadable; turn not stored");
        return;
    };
    turn_store::persist(state, finished_turn(request_id, target, answer)).await;
}

/// The turn as the outbox and the journal keep it. Its idempotency key is fixed here, so a
/// journaled turn that is replayed more than once still makes one outbox row.
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
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        org_id: target.org_id,
        session_id: target.session_id,
        unless_session_declines: target.unless_session_declines,
        payload: TurnPayload {
            memory_id: target.memory_id,
            messages,
            request_id: Some(request_id.to_string()),
            // The worker's ingestion of the turn continues this request's trace.
            traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
        },
    }
}

async fn reject(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: &str,
    error: ApiError,
) -> Result<()> {
    Metrics::inc(&state.metrics.rejected_requests_total);
    ctx.outcome = Outcome::ChatRejected;
    respond(session, request_id, &error).await
}

/// Answers `error`; the connection stays usable, as the body was read whole.
async fn respond(session: &mut Session, request_id: &str, error: &ApiError) -> Result<()> {
    let (header, body) = framing::error_response(error, Some(request_id))?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
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
    fn memory_status_outcomes() {
        assert_eq!(MemoryStatus::Injected.outcome(), Outcome::ChatInjected);
        assert_eq!(MemoryStatus::Empty.outcome(), Outcome::ChatEmpty);
        assert_eq!(MemoryStatus::Off.outcome(), Outcome::ChatOff);
        assert_eq!(MemoryStatus::Degraded.outcome(), Outcome::ChatDegraded);
    }
}
