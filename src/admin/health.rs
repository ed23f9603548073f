//! Liveness, readiness and metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use http::StatusCode;
use serde_json::json;

use crate::app::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready while the proxy can serve: a store that does not answer makes memory requests go
/// on without context (and turns wait in the journal), which is better than no LLM traffic
/// at all, so it is reported (`degraded`) but keeps the instance in rotation. Not ready once
/// a SIGTERM is draining the process, so load balancers stop sending to it.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.drain.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => (
            StatusCode::OK,
            Json(json!({"status": "degraded", "store": format!("unavailable: {e}")})),
        ),
    }
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let outbox = state.store.outbox_counts().await.ok();
    let graph_purges = state.store.graph_purge_counts().await.ok();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(
            outbox,
            graph_purges,
            (state.journal.pending(), state.journal.bytes()),
            state.usage.tokens(),
            state.usage.dropped(),
        ),
    )
}
