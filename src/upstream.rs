//! The upstream gateway: where every request goes, over Pingora's own HTTP/1 client and its
//! pool of kept-alive connections. Pass-through requests reach it through Pingora's proxy
//! pipeline with [`Upstream::peer`]; intercepted ones, whose body memgate rewrites, and the
//! query embeddings asked for on their way, through [`Upstream::send`], on the same kind of
//! peer, so all of them see one definition of the upstream, its timeouts and its connection
//! reuse.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::{http_req_header_to_wire, HttpSession as Http1Session};
use pingora::upstreams::peer::HttpPeer;
use tokio::io::AsyncWriteExt;

use crate::config::UpstreamConfig;
use crate::domain::{MEMORY_ID_HEADER, STORE_MEMORY_HEADER};

/// Kept-alive connections to the gateway, at most.
const POOL_SIZE: usize = 256;
/// Request headers addressed to memgate; no request carries them on to the gateway.
pub const MEMGATE_REQUEST_HEADERS: [&str; 2] = [MEMORY_ID_HEADER, STORE_MEMORY_HEADER];
/// A pooled connection unused this long is closed by memgate (gateways close theirs sooner;
/// Pingora watches each idle one and drops it when the gateway does).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts on kept-alive connections the gateway closed while they sat in the pool.
const STALE_CONNECTION_RETRIES: usize = 2;

pub struct Upstream {
    peer: HttpPeer,
    connector: Connector,
    /// `host` or `host:port` as the Host header must carry it.
    pub authority: String,
    /// Path prefix of `upstream.url` (empty, or `/something` without a trailing slash).
    pub base_path: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("peer", &self.peer)
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Resolves the upstream host once, at start: Pingora's peer would otherwise resolve it
    /// with a blocking call on every request.
    pub fn from_config(config: &UpstreamConfig) -> Result<Self, String> {
        let url = config.url.parsed();
        let tls = url.scheme() == "https";
        let host = url
            .host_str()
            .ok_or("upstream.url has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let addr: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve upstream host `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("upstream host `{host}` has no address"))?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let mut peer = HttpPeer::new(addr, tls, host);
        peer.options.connection_timeout = Some(Duration::from_millis(config.connect_timeout_ms));
        peer.options.read_timeout = Some(Duration::from_millis(config.read_timeout_ms));
        peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);
        Ok(Self {
            peer,
            connector: Connector::new(Some(ConnectorOptions::new(POOL_SIZE))),
            authority,
            base_path: url.path().trim_end_matches('/').to_string(),
        })
    }

    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(self.peer.clone())
    }

    /// The path as the gateway serves it: under `upstream.url`'s own path.
    pub fn path_for(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_path)
    }

    /// The client's request header as it goes to the gateway: its method and headers, the
    /// path under `upstream.url`'s, this gateway's Host, less what belongs to the client's
    /// connection (hop-by-hop headers, `Expect`, which memgate answers itself) and its length,
    /// which the caller sets for the body it sends. A caller's `insert_header` replaces any
    /// header copied here.
    pub fn request_header(
        &self,
        client: &RequestHeader,
        path_and_query: &str,
    ) -> Result<RequestHeader> {
        let path = self.path_for(path_and_query);
        let mut header = RequestHeader::build(
            client.method.clone(),
            path.as_bytes(),
            Some(client.headers.len() + 3),
        )?;
        header.insert_header(http::header::HOST, &self.authority)?;
        for (name, value) in client.headers.iter() {
            if is_hop_by_hop(name.as_str())
                || MEMGATE_REQUEST_HEADERS.contains(&name.as_str())
                || name == http::header::HOST
                || name == http::header::CONTENT_LENGTH
                || name == http::header::EXPECT
            {
                continue;
            }
            header.append_header(name.clone(), value.clone())?;
        }
        Ok(header)
    }

    /// Sends a request with its whole body (none: empty), and reads the gateway's response
    /// header. A body leaves in the same write as the header. A kept-alive connection that the
    /// gateway closed while it sat in the pool fails before the gateway has read anything, so
    /// the request is sent again on another connection, as Pingora's own pipeline does for
    /// idempotent ones.
    pub async fn send(&self, request: &RequestHeader, body: &[u8]) -> Result<UpstreamResponse<'_>> {
        let wire = if body.is_empty() {
            None
        } else {
            let mut wire = http_req_header_to_wire(request).ok_or_else(|| {
                Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "request header cannot be sent",
                )
            })?;
            wire.extend_from_slice(body);
            Some(wire.freeze())
        };
        let mut attempt = 0;
        loop {
            let (http, reused) = self.connector.get_http_session(&self.peer).await?;
            match self.exchange(http, request, wire.as_ref()).await {
                Ok(http) => {
                    return Ok(UpstreamResponse {
                        upstream: self,
                        http,
                    })
                }
                Err(mut e) => {
                    e.retry.decide_reuse(reused);
                    if !(reused && e.retry() && attempt < STALE_CONNECTION_RETRIES) {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::debug!(error = %e, "kept-alive upstream connection was closed; sending again");
                }
            }
        }
    }

    async fn exchange(
        &self,
        http: HttpSession,
        request: &RequestHeader,
        wire: Option<&Bytes>,
    ) -> Result<Http1Session> {
        // The gateway is spoken to over HTTP/1 only (no ALPN is offered on the peer).
        let HttpSession::H1(mut http) = http else {
            return Error::e_explain(ErrorType::InternalError, "upstream session is not HTTP/1");
        };
        match wire {
            // The session knows the request (a HEAD's answer has no body).
            None => {
                http.write_request_header(Box::new(request.clone()))
                    .await
                    .map_err(|mut e| {
                        e.retry = RetryType::ReusedOnly;
                        e
                    })?;
            }
            // Pingora's session flushes the header before the body: a write, and a wake-up
            // of the gateway, more than needed. The wire form is Pingora's own.
            Some(wire) => {
                let mut stream = http.into_inner();
                let written = async {
                    stream.write_all(wire).await?;
                    stream.flush().await
                };
                if let Err(e) = written.await {
                    let mut error =
                        Error::because(ErrorType::WriteError, "while sending the request", e);
                    error.retry = RetryType::ReusedOnly;
                    return Err(error);
                }
                http = Http1Session::new_with_options(stream, &self.peer);
            }
        }
        http.read_timeout = self.peer.options.read_timeout;
        http.read_response().await?;
        // Informational answers (`100 Continue`, `103 Early Hints`) precede the real one.
        while http
            .get_status()
            .is_some_and(|s| s.is_informational() && s != http::StatusCode::SWITCHING_PROTOCOLS)
        {
            http.read_response().await?;
        }
        http.respect_keepalive();
        Ok(http)
    }
}

/// The header the client gets for the gateway's: the same, less its hop-by-hop headers.
pub fn client_response_header(
    upstream: &ResponseHeader,
    client_version: http::Version,
    extra: usize,
) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + extra))?;
    for (name, value) in upstream.headers.iter() {
        if !is_hop_by_hop(name.as_str()) {
            header.append_header(name.clone(), value.clone())?;
        }
    }
    let http11 = client_version == http::Version::HTTP_11;
    if http11 && header.headers.get(http::header::CONTENT_LENGTH).is_none() {
        // Without a length the answer must be chunked: a close-delimited body would make a
        // cut stream look complete to the client.
        header.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(header)
}

/// The gateway's answer: its header, then its body chunk by chunk. Once the body is read to
/// its end, [`UpstreamResponse::finish`] returns the connection to the pool; an answer dropped
/// before that closes its connection.
pub struct UpstreamResponse<'a> {
    upstream: &'a Upstream,
    http: Http1Session,
}

impl UpstreamResponse<'_> {
    pub fn header(&self) -> &ResponseHeader {
        self.http
            .resp_header()
            .expect("an UpstreamResponse is only made once its header is read")
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.http.read_body_bytes().await
    }

    pub async fn finish(self) {
        let upstream = self.upstream;
        upstream
            .connector
            .release_http_session(
                HttpSession::H1(self.http),
                &upstream.peer,
                upstream.peer.options.idle_timeout,
            )
            .await;
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are never forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_path_and_authority() {
        let u = Upstream::from_config(&UpstreamConfig {
            url: crate::config::HttpUrl::try_from("http://127.0.0.1:4000/gateway/".to_string())
                .unwrap(),
            ..UpstreamConfig::default()
        })
        .unwrap();
        assert_eq!(u.authority, "127.0.0.1:4000");
        assert_eq!(u.base_path, "/gateway");
        assert_eq!(
            u.path_for("/v1/chat/completions?x=1"),
            "/gateway/v1/chat/completions?x=1"
        );
    }
}
