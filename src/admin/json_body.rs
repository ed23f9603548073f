//! A JSON body extractor whose errors have the API's shape and name the offending field.
//! The content type is not checked: SEED's curl examples send JSON with curl's default
//! form content type, and they must work as written. Every body is a JSON object: serde
//! would also fill a struct from an array of its fields in order, which no client means.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::domain::FieldError;
use crate::http_error::ApiError;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else if paused_too_long(&e) {
                ApiError::request_timeout("the request body paused for too long")
            } else {
                ApiError::bad_request("invalid_body", e.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// The body deadline of the admin listener (see `listener.rs`) ran out.
fn paused_too_long(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source())
        .any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) if is_object(bytes) => Ok(value),
        Ok(_) => Err(ApiError::unprocessable(
            "invalid_field",
            "the request body must be a JSON object",
        )),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::bad_request(
                    "invalid_json",
                    format!("the request body is not valid JSON: {inner}"),
                ))
            } else if path == "." {
                Err(ApiError::unprocessable("invalid_field", inner.to_string()))
            } else {
                Err(FieldError::invalid(path, inner).into())
            }
        }
    }
}

/// Whether the JSON text (already parsed) is an object.
fn is_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        memory_id: String,
        limit: Option<u32>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Body>(br#"{"memory_id": 5}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.message.contains("memory_id"), "{}", e.message);
        let e = parse::<Body>(br#"{"memory_id": "a", "limit": "x"}"#).unwrap_err();
        assert!(e.message.contains("limit"), "{}", e.message);
        let e = parse::<Body>(br#"{"limit": 1}"#).unwrap_err();
        assert!(e.message.contains("memory_id"), "{}", e.message);
        let e = parse::<Body>(b"{nope").unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_json"));
        // Fields in order, as an array, once made a body.
        let e = parse::<Body>(br#"["a", 1]"#).unwrap_err();
        assert_eq!((e.status, e.code), (422, "invalid_field"));
        assert!(e.message.contains("JSON object"), "{}", e.message);
        assert!(parse::<Body>(b" \n{\"memory_id\": \"a\"}").is_ok());
    }
}
