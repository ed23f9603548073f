//! A deterministic OpenAI-compatible gateway for tests, benchmarks and demos: no LLM is
//! reachable where memgate is built, so this stands in for LiteLLM & co.
//!
//! - `POST /v1/embeddings`: hashed bag-of-words vectors (as floats, or base64 when asked), so
//!   texts sharing words land near each other.
//! - `POST /v1/chat/completions`: memgate's extraction calls get `{"facts": [...]}` (the user's
//!   statements), its memory-update calls get `{"memory": [...]}`; any other request gets
//!   `Echo: <last user message>`, as JSON or as an SSE stream.
//!   Test controls (request headers): `x-mock-status: 500` answers that status,
//!   `x-mock-cut-stream: 1` aborts the answer mid-body, `x-mock-delay-ms: N` waits first,
//!   `x-mock-chunk-delay-ms: N` spaces the events of a streamed answer by N ms,
//!   `x-mock-split-done: 1` sends its `data: [DONE]` in two writes split inside the marker, and
//!   `x-mock-linger-ms: N` keeps the stream open N ms after its last event.
//! - `POST /v1/responses` (OpenAI Responses API): `Echo: <latest user input text>`, as a
//!   Responses object or as its typed event stream (`response.created` … `response.completed`).
//!   The same test controls; `x-mock-split-done: 1` splits the `response.completed` event.
//! - `POST /v1/messages` (Anthropic Messages API): `Echo: <last user message>`, as a Message or
//!   as its event stream (`message_start` … `message_stop`), errors in Anthropic's shape.
//!   The same test controls; `x-mock-split-done: 1` splits the `message_stop` event.
//! - `GET /key/info` as LiteLLM answers it, for the keys registered with `set_key_info`
//!   (401 for any other key).
//! - `GET /v1/models`; `GET /__mock/requests` lists what was received, `DELETE` clears it.
//!
//! cargo run --example mock_gateway -- --listen 127.0.0.1:4000
//! curl -s localhost:4000/v1/chat/completions -d '{"messages":[{"role":"user","content":"hi"}]}'

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The exact bytes received, as UTF-8 (lossy).
    pub body: String,
}

impl RecordedRequest {
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// memgate's own extraction or memory-update call.
    pub fn is_internal(&self) -> bool {
        self.header("x-memgate-purpose").is_some() || internal_kind(&self.body_json()).is_some()
    }
}

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<RecordedRequest>>,
    counter: AtomicU64,
    embeddings_failing: AtomicBool,
    base64_refused: AtomicBool,
    internal_failing: AtomicBool,
    answers_malformed: AtomicBool,
    embeddings_delay_ms: AtomicU64,
    key_info: Mutex<std::collections::HashMap<String, Value>>,
    key_info_failing: AtomicBool,
}

#[derive(Clone)]
pub struct MockGateway {
    pub addr: SocketAddr,
    state: Arc<MockState>,
}

impl MockGateway {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.state.requests.lock() {
            r.clear();
        }
    }

    /// Chat completions from applications (memgate's internal calls left out).
    pub fn chat_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions") && !r.is_internal())
            .collect()
    }

    /// Responses API calls from applications (memgate's internal calls left out).
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/responses") && !r.is_internal())
            .collect()
    }

    /// Anthropic Messages API calls from applications (memgate's internal calls left out).
    pub fn messages_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/messages") && !r.is_internal())
            .collect()
    }

    pub fn internal_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_internal())
            .collect()
    }

    /// Makes memgate's extraction and memory-update calls answer 500.
    pub fn set_internal_failing(&self, failing: bool) {
        self.state
            .internal_failing
            .store(failing, Ordering::Relaxed);
    }

    /// Makes graph-completion answers valid JSON without the `answer` field, as a model that
    /// ignores its instructions would send.
    pub fn set_answers_malformed(&self, malformed: bool) {
        self.state
            .answers_malformed
            .store(malformed, Ordering::Relaxed);
    }

    /// Makes `/v1/embeddings` answer only after `ms` milliseconds.
    pub fn set_embeddings_delay_ms(&self, ms: u64) {
        self.state.embeddings_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Registers a virtual key for `GET /key/info`, with LiteLLM's `info` object.
    pub fn set_key_info(&self, key: &str, info: Value) {
        if let Ok(mut k) = self.state.key_info.lock() {
            k.insert(key.to_string(), info);
        }
    }

    /// Makes `GET /key/info` answer 503.
    pub fn set_key_info_failing(&self, failing: bool) {
        self.state
            .key_info_failing
            .store(failing, Ordering::Relaxed);
    }

    /// Makes `/v1/embeddings` refuse `encoding_format: "base64"` with 400, as a gateway in
    /// front of a provider without it may.
    pub fn set_base64_embeddings_refused(&self, refused: bool) {
        self.state.base64_refused.store(refused, Ordering::Relaxed);
    }

    /// Makes `/v1/embeddings` answer 503, to test what memgate does when retrieval breaks.
    pub fn set_embeddings_failing(&self, failing: bool) {
        self.state
            .embeddings_failing
            .store(failing, Ordering::Relaxed);
    }
}

pub async fn spawn() -> MockGateway {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind mock gateway");
    serve_on(listener).await
}

pub async fn serve_on(listener: tokio::net::TcpListener) -> MockGateway {
    let addr = listener.local_addr().expect("mock gateway address");
    let state = Arc::new(MockState::default());
    let app = Router::new().fallback(handle).with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    MockGateway { addr, state }
}

async fn handle(State(state): State<Arc<MockState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return error(StatusCode::BAD_REQUEST, "cannot read body");
    };
    let path = parts.uri.path().to_string();
    if let Some(control) = path.strip_prefix("/__mock/") {
        return mock_control(&state, &parts.method, control);
    }
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    if let Ok(mut r) = state.requests.lock() {
        r.push(recorded);
    }
    if let Some(ms) = header_number(&parts.headers, "x-mock-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let route = path.strip_prefix("/v1").unwrap_or(&path);
    match (parts.method, route) {
        (Method::GET, "/models") => axum::Json(json!({
            "object": "list",
            "data": [
                {"id": "mock-model", "object": "model", "owned_by": "mock"},
                {"id": "text-embedding-3-small", "object": "model", "owned_by": "mock"}
            ]
        }))
        .into_response(),
        (Method::GET, "/key/info") => key_info(&state, &parts.headers),
        (Method::POST, "/embeddings") => {
            let delay = state.embeddings_delay_ms.load(Ordering::Relaxed);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if state.embeddings_failing.load(Ordering::Relaxed) {
                return error(StatusCode::SERVICE_UNAVAILABLE, "embeddings are down");
            }
            let refused = state.base64_refused.load(Ordering::Relaxed);
            with_json(&body, |request| {
                if refused && request["encoding_format"] == "base64" {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "base64 embeddings are not supported",
                    );
                }
                embeddings(request)
            })
        }
        (Method::POST, "/chat/completions") => {
            let internal = parts.headers.contains_key("x-memgate-purpose");
            if internal && state.internal_failing.load(Ordering::Relaxed) {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "extraction model is down",
                );
            }
            chat(&state, &parts.headers, &body)
        }
        (Method::POST, "/responses") => responses(&state, &parts.headers, &body),
        (Method::POST, "/messages") => messages(&state, &parts.headers, &body),
        _ => error(StatusCode::NOT_FOUND, "no such route on the mock gateway"),
    }
}

fn key_info(state: &MockState, headers: &HeaderMap) -> Response {
    if state.key_info_failing.load(Ordering::Relaxed) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "key database unreachable");
    }
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let info = state.key_info.lock().ok().and_then(|k| k.get(key).cloned());
    match info {
        Some(info) => axum::Json(json!({"key": format!("hashed-{}", key.len()), "info": info}))
            .into_response(),
        None => error(
            StatusCode::UNAUTHORIZED,
            "Authentication Error, invalid user key",
        ),
    }
}

fn mock_control(state: &MockState, method: &Method, control: &str) -> Response {
    match (method, control) {
        (&Method::GET, "requests") => {
            let requests = state.requests.lock().map(|r| r.clone()).unwrap_or_default();
            axum::Json(requests).into_response()
        }
        (&Method::DELETE, "requests") => {
            if let Ok(mut r) = state.requests.lock() {
                r.clear();
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "unknown mock control"),
    }
}

fn with_json(body: &[u8], answer: impl FnOnce(&Value) -> Response) -> Response {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => answer(&v),
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "mock_error", "code": "mock"}})),
    )
        .into_response()
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

// ---- embeddings ----

const STOPWORDS: &[&str] = &[
    "the", "a", "an", "is", "are", "am", "i", "my", "me", "you", "your", "to", "of", "in", "on",
    "at", "and", "or", "for", "with", "what", "where", "who", "how", "do", "does", "did", "was",
    "were", "be", "it", "that", "this", "please", "can", "about", "we", "our", "us",
];

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| match w.strip_suffix('s') {
            Some(stem) if w.len() > 3 => stem.to_string(),
            _ => w,
        })
        .collect()
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a's low bits barely differ between similar words ("1n1390" and "1n1332" share them),
/// and the bucket is the hash modulo the dimension: a finaliser (MurmurHash3's) spreads every
/// bit of the hash over the low ones, so that distinct words rarely share a bucket.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for t in tokens(text) {
        let h = mix(fnv1a(&t));
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[(h % dims as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        v[0] = 1.0;
    } else {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn embeddings(request: &Value) -> Response {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(xs) => xs
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "`input` must be a string or array"),
    };
    let dims = request["dimensions"]
        .as_u64()
        .map_or(1536, |d| d.clamp(1, 16_000) as usize);
    let base64 = match request["encoding_format"].as_str() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`encoding_format` must be float or base64",
            )
        }
    };
    let words: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let vector = embed(t, dims);
            // As OpenAI answers `encoding_format: "base64"`: the little-endian f32 bytes.
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(BASE64.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": request["model"].as_str().unwrap_or("text-embedding-3-small"),
        "usage": {"prompt_tokens": words, "total_tokens": words}
    }))
    .into_response()
}

// ---- chat completions ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Internal {
    Extraction,
    Update,
    GraphExtraction,
    Summary,
    Answer,
}

fn internal_kind(request: &Value) -> Option<Internal> {
    if request["response_format"]["type"] != "json_object" {
        return None;
    }
    let system = request["messages"]
        .as_array()?
        .iter()
        .find(|m| m["role"] == "system")?["content"]
        .as_str()?;
    if system.contains("\"relationships\"") {
        Some(Internal::GraphExtraction)
    } else if system.contains("\"summary\"") {
        Some(Internal::Summary)
    } else if system.contains("\"answer\"") {
        Some(Internal::Answer)
    } else if system.contains("\"event\"") {
        Some(Internal::Update)
    } else if system.contains("\"facts\"") {
        Some(Internal::Extraction)
    } else {
        None
    }
}

fn text_of(content: &Value) -> String {
    text_of_kind(content, None)
}

/// A message's text: `content` itself when a string, else the `text` of its parts (only those
/// of type `kind` when given), joined with a space.
fn text_of_kind(content: &Value, kind: Option<&str>) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| kind.is_none_or(|k| p["type"] == k))
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn last_user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default()
}

/// The status asked for with `x-mock-status`.
fn mock_status(headers: &HeaderMap) -> Option<StatusCode> {
    let code = header_number(headers, "x-mock-status")?;
    Some(
        u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    )
}

/// A non-streamed JSON answer; with `cut`, half of it and then an aborted connection.
fn json_answer(body: String, cut: bool) -> Response {
    if cut {
        let half = body.as_bytes()[..body.len() / 2].to_vec();
        return aborted_body("application/json", vec![half]);
    }
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

fn chat(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    if let Some(status) = mock_status(headers) {
        return error(status, "mock failure");
    }
    let reply = match internal_kind(&request) {
        Some(Internal::Extraction) => {
            json!({"facts": extract_facts(&last_user_text(&request))}).to_string()
        }
        Some(Internal::Update) => update_decisions(&last_user_text(&request)).to_string(),
        Some(Internal::GraphExtraction) => graph_extraction(&last_user_text(&request)).to_string(),
        Some(Internal::Summary) => {
            let facts = extract_facts(&last_user_text(&request));
            let summary: String = facts.join(" ").chars().take(200).collect();
            json!({"summary": summary}).to_string()
        }
        Some(Internal::Answer) if state.answers_malformed.load(Ordering::Relaxed) => {
            json!({"reply": "Here is what I found."}).to_string()
        }
        Some(Internal::Answer) => graph_answer(&last_user_text(&request)).to_string(),
        None => format!("Echo: {}", last_user_text(&request)),
    };
    let id = format!(
        "chatcmpl-mock-{}",
        state.counter.fetch_add(1, Ordering::Relaxed)
    );
    let model = request["model"]
        .as_str()
        .unwrap_or("mock-model")
        .to_string();
    let prompt_tokens: usize = request["messages"]
        .as_array()
        .map(|ms| ms.iter().map(|m| words(&text_of(&m["content"]))).sum())
        .unwrap_or(0);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": words(&reply),
        "total_tokens": prompt_tokens + words(&reply)
    });
    let shape = StreamShape::from_headers(headers);
    if request["stream"] == true {
        let include_usage = request["stream_options"]["include_usage"] == true;
        let usage = include_usage.then_some(usage);
        return stream_reply(&id, &model, &reply, usage, shape);
    }
    let body = json!({
        "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": usage
    });
    json_answer(body.to_string(), shape.cut)
}

/// How a streamed answer is delivered.
struct StreamShape {
    /// Aborted after the first events.
    cut: bool,
    /// Pause before each write.
    spacing: Option<Duration>,
    /// The last event sent in two writes, split in the middle of its data line.
    split_done: bool,
    /// Pause after the last event before the stream ends.
    linger: Option<Duration>,
}

impl StreamShape {
    /// As the test-control headers ask.
    fn from_headers(headers: &HeaderMap) -> Self {
        let ms = |name| header_number(headers, name).map(Duration::from_millis);
        StreamShape {
            cut: headers.get("x-mock-cut-stream").is_some(),
            spacing: ms("x-mock-chunk-delay-ms"),
            split_done: headers.get("x-mock-split-done").is_some(),
            linger: ms("x-mock-linger-ms"),
        }
    }
}

/// An SSE event: `data: <json>`, after `event: <kind>` when named.
fn sse(kind: Option<&str>, data: &Value) -> String {
    match kind {
        Some(kind) => format!("event: {kind}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn stream_reply(
    id: &str,
    model: &str,
    reply: &str,
    usage: Option<Value>,
    shape: StreamShape,
) -> Response {
    let chunk = |delta: Value, finish: Value| {
        let event = json!({
            "id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        });
        sse(None, &event)
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for piece in reply.split_inclusive(' ') {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if let Some(usage) = usage {
        let event = json!({"id": id, "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage});
        events.push(sse(None, &event));
    }
    events.push("data: [DONE]\n\n".to_string());
    // Cut after the role chunk and the first piece of text.
    deliver(events, 2, shape)
}

/// Sends `events` as an SSE answer, one write each, as `shape` asks: cut after the first
/// `kept_when_cut`, spaced, with the last one split in two writes in the middle of its data
/// line (`data: [DO` + `NE]`), lingering after the last.
fn deliver(mut events: Vec<String>, kept_when_cut: usize, shape: StreamShape) -> Response {
    let StreamShape {
        cut,
        spacing,
        split_done,
        linger,
    } = shape;
    if cut {
        events.truncate(kept_when_cut);
        return aborted_body(
            "text/event-stream",
            events.into_iter().map(String::into_bytes).collect(),
        );
    }
    let last = if split_done { events.pop() } else { None };
    let mut writes: Vec<(Option<Duration>, String)> =
        events.into_iter().map(|e| (spacing, e)).collect();
    if let Some(mut last) = last {
        // A pause between the two halves keeps them in separate reads on the other side.
        let split_spacing = spacing.or(Some(Duration::from_millis(50)));
        let data = last.find("data: ").map_or(0, |at| at + "data: ".len());
        let end = last[data..].find('\n').map_or(last.len(), |at| data + at);
        let mut middle = data + (end - data) / 2;
        while !last.is_char_boundary(middle) {
            middle += 1;
        }
        let tail = last.split_off(middle);
        writes.push((split_spacing, last));
        writes.push((split_spacing, tail));
    }
    use futures_util::StreamExt;
    let stream = futures_util::stream::iter(writes)
        .then(move |(pause, event)| async move {
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
            Ok::<Bytes, std::io::Error>(Bytes::from(event))
        })
        .chain(
            futures_util::stream::once(async move {
                if let Some(linger) = linger {
                    tokio::time::sleep(linger).await;
                }
            })
            .filter_map(|()| async { None }),
        );
    (
        StatusCode::OK,
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

// ---- OpenAI Responses API ----

/// `input` when a string, else the text of the last user message in it.
fn latest_input_text(request: &Value) -> String {
    match &request["input"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user" && (i["type"].is_null() || i["type"] == "message"))
            .map(|i| text_of_kind(&i["content"], Some("input_text")))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn responses(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
    };
    if let Some(status) = mock_status(headers) {
        return error(status, "mock failure");
    }
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let (id, item_id) = (format!("resp_mock_{n}"), format!("msg_mock_{n}"));
    let reply = format!("Echo: {}", latest_input_text(&request));
    let model = request["model"].as_str().unwrap_or("mock-model");
    let instructions = &request["instructions"];
    let input_text = match &request["input"] {
        Value::Array(items) => items.iter().map(|i| words(&text_of(&i["content"]))).sum(),
        input => words(&text_of(input)),
    };
    let input_tokens = words(&text_of(instructions)) + input_text;
    let output_tokens = words(&reply);
    let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": []});
    let item = |status: &str, content: Value| json!({"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content});
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "error": null, "incomplete_details": null, "instructions": instructions,
            "metadata": {}, "model": model, "output": output, "parallel_tool_calls": true,
            "temperature": null, "tool_choice": "auto", "tools": [], "top_p": null,
            "text": {"format": {"type": "text"}}, "usage": usage
        })
    };
    let done_item = item("completed", json!([part(&reply)]));
    let completed = response(
        "completed",
        json!([done_item]),
        json!({
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens
        }),
    );
    let shape = StreamShape::from_headers(headers);
    if request["stream"] != true {
        return json_answer(completed.to_string(), shape.cut);
    }
    let in_progress = response("in_progress", json!([]), Value::Null);
    let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
    let with = |kind: &str, base: &Value, fields: Value| {
        let mut event = json!({"type": kind});
        for source in [base, &fields] {
            if let (Some(event), Some(fields)) = (event.as_object_mut(), source.as_object()) {
                event.extend(fields.clone());
            }
        }
        event
    };
    let none = json!({});
    let mut events = vec![
        with("response.created", &none, json!({"response": in_progress})),
        with(
            "response.in_progress",
            &none,
            json!({"response": in_progress}),
        ),
        with(
            "response.output_item.added",
            &none,
            json!({"output_index": 0, "item": item("in_progress", json!([]))}),
        ),
        with(
            "response.content_part.added",
            &at,
            json!({"part": part("")}),
        ),
    ];
    for piece in reply.split_inclusive(' ') {
        events.push(with(
            "response.output_text.delta",
            &at,
            json!({"delta": piece, "logprobs": []}),
        ));
    }
    events.extend([
        with(
            "response.output_text.done",
            &at,
            json!({"text": reply, "logprobs": []}),
        ),
        with(
            "response.content_part.done",
            &at,
            json!({"part": part(&reply)}),
        ),
        with(
            "response.output_item.done",
            &none,
            json!({"output_index": 0, "item": done_item}),
        ),
        with("response.completed", &none, json!({"response": completed})),
    ]);
    let events = events
        .into_iter()
        .enumerate()
        .map(|(seq, mut event)| {
            event["sequence_number"] = json!(seq);
            sse(event["type"].as_str(), &event)
        })
        .collect();
    // Cut after the first piece of text.
    deliver(events, 5, shape)
}

// ---- Anthropic Messages API ----

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

fn messages(state: &MockState, headers: &HeaderMap, body: &[u8]) -> Response {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return anthropic_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("invalid JSON: {e}"),
            )
        }
    };
    if let Some(status) = mock_status(headers) {
        return anthropic_error(status, "api_error", "mock failure");
    }
    let id = format!("msg_mock_{}", state.counter.fetch_add(1, Ordering::Relaxed));
    let text = |content: &Value| text_of_kind(content, Some("text"));
    let latest = request["messages"]
        .as_array()
        .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| text(&m["content"]))
        .unwrap_or_default();
    let reply = format!("Echo: {latest}");
    let model = request["model"].as_str().unwrap_or("mock-model");
    let input_tokens = words(&text(&request["system"]))
        + request["messages"]
            .as_array()
            .map_or(0, |ms| ms.iter().map(|m| words(&text(&m["content"]))).sum());
    let output_tokens = words(&reply);
    let shape = StreamShape::from_headers(headers);
    if request["stream"] != true {
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": reply}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
        });
        return json_answer(body.to_string(), shape.cut);
    }
    let mut events = vec![
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}
        }}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
    ];
    for piece in reply.split_inclusive(' ') {
        events.push(json!({
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}
        }));
    }
    events.extend([
        json!({"type": "content_block_stop", "index": 0}),
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": output_tokens}
        }),
        json!({"type": "message_stop"}),
    ]);
    let events = events
        .iter()
        .map(|event| sse(event["type"].as_str(), event))
        .collect();
    // Cut after the first piece of text.
    deliver(events, 4, shape)
}

/// Sends `frames`, then fails the body: hyper aborts the connection mid-answer.
fn aborted_body(content_type: &'static str, frames: Vec<Vec<u8>>) -> Response {
    use futures_util::StreamExt;
    let frames = futures_util::stream::iter(
        frames
            .into_iter()
            .map(|f| Ok::<Bytes, std::io::Error>(Bytes::from(f))),
    );
    let failure = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err::<Bytes, std::io::Error>(std::io::Error::other("mock cut"))
    });
    (
        StatusCode::OK,
        [("content-type", content_type)],
        Body::from_stream(frames.chain(failure)),
    )
        .into_response()
}

const NOT_A_STATEMENT: &[&str] = &[
    "what", "where", "who", "when", "why", "how", "which", "do", "does", "did", "can", "could",
    "would", "should", "is", "are", "remind", "tell",
];

/// The statements of the `user:` lines: what a good extraction model would keep.
fn extract_facts(conversation: &str) -> Vec<String> {
    let mut facts = Vec::new();
    for line in conversation.lines() {
        let Some(text) = line.strip_prefix("user:") else {
            continue;
        };
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if matches!(c, '.' | '!' | '?') {
                keep_statement(&text[start..i], c == '?', &mut facts);
                start = i + 1;
            }
        }
        keep_statement(&text[start..], false, &mut facts);
    }
    facts
}

fn keep_statement(sentence: &str, question: bool, facts: &mut Vec<String>) {
    let sentence = sentence.trim();
    let first = sentence
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    if question
        || sentence.split_whitespace().count() < 3
        || NOT_A_STATEMENT.contains(&first.as_str())
    {
        return;
    }
    facts.push(sentence.to_string());
}

/// Words that start a sentence without naming anything.
const NOT_A_NAME: &[&str] = &[
    "I", "My", "We", "Our", "The", "A", "An", "He", "She", "They", "His", "Her", "Their", "It",
    "This", "That", "Yes", "No", "Also",
];
const PLACE_MARKERS: &[&str] = &["in", "to", "from", "at", "near"];

/// A knowledge graph as a cognee extraction model would answer it, by rule: runs of
/// capitalised words are entities ("Project Phoenix" is a Project, a name after "in"/"to"/…
/// a Place, anything else a Person), and the words between the first two entities of a
/// statement are their relationship ("Alice works with Bob" → Alice WORKS_WITH Bob).
fn graph_extraction(conversation: &str) -> Value {
    let mut entities: Vec<Value> = Vec::new();
    let mut relationships = Vec::new();
    for sentence in extract_facts(conversation) {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        // (name, type, first word index, last word index)
        let mut found: Vec<(String, &str, usize, usize)> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let clean = |w: &str| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .trim_end_matches("'s")
                    .to_string()
            };
            let is_name = |w: &str, at: usize| {
                let w = clean(w);
                w.chars().next().is_some_and(char::is_uppercase)
                    && !(at == 0 && NOT_A_NAME.contains(&w.as_str()))
            };
            if !is_name(words[i], i) {
                i += 1;
                continue;
            }
            let start = i;
            let mut name = vec![clean(words[i])];
            while i + 1 < words.len()
                && is_name(words[i + 1], i + 1)
                && !words[i].ends_with([',', ';', ':'])
                && !words[i].ends_with("'s")
            {
                i += 1;
                name.push(clean(words[i]));
            }
            let name = name.join(" ");
            let before = start.checked_sub(1).map(|b| words[b].to_lowercase());
            let kind = if name.starts_with("Project ") {
                "Project"
            } else if before.is_some_and(|b| PLACE_MARKERS.contains(&b.as_str())) {
                "Place"
            } else {
                "Person"
            };
            found.push((name, kind, start, i));
            i += 1;
        }
        for (name, kind, _, _) in &found {
            if !entities.iter().any(|e| e["name"] == name.as_str()) {
                entities.push(json!({"name": name, "type": kind}));
            }
        }
        if let [(source, _, _, end), (target, _, start, _), ..] = found.as_slice() {
            let relation: Vec<String> = words[end + 1..*start]
                .iter()
                .map(|w| {
                    w.trim_matches(|c: char| !c.is_alphanumeric())
                        .to_lowercase()
                })
                .filter(|w| !w.is_empty())
                .collect();
            if !relation.is_empty() {
                relationships.push(json!({
                    "source": source, "relation": relation.join("_"), "target": target,
                    "sentence": sentence,
                }));
            }
        }
    }
    json!({"entities": entities, "relationships": relationships})
}

/// An answer that shows which context it was given: the context lines, in order.
fn graph_answer(prompt: &str) -> Value {
    let lines: Vec<&str> = prompt
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    if lines.is_empty() {
        json!({"answer": "I don't know."})
    } else {
        json!({"answer": format!("From memory: {}.", lines.join("; "))})
    }
}

/// Mem0-style decisions: same text → NONE, most words shared → UPDATE (or DELETE for
/// "forget …"), otherwise ADD.
fn update_decisions(input: &str) -> Value {
    let input: Value = serde_json::from_str(input).unwrap_or(Value::Null);
    let existing: Vec<(String, String)> = input["existing"]
        .as_array()
        .map(|xs| {
            xs.iter()
                .map(|x| {
                    (
                        x["id"].as_str().unwrap_or_default().to_string(),
                        x["text"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let squash = |t: &str| -> String {
        t.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let overlapping = |fact: &str| {
        let words = tokens(fact);
        existing.iter().find(|(_, text)| {
            let theirs = tokens(text);
            let shared = words.iter().filter(|w| theirs.contains(w)).count();
            !words.is_empty() && shared * 10 >= words.len() * 6
        })
    };
    let decisions: Vec<Value> = input["new_facts"]
        .as_array()
        .map(|xs| xs.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|fact| {
            let lower = fact.to_lowercase();
            let retract = lower
                .strip_prefix("forget ")
                .or_else(|| lower.strip_prefix("delete "));
            if let Some(rest) = retract {
                if let Some((id, text)) = overlapping(rest) {
                    return json!({"id": id, "text": text, "event": "DELETE"});
                }
            }
            if let Some((id, text)) = existing.iter().find(|(_, t)| squash(t) == squash(fact)) {
                return json!({"id": id, "text": text, "event": "NONE"});
            }
            match overlapping(fact) {
                Some((id, _)) => json!({"id": id, "text": fact, "event": "UPDATE"}),
                None => json!({"id": "new", "text": fact, "event": "ADD"}),
            }
        })
        .collect();
    json!({"memory": decisions})
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:4000".to_string();
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            if let Some(addr) = args.next() {
                listen = addr;
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock gateway: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    let gateway = serve_on(listener).await;
    println!("mock gateway listening on {}", gateway.url());
    std::future::pending::<()>().await;
}
