//! Requests without a body that memgate does not intercept (`GET /v1/models`, `HEAD`,
//! `DELETE /v1/files/…`): forwarded over the same upstream connections as intercepted ones,
//! and streamed back as they arrive.
//!
//! Pingora's proxy pipeline would forward them as well, with its own pool; for a request with
//! nothing to stream upstream it costs more CPU per request than this loop (measured with
//! `scripts/loadtest.sh`, see the README). Requests with a body, upgrades and `Expect` stay
//! on the pipeline, which streams the body both ways and handles the protocol switch.

use pingora::http::RequestHeader;
use pingora::prelude::*;

use crate::metrics::Outcome;
use crate::proxy::api::ApiShape;
use crate::proxy::framing;
use crate::proxy::RequestCtx;
use crate::upstream::{client_response_header, Upstream};

/// Whether the request has no body to forward and asks for nothing but a response.
pub fn is_bodiless(request: &RequestHeader) -> bool {
    let headers = &request.headers;
    request.method != http::Method::CONNECT
        && !headers.contains_key(http::header::TRANSFER_ENCODING)
        && !headers.contains_key(http::header::UPGRADE)
        && !headers.contains_key(http::header::EXPECT)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

/// Forwards the request and streams the answer to the client. A gateway that cannot be
/// reached gets the client the error Pingora's pipeline would give (502, or 504 on a
/// timeout); one that breaks off mid-answer, a cut connection.
pub async fn forward(
    upstream: &Upstream,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let client = session.req_header();
    let path_and_query = client.uri.path_and_query().map_or("/", |p| p.as_str());
    let request = upstream.request_header(client, path_and_query)?;
    let mut response = match upstream.send(&request, &[]).await {
        Ok(response) => response,
        Err(e) => {
            ctx.outcome = Outcome::PassthroughError;
            tracing::warn!(error = %e, "upstream unreachable");
            framing::refuse(
                session,
                &framing::upstream_error(&e),
                ApiShape::ChatCompletions,
                None,
            )
            .await;
            return Ok(());
        }
    };
    let header = client_response_header(response.header(), session.req_header().version, 0)?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => session.write_response_body(Some(chunk), false).await?,
            Ok(None) => break,
            Err(e) => return Err(e.more_context("upstream answer cut mid-body")),
        }
    }
    response.finish().await;
    session.write_response_body(None, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/v1/models", None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_requests_without_a_body_or_a_protocol_switch_are_bodiless() {
        assert!(is_bodiless(&request("GET", &[])));
        assert!(is_bodiless(&request("HEAD", &[])));
        assert!(is_bodiless(&request("DELETE", &[("content-length", "0")])));
        assert!(!is_bodiless(&request("POST", &[("content-length", "12")])));
        assert!(!is_bodiless(&request(
            "POST",
            &[("transfer-encoding", "chunked")]
        )));
        assert!(!is_bodiless(&request(
            "GET",
            &[("upgrade", "websocket"), ("connection", "upgrade")]
        )));
        assert!(!is_bodiless(&request("PUT", &[("expect", "100-continue")])));
    }
}
