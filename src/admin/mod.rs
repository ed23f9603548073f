//! The admin listener (axum): the management API, its OpenAPI document, the console (`/ui`),
//! health, readiness and metrics. Routes are registered together with their OpenAPI descriptions, so the document
//! cannot miss an endpoint.

mod caller;
mod console;
mod engines;
mod facts;
mod forget;
mod graph;
mod health;
mod json_body;
mod listener;
mod outbox;
mod query;
mod responses;
mod sessions;
mod transfer;
mod turns;
mod usage;
mod views;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http_error::ApiError;

pub use caller::Caller;
pub use json_body::JsonBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "memgate management API",
        description = "Memory sessions, their facts and history. Every call is scoped to the org of the caller's key; another org's sessions answer 404. Errors have the shape {\"error\":{\"message\",\"type\",\"code\"}}."
    ),
    // Named by `value_type` only, so not collected from the handlers.
    components(schemas(query::MemoryId, crate::domain::outbox::OutboxState)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "sessions", description = "Memory sessions and their config"),
        (name = "facts", description = "What a session remembers"),
        (name = "operations", description = "Health, readiness and metrics (no key needed)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The router and the OpenAPI document generated from the same registrations.
pub fn router_and_openapi(state: Arc<AppState>) -> (Router, utoipa::openapi::OpenApi) {
    let body_limit = state.config.admin.max_body_bytes;
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(engines::list))
        .routes(routes!(sessions::create))
        .routes(routes!(sessions::list))
        .routes(routes!(
            sessions::details,
            sessions::patch,
            sessions::delete
        ))
        .routes(routes!(facts::add))
        .routes(routes!(facts::search))
        .routes(routes!(facts::list))
        .routes(routes!(facts::delete))
        .routes(routes!(facts::history))
        .routes(routes!(graph::picture))
        .routes(routes!(transfer::export))
        .routes(routes!(transfer::import))
        .routes(routes!(forget::forget))
        .routes(routes!(caller::whoami))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::retry))
        .routes(routes!(outbox::journal))
        .routes(routes!(turns::receipt))
        .routes(routes!(usage::report))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .split_for_parts();
    let document = api.clone();
    let router = router
        .route("/openapi.json", get(move || async move { Json(document) }))
        .merge(console::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    (router, api)
}

pub fn router(state: Arc<AppState>) -> Router {
    router_and_openapi(state).0
}

/// Serves the admin API on an already bound listener until the process ends, with the
/// client deadlines of `[admin]`.
pub async fn serve(state: Arc<AppState>, listener: tokio::net::TcpListener) {
    let deadlines = state.config.admin.deadlines();
    listener::serve(router(state), listener, deadlines).await;
}
