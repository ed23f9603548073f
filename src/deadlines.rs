//! The request-header and keep-alive deadlines of a client connection (see
//! [`ClientDeadlines`](crate::config::ClientDeadlines)), which neither server library keeps
//! the way nginx does:
//! - Pingora times each read of a header, never the whole of it, so a client sending a byte
//!   every few seconds is never cut; and it waits for ever between requests unless told.
//! - hyper times the whole header, but from the end of the previous response, so a kept-alive
//!   connection's idle time and its next header share one budget.
//!
//! So the socket itself is wrapped, and the server tells it where its connection is: waiting
//! for a request's header, past it, or idle between requests. The deadlines are enforced where
//! the server reads, so once a request is under way they cost one atomic load per read. Pauses
//! in a body are each server's own read timeout (see the listeners).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::http_error::ApiError;

const HEADER: u8 = 0;
const REQUEST: u8 = 1;
const IDLE: u8 = 2;

/// Where a connection is, as its server tells its [`DeadlineStream`]. Only the connection's
/// own task reads and writes it, so no ordering beyond the atomic itself is needed.
#[derive(Clone, Debug)]
pub struct ConnectionPhase(Arc<AtomicU8>);

impl ConnectionPhase {
    /// The request's header is parsed: no deadline of the stream's until the response is done.
    pub fn header_received(&self) {
        self.0.store(REQUEST, Ordering::Relaxed);
    }

    /// The response is done: the connection idles until the next request's first byte.
    pub fn response_done(&self) {
        // Only a request in flight can end; a cut or idle connection stays as it is.
        let _ = self
            .0
            .compare_exchange(REQUEST, IDLE, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Nothing of a request had arrived: the connection ends as if the client had closed it.
    Closed,
    /// Part of a header had arrived and a 408 was offered.
    HeaderTimedOut,
}

/// A client connection's socket, cut when a request header takes longer than its deadline
/// and, where the server has no idle timeout of its own, when it idles too long.
#[derive(Debug)]
pub struct DeadlineStream<T> {
    inner: T,
    phase: ConnectionPhase,
    /// The phase the timer was last set for.
    timed: u8,
    header: Duration,
    idle: Option<Duration>,
    timer: Pin<Box<Sleep>>,
    armed: bool,
    /// Bytes of the awaited header have arrived: a cut is answered with a 408.
    started: bool,
    cut: Option<Cut>,
}

impl<T> DeadlineStream<T> {
    /// A connection just accepted: its first request's header is due within `header`. `idle`
    /// bounds the wait for each next request, for a server that does not bound it itself.
    pub fn new(inner: T, header: Duration, idle: Option<Duration>) -> Self {
        Self {
            inner,
            phase: ConnectionPhase(Arc::new(AtomicU8::new(HEADER))),
            timed: HEADER,
            header,
            idle,
            timer: Box::pin(tokio::time::sleep(header)),
            armed: true,
            started: false,
            cut: None,
        }
    }

    pub fn phase(&self) -> &ConnectionPhase {
        &self.phase
    }

    /// The socket, for what the server asks of it besides reads and writes.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    fn time(&mut self, phase: u8) {
        self.timed = phase;
        self.started = false;
        let limit = match phase {
            HEADER => Some(self.header),
            IDLE => self.idle,
            _ => None,
        };
        self.armed = limit.is_some();
        if let Some(limit) = limit {
            self.timer.as_mut().reset(Instant::now() + limit);
        }
    }

    fn outcome(cut: Cut) -> io::Result<()> {
        match cut {
            Cut::Closed => Ok(()),
            Cut::HeaderTimedOut => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request header deadline passed",
            )),
        }
    }
}

impl<T: AsyncWrite + Unpin> DeadlineStream<T> {
    fn cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let cut = if self.timed == HEADER && self.started {
            // Offered once and never waited for: a client too slow to send its header may be
            // too slow to read an answer as well.
            let response = request_timeout_response(self.header);
            let inner = Pin::new(&mut self.inner);
            if let Poll::Ready(Ok(_)) = inner.poll_write(cx, &response) {
                let _ = Pin::new(&mut self.inner).poll_flush(cx);
            }
            Cut::HeaderTimedOut
        } else {
            Cut::Closed
        };
        self.cut = Some(cut);
        Self::outcome(cut)
    }
}

fn request_timeout_response(header: Duration) -> Vec<u8> {
    let body = ApiError::request_timeout(format!(
        "the request header did not arrive within {} s",
        header.as_secs()
    ))
    .body();
    let mut response = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for DeadlineStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(cut) = this.cut {
            return Poll::Ready(Self::outcome(cut));
        }
        let phase = this.phase.get();
        if phase != this.timed {
            this.time(phase);
        }
        if this.armed && this.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(this.cut(cx));
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > filled {
            if phase == IDLE {
                // The next request has begun: its header is due from its first byte.
                this.phase.set(HEADER);
                this.time(HEADER);
            }
            this.started = true;
        }
        read
    }
}

/// The status of an HTTP/1 response that starts in `buf`.
fn response_status(buf: &[u8]) -> Option<u16> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// The answer to a request whose header the server could not parse, in the error shape.
fn unparsed_header_response(status: u16) -> Vec<u8> {
    let error = match status {
        400 => ApiError::bad_request(
            "invalid_request_header",
            "the request header could not be parsed (malformed, more than 256 header fields, or too large)",
        ),
        _ => ApiError::status(status),
    };
    let body = error.body();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // While a header is awaited, the server writes only to refuse one it could not parse,
        // with an empty body and no hook to shape it (Pingora's respond_error, hyper's parse
        // errors): the same status goes out in the error shape instead, offered once.
        if let Some(status) = response_status(buf).filter(|_| this.phase.get() == HEADER) {
            let response = unparsed_header_response(status);
            return match Pin::new(&mut this.inner).poll_write(cx, &response) {
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(buf.len())),
                other => other,
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.phase.get() == HEADER {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Server = DeadlineStream<tokio::io::DuplexStream>;

    #[test]
    fn a_refusal_before_any_header_is_sent_in_the_error_shape() {
        assert_eq!(response_status(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(response_status(b"HTTP/1.0 431 "), Some(431));
        assert_eq!(response_status(b"data: x"), None);
        assert_eq!(response_status(b"HTTP/1.1 4"), None);
        let answer = String::from_utf8(unparsed_header_response(400)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(error["error"]["code"], "invalid_request_header");
    }

    fn pair(header_ms: u64, idle_ms: u64) -> (Server, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(4096);
        let stream = DeadlineStream::new(
            server,
            Duration::from_millis(header_ms),
            Some(Duration::from_millis(idle_ms)),
        );
        (stream, client)
    }

    /// One read, which must end (with data, end of stream or an error) well within 5 s.
    async fn read_some(server: &mut Server) -> io::Result<usize> {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf))
            .await
            .expect("the read ends")
    }

    #[tokio::test]
    async fn a_partial_header_is_cut_with_a_408() {
        let (mut server, mut client) = pair(200, 60_000);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(read_some(&mut server).await.unwrap(), 16);
        let err = read_some(&mut server).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let mut answer = vec![0u8; 1024];
        let n = client.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(read_some(&mut server).await.is_err(), "a cut stays cut");
    }

    #[tokio::test]
    async fn a_silent_connection_ends_quietly() {
        let (mut server, mut client) = pair(200, 60_000);
        assert_eq!(read_some(&mut server).await.unwrap(), 0);
        let mut answer = Vec::new();
        drop(server);
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty(), "no answer to a request never begun");
    }

    #[tokio::test]
    async fn a_request_under_way_has_no_deadline_here_and_the_idle_one_follows_it() {
        let (mut server, mut client) = pair(200, 300);
        client.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        read_some(&mut server).await.unwrap();
        server.phase().header_received();
        tokio::time::sleep(Duration::from_millis(600)).await;
        client.write_all(b"body").await.unwrap();
        assert_eq!(read_some(&mut server).await.unwrap(), 4);

        server.phase().response_done();
        assert_eq!(read_some(&mut server).await.unwrap(), 0, "idle too long");
    }

    #[tokio::test]
    async fn the_next_header_is_due_from_its_first_byte_not_from_the_idle_start() {
        let (mut server, mut client) = pair(2_000, 1_000);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        read_some(&mut server).await.unwrap();
        server.phase().header_received();
        server.phase().response_done();

        let mut buf = [0u8; 64];
        let waiting = tokio::time::timeout(Duration::from_millis(700), server.read(&mut buf));
        assert!(
            waiting.await.is_err(),
            "still idle, within the idle deadline"
        );
        client.write_all(b"GET").await.unwrap();
        assert_eq!(read_some(&mut server).await.unwrap(), 3);
        // Past the idle deadline, well within the header's.
        tokio::time::sleep(Duration::from_millis(800)).await;
        client.write_all(b" /").await.unwrap();
        assert_eq!(read_some(&mut server).await.unwrap(), 2);
        let err = read_some(&mut server).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
