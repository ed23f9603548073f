//! Transparent insertion before a real gateway: an application on the OpenAI Python SDK talks
//! to memgate, memgate to a LiteLLM proxy (scripts/install-litellm.sh), LiteLLM to the mock
//! gateway. Memory works through the real gateway, and LiteLLM sees memgate's own embedding
//! and extraction calls under the service-account key with their tags, apart from the
//! application's traffic (tests/litellm/recorder.py writes down what LiteLLM made of each
//! call).
//!
//! Without the LiteLLM virtualenv the test fails, unless MEMGATE_SKIP_LITELLM=1 says to skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const MASTER_KEY: &str = "sk-litellm-master";
/// The credential LiteLLM holds for the mock (tests/litellm/config.yaml).
const PROVIDER_KEY: &str = "sk-litellm-provider";
/// `internal.api_key` in the harness's memgate config.
const SERVICE_KEY: &str = "sk-internal-service";
const TAGS_TOML: &str = "[internal.headers]\nx-litellm-tags = \"memgate,platform\"\n";

/// The LiteLLM virtualenv, or `None` when it is missing and MEMGATE_SKIP_LITELLM=1.
fn litellm_env() -> Option<PathBuf> {
    let venv = std::env::var_os("MEMGATE_LITELLM_ENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/memgate-litellm"))
        })
        .expect("HOME or MEMGATE_LITELLM_ENV");
    if venv.join("bin/litellm").exists() {
        return Some(venv);
    }
    if std::env::var("MEMGATE_SKIP_LITELLM").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED: no LiteLLM in {} (MEMGATE_SKIP_LITELLM=1)",
            venv.display()
        );
        return None;
    }
    panic!(
        "{} is missing: run `bash scripts/install-litellm.sh`, \
         or set MEMGATE_SKIP_LITELLM=1 to skip this test",
        venv.display()
    );
}

/// A LiteLLM proxy in front of `upstream`, killed on drop.
struct LiteLlm {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl LiteLlm {
    async fn start(venv: &Path, upstream: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/litellm/config.yaml");
        let log = std::fs::File::create(dir.path().join("litellm.log")).expect("log file");
        let child = Command::new(venv.join("bin/litellm"))
            .args([
                "--config",
                config,
                "--host",
                "127.0.0.1",
                "--num_workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            // LiteLLM writes nothing of its own into the work tree.
            .current_dir(dir.path())
            .env("MOCK_API_BASE", format!("{upstream}/v1"))
            .env("LITELLM_MASTER_KEY", MASTER_KEY)
            .env(
                "MEMGATE_LITELLM_KEYS",
                format!("app={ACME_MEMBER},memgate-service={SERVICE_KEY}"),
            )
            .env("LITELLM_RECORD_FILE", dir.path().join("calls.jsonl"))
            // The model price list ships in the package; fetching a fresh one would wait on a
            // network this machine does not have.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start litellm");
        let mut litellm = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        litellm.wait_ready().await;
        litellm
    }

    async fn wait_ready(&mut self) {
        // Importing LiteLLM takes seconds, more while other tests compete for the cores.
        let deadline = Instant::now() + Duration::from_secs(120);
        let http = reqwest::Client::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("litellm exited early ({status}):\n{}", self.log());
            }
            let live = http
                .get(format!("{}/health/liveliness", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if live {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "litellm not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("litellm.log")).unwrap_or_default()
    }

    /// What the recorder callback wrote, one object per call LiteLLM finished.
    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `done` holds for the recorded calls (LiteLLM logs after answering).
    async fn wait_for_calls(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "LiteLLM recorded only {calls:#?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- litellm log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One turn of the SDK application through memgate; returns the reply it got.
async fn sdk_turn(mg: &Memgate, memory_id: &str, text: &str, stream: bool, store: bool) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/litellm/sdk_turn.py");
    let (proxy, memory_id, text) = (mg.proxy.clone(), memory_id.to_string(), text.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .arg(text)
            .env("MEMGATE_URL", proxy)
            .env("MEMGATE_KEY", ACME_MEMBER)
            .env("MEMORY_ID", memory_id)
            .env("STREAM", if stream { "1" } else { "0" })
            .env("STORE", if store { "1" } else { "0" })
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK turn failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).expect("SDK turn output");
    answer["reply"].as_str().expect("reply").to_string()
}

fn tags(call: &Value) -> Vec<&str> {
    call["tags"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_internal(call: &Value) -> bool {
    !call["memgate_purpose"].is_null()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_works_through_litellm_which_sees_tagged_internal_calls() {
    let Some(venv) = litellm_env() else {
        return;
    };
    let mock = mock_gateway::spawn().await;
    let litellm = LiteLlm::start(&venv, &mock.url()).await;
    let mg = Memgate::start_with_toml(&litellm.url, TAGS_TOML, &[]).await;
    let memory_id = "litellm-user";
    assert_eq!(mg.create_session(ACME_ADMIN, memory_id).await.status(), 201);

    // Turn 1 states facts; LiteLLM relays it and the answer, memgate stores the turn.
    let statement = "I live in Lisbon and I work on the Atlas project.";
    let reply = sdk_turn(&mg, memory_id, statement, false, true).await;
    assert_eq!(reply, format!("Echo: {statement}"));
    let first = last_upstream_chat(&mock);
    assert!(first.get("memory_id").is_none() && first.get("store_memory").is_none());
    mg.wait_for_fact(ACME_MEMBER, memory_id, "Lisbon").await;

    // Turn 2, plain then streamed: the remembered fact reached the mock behind LiteLLM.
    for stream in [false, true] {
        let question = "Which city do I live in?";
        let reply = sdk_turn(&mg, memory_id, question, stream, false).await;
        assert_eq!(reply, format!("Echo: {question}"), "stream={stream}");
        let upstream = last_upstream_chat(&mock);
        assert_eq!(upstream["stream"].as_bool().unwrap_or(false), stream);
        assert!(upstream.get("memory_id").is_none(), "{upstream}");
        let system = upstream["messages"][0]["content"]
            .as_str()
            .unwrap_or_default();
        assert!(
            system.starts_with(&format!("[Past Context for ID: {memory_id}]\n- ")),
            "stream={stream}: {upstream}"
        );
        assert!(system.contains("I live in Lisbon"), "{system}");
    }

    // What LiteLLM saw: the application's three chats under the application's key, without
    // memgate's tags; memgate's embeddings and extraction under the service key, tagged.
    let calls = litellm
        .wait_for_calls(|calls| {
            let app = calls.iter().filter(|c| !is_internal(c)).count();
            let purposes: Vec<&str> = calls
                .iter()
                .filter_map(|c| c["memgate_purpose"].as_str())
                .collect();
            app >= 3
                && ["extraction", "fact_embedding", "query_embedding"]
                    .iter()
                    .all(|p| purposes.contains(p))
        })
        .await;
    for call in &calls {
        assert_eq!(call["status"], "success", "{call}");
    }
    let app: Vec<&Value> = calls.iter().filter(|c| !is_internal(c)).collect();
    assert_eq!(app.len(), 3, "{app:#?}");
    // Logged asynchronously, so not necessarily in order.
    let streamed = app.iter().filter(|c| c["stream"] == true).count();
    assert_eq!(streamed, 1, "{app:#?}");
    for call in &app {
        assert_eq!(call["call_type"], "acompletion", "{call}");
        assert_eq!(call["model"], "mock-model", "{call}");
        assert_eq!(call["user_api_key_alias"], "app", "{call}");
        assert_eq!(call["user_api_key_hash"], sha256_hex(ACME_MEMBER), "{call}");
        let tags = tags(call);
        assert!(
            !tags.contains(&"memgate") && !tags.contains(&"platform"),
            "{call}"
        );
    }
    let internal: Vec<&Value> = calls.iter().filter(|c| is_internal(c)).collect();
    for call in &internal {
        assert_eq!(call["user_api_key_alias"], "memgate-service", "{call}");
        assert_eq!(call["user_api_key_hash"], sha256_hex(SERVICE_KEY), "{call}");
        let tags = tags(call);
        assert!(
            tags.contains(&"memgate") && tags.contains(&"platform"),
            "{call}"
        );
        assert_eq!(call["memgate_org"], "acme", "{call}");
        let (call_type, model) = match call["memgate_purpose"].as_str().unwrap() {
            "extraction" | "memory_update" => ("acompletion", "gpt-4o-mini"),
            _ => ("aembedding", "text-embedding-3-small"),
        };
        assert_eq!(call["call_type"], call_type, "{call}");
        assert_eq!(call["model"], model, "{call}");
    }

    // LiteLLM spoke to the mock with its own credential: neither the application's key nor
    // the service key went past the gateway.
    let requests = mock.requests();
    assert!(requests.iter().any(|r| r.path == "/v1/embeddings"));
    assert!(!mock.internal_requests().is_empty());
    for r in &requests {
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            auth,
            Some(format!("Bearer {PROVIDER_KEY}").as_str()),
            "{r:?}"
        );
    }

    // The usage LiteLLM relayed is memgate's platform spend, by kind.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, report) = mg.api("GET", Some(ACME_ADMIN), "/memory/usage", None).await;
        assert_eq!(status, 200, "{report}");
        let rows = report["rows"].as_array().cloned().unwrap_or_default();
        let kinds: Vec<&str> = rows.iter().filter_map(|r| r["kind"].as_str()).collect();
        if ["extraction", "fact_embedding", "query_embedding"]
            .iter()
            .all(|k| kinds.contains(k))
        {
            assert!(
                rows.iter()
                    .all(|r| r["prompt_tokens"].as_i64().unwrap_or(0) > 0),
                "{report}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An SSE stream's `data:` payloads, as JSON.
fn sse_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The Responses and Messages routes through LiteLLM: LiteLLM serves `/v1/responses` by
/// calling the mock's Responses route, and `/v1/messages` for an OpenAI-compatible model by
/// translating to a chat completion. Either way the remembered fact reaches the mock, and the
/// answer comes back whole in the client's API shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_and_messages_remember_through_litellm() {
    let Some(venv) = litellm_env() else {
        return;
    };
    let mock = mock_gateway::spawn().await;
    let litellm = LiteLlm::start(&venv, &mock.url()).await;
    let mg = Memgate::start_with_toml(&litellm.url, TAGS_TOML, &[]).await;
    let memory_id = "litellm-shapes";
    assert_eq!(mg.create_session(ACME_ADMIN, memory_id).await.status(), 201);
    let post = |path: &str, body: Value| {
        mg.http
            .post(format!("{}{path}", mg.proxy))
            .bearer_auth(ACME_MEMBER)
            .header("x-memgate-memory-id", memory_id)
            .json(&body)
            .send()
    };

    let statement = "I live in Lisbon and I work on the Atlas project.";
    let stored = post(
        "/v1/messages",
        serde_json::json!({"model": "mock-model", "max_tokens": 64, "messages": [{"role": "user", "content": statement}]}),
    )
    .await
    .unwrap();
    assert_eq!(stored.status(), 200);
    assert!(stored.headers().contains_key("x-memgate-turn"));
    let answer: Value = stored.json().await.unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["content"][0]["text"], format!("Echo: {statement}"));
    mg.wait_for_fact(ACME_MEMBER, memory_id, "Lisbon").await;

    let question = "Which city do I live in?";
    for (path, stream) in [
        ("/v1/responses", false),
        ("/v1/responses", true),
        ("/v1/messages", true),
    ] {
        let body = match path {
            "/v1/responses" => {
                serde_json::json!({"model": "mock-model", "input": question, "stream": stream, "store_memory": false})
            }
            _ => {
                serde_json::json!({"model": "mock-model", "max_tokens": 64, "stream": stream, "store_memory": false,
                    "messages": [{"role": "user", "content": question}]})
            }
        };
        let response = post(path, body).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-memgate-memory"], "injected", "{path}");
        let text = response.text().await.unwrap();
        let reply = match (path, stream) {
            ("/v1/responses", false) => {
                let v: Value = serde_json::from_str(&text).unwrap();
                v["output"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
            ("/v1/responses", true) => {
                let events = sse_data(&text);
                assert!(
                    events.iter().any(|e| e["type"] == "response.completed"),
                    "{text}"
                );
                events
                    .iter()
                    .filter(|e| e["type"] == "response.output_text.delta")
                    .filter_map(|e| e["delta"].as_str())
                    .collect()
            }
            _ => {
                let events = sse_data(&text);
                assert!(events.iter().any(|e| e["type"] == "message_stop"), "{text}");
                events
                    .iter()
                    .filter_map(|e| e["delta"]["text"].as_str())
                    .collect()
            }
        };
        assert_eq!(
            reply,
            format!("Echo: {question}"),
            "{path} stream={stream}: {text}"
        );
        // What reached the mock behind LiteLLM carries the remembered fact.
        let upstream = mock
            .requests()
            .into_iter()
            .rfind(|r| !r.is_internal() && r.method == "POST" && r.path != "/v1/embeddings")
            .expect("a forwarded request")
            .body_json();
        assert!(upstream.get("memory_id").is_none(), "{upstream}");
        assert!(
            upstream
                .to_string()
                .contains(&format!("[Past Context for ID: {memory_id}]")),
            "{path}: {upstream}"
        );
        assert!(
            upstream.to_string().contains("I live in Lisbon"),
            "{upstream}"
        );
    }
}
