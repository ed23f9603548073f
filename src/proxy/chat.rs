//! An intercepted chat completion, from request body to stored turn.
//!
//! The body has to be read whole and checked before anything goes upstream: a bad
//! `memory_id`, an unknown key or session must reach the upstream as nothing at all. Pingora
//! cannot forward a body that a filter has already read once it is over its 64 KiB retry buffer
//! (pingora #349, #688), so the request is forwarded here, with the same upstream, and the
//! answer streamed back chunk by chunk through the tee.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tracing::Instrument;

use crate::app::AppState;
use crate::error::ApiError;
use crate::memory::{context_block, Session as MemorySession, TurnMessage};
use crate::metrics::{Metrics, Outcome};
use crate::proxy::rewrite::{self, ChatBody, MemoryFields};
use crate::proxy::tee::ResponseTee;
use crate::proxy::turn_store::{self, PendingTurn};
use crate::proxy::upstream::{is_hop_by_hop, Upstream};
use crate::proxy::RequestCtx;
use crate::store::TurnPayload;

/// Response header saying what memory did for this request.
pub const MEMORY_STATUS_HEADER: &str = "x-memgate-memory";

/// What memory does for one request, decided before it goes upstream.
struct MemoryUse {
    /// `injected`, `empty` (nothing relevant stored yet), `off` (the session's retrieval is
    /// switched off) or `degraded` (retrieval failed or ran out of budget), sent back in
    /// [`MEMORY_STATUS_HEADER`].
    status: &'static str,
    /// Where the turn goes once the answer is complete; `None` when it is not to be stored.
    keep: Option<TurnTarget>,
}

struct TurnTarget {
    session: MemorySession,
    user_text: String,
}

/// Response header carrying the request's id (the client's own `x-request-id` when it sent
/// a usable one), also in every log line of the request and of its turn's ingestion.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub async fn handle(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
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
    handle_request(state, upstream, session, ctx, request_id)
        .instrument(span)
        .await
}

async fn handle_request(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: String,
) -> Result<()> {
    Metrics::inc(&state.metrics.chat_requests_total);
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
    let (outgoing, memory) = if fields.present {
        match prepare(state, session, fields, &body).await {
            Ok(prepared) => prepared,
            Err(e) => return reject(state, session, ctx, &request_id, e).await,
        }
    } else {
        (body, None)
    };
    ctx.outcome = match memory.as_ref().map(|m| m.status) {
        None => Outcome::ChatNoMemory,
        Some("injected") => Outcome::ChatInjected,
        Some("empty") => Outcome::ChatEmpty,
        Some("off") => Outcome::ChatOff,
        Some(_) => Outcome::ChatDegraded,
    };
    forward(state, upstream, session, ctx, &request_id, outgoing, memory).await
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
    while let Some(chunk) = session.read_request_body().await? {
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
            tracing::warn!(error = %e, %memory_id, "caller unresolvable; forwarding without memory");
            Metrics::inc(&state.metrics.auth_unavailable_total);
            return Ok(degraded(state, &chat));
        }
    };

    let started = Instant::now();
    let budget = Duration::from_millis(state.config.memory.retrieval_budget_ms);
    let found = tokio::time::timeout(budget, find_session(state, &principal.org, &memory_id)).await;
    let memory_session = match found {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return Err(ApiError::session_not_found(&memory_id)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %memory_id, "session lookup failed; forwarding without memory");
            return Ok(degraded(state, &chat));
        }
        Err(_) => {
            tracing::warn!(%memory_id, "session lookup ran out of the retrieval budget");
            return Ok(degraded(state, &chat));
        }
    };

    let config = &memory_session.config;
    let store_turn = fields.store_memory.unwrap_or(config.store_memory);
    let user_text = chat.latest_user_text();
    let mut status = if config.retrieval { "empty" } else { "off" };
    if let (true, Some(query)) = (config.retrieval, &user_text) {
        let remaining = budget.saturating_sub(started.elapsed());
        let top_k = config.top_k.unwrap_or(state.config.memory.top_k);
        let search = state
            .engine
            .context(&memory_session, query, top_k, remaining, &state.metrics);
        match tokio::time::timeout(remaining, search).await {
            Ok(Ok(facts)) => {
                let block = context_block::render(
                    &memory_id,
                    facts.iter().map(|f| f.text.as_str()),
                    state.config.memory.max_fact_chars,
                );
                if let Some(block) = block {
                    chat.inject_context(&block);
                    status = "injected";
                    Metrics::inc(&state.metrics.context_injected_total);
                    Metrics::add(&state.metrics.facts_injected_total, facts.len() as u64);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %memory_id, "retrieval failed; forwarding without context");
                status = "degraded";
                Metrics::inc(&state.metrics.retrieval_degraded_total);
            }
            Err(_) => {
                tracing::warn!(%memory_id, budget_ms = budget.as_millis() as u64, "retrieval ran out of budget; forwarding without context");
                status = "degraded";
                Metrics::inc(&state.metrics.retrieval_degraded_total);
            }
        }
        state.metrics.latency.retrieval.observe(started.elapsed());
    }
    let keep = user_text
        .filter(|_| store_turn)
        .map(|user_text| TurnTarget {
            session: memory_session,
            user_text,
        });
    Ok((
        Bytes::from(chat.to_bytes()),
        Some(MemoryUse { status, keep }),
    ))
}

/// Memory could not be consulted: the request goes on without context, flagged.
fn degraded(state: &AppState, chat: &ChatBody) -> (Bytes, Option<MemoryUse>) {
    Metrics::inc(&state.metrics.retrieval_degraded_total);
    (
        Bytes::from(chat.to_bytes()),
        Some(MemoryUse {
            status: "degraded",
            keep: None,
        }),
    )
}

async fn find_session(
    state: &AppState,
    org: &str,
    memory_id: &str,
) -> std::result::Result<Option<MemorySession>, crate::error::StoreError> {
    if state.config.memory.auto_create_sessions {
        let engine = &state.config.memory.default_engine;
        return state
            .store
            .find_or_create_session(org, memory_id, engine)
            .await
            .map(Some);
    }
    state.store.find_session(org, memory_id).await
}

/// Sends the body upstream and streams the answer back, teeing it when the turn is to be kept.
async fn forward(
    state: &AppState,
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
    request_id: &str,
    body: Bytes,
    memory: Option<MemoryUse>,
) -> Result<()> {
    let request = session.req_header();
    let path_and_query = request.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = http::HeaderMap::with_capacity(request.headers.len());
    for (name, value) in request.headers.iter() {
        // Host and length belong to the new request; `Expect` was answered here, and the body
        // goes out complete.
        if is_hop_by_hop(name.as_str())
            || name == http::header::HOST
            || name == http::header::CONTENT_LENGTH
            || name == http::header::EXPECT
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Some(traceparent) = crate::telemetry::current_traceparent() {
        // The client's own, if any, is this span's parent: the gateway continues from here.
        headers.insert("traceparent", traceparent);
    }
    if memory.is_some() {
        // The tee reads the answer as text.
        headers.insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
    }
    let sent = upstream
        .client
        .post(upstream.url_for(path_and_query))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            Metrics::inc(&state.metrics.upstream_errors_total);
            ctx.outcome = Outcome::ChatUpstreamError;
            tracing::warn!(error = %e, "upstream unreachable");
            return respond(
                session,
                request_id,
                &ApiError::bad_gateway("the upstream gateway could not be reached"),
            )
            .await;
        }
    };

    let status = response.status();
    let mut header = ResponseHeader::build(status.as_u16(), Some(response.headers().len() + 1))?;
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name.as_str()) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    let http11 = session.req_header().version == http::Version::HTTP_11;
    if http11 && header.headers.get(http::header::CONTENT_LENGTH).is_none() {
        // Without a length the answer must be chunked: a close-delimited body would make a
        // cut stream look complete to the client.
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    if let Some(m) = &memory {
        header.insert_header(MEMORY_STATUS_HEADER, m.status)?;
    }
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    let keep = memory.and_then(|m| m.keep).filter(|_| status.is_success());
    let mut tee = keep.as_ref().map(|_| {
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        ResponseTee::for_content_type(content_type)
    });
    session
        .write_response_header(Box::new(header), false)
        .await?;

    // The end of a kept answer is held back until its turn is durable: the last chunk of a
    // JSON body, or an SSE stream from its `data: [DONE]` on. Everything before goes out as it
    // arrives.
    let sse = matches!(tee, Some(ResponseTee::Sse(_)));
    // JSON: the latest chunk. SSE: everything from `data: [DONE]` on.
    let mut held_last: Option<Bytes> = None;
    let mut held_tail: Option<BytesMut> = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let Some(t) = tee.as_mut() else {
                    session.write_response_body(Some(chunk), false).await?;
                    continue;
                };
                t.feed(&chunk);
                let send = if !sse {
                    held_last.replace(chunk)
                } else if let Some(tail) = held_tail.as_mut() {
                    tail.extend_from_slice(&chunk);
                    None
                } else if let Some(at) = find_done(&chunk) {
                    held_tail = Some(BytesMut::from(&chunk[at..]));
                    Some(chunk.slice(..at))
                } else {
                    Some(chunk)
                };
                if let Some(send) = send.filter(|b| !b.is_empty()) {
                    session.write_response_body(Some(send), false).await?;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // Headers are gone already: the client sees the cut, as it would from the
                // gateway itself, and nothing is stored.
                Metrics::inc(&state.metrics.upstream_errors_total);
                ctx.outcome = Outcome::ChatUpstreamError;
                return Err(Error::because(
                    ErrorType::ReadError,
                    "upstream answer cut mid-body",
                    e,
                ));
            }
        }
    }

    if let (Some(keep), Some(tee)) = (keep, tee) {
        match tee.finish() {
            Some(answer) => {
                let messages = vec![
                    TurnMessage {
                        role: "user".into(),
                        content: keep.user_text,
                    },
                    TurnMessage {
                        role: "assistant".into(),
                        content: answer,
                    },
                ];
                let turn = PendingTurn {
                    idempotency_key: uuid::Uuid::now_v7().to_string(),
                    org_id: keep.session.org_id.clone(),
                    session_id: keep.session.id,
                    payload: TurnPayload {
                        memory_id: keep.session.memory_id.clone(),
                        messages,
                        request_id: Some(request_id.to_string()),
                        traceparent: crate::telemetry::traceparent_of(&tracing::Span::current()),
                    },
                };
                turn_store::persist(state, turn).await;
            }
            None => tracing::debug!("answer incomplete or unreadable; turn not stored"),
        }
    }
    let held = held_last.or_else(|| held_tail.map(BytesMut::freeze));
    if let Some(held) = held {
        session.write_response_body(Some(held), false).await?;
    }
    session.write_response_body(None, true).await?;
    Ok(())
}

/// Where an SSE chunk's `data: [DONE]` line starts, if it holds one.
fn find_done(chunk: &[u8]) -> Option<usize> {
    const MARKERS: [&[u8]; 2] = [b"data: [DONE]", b"data:[DONE]"];
    MARKERS.iter().find_map(|marker| {
        chunk
            .windows(marker.len())
            .position(|window| window == *marker)
    })
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

async fn respond(session: &mut Session, request_id: &str, error: &ApiError) -> Result<()> {
    let body = error.body();
    let mut header = ResponseHeader::build(error.status, Some(3))?;
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(REQUEST_ID_HEADER, request_id)?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}
