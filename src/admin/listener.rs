//! Serving the admin router with the client deadlines (see [`ClientDeadlines`]), which
//! `axum::serve` has no way to set. hyper's own `header_read_timeout` starts when it waits for
//! a header, so on a kept-alive connection it covers the idle time as well: it is kept as the
//! outer bound of the two, and a [`DeadlineStream`] times each. Pauses in a body are
//! tower-http's `TimeoutBody`, answered with a 408 by [`JsonBody`](super::JsonBody).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::config::ClientDeadlines;
use crate::deadlines::{ConnectionPhase, DeadlineStream};

/// Accepts connections until the process ends, as `axum::serve` did: a SIGTERM drains the
/// proxy, and the admin listener keeps answering (`/readyz` says 503) until the exit.
pub async fn serve(router: Router, listener: TcpListener, deadlines: ClientDeadlines) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadlines.request_header + deadlines.keepalive);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        let stream = DeadlineStream::new(tcp, deadlines.request_header, Some(deadlines.keepalive));
        let service = hyper::service::service_fn({
            let (router, phase) = (router.clone(), stream.phase().clone());
            move |request| {
                call(
                    router.clone(),
                    phase.clone(),
                    peer,
                    deadlines.body_read,
                    request,
                )
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "admin connection ended");
            }
        });
    }
}

async fn call(
    router: Router,
    phase: ConnectionPhase,
    peer: SocketAddr,
    body_read: Duration,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    phase.header_received();
    let mut request = request.map(|body| Body::new(TimeoutBody::new(body_read, body)));
    // What `into_make_service_with_connect_info` gave: the trusted-header check needs the peer.
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = router.oneshot(request).await?;
    Ok(response.map(|body| Body::new(ResponseBody { body, phase })))
}

/// A response body that tells the connection when hyper is done with it: then the response
/// is complete (or abandoned) and the connection idles until the next request.
struct ResponseBody {
    body: Body,
    phase: ConnectionPhase,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.phase.response_done();
    }
}

/// As `axum::serve` does: a failed handshake is the client's business; anything else (out of
/// descriptors, most likely) is logged and waited out rather than spun on.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "admin listener cannot accept");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
