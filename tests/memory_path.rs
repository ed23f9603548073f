//! End to end: the memgate binary between a client and the mock gateway, memory on the
//! embedded store.

mod common;

use common::*;
use serde_json::{json, Value};

async fn setup() -> (MockGateway, Memgate) {
    let mock = mock_gateway::spawn().await;
    let memgate = Memgate::start(&mock.url()).await;
    (mock, memgate)
}

async fn remembers_across_turns(stream: bool) {
    let (mock, mg) = setup().await;
    assert_eq!(
        mg.create_session(ACME_ADMIN, "user-alice").await.status(),
        201
    );

    let first = mg
        .chat(
            ACME_MEMBER,
            json!({
                "model": "mock-model",
                "messages": [{"role": "user", "content": "My team is in Singapore. Where should we meet?"}],
                "memory_id": "user-alice",
                "stream": stream,
            }),
        )
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-memgate-memory"], "empty");
    let text = first.text().await.unwrap();
    assert!(text.contains("Singapore"), "{text}");
    mg.wait_for_fact(ACME_MEMBER, "user-alice", "Singapore")
        .await;

    let second = mg
        .chat(
            ACME_MEMBER,
            user_chat(
                Some("user-alice"),
                "Which city is my team based in?",
                stream,
            ),
        )
        .await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-memgate-memory"], "injected");
    let _ = second.text().await.unwrap();

    let received = last_upstream_chat(&mock);
    assert!(received.get("memory_id").is_none(), "{received}");
    assert!(received.get("store_memory").is_none(), "{received}");
    assert_eq!(received["stream"], json!(stream));
    let system = received["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are helpful.\n\n[Past Context for ID: user-alice]\n- "),
        "{system}"
    );
    assert!(system.contains("My team is in Singapore"), "{system}");
    assert_eq!(
        received["messages"][1]["content"],
        "Which city is my team based in?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembers_across_turns_json() {
    remembers_across_turns(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remembers_across_turns_streaming() {
    remembers_across_turns(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_calls_use_the_service_key() {
    let (mock, mg) = setup().await;
    mg.create_session(ACME_ADMIN, "user-bob").await;
    mg.chat(
        ACME_MEMBER,
        user_chat(
            Some("user-bob"),
            "I prefer summaries under 200 words.",
            false,
        ),
    )
    .await;
    mg.wait_for_fact(ACME_MEMBER, "user-bob", "summaries").await;
    let internal: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/embeddings") || r.body.contains("\"facts\""))
        .collect();
    assert!(!internal.is_empty());
    for r in internal {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(auth, Some("Bearer sk-internal-service"), "{}", r.path);
    }
}

/// `store_memory: false`, a failed answer and a cut stream store nothing. A storing turn sent
/// afterwards is the barrier: once its fact is in, the earlier ones would be too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_or_opted_out_turns_are_not_stored() {
    let (_mock, mg) = setup().await;
    mg.create_session(ACME_ADMIN, "user-carol").await;

    let mut opted_out = user_chat(Some("user-carol"), "My cat is called Pixel.", false);
    opted_out["store_memory"] = json!(false);
    assert_eq!(mg.chat(ACME_MEMBER, opted_out).await.status(), 200);

    let failed = mg
        .chat_with_headers(
            ACME_MEMBER,
            &[("x-mock-status", "500")],
            user_chat(Some("user-carol"), "My dog is called Rex.", false),
        )
        .await;
    assert_eq!(failed.status(), 500);
    let body: Value = failed.json().await.unwrap();
    assert_eq!(
        body["error"]["type"], "mock_error",
        "the upstream's error reaches the client"
    );

    let cut = mg
        .chat_with_headers(
            ACME_MEMBER,
            &[("x-mock-cut-stream", "1")],
            user_chat(Some("user-carol"), "My bird is called Kiwi.", true),
        )
        .await;
    assert_eq!(cut.status(), 200);
    assert!(cut.text().await.is_err(), "the client sees the cut");

    mg.chat(
        ACME_MEMBER,
        user_chat(Some("user-carol"), "My fish is called Nemo.", false),
    )
    .await;
    let facts = mg.wait_for_fact(ACME_MEMBER, "user-carol", "Nemo").await;
    for pet in ["Pixel", "Rex", "Kiwi"] {
        assert!(
            !facts.iter().any(|f| f.contains(pet)),
            "{pet} stored: {facts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_memory_are_forwarded_byte_identical() {
    let (mock, mg) = setup().await;
    let raw = "{ \"model\" : \"mock-model\",\n  \"messages\": [ {\"role\":\"user\",\"content\":\"caf\\u00e9 \u{1F600}\"} ],\"temperature\":0.70 }";
    let response = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .bearer_auth("sk-any-upstream-key")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-memgate-memory").is_none());
    let received = mock.chat_requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, raw);
    assert!(received[0]
        .headers
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer sk-any-upstream-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_pass_through_untouched() {
    let (mock, mg) = setup().await;
    let direct = reqwest::get(format!("{}/v1/models", mock.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let via = reqwest::get(format!("{}/v1/models", mg.proxy))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(direct, via);

    // Without a body, through memgate's own forwarding: a HEAD's answer has no body and the
    // kept-alive connection goes on; the query and the method arrive as sent.
    let client = reqwest::Client::new();
    for (method, path) in [
        ("HEAD", "/v1/models"),
        ("GET", "/v1/models?limit=2"),
        ("DELETE", "/v1/files/file-1"),
        ("GET", "/v1/models"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let direct = client
            .request(method.clone(), format!("{}{path}", mock.url()))
            .send()
            .await
            .unwrap();
        let (status, direct) = (direct.status(), direct.bytes().await.unwrap());
        mock.clear();
        let via = client
            .request(method.clone(), format!("{}{path}", mg.proxy))
            .header("connection", "keep-alive")
            .send()
            .await
            .unwrap();
        assert_eq!(via.status(), status, "{method} {path}");
        assert_eq!(via.bytes().await.unwrap(), direct, "{method} {path}");
        let received = mock.requests();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].method, method.as_str());
        let (sent_path, _) = path.split_once('?').unwrap_or((path, ""));
        assert_eq!(received[0].path, sent_path);
        assert!(
            received[0].header("connection").is_none(),
            "hop-by-hop headers stay"
        );
    }

    let embed_body =
        r#"{"model":"text-embedding-3-small","input":"hello world","memory_id":"not-ours"}"#;
    let client = reqwest::Client::new();
    let direct = client
        .post(format!("{}/v1/embeddings", mock.url()))
        .body(embed_body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    mock.clear();
    let via = client
        .post(format!("{}/v1/embeddings", mg.proxy))
        .body(embed_body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(direct, via);
    let received = mock.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/embeddings");
    assert_eq!(
        received[0].body, embed_body,
        "memory fields elsewhere are not ours"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_pingoras_retry_buffer_are_forwarded_whole() {
    let (mock, mg) = setup().await;
    mg.create_session(ACME_ADMIN, "user-dave").await;
    let long = format!("I like long documents. {}", "lorem ipsum ".repeat(40_000));
    let response = mg
        .chat(ACME_MEMBER, user_chat(Some("user-dave"), &long, false))
        .await;
    assert_eq!(response.status(), 200);
    let received = last_upstream_chat(&mock);
    assert_eq!(received["messages"][1]["content"], long.as_str());
}

async fn assert_refused(
    mg: &Memgate,
    mock: &MockGateway,
    key: &str,
    body: reqwest::Body,
    status: u16,
    code: &str,
) {
    mock.clear();
    let response = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), status);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string());
    assert!(
        mock.requests().is_empty(),
        "the upstream received {:?}",
        mock.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_forwarded() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_PROXY__MAX_BODY_BYTES", "65536")]).await;
    mg.create_session(ACME_ADMIN, "user-erin").await;
    mg.create_session(GLOBEX_ADMIN, "globex-only").await;
    let body = |v: Value| reqwest::Body::from(v.to_string());

    let mut wrong_type = user_chat(None, "hi", false);
    wrong_type["memory_id"] = json!(42);
    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        body(wrong_type),
        400,
        "invalid_memory_id",
    )
    .await;

    let mut bad_shape = user_chat(None, "hi", false);
    bad_shape["memory_id"] = json!("user erin/../x");
    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        body(bad_shape),
        400,
        "invalid_memory_id",
    )
    .await;

    let mut bad_flag = user_chat(Some("user-erin"), "hi", false);
    bad_flag["store_memory"] = json!("no");
    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        body(bad_flag),
        400,
        "invalid_store_memory",
    )
    .await;

    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        "{\"model\": ".into(),
        400,
        "invalid_json",
    )
    .await;

    let ask = || body(user_chat(Some("user-erin"), "hi", false));
    assert_refused(&mg, &mock, "sk-unknown", ask(), 401, "invalid_api_key").await;

    let unknown = body(user_chat(Some("nobody"), "hi", false));
    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        unknown,
        404,
        "memory_session_not_found",
    )
    .await;

    let foreign = body(user_chat(Some("globex-only"), "hi", false));
    assert_refused(
        &mg,
        &mock,
        ACME_MEMBER,
        foreign,
        404,
        "memory_session_not_found",
    )
    .await;

    let big = body(user_chat(Some("user-erin"), &"x".repeat(70_000), false));
    assert_refused(&mg, &mock, ACME_MEMBER, big, 413, "request_too_large").await;

    let big_plain = body(user_chat(None, &"x".repeat(70_000), false));
    assert_refused(&mg, &mock, ACME_MEMBER, big_plain, 413, "request_too_large").await;

    // A chunked body (no Content-Length) is capped while it is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 40_000]), Ok(vec![b' '; 40_000])];
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_refused(&mg, &mock, ACME_MEMBER, streamed, 413, "request_too_large").await;

    assert!(mg.facts(GLOBEX_ADMIN, "globex-only").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieval_failure_fails_open() {
    // An upstream whose embeddings endpoint is broken: retrieval fails, the request still goes
    // through, without context and flagged.
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "user-frank").await;
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("user-frank"), "My office is in Lisbon.", false),
    )
    .await;
    mg.wait_for_fact(ACME_MEMBER, "user-frank", "Lisbon").await;
    mock.set_embeddings_failing(true);
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("user-frank"), "Where is my office?", false),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-memgate-memory"], "degraded");
    let received = last_upstream_chat(&mock);
    assert_eq!(received["messages"][0]["content"], "You are helpful.");
    assert!(mg.metric("memgate_retrieval_degraded_total").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_sessions_belong_to_the_callers_org() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_MEMORY__AUTO_CREATE_SESSIONS", "true")],
    )
    .await;
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("user-new"), "My favourite colour is teal.", false),
        )
        .await;
    assert_eq!(response.status(), 200);
    mg.wait_for_fact(ACME_MEMBER, "user-new", "teal").await;
    let foreign = mg
        .http
        .get(format!("{}/memory/session/user-new/facts", mg.admin))
        .bearer_auth(GLOBEX_MEMBER)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 404);
    // The other org's first use creates its own, empty session under the same name.
    let theirs = mg
        .chat(
            GLOBEX_MEMBER,
            user_chat(Some("user-new"), "What is my favourite colour?", false),
        )
        .await;
    assert_eq!(theirs.headers()["x-memgate-memory"], "empty");
}

/// A client that sends `Expect: 100-continue` holds its body back until it is told to send
/// it; without the interim answer curl stalls for a second on every large request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mock, mg) = setup().await;
    mg.create_session(ACME_ADMIN, "user-kim").await;
    let body = user_chat(Some("user-kim"), "My desk is on floor 4.", false).to_string();
    let mut stream = tokio::net::TcpStream::connect(mg.proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: memgate\r\nAuthorization: Bearer {ACME_MEMBER}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut interim),
    )
    .await
    .expect("no 100 Continue before the body was sent")
    .unwrap();
    assert!(
        interim == *b"HTTP/1.1 100 Continue\r\n\r\n",
        "{:?}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("Echo: My desk is on floor 4.") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("answer")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let upstream = mock.chat_requests();
    assert!(upstream[0].headers.iter().all(|(k, _)| k != "expect"));
}

/// A memory backend slower than the budget costs a request the budget, not its slowness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_retrieval_is_cut_at_the_budget() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_MEMORY__RETRIEVAL_BUDGET_MS", "200")],
    )
    .await;
    mg.create_session(ACME_ADMIN, "user-lee").await;
    mock.set_embeddings_delay_ms(30_000);
    let started = std::time::Instant::now();
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("user-lee"), "What did we decide?", false),
        )
        .await;
    // Far below the 30 s the embedding would take; the margin absorbs a loaded machine.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-memgate-memory"], "degraded");
    assert_eq!(
        response.json::<Value>().await.unwrap()["choices"][0]["message"]["content"],
        "Echo: What did we decide?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_request_asks_the_gateway_for_plain_text_and_others_keep_their_encoding() {
    let (mock, mg) = setup().await;
    mg.create_session(ACME_ADMIN, "user-erin").await;
    for (memory, wanted) in [(Some("user-erin"), "identity"), (None, "gzip, br")] {
        mock.clear();
        let response = mg
            .chat_with_headers(
                ACME_MEMBER,
                &[("accept-encoding", "gzip, br")],
                user_chat(memory, "What is the weather like?", false),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        let sent = mock.chat_requests();
        assert_eq!(sent.len(), 1);
        // One value: the client's is replaced, not joined by a second one.
        let values: Vec<&str> = sent[0]
            .headers
            .iter()
            .filter(|(k, _)| k == "accept-encoding")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(values, [wanted], "memory: {memory:?}");
    }
}
