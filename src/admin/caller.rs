//! The caller of an admin endpoint, from `Authorization: Bearer <key>`. Handlers take the org
//! from here and nowhere else.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::app::AppState;
use crate::auth::Principal;
use crate::config::Role;
use crate::error::ApiError;

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
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        state
            .keys
            .resolve_authorization(header)
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::unauthorized("missing or unknown API key (Authorization: Bearer <key>)")
            })
    }
}
