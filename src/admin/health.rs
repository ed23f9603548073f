//! Liveness, readiness and metrics. Open: no key is needed, so probes and scrapers work
//! without one.

use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::store::{GraphItemStore, OutboxStore};

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    pub status: LivenessStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LivenessStatus {
    Ok,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`; `degraded` while the store does not answer (the proxy still serves, without
    /// memory); `draining` once a SIGTERM is shutting the process down (with 503).
    pub status: ReadinessStatus,
    /// Why the store counts as unavailable, when `degraded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadinessStatus {
    Ready,
    Degraded,
    Draining,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Liveness)))]
pub async fn healthz() -> impl IntoResponse {
    Json(Liveness {
        status: LivenessStatus::Ok,
    })
}

/// Ready while the proxy can serve: a store that does not answer makes memory requests go
/// on without context (and turns wait in the journal), which is better than no LLM traffic
/// at all, so it is reported (`degraded`) but keeps the instance in rotation. Not ready once
/// a SIGTERM is draining the process, so load balancers stop sending to it.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready or degraded", body = Readiness),
        (status = 503, description = "Draining", body = Readiness)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.drain.is_draining() {
        let draining = Readiness {
            status: ReadinessStatus::Draining,
            store: None,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(draining));
    }
    let readiness = match state.store.ping().await {
        Ok(()) => Readiness {
            status: ReadinessStatus::Ready,
            store: None,
        },
        Err(e) => Readiness {
            status: ReadinessStatus::Degraded,
            store: Some(format!("unavailable: {e}")),
        },
    };
    (StatusCode::OK, Json(readiness))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let outbox = state.store.outbox_counts().await.ok();
    let graph_purges = state.store.graph_purge_counts().await.ok();
    let mut text = state.metrics.render(
        outbox,
        graph_purges,
        (state.journal.pending(), state.journal.bytes()),
        state.usage.tokens(),
        state.usage.dropped(),
    );
    state.redactor.write_metrics(&mut text);
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
}
