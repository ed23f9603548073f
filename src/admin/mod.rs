//! The admin listener (axum): the management API, health, readiness and metrics.

mod caller;
mod health;
mod json_body;
mod sessions;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;
use crate::error::ApiError;

pub use caller::Caller;
pub use json_body::JsonBody;

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.admin.max_body_bytes;
    Router::new()
        .route("/memory/engines", get(sessions::engines))
        .route("/memory/session/create", post(sessions::create))
        .route("/memory/session/add", post(sessions::add))
        .route("/memory/session/search", post(sessions::search))
        .route("/memory/session/{memory_id}/facts", get(sessions::facts))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves the admin API on an already bound listener until the process ends.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) {
    if let Err(e) = axum::serve(listener, router(state)).await {
        tracing::error!(error = %e, "admin listener stopped");
    }
}
