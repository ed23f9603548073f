//! Query-string and path extractors whose errors have the API's shape and name the parameter.

use axum::extract::{FromRequestParts, Path};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::http_error::ApiError;

pub const MAX_PAGE: i64 = 500;
const DEFAULT_PAGE: i64 = 100;

pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    ApiError::bad_request("invalid_query", format!("query string: {inner}"))
                } else {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("query parameter `{path}`: {inner}"),
                    )
                }
            })
    }
}

/// `limit` (1..=500, default 100) and `offset` (from 0).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl Page {
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("query parameter `limit`: must be between 1 and {MAX_PAGE}"),
            )
            .with_param("limit"));
        }
        if offset < 0 {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query parameter `offset`: must be at least 0",
            )
            .with_param("offset"));
        }
        Ok((limit, offset))
    }
}

/// A page, plus an optional `fact_id` to follow one fact.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryPage {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    pub fact_id: Option<String>,
}

/// A session's name, which callers pass as `memory_id`; anything else names no session
/// (404).
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._:@-]{1,128}$", example = "user-alice")]
#[expect(
    dead_code,
    reason = "only describes the parameter; handlers take a String"
)]
pub struct MemoryId(String);

/// Path segments; a segment that does not decode names nothing, hence 404.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|_| ApiError::not_found("no such resource"))
    }
}
