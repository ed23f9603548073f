//! Slow and idle clients cannot hold connections: on both listeners a request header must
//! arrive whole within `request_header_timeout_seconds`, a body may not pause longer than
//! `body_read_timeout_seconds`, and a kept-alive connection is closed after
//! `keepalive_timeout_seconds` without a request. The deadlines are set to a second or two and
//! every cut is allowed ten seconds, so the assertions say "cut", never "cut fast".

mod common;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use common::*;

const DEADLINES: &[(&str, &str)] = &[
    ("MEMGATE_PROXY__REQUEST_HEADER_TIMEOUT_SECONDS", "1"),
    ("MEMGATE_PROXY__BODY_READ_TIMEOUT_SECONDS", "2"),
    ("MEMGATE_PROXY__KEEPALIVE_TIMEOUT_SECONDS", "2"),
    ("MEMGATE_ADMIN__REQUEST_HEADER_TIMEOUT_SECONDS", "1"),
    ("MEMGATE_ADMIN__BODY_READ_TIMEOUT_SECONDS", "2"),
    ("MEMGATE_ADMIN__KEEPALIVE_TIMEOUT_SECONDS", "2"),
];

/// Far above every configured deadline: a connection still open after this is held forever.
const CUT_WITHIN: Duration = Duration::from_secs(10);

/// Well inside every per-read deadline, so only a deadline on the whole header can cut it.
const TRICKLE_EVERY: Duration = Duration::from_millis(300);

async fn start() -> (MockGateway, Memgate) {
    let mock = mock_gateway::spawn().await;
    let memgate = Memgate::start_with(&mock.url(), DEADLINES).await;
    (mock, memgate)
}

fn listeners(mg: &Memgate) -> [(&'static str, String); 2] {
    [
        ("proxy", mg.proxy.trim_start_matches("http://").to_string()),
        ("admin", mg.admin.trim_start_matches("http://").to_string()),
    ]
}

async fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    // One byte must leave as one segment for the trickle to be a trickle.
    stream.set_nodelay(true).expect("nodelay");
    stream
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: memgate\r\n\r\n")
}

fn post_head(path: &str, key: &str, content_length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: memgate\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    )
}

/// Writes `head`, then one more header byte every [`TRICKLE_EVERY`] until the server hangs up.
fn trickle(mut writer: OwnedWriteHalf, head: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(TRICKLE_EVERY).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    })
}

/// Everything the server sends until it closes the connection, or `None` if it is still open
/// after [`CUT_WITHIN`].
async fn closed_within<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Vec<u8>> {
    let read_all = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(CUT_WITHIN, read_all).await.ok()
}

/// A cut may come with a 408 or as a bare close; never with anything else.
fn assert_cut_cleanly(listener: &str, received: &[u8]) {
    let text = String::from_utf8_lossy(received);
    assert!(
        received.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{listener}: a cut header gets a 408 or nothing, got {text:?}"
    );
}

struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One response (Content-Length or chunked), within [`CUT_WITHIN`].
async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Response {
    let read = async {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = reader.read(&mut buf).await.expect("read response head");
            assert!(n > 0, "closed before a response: {data:?}");
            data.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let complete = |body: &[u8]| match length {
            Some(n) => body.len() >= n,
            None => body.ends_with(b"0\r\n\r\n"),
        };
        while !complete(&data[head_end..]) {
            let n = reader.read(&mut buf).await.expect("read response body");
            assert!(n > 0, "closed mid-response");
            data.extend_from_slice(&buf[..n]);
        }
        Response {
            status,
            head,
            body: data[head_end..].to_vec(),
        }
    };
    tokio::time::timeout(CUT_WITHIN, read)
        .await
        .expect("a response within the limit")
}

/// A connection on which one GET of `path` has been answered 200, and that answer.
async fn answered_connection(listener: &str, addr: &str, path: &str) -> (TcpStream, Response) {
    let mut stream = connect(addr).await;
    stream.write_all(get(path).as_bytes()).await.expect("send");
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{listener}: {}", response.head);
    (stream, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_cut_on_both_listeners() {
    let (_mock, mg) = start().await;
    for (listener, addr) in listeners(&mg) {
        let (mut reader, writer) = connect(&addr).await.into_split();
        let writer = trickle(
            writer,
            "GET /v1/models HTTP/1.1\r\nHost: memgate\r\nX-Slow: ".into(),
        );
        let received = closed_within(&mut reader)
            .await
            .unwrap_or_else(|| panic!("{listener}: a trickled header holds the connection"));
        assert_cut_cleanly(listener, &received);
        writer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_on_both_listeners() {
    let (_mock, mg) = start().await;
    for ((listener, addr), path) in listeners(&mg).into_iter().zip(["/v1/models", "/healthz"]) {
        let (mut stream, response) = answered_connection(listener, &addr, path).await;
        assert!(
            !response.head.contains("connection: close"),
            "{listener}: the connection is kept alive: {}",
            response.head
        );
        let received = closed_within(&mut stream)
            .await
            .unwrap_or_else(|| panic!("{listener}: an idle connection is held open"));
        assert!(
            received.is_empty(),
            "{listener}: an idle connection is closed without a word, got {:?}",
            String::from_utf8_lossy(&received)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_next_request_on_a_kept_alive_connection_is_cut() {
    let (_mock, mg) = start().await;
    for ((listener, addr), path) in listeners(&mg).into_iter().zip(["/v1/models", "/healthz"]) {
        let (stream, _) = answered_connection(listener, &addr, path).await;

        let (mut reader, writer) = stream.into_split();
        let writer = trickle(
            writer,
            format!("GET {path} HTTP/1.1\r\nHost: memgate\r\nX-Slow: "),
        );
        let received = closed_within(&mut reader).await.unwrap_or_else(|| {
            panic!("{listener}: a trickled second request holds the connection")
        });
        assert_cut_cleanly(listener, &received);
        writer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_on_chat_pass_through_and_admin_routes() {
    let (mock, mg) = start().await;
    let [(_, proxy), (_, admin)] = listeners(&mg);
    for (listener, addr, path, key) in [
        ("chat", &proxy, "/v1/chat/completions", ACME_MEMBER),
        ("pass-through", &proxy, "/v1/embeddings", ACME_MEMBER),
        ("admin", &admin, "/memory/session/create", ACME_ADMIN),
    ] {
        let mut stream = connect(addr).await;
        let partial = br#"{"model": "mock-model", "#;
        stream
            .write_all(post_head(path, key, 200).as_bytes())
            .await
            .expect("send head");
        stream
            .write_all(partial)
            .await
            .expect("send part of the body");

        let response = read_response(&mut stream).await;
        assert_eq!(response.status, 408, "{listener}: {}", response.head);
        let error = &response.json()["error"];
        assert_eq!(error["code"], "request_timeout", "{listener}: {error}");
        assert!(error["message"].is_string() && error["type"].is_string());
        assert!(
            closed_within(&mut stream).await.is_some(),
            "{listener}: the connection is closed after the 408"
        );
    }
    assert!(
        mock.requests()
            .iter()
            .all(|r| !r.path.ends_with("/embeddings") && !r.path.ends_with("/chat/completions")),
        "nothing incomplete reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_but_steady_clients_are_served_and_kept_alive() {
    let (_mock, mg) = start().await;
    let [(_, proxy), (_, admin)] = listeners(&mg);
    let chat = serde_json::to_vec(&user_chat(None, "Hello there.", false)).expect("json");
    let create = br#"{"session_name": "slow-client", "engine_name": "mem0"}"#.to_vec();
    for (listener, addr, path, key, body, expected) in [
        (
            "chat",
            &proxy,
            "/v1/chat/completions",
            ACME_MEMBER,
            &chat,
            200,
        ),
        (
            "admin",
            &admin,
            "/memory/session/create",
            ACME_ADMIN,
            &create,
            201,
        ),
    ] {
        let mut stream = connect(addr).await;
        stream
            .write_all(post_head(path, key, body.len()).as_bytes())
            .await
            .expect("send head");
        // Longer in all than the header deadline, each pause well inside the body deadline.
        let pieces = body.chunks(body.len().div_ceil(8));
        for piece in pieces {
            tokio::time::sleep(Duration::from_millis(400)).await;
            stream.write_all(piece).await.expect("send a piece");
        }
        let response = read_response(&mut stream).await;
        assert_eq!(response.status, expected, "{listener}: {}", response.head);

        // A pause shorter than the keep-alive deadline, then the next request on the same
        // connection.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let next = if listener == "chat" {
            "/v1/models"
        } else {
            "/healthz"
        };
        stream.write_all(get(next).as_bytes()).await.expect("send");
        let response = read_response(&mut stream).await;
        assert_eq!(response.status, 200, "{listener}: {}", response.head);
    }
    let response = mg
        .chat(ACME_MEMBER, user_chat(None, "And an ordinary one.", false))
        .await;
    assert_eq!(response.status(), 200);
}
