//! The caller of an admin endpoint, from `Authorization: Bearer <key>`. Handlers take the org
//! from here and nowhere else; `GET /memory/whoami` tells the caller what its key is.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::responses::KeyErrors;
use crate::app::AppState;
use crate::auth::Principal;
use crate::domain::Role;
use crate::http_error::ApiError;
use crate::metrics::Metrics;

pub struct Caller(pub Principal);

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.0.role {
            Role::Admin => Ok(()),
            Role::Member => Err(ApiError::forbidden("this needs an admin key")),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        match state.auth.resolve(&parts.headers, peer).await {
            Ok(Some(principal)) => Ok(Caller(principal)),
            Ok(None) => Err(ApiError::unauthorized(
                "missing or unknown API key (Authorization: Bearer <key>)",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "caller unresolvable");
                Metrics::inc(&state.metrics.auth_unavailable_total);
                Err(ApiError::unavailable("auth_unavailable", e.to_string()))
            }
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CallerView {
    /// The org every call with this key is scoped to.
    pub org: String,
    /// `admin` (may also create, change and delete sessions and facts, and run the queue) or
    /// `member`.
    pub role: Role,
}

/// The org and role of the caller's key, so a client can tell what it may do before it tries.
#[utoipa::path(get, path = "/memory/whoami", tag = "sessions", operation_id = "whoami",
    responses((status = 200, body = CallerView), KeyErrors))]
pub async fn whoami(caller: Caller) -> Json<CallerView> {
    Json(CallerView {
        role: caller.0.role,
        org: caller.0.org,
    })
}
