//! The upstream gateway failing for real: not listening, slow, or resetting the connection in
//! the middle of an answer. Through memgate the client sees what it sees talking to the
//! gateway directly (the same status and bytes, the same cut), and no incomplete answer is
//! stored.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, user_chat, Memgate, ACME_ADMIN, ACME_MEMBER};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a client got: status, the bytes it could read, and whether the body ended cleanly.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    body: String,
    complete: bool,
}

async fn call(http: &reqwest::Client, url: &str, body: &Value) -> Seen {
    let mut response = http
        .post(url)
        .bearer_auth(ACME_MEMBER)
        .json(body)
        .send()
        .await
        .expect("response headers");
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    let complete = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    Seen {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        complete,
    }
}

/// Reads one request, head and body (the client sends a Content-Length); false when the
/// connection ends first.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if request.len() >= head_end + 4 + length {
                return true;
            }
        }
    }
}

/// A gateway that answers a streamed chat completion with two SSE events and then resets
/// the connection (RST), as a crashing gateway or a dropped link does.
async fn resetting_gateway() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
                }
                let frames = [
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Half \"}}]}\n\n",
                    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"an answer\"}}]}\n\n",
                ];
                let mut out = String::from(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                for frame in frames {
                    out.push_str(&format!("{:x}\r\n{frame}\r\n", frame.len()));
                }
                let _ = socket.write_all(out.as_bytes()).await;
                let _ = socket.flush().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                // Linger 0: close with a reset, not a clean end.
                #[expect(
                    deprecated,
                    reason = "a zero linger resets at once, so the drop cannot block"
                )]
                let _ = socket.set_linger(Some(Duration::ZERO));
                drop(socket);
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_stream_reaches_the_client_as_a_cut_and_stores_nothing() {
    let gateway = resetting_gateway().await;
    let mg = Memgate::start(&gateway).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "cuts").await.status(), 201);
    let body = user_chat(Some("cuts"), "My locker code is 4512.", true);

    let direct = call(&mg.http, &format!("{gateway}/v1/chat/completions"), &body).await;
    let through = call(
        &mg.http,
        &format!("{}/v1/chat/completions", mg.proxy),
        &body,
    )
    .await;
    assert_eq!(direct.status, 200);
    assert!(
        !direct.complete,
        "the direct call sees the reset: {direct:?}"
    );
    assert_eq!(
        through, direct,
        "through memgate the client sees what it sees directly"
    );
    assert!(through.body.contains("an answer"));

    // No answer, no turn: nothing was stored, nothing waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(mg.facts(ACME_MEMBER, "cuts").await.is_empty());
    assert_eq!(mg.metric("memgate_turns_enqueued_total").await, 0.0);
    assert_eq!(mg.metric("memgate_turns_journaled_total").await, 0.0);
    assert!(mg.metric("memgate_upstream_errors_total").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_or_slow_is_passed_on_as_it_is() {
    // Down: nothing listens on the port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mg = Memgate::start(&closed).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "down").await.status(), 201);
    for (memory, stream) in [(None, false), (Some("down"), false), (Some("down"), true)] {
        let seen = call(
            &mg.http,
            &format!("{}/v1/chat/completions", mg.proxy),
            &user_chat(memory, "My locker code is 4512.", stream),
        )
        .await;
        assert_eq!(seen.status, 502, "{seen:?}");
        let error: Value = serde_json::from_str(&seen.body).expect("an OpenAI-shaped error");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    assert!(mg.facts(ACME_MEMBER, "down").await.is_empty());
    drop(mg);

    // Slow: memgate waits as long as the client would, and the answer arrives whole.
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "slow").await.status(), 201);
    let started = Instant::now();
    let response = mg
        .chat_with_headers(
            ACME_MEMBER,
            &[
                ("x-mock-delay-ms", "1500"),
                ("x-mock-chunk-delay-ms", "100"),
            ],
            user_chat(Some("slow"), "My locker code is 4512.", true),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(text.contains("[DONE]"), "{text}");
    mg.wait_for_fact(ACME_MEMBER, "slow", "4512").await;
    drop(mg);

    // Slower than upstream.read_timeout_ms: 504, on the intercepted route and on the rest.
    let mg =
        Memgate::start_with(&mock.url(), &[("MEMGATE_UPSTREAM__READ_TIMEOUT_MS", "300")]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "slow").await.status(), 201);
    for memory in [None, Some("slow")] {
        let response = mg
            .chat_with_headers(
                ACME_MEMBER,
                &[("x-mock-delay-ms", "1500")],
                user_chat(memory, "My locker code is 4512.", false),
            )
            .await;
        assert_eq!(response.status(), 504);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "upstream_timeout", "{error}");
    }
    let response = mg
        .http
        .get(format!("{}/v1/models", mg.proxy))
        .header("x-mock-delay-ms", "1500")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(mg.facts(ACME_MEMBER, "slow").await.is_empty());
}

/// A gateway that answers one request per connection, as if it would keep the connection
/// alive (no `Connection: close`), and then closes it a few milliseconds later without
/// reading what came meanwhile: a kept-alive connection gone stale in memgate's pool, as an
/// idle timeout on the gateway's side makes one. Counts the connections it accepted.
async fn one_answer_per_connection_gateway(
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if !read_request(&mut socket).await {
                    return;
                }
                let body = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fresh"},"finish_reason":"stop"}]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_the_gateway_closed_is_not_the_clients_problem() {
    let (gateway, accepted) = one_answer_per_connection_gateway().await;
    let mg = Memgate::start(&gateway).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", mg.proxy);
    const REQUESTS: usize = 30;
    for i in 0..REQUESTS {
        // Each request right after the last: memgate's pooled connection is still open on
        // its side, and the gateway will never read from it again.
        let seen = call(
            &http,
            &url,
            &user_chat(None, &format!("question {i}"), false),
        )
        .await;
        assert_eq!(seen.status, 200, "request {i}: {seen:?}\n{}", mg.log());
        assert!(seen.complete && seen.body.contains("fresh"), "{seen:?}");
    }
    // One connection per answer: every request after the first found a stale one first.
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= REQUESTS,
        "{} connections",
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    );
}
