//! The upstream gateway: where every request goes, over Pingora's own HTTP/1 client and its
//! pool of kept-alive connections. Pass-through requests reach it through Pingora's proxy
//! pipeline with [`Upstream::peer`]; intercepted ones, whose body memgate rewrites, through
//! [`Upstream::send`], on the same kind of peer, so both see one definition of the upstream,
//! its timeouts and its connection reuse.

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

/// Kept-alive connections to the gateway, at most.
const POOL_SIZE: usize = 256;
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

    /// Sends a request whose body is complete, and reads the gateway's response header. The
    /// header and the body leave in one write. A kept-alive connection that the gateway closed
    /// while it sat in the pool fails before the gateway has read anything, so the request is
    /// sent again on another connection, as Pingora's own pipeline does for idempotent ones.
    pub async fn send(&self, request: &RequestHeader, body: &[u8]) -> Result<UpstreamResponse<'_>> {
        let mut wire = http_req_header_to_wire(request).ok_or_else(|| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                "request header cannot be sent",
            )
        })?;
        wire.extend_from_slice(body);
        let wire = wire.freeze();
        let mut attempt = 0;
        loop {
            let (http, reused) = self.connector.get_http_session(&self.peer).await?;
            match self.exchange(http, &wire).await {
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

    async fn exchange(&self, http: HttpSession, wire: &Bytes) -> Result<Http1Session> {
        // The gateway is spoken to over HTTP/1 only (no ALPN is offered on the peer).
        let HttpSession::H1(http) = http else {
            return Error::e_explain(ErrorType::InternalError, "upstream session is not HTTP/1");
        };
        let mut stream = http.into_inner();
        let written = async {
            stream.write_all(wire).await?;
            stream.flush().await
        };
        if let Err(e) = written.await {
            let mut error = Error::because(ErrorType::WriteError, "while sending the request", e);
            error.retry = RetryType::ReusedOnly;
            return Err(error);
        }
        let mut http = Http1Session::new_with_options(stream, &self.peer);
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
