//! The proxy listener (Pingora). Requests of the API shapes memgate remembers on (chat
//! completions, Responses, Anthropic Messages: see [`api`]) are intercepted by [`chat`]; requests
//! without a body are forwarded by [`passthrough`]; everything else (bodies streamed both
//! ways, upgrades) is proxied by Pingora's pipeline untouched. All three reach the gateway
//! through [`crate::upstream`]'s peer.
//!
//! Phases, for a request:
//! - `early_request_filter`: the header is in; the client's deadlines move on to the body and
//!   the keep-alive wait (see [`deadlines`]).
//! - `request_filter`: an intercepted request is handled here whole (see [`chat`] for why), and so
//!   is a request without a body (see [`passthrough`]); the phases below do not run for them.
//!   Anything else continues.
//! - `upstream_peer`: the configured gateway.
//! - `upstream_request_filter`: Host and path prefix of the gateway; nothing else changes.
//! - `logging`: runs once at the end, errors included; a finished turn is written to the
//!   outbox here, after the client has its last byte but before the request's task ends.

pub mod api;
pub mod chat;
pub mod deadlines;
pub mod framing;
pub mod passthrough;
pub mod rewrite;
pub mod route;
pub mod tee;
pub mod turn_store;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use crate::app::AppState;
use crate::metrics::Outcome;
use crate::shutdown::InFlightGuard;
use crate::upstream::{Upstream, MEMGATE_REQUEST_HEADERS};
use route::Route;

pub struct MemgateProxy {
    state: Arc<AppState>,
    upstream: Arc<Upstream>,
}

impl MemgateProxy {
    pub fn new(state: Arc<AppState>, upstream: Arc<Upstream>) -> Self {
        Self { state, upstream }
    }
}

#[derive(Debug)]
pub struct RequestCtx {
    pub started: std::time::Instant,
    /// Set by the chat path; pass-through requests keep the default.
    pub outcome: Outcome,
    /// Set by the chat path.
    pub request_id: Option<String>,
    /// The API shape of an intercepted request, whose error shape memgate answers in.
    pub shape: Option<api::ApiShape>,
    /// Counts the request until the context is dropped, after the outbox write.
    _in_flight: InFlightGuard,
}

#[async_trait]
impl ProxyHttp for MemgateProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx {
            started: std::time::Instant::now(),
            outcome: Outcome::Passthrough,
            request_id: None,
            shape: None,
            _in_flight: self.state.drain.request(),
        }
    }

    /// Default: nothing. The header is in: its deadline ends, the body's and the keep-alive's
    /// are set.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        deadlines::on_request_header(session, &self.state.config.proxy.deadlines());
        Ok(())
    }

    /// Default: continue. Intercepted requests are answered here and end the request; a request
    /// whose length framing is ambiguous is refused before anything goes upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let route = route::classify(session.req_header());
        if let Err(e) = framing::check_content_length(session.req_header()) {
            framing::refuse(session, &e, route.error_shape(), None).await;
            return Ok(true);
        }
        match route {
            Route::Other if passthrough::is_bodiless(session.req_header()) => {
                passthrough::forward(&self.upstream, session, ctx).await?;
                Ok(true)
            }
            Route::Other => Ok(false),
            route => {
                chat::handle(&self.state, &self.upstream, session, ctx, route).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        Ok(self.upstream.peer())
    }

    /// Default: unchanged. Points Host and the path at the gateway.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        upstream_request.insert_header(http::header::HOST, &self.upstream.authority)?;
        for name in MEMGATE_REQUEST_HEADERS {
            upstream_request.remove_header(name);
        }
        if !self.upstream.base_path.is_empty() {
            let path_and_query = upstream_request
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str());
            let uri = self
                .upstream
                .path_for(path_and_query)
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::InternalError, "upstream path", e))?;
            upstream_request.set_uri(uri);
        }
        Ok(())
    }

    /// Default: an error response. Once a response has started, the only honest signal left
    /// is to drop the connection mid-body, as the gateway itself would have: an error page
    /// appended to a half-sent answer would look like a complete one.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        if session.response_written().is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let body_read = self.state.config.proxy.deadlines().body_read;
        let error = framing::api_error_of(e, body_read);
        let shape = ctx.shape.unwrap_or(api::ApiShape::ChatCompletions);
        framing::refuse(session, &error, shape, ctx.request_id.as_deref()).await;
        FailToProxy {
            error_code: error.status,
            can_reuse_downstream: false,
        }
    }

    /// Default: nothing. Records the request's outcome and duration.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        let outcome = match (ctx.outcome, e) {
            (Outcome::Passthrough, Some(_)) => Outcome::PassthroughError,
            (o, _) => o,
        };
        let elapsed = ctx.started.elapsed();
        self.state.metrics.latency.request(outcome, elapsed);
        if let Some(request_id) = &ctx.request_id {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            let (route, outcome) = outcome.labels();
            tracing::info!(
                request_id = %request_id,
                route,
                outcome,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "request served"
            );
        }
    }
}
