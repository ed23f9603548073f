//! Requests whose HTTP framing is broken or ambiguous: refused in the API's error shape, with
//! the status that says whose fault it is, and the connection closed.
//!
//! A bad chunk size, a body shorter than its length or a client that stops sending are the
//! client's doing: 400 or 408, never a 500 that would page the operator and invite a retry of
//! the same bytes. A list-valued `Content-Length` (`25, 25`) is refused rather than forwarded:
//! servers disagree on how to read it, which is what request smuggling feeds on.

use std::time::Duration;

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::ErrorSource;

use crate::http_error::ApiError;
use crate::proxy::api::ApiShape;

/// One `Content-Length` holding one decimal number, or none at all.
pub fn check_content_length(request: &RequestHeader) -> std::result::Result<(), ApiError> {
    let mut lengths = request.headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (Some(length), None) = (lengths.next(), lengths.next()) else {
        return match request.headers.contains_key(http::header::CONTENT_LENGTH) {
            true => Err(ambiguous_length()),
            false => Ok(()),
        };
    };
    let digits = length.as_bytes();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ambiguous_length());
    }
    Ok(())
}

fn ambiguous_length() -> ApiError {
    ApiError::bad_request(
        "invalid_content_length",
        "Content-Length must be one decimal number, sent once",
    )
}

/// What the client is told about a request that failed in Pingora's hands. A read that timed
/// out is the client's pause in its body unless it was the upstream's (`body_read` is the
/// deadline it ran into).
pub fn api_error_of(e: &Error, body_read: Duration) -> ApiError {
    match (e.etype(), e.esource()) {
        (ErrorType::HTTPStatus(code), _) => ApiError::status(*code),
        (ErrorType::ReadTimedout, source) if source != &ErrorSource::Upstream => {
            ApiError::request_timeout(format!(
                "the request body paused for more than {} s",
                body_read.as_secs()
            ))
        }
        (_, ErrorSource::Downstream) => ApiError::bad_request(
            "malformed_request",
            "the request body is malformed (bad chunked encoding, or shorter than its Content-Length)",
        ),
        (_, ErrorSource::Upstream) => upstream_error(e),
        _ => ApiError::internal("the request could not be proxied"),
    }
}

/// The answer for a gateway that could not be reached or did not answer in time, before any
/// of its answer reached the client.
pub fn upstream_error(e: &Error) -> ApiError {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ApiError::gateway_timeout("the upstream gateway did not answer in time")
        }
        _ => ApiError::bad_gateway("the upstream gateway could not be reached"),
    }
}

/// Sends `error` and closes the connection: after broken framing or a stalled body, nothing
/// that follows on it can be trusted to start a request. Does nothing once a response has
/// started.
pub async fn refuse(
    session: &mut Session,
    error: &ApiError,
    shape: ApiShape,
    request_id: Option<&str>,
) {
    let written = match error_response(error, shape, request_id) {
        Ok((header, body)) => {
            session
                .as_downstream_mut()
                .write_error_response(header, body)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot send the error response");
    }
}

/// The proxy's error answer, in the error shape of the request's API (OpenAI's for anything
/// not intercepted), with the request's id when it has one.
pub fn error_response(
    error: &ApiError,
    shape: ApiShape,
    request_id: Option<&str>,
) -> Result<(ResponseHeader, Bytes)> {
    let body = shape.error_body(error);
    let mut header = ResponseHeader::build(error.status, Some(3))?;
    header.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    if let Some(request_id) = request_id {
        header.insert_header(crate::proxy::chat::REQUEST_ID_HEADER, request_id)?;
    }
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_lengths(values: &[&str]) -> RequestHeader {
        let mut request = RequestHeader::build("POST", b"/v1/models", None).unwrap();
        for v in values {
            request
                .append_header(http::header::CONTENT_LENGTH, *v)
                .unwrap();
        }
        request
    }

    #[test]
    fn one_plain_length_or_none() {
        assert!(check_content_length(&with_lengths(&[])).is_ok());
        assert!(check_content_length(&with_lengths(&["25"])).is_ok());
        for bad in [
            &["25, 25"][..],
            &["25", "25"],
            &["25", "26"],
            &["+25"],
            &["0x19"],
            &[""],
            &["99999999999999999999"],
        ] {
            let error = check_content_length(&with_lengths(bad)).unwrap_err();
            assert_eq!(
                (error.status, error.code),
                (400, "invalid_content_length"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn client_faults_are_4xx_and_the_gateways_5xx() {
        let body_read = Duration::from_secs(60);
        let mut timed_out = Error::new(ErrorType::ReadTimedout);
        timed_out.as_down();
        assert_eq!(api_error_of(&timed_out, body_read).status, 408);
        let mut upstream_slow = Error::new(ErrorType::ReadTimedout);
        upstream_slow.as_up();
        assert_eq!(api_error_of(&upstream_slow, body_read).status, 504);
        let mut bad_chunk = Error::new(ErrorType::new("InvalidChunk"));
        bad_chunk.as_down();
        assert_eq!(api_error_of(&bad_chunk, body_read).status, 400);
        let mut upstream = Error::new(ErrorType::ConnectRefused);
        upstream.as_up();
        assert_eq!(api_error_of(&upstream, body_read).status, 502);
        assert_eq!(
            api_error_of(&Error::new(ErrorType::HTTPStatus(503)), body_read).status,
            503
        );
    }
}
