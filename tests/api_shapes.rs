//! Memory on OpenAI's Responses API and Anthropic's Messages API, besides chat completions:
//! the real SDKs through memgate in front of the mock gateway, the memory fields as headers,
//! the receipts (`x-memgate-facts`, `x-memgate-turn`), and a placement of the context block
//! that keeps the provider's prompt cache.

mod common;

use common::*;
use serde_json::{json, Value};

/// Runs one of the SDK driver scripts in tests/python and returns its JSON lines.
async fn run_sdk_script(script: &str, env: Vec<(&'static str, String)>) -> Vec<Value> {
    python_json_lines(&format!("python/{script}"), Vec::new(), env).await
}

/// The text of a system prompt: a string, or its text blocks.
fn prompt_text(prompt: &Value) -> String {
    match prompt {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Two turns through an SDK: the first is answered and stored, the second gets what the first
/// taught in the API's system prompt field.
async fn sdk_conversation(script: &str, prompt_field: &str, stream: bool) {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let memory_id = format!(
        "{}-{}",
        prompt_field,
        if stream { "stream" } else { "plain" }
    );
    assert_eq!(
        mg.create_session(ACME_ADMIN, &memory_id).await.status(),
        201
    );
    let turns = run_sdk_script(script, sdk_script_env(&mg, &mock, &memory_id, stream)).await;
    assert_eq!(turns.len(), 2, "{turns:?}");

    let (first, second) = (&turns[0], &turns[1]);
    assert_eq!(
        first["reply"],
        "Echo: I live in Lisbon and I work on the Atlas project."
    );
    let upstream = &first["upstream"];
    assert!(upstream.get("memory_id").is_none(), "{upstream}");
    assert_eq!(upstream["stream"].as_bool().unwrap_or(false), stream);
    assert_eq!(first["headers"]["x-memgate-memory"], "empty");
    assert_eq!(first["headers"]["x-memgate-facts"], "");
    assert!(
        first["headers"]["x-memgate-turn"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "a stored turn has a receipt: {first}"
    );

    assert_eq!(second["reply"], "Echo: Which city do I live in?");
    let upstream = &second["upstream"];
    assert!(upstream.get("memory_id").is_none() && upstream.get("store_memory").is_none());
    let prompt = prompt_text(&upstream[prompt_field]);
    assert!(
        prompt.contains(&format!("[Past Context for ID: {memory_id}]\n- ")),
        "{upstream}"
    );
    assert!(prompt.contains("I live in Lisbon"), "{prompt}");
    let headers = &second["headers"];
    assert_eq!(headers["x-memgate-memory"], "injected");
    assert!(
        headers.get("x-memgate-turn").is_none(),
        "store_memory: false stores nothing"
    );
    let facts = mg.facts(ACME_MEMBER, &memory_id).await;
    assert_eq!(facts.len(), 1, "only turn 1 was stored: {facts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_responses_remember_across_turns() {
    sdk_conversation("responses_sdk_memory.py", "instructions", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_streamed_responses_remember_across_turns() {
    sdk_conversation("responses_sdk_memory.py", "instructions", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_messages_remember_across_turns() {
    sdk_conversation("anthropic_sdk_memory.py", "system", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_message_streams_remember_across_turns() {
    sdk_conversation("anthropic_sdk_memory.py", "system", true).await;
}

/// The SDKs raise their own 400 error on a bad field, which they can only do when the error
/// has their API's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdks_read_memgates_refusals_in_their_own_error_shape() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    for (script, expected) in [
        (
            "responses_sdk_memory.py",
            json!({"message": "`memory_id` must be a string", "type": "invalid_request_error", "code": "invalid_memory_id"}),
        ),
        (
            "anthropic_sdk_memory.py",
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "`memory_id` must be a string"}}),
        ),
    ] {
        let mut env = sdk_script_env(&mg, &mock, "x", false);
        env.push(("MODE", "bad_field".to_string()));
        let lines = run_sdk_script(script, env).await;
        assert_eq!(lines[0]["status"], 400, "{script}: {lines:?}");
        let body = &lines[0]["body"];
        // The OpenAI SDK hands over the `error` object, Anthropic's the whole body.
        assert_eq!(body, &expected, "{script}");
    }
    assert!(
        mock.requests().is_empty(),
        "a refused request reaches nothing"
    );
}

/// Extra request headers.
type Headers<'a> = Vec<(&'a str, &'a str)>;

async fn post(
    mg: &Memgate,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = mg
        .http
        .post(format!("{}{path}", mg.proxy))
        .bearer_auth(ACME_MEMBER);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.json(body).send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn responses_body(text: &str, stream: bool) -> Value {
    json!({"model": "mock-model", "input": text, "stream": stream})
}

fn messages_body(text: &str, stream: bool) -> Value {
    json!({"model": "mock-model", "max_tokens": 64, "messages": [{"role": "user", "content": text}], "stream": stream})
}

/// Bad memory fields, in the body or as headers, on each route: 400 in the route's error
/// shape, and nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_memory_fields_are_refused_in_each_apis_error_shape() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "bad").await.status(), 201);
    let chat = user_chat(None, "hi", false);
    for (path, body) in [
        ("/v1/chat/completions", chat.clone()),
        ("/chat/completions", chat),
        ("/v1/responses", responses_body("hi", false)),
        ("/responses", responses_body("hi", true)),
        ("/v1/messages", messages_body("hi", false)),
        ("/messages", messages_body("hi", true)),
    ] {
        let anthropic = path.ends_with("/messages");
        let with = |field: &str, value: Value| {
            let mut b = body.clone();
            b[field] = value;
            b
        };
        let cases: Vec<(Headers, Value, &str)> = vec![
            (
                vec![],
                with("memory_id", json!(42)),
                "`memory_id` must be a string",
            ),
            (
                vec![],
                with("store_memory", json!("no")),
                "`store_memory` must be a boolean",
            ),
            (
                vec![("x-memgate-memory-id", "other")],
                with("memory_id", json!("bad")),
                "`memory_id` in the body and `x-memgate-memory-id` differ",
            ),
            (
                vec![
                    ("x-memgate-memory-id", "bad"),
                    ("x-memgate-store-memory", "maybe"),
                ],
                body.clone(),
                "`x-memgate-store-memory` must be `true` or `false`",
            ),
            (
                vec![("x-memgate-memory-id", "no spaces")],
                body.clone(),
                "`x-memgate-memory-id` must match [A-Za-z0-9._:@-]{1,128}",
            ),
        ];
        for (headers, body, message) in cases {
            let (status, _, text) = post(&mg, path, &headers, &body).await;
            assert_eq!(status, 400, "{path} {headers:?}: {text}");
            let error: Value = serde_json::from_str(&text).unwrap();
            if anthropic {
                assert_eq!(error["type"], "error", "{path}: {error}");
                assert_eq!(error["error"]["type"], "invalid_request_error");
                assert_eq!(error["error"]["message"], message, "{path}");
            } else {
                assert_eq!(
                    error["error"]["type"], "invalid_request_error",
                    "{path}: {error}"
                );
                assert_eq!(error["error"]["message"], message, "{path}");
            }
        }
        // An unknown session is a 404 in the route's shape too.
        let (status, _, text) = post(&mg, path, &[("x-memgate-memory-id", "nobody")], &body).await;
        assert_eq!(status, 404, "{path}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        match anthropic {
            true => assert_eq!(error["error"]["type"], "not_found_error", "{error}"),
            false => assert_eq!(
                error["error"]["code"], "memory_session_not_found",
                "{error}"
            ),
        }
    }
    // Memory fields on a path only a lenient upstream would serve as one of these.
    let (status, _, text) = post(
        &mg,
        "/v1/Messages",
        &[("x-memgate-memory-id", "bad")],
        &messages_body("hi", false),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["type"],
        "error"
    );
    assert!(mock.requests().is_empty(), "nothing was forwarded");
}

/// The header fields name the session as the body fields do, and never reach the upstream,
/// on intercepted routes and on any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_fields_name_the_session_and_never_reach_the_upstream() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    assert_eq!(
        mg.create_session(ACME_ADMIN, "claude-code").await.status(),
        201
    );
    let memory = [("x-memgate-memory-id", "claude-code")];
    let (status, headers, body) = post(
        &mg,
        "/v1/messages",
        &memory,
        &messages_body("I keep my notes in Obsidian.", true),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("event: message_stop"), "{body}");
    assert_eq!(header(&headers, "x-memgate-memory"), Some("empty"));
    assert!(header(&headers, "x-memgate-turn").is_some());
    mg.wait_for_fact(ACME_MEMBER, "claude-code", "Obsidian")
        .await;

    let skip = [
        ("x-memgate-memory-id", "claude-code"),
        ("x-memgate-store-memory", "false"),
    ];
    let (status, headers, _) = post(
        &mg,
        "/v1/messages",
        &skip,
        &messages_body("Where do I keep my notes? I use Vim.", false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-memgate-memory"), Some("injected"));
    assert!(
        header(&headers, "x-memgate-turn").is_none(),
        "not to be stored"
    );
    let upstream = mock.messages_requests().last().unwrap().body_json();
    assert!(
        prompt_text(&upstream["system"]).contains("Obsidian"),
        "{upstream}"
    );

    // Anthropic's clients may send their key as `x-api-key` instead.
    let by_api_key = mg
        .http
        .post(format!("{}/v1/messages", mg.proxy))
        .header("x-api-key", ACME_MEMBER)
        .header("x-memgate-memory-id", "claude-code")
        .json(
            &json!({"model": "m", "max_tokens": 8, "store_memory": false,
            "messages": [{"role": "user", "content": "Which notes app do I use?"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_api_key.status(), 200);
    assert_eq!(by_api_key.headers()["x-memgate-memory"], "injected");

    // Pass-through routes drop them too.
    let models = mg
        .http
        .get(format!("{}/v1/models", mg.proxy))
        .header("x-memgate-memory-id", "claude-code")
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    for request in mock.requests() {
        assert!(
            !request
                .headers
                .iter()
                .any(|(name, _)| name.starts_with("x-memgate-memory")
                    || name.starts_with("x-memgate-store")),
            "{} {} carried a memory header: {:?}",
            request.method,
            request.path,
            request.headers
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let facts = mg.facts(ACME_MEMBER, "claude-code").await;
    assert!(
        !facts.iter().any(|f| f.contains("Vim")),
        "store_memory: false was ignored: {facts:?}"
    );
}

/// Streams whose final event arrives in two writes, split inside it: the client gets every
/// byte the gateway sent, and the turn is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_streams_of_each_shape_arrive_whole_and_are_stored() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    for (path, body, end, memory_id) in [
        (
            "/v1/responses",
            responses_body("I play the cello.", true),
            "response.completed",
            "split-responses",
        ),
        (
            "/v1/messages",
            messages_body("I play the cello.", true),
            "message_stop",
            "split-messages",
        ),
    ] {
        assert_eq!(mg.create_session(ACME_ADMIN, memory_id).await.status(), 201);
        let split = [
            ("x-mock-split-done", "1"),
            ("x-memgate-memory-id", memory_id),
        ];
        let (status, _, through) = post(&mg, path, &split, &body).await;
        assert_eq!(status, 200);
        let direct = reqwest::Client::new()
            .post(format!("{}{path}", mock.url()))
            .header("x-mock-split-done", "1")
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // Ids and counters differ from one answer to the next; the events do not.
        let events = |s: &str| {
            s.lines()
                .filter(|l| l.starts_with("event: "))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(events(&through), events(&direct), "{path}");
        assert!(
            through.trim_end().ends_with('}') && through.contains(end),
            "{through}"
        );
        mg.wait_for_fact(ACME_MEMBER, memory_id, "cello").await;
    }
}

/// One request of a conversation, as each API shape carries it: `history` alternates user
/// and assistant texts, the last one the user's.
fn conversation_request(path: &str, history: &[String]) -> Value {
    let role = |i: usize| {
        if i.is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        }
    };
    match path {
        "/v1/chat/completions" => {
            let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
            messages.extend(
                history
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"role": role(i), "content": t})),
            );
            json!({"model": "mock-model", "messages": messages, "store_memory": false})
        }
        "/v1/responses" => {
            let input: Vec<Value> = history
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"role": role(i), "content": t}))
                .collect();
            json!({"model": "mock-model", "instructions": "You are terse.", "input": input, "store_memory": false})
        }
        _ => {
            let messages: Vec<Value> = history
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"role": role(i), "content": t}))
                .collect();
            json!({"model": "mock-model", "max_tokens": 64, "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}], "messages": messages, "store_memory": false})
        }
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Where `needle` ends in `haystack`, searching from the end.
fn end_of_last(haystack: &str, needle: &str) -> usize {
    haystack
        .rfind(needle)
        .map(|at| at + needle.len())
        .expect("needle in haystack")
}

/// Ten requests of a growing conversation, each with facts to inject. With
/// `before_last_user`, each request's bytes, up to its latest user message, are the previous
/// request's (so a provider's prompt cache holds); with `system`, the block changes the
/// prompt at its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_last_user_keeps_every_earlier_byte_of_the_conversation() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let topics = [
        "Lisbon",
        "cello",
        "Atlas",
        "Kyoto",
        "sourdough",
        "chess",
        "Rust",
        "sailing",
        "Bach",
        "tea",
    ];
    for placement in ["before_last_user", "system"] {
        for path in ["/v1/chat/completions", "/v1/responses", "/v1/messages"] {
            let memory_id = format!("cache-{placement}-{}", path.rsplit('/').next().unwrap());
            let (status, body) = mg
                .api(
                    "POST",
                    Some(ACME_ADMIN),
                    "/memory/session/create",
                    Some(json!({"session_name": memory_id, "engine_name": "mem0", "config": {"placement": placement}})),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            for topic in topics {
                let (status, added) = mg
                    .api(
                        "POST",
                        Some(ACME_ADMIN),
                        "/memory/session/add",
                        Some(json!({"memory_id": memory_id, "messages": [{"role": "user", "content": format!("My favourite {topic} fact is {topic} forever.")}]})),
                    )
                    .await;
                assert_eq!(status, 200, "{added}");
            }
            let stored: std::collections::HashMap<String, String> = mg
                .fact_entries(ACME_MEMBER, &memory_id)
                .await
                .into_iter()
                .collect();
            assert_eq!(stored.len(), topics.len(), "{stored:?}");

            let mut history: Vec<String> = Vec::new();
            let mut sent: Vec<String> = Vec::new();
            let mut kept = 0;
            for topic in topics {
                history.push(format!("Tell me about {topic} please"));
                let memory = [("x-memgate-memory-id", memory_id.as_str())];
                let (status, headers, answer) =
                    post(&mg, path, &memory, &conversation_request(path, &history)).await;
                assert_eq!(status, 200, "{answer}");
                assert_eq!(
                    header(&headers, "x-memgate-memory"),
                    Some("injected"),
                    "{path}"
                );
                // The receipt names facts of the session, and they are the ones injected.
                let ids: Vec<&str> = header(&headers, "x-memgate-facts")
                    .unwrap()
                    .split(',')
                    .collect();
                let upstream = mock
                    .requests()
                    .into_iter()
                    .rfind(|r| r.path == path)
                    .expect("forwarded")
                    .body;
                for id in &ids {
                    let text = stored
                        .get(*id)
                        .unwrap_or_else(|| panic!("{id} is not a fact of {memory_id}"));
                    assert!(
                        upstream.contains(text.as_str()),
                        "{text} not injected into {upstream}"
                    );
                }
                assert!(
                    ids.iter().any(|id| stored[*id].contains(topic)),
                    "{topic}: {ids:?}"
                );
                // From the third request on, the previous one had an answer of the assistant's
                // before its latest user message: everything up to its end is what a cache
                // keeps.
                if let (Some(previous), true) = (sent.last(), history.len() >= 5) {
                    let stable = end_of_last(previous, &history[history.len() - 4]);
                    if common_prefix(previous.as_bytes(), upstream.as_bytes()) >= stable {
                        kept += 1;
                    }
                }
                history.push(format!("Echo: {}", history.last().unwrap()));
                sent.push(upstream);
            }
            match placement {
                "before_last_user" => assert_eq!(kept, topics.len() - 2, "{path}: {sent:#?}"),
                _ => assert_eq!(
                    kept, 0,
                    "{path}: the system block changed the prompt's start"
                ),
            }
        }
    }
}

/// A body that cannot be checked for memory fields (not JSON, or over the limit) is refused
/// on the new routes as on chat, in the route's error shape, and nothing is forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_bodies_are_refused_in_each_apis_error_shape() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_PROXY__MAX_BODY_BYTES", "4096")]).await;
    let send = |path: &'static str, body: Vec<u8>| {
        mg.http
            .post(format!("{}{path}", mg.proxy))
            .bearer_auth(ACME_MEMBER)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for path in ["/v1/responses", "/messages"] {
        let anthropic = path.ends_with("/messages");
        for (body, status) in [
            (b"{\"model\": \"m\", \"input\": ".to_vec(), 400),
            (b"[1, 2]".to_vec(), 400),
            (
                format!("{{\"model\": \"{}\"}}", "x".repeat(8192)).into_bytes(),
                413,
            ),
        ] {
            let response = send(path, body).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
            let error: Value = response.json().await.unwrap();
            match anthropic {
                true => {
                    assert_eq!(error["type"], "error", "{error}");
                    let kind = if status == 413 {
                        "request_too_large"
                    } else {
                        "invalid_request_error"
                    };
                    assert_eq!(error["error"]["type"], kind, "{error}");
                }
                false => assert!(error["error"]["code"].is_string(), "{error}"),
            }
        }
    }
    assert!(mock.requests().is_empty(), "nothing was forwarded");
}
