//! The upstream gateway: where requests go, as a Pingora peer (pass-through) and as an HTTP
//! client (intercepted chat completions).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

use crate::config::UpstreamConfig;

#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    tls: bool,
    host: String,
    /// `host` or `host:port` as the Host header must carry it.
    pub authority: String,
    /// Path prefix of `upstream.url` (empty, or `/something` without a trailing slash).
    pub base_path: String,
    base_url: String,
    pub client: reqwest::Client,
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
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve upstream host `{host}`: {e}"))?
            .next()
            .ok_or_else(|| format!("upstream host `{host}` has no address"))?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_string(),
        };
        let base_path = url.path().trim_end_matches('/').to_string();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .read_timeout(Duration::from_millis(config.read_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the upstream client: {e}"))?;
        Ok(Self {
            addr,
            tls,
            host,
            authority,
            base_url: format!("{}://{}{}", url.scheme(), url.authority(), base_path),
            base_path,
            client,
        })
    }

    pub fn peer(&self) -> Box<HttpPeer> {
        Box::new(HttpPeer::new(self.addr, self.tls, self.host.clone()))
    }

    pub fn url_for(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url)
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
            u.url_for("/v1/chat/completions?x=1"),
            "http://127.0.0.1:4000/gateway/v1/chat/completions?x=1"
        );
    }
}
