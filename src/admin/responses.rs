//! The error answers several endpoints share, each written once so that an endpoint's
//! `responses(...)` lists its own answers plus the sets that apply to it.

use utoipa::IntoResponses;

use super::views::ErrorBody;

/// The 404 of every endpoint that names a session.
pub const NO_SESSION: &str = "No session of that name in the caller's org \
    (`memory_session_not_found`); another org's sessions answer the same.";

/// The 400 of every endpoint with query parameters.
pub const BAD_QUERY: &str =
    "A query parameter is malformed, unknown or out of range (`invalid_query`).";

/// The 502 of the endpoints that call the gateway (embeddings, extraction, answers).
pub const UPSTREAM_FAILED: &str =
    "An internal model call through the gateway failed (`upstream_unavailable`).";

/// Every endpoint behind the key: the key is missing or unknown, or it could not be checked.
#[derive(IntoResponses)]
#[expect(dead_code, reason = "only describes answers; never built")]
pub enum KeyErrors {
    /// Missing or unknown API key (`invalid_api_key`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A backend the answer depends on is unavailable: key introspection
    /// (`auth_unavailable`) or, when a cognee session is read or written, the graph server
    /// (`graph_unavailable`).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// Endpoints that only admin keys may call.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "The key is a member key; this needs an admin key (`forbidden`)."
)]
#[expect(dead_code, reason = "only describes answers; never built")]
pub struct AdminOnly(ErrorBody);

/// Endpoints that read or write the store.
#[derive(IntoResponses)]
#[response(status = 500, description = "The store failed (`internal_error`).")]
#[expect(dead_code, reason = "only describes answers; never built")]
pub struct StorageError(ErrorBody);

/// Endpoints that take a JSON body.
#[derive(IntoResponses)]
#[expect(dead_code, reason = "only describes answers; never built")]
pub enum BodyErrors {
    /// The body is not JSON (`invalid_json`) or could not be read (`invalid_body`).
    #[response(status = 400)]
    NotJson(ErrorBody),
    /// The body is over `admin.max_body_bytes` (`request_too_large`).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is JSON but a field is missing, unknown or out of range; the message names
    /// the field.
    #[response(status = 422)]
    Invalid(ErrorBody),
}
