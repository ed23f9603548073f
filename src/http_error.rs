//! The one conversion of memgate's errors to the OpenAI error shape
//! `{"error":{"message","type","code"}}` used on both listeners; an error about one request
//! field names it in `param`, as OpenAI's do.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;

use crate::domain::FieldError;
use crate::error::{MemoryError, StoreError};

/// An error as a client sees it: status, OpenAI `type` and a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

impl ApiError {
    fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// Names the request field (or query parameter) at fault.
    pub fn with_param(self, param: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            ..self
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "authentication_error", "invalid_api_key", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "permission_error", "forbidden", message)
    }

    /// A 403 with its own code: the caller may not do this with what it sent.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, "permission_error", code, message)
    }

    pub fn session_not_found(memory_id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "memory_session_not_found",
            format!("memory session `{memory_id}` not found"),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", "not_found", message)
    }

    pub fn resource_not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(409, "invalid_request_error", code, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn body_too_large() -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            "request body is too large",
        )
    }

    /// A client too slow with its request (see `config::ClientDeadlines`).
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(408, "invalid_request_error", "request_timeout", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(422, "invalid_request_error", code, message)
    }

    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", "upstream_unavailable", message)
    }

    /// The gateway did not answer within `upstream.connect_timeout_ms` / `read_timeout_ms`.
    pub fn gateway_timeout(message: impl Into<String>) -> Self {
        Self::new(504, "upstream_error", "upstream_timeout", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(503, "service_unavailable", code, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            "this endpoint does not accept that method",
        )
    }

    /// An error known only by its status.
    pub fn status(status: u16) -> Self {
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error");
        match status {
            400..=499 => Self::new(status, "invalid_request_error", "request_refused", reason),
            _ => Self::new(status, "internal_error", "proxy_error", reason),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal_error", "internal_error", message)
    }

    pub fn body(&self) -> Bytes {
        let mut value = json!({
            "error": {"message": self.message, "type": self.kind, "code": self.code}
        });
        if let Some(param) = &self.param {
            value["error"]["param"] = json!(param);
        }
        Bytes::from(value.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => {
                Self::conflict("already_exists", format!("{what} already exists"))
            }
            StoreError::SessionGone(memory_id) => Self::session_not_found(&memory_id),
            StoreError::Busy(what) => Self::conflict("busy", what),
            other => {
                tracing::error!(error = %other, "storage failure");
                Self::internal("storage failure")
            }
        }
    }
}

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Store(s) => s.into(),
            MemoryError::Llm(l) => {
                tracing::warn!(error = %l, "internal LLM call failed");
                Self::bad_gateway(format!("internal model call failed: {l}"))
            }
            MemoryError::Graph(g) => {
                tracing::warn!(error = %g, "graph server failed");
                Self::unavailable(
                    "graph_unavailable",
                    format!("the graph store is unavailable: {g}"),
                )
            }
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self::unprocessable(e.code, e.message).with_param(e.param)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::session_not_found("user-alice");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "memory_session_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user-alice"));
        assert_eq!(e.status, 404);
    }

    #[test]
    fn a_field_error_is_unprocessable_with_its_code() {
        let e = ApiError::from(FieldError::unsupported("config.max_facts", "no"));
        assert_eq!((e.status, e.code), (422, "unsupported_setting"));
        assert_eq!(e.message, "field `config.max_facts`: no");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["param"], "config.max_facts");
        let plain: serde_json::Value =
            serde_json::from_slice(&ApiError::not_found("x").body()).unwrap();
        assert!(plain["error"].get("param").is_none());
    }
}
