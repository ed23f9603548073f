//! The client deadlines on the proxy listener (see [`ClientDeadlines`]), from what Pingora
//! provides where it provides it:
//! - between requests, its keep-alive timeout, which it otherwise takes from the client's own
//!   `Keep-Alive` header or leaves infinite;
//! - between body reads, its downstream read timeout, which also bounds the intercepted
//!   route's `read_request_body`;
//! - for the whole header, which Pingora only times read by read, a [`DeadlineStream`] under
//!   each connection, fitted by [`DeadlineApp`] and told by [`on_request_header`].

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::proxy::{HttpProxy, ProxyHttp, Session};
use pingora::server::ShutdownWatch;

use crate::config::ClientDeadlines;
use crate::deadlines::DeadlineStream;

/// The proxy service's application: Pingora's HTTP proxy, on connections that keep the
/// deadlines.
pub struct DeadlineApp<SV> {
    proxy: Arc<HttpProxy<SV>>,
    deadlines: ClientDeadlines,
}

impl<SV> DeadlineApp<SV> {
    pub fn new(proxy: HttpProxy<SV>, deadlines: ClientDeadlines) -> Self {
        Self {
            proxy: Arc::new(proxy),
            deadlines,
        }
    }
}

#[async_trait]
impl<SV> ServerApp for DeadlineApp<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Pingora's own HTTP/1 connection loop (`impl ServerApp for HttpServerApp`), with the
    /// stream wrapped and told when each request is done, which only this loop knows. h2c is
    /// not offered on memgate's listener, so its preface is not looked for.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // The idle wait is Pingora's keep-alive timeout: the stream only times headers.
        let stream = DeadlineStream::new(stream, self.deadlines.request_header, None);
        let phase = stream.phase().clone();
        let mut session = ServerSession::new_http1(Box::new(stream));
        let keepalive = (!*shutdown.borrow()).then_some(self.deadlines.keepalive.as_secs());
        session.set_keepalive(keepalive);
        session.set_keepalive_reuses_remaining(
            self.proxy
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        let mut reused = self.proxy.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = reused.map(ReusedHttpStream::consume) {
            phase.response_done();
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            reused = self.proxy.process_new_http(session, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        // Wakes the kept-alive connections waiting for a request, so that they close.
        self.proxy.http_cleanup().await;
    }
}

/// To run as soon as a request's header is parsed (`early_request_filter`): ends the header
/// deadline and sets Pingora's own for the body and for the wait after the response.
pub fn on_request_header(session: &mut Session, deadlines: &ClientDeadlines) {
    let stream = session
        .as_downstream()
        .stream()
        .and_then(|s| (**s).as_any().downcast_ref::<DeadlineStream<Stream>>());
    if let Some(stream) = stream {
        stream.phase().header_received();
    }
    session.set_read_timeout(Some(deadlines.body_read));
    // Whether to keep the connection is the client's to say, for how long it is not:
    // Pingora would follow the client's `Keep-Alive: timeout=` (0: for ever).
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(deadlines.keepalive.as_secs()));
    }
}

// The rest of Pingora's transport interface is the socket's own.

#[async_trait]
impl Shutdown for DeadlineStream<Stream> {
    async fn shutdown(&mut self) {
        self.inner_mut().shutdown().await;
    }
}

impl UniqueID for DeadlineStream<Stream> {
    fn id(&self) -> UniqueIDType {
        self.inner().id()
    }
}

impl Ssl for DeadlineStream<Stream> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner().get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner().get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner().selected_alpn_proto()
    }
}

impl GetTimingDigest for DeadlineStream<Stream> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> std::time::Duration {
        self.inner().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.inner().get_write_pending_time()
    }
}

impl GetProxyDigest for DeadlineStream<Stream> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner_mut().set_proxy_digest(digest);
    }
}

impl GetSocketDigest for DeadlineStream<Stream> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner_mut().set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for DeadlineStream<Stream> {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner_mut().try_peek(buf).await
    }
}
