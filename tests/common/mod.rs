//! Black-box harness: the real memgate binary on real sockets, in front of the project's mock
//! gateway (run in-process so a test can read what the upstream received).

#![allow(dead_code)]

#[path = "../../examples/mock_gateway.rs"]
#[allow(dead_code)]
pub mod mock_gateway;

pub mod bolt;
pub mod fault_link;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use mock_gateway::MockGateway;

pub const ACME_ADMIN: &str = "sk-acme-admin";
pub const ACME_MEMBER: &str = "sk-acme-member";
pub const GLOBEX_ADMIN: &str = "sk-globex-admin";
pub const GLOBEX_MEMBER: &str = "sk-globex-member";

/// Starts the binary on fresh ports with the test config in `dir`: the process, the proxy's
/// URL and the admin listener's.
fn launch(
    dir: &std::path::Path,
    storage_url: &str,
    upstream: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> (Child, String, String) {
    let proxy_port = free_port();
    let admin_port = free_port();
    let journal = dir.join("turn-journal.jsonl").display().to_string();
    let config = format!(
        r#"
[proxy]
listen = "127.0.0.1:{proxy_port}"
threads = 2
[admin]
listen = "127.0.0.1:{admin_port}"
[upstream]
url = "{upstream}"
[storage]
url = "{storage_url}"
[memory]
retrieval_budget_ms = 2000
[embeddings]
dimensions = 256
[worker]
poll_interval_ms = 50
backoff_base_ms = 50
journal_path = "{journal}"
[internal]
api_key = "sk-internal-service"
[[auth.keys]]
key = "{ACME_ADMIN}"
org = "acme"
role = "admin"
[[auth.keys]]
key = "{ACME_MEMBER}"
org = "acme"
role = "member"
[[auth.keys]]
key = "{GLOBEX_ADMIN}"
org = "globex"
role = "admin"
[[auth.keys]]
key = "{GLOBEX_MEMBER}"
org = "globex"
role = "member"
{extra}
"#,
    );
    let config_path = dir.join("memgate.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = std::fs::File::create(dir.join("memgate.log")).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_memgate"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env("MEMGATE_LOG", "info")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log));
    for (k, v) in env {
        command.env(k, v);
    }
    (
        command.spawn().expect("start memgate"),
        format!("http://127.0.0.1:{proxy_port}"),
        format!("http://127.0.0.1:{admin_port}"),
    )
}

/// Whether process `pid` holds the listening socket of `url` (`http://127.0.0.1:PORT`), from
/// /proc: the kernel's table of IPv4 sockets, and the process's open files.
fn listens_on(pid: u32, url: &str) -> bool {
    let Some(port) = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    // Columns: sl, local_address, rem_address, st (0A = LISTEN), …, inode (the tenth).
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() > 9 && c[1] == local && c[3] == "0A")
        .map(|c| format!("socket:[{}]", c[9]))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// How a start went: up, or beaten to one of its ports.
enum Ready {
    Up,
    PortTaken,
}

pub struct Memgate {
    child: Child,
    pub proxy: String,
    pub admin: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The storage URL this instance runs on.
    pub storage_url: String,
    /// Kept so the database lives as long as the instance.
    _database: Option<std::sync::Arc<TestDatabase>>,
}

/// Which store the black-box tests run on: `MEMGATE_TEST_STORE=postgres` runs the same tests
/// on Postgres + pgvector (scripts/test.sh runs them both ways).
pub fn test_store() -> String {
    std::env::var("MEMGATE_TEST_STORE").unwrap_or_else(|_| "sqlite".into())
}

/// The server the Postgres tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("MEMGATE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database for one test, dropped with it.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> std::sync::Arc<Self> {
        let server = postgres_server_url();
        let name = format!("memgate_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
            .await
            .expect("connect to the test Postgres server (bash scripts/install-postgres.sh)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        admin = sqlx::PgPool::connect(&format!("{server}/{name}"))
            .await
            .unwrap();
        sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
            .execute(&admin)
            .await
            .expect("pgvector (bash scripts/install-postgres.sh)");
        admin.close().await;
        std::sync::Arc::new(Self {
            url: format!("{server}/{name}"),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = postgres_server_url();
        let _ = Command::new("psql")
            .arg(format!("{server}/postgres"))
            .args([
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A port that was free a moment ago. Pingora binds its listener itself, so the port is
/// picked here and handed over; the window for a clash is the few milliseconds until start.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Memgate {
    pub async fn start(upstream: &str) -> Self {
        Self::start_with(upstream, &[]).await
    }

    pub async fn start_with(upstream: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_toml(upstream, "", env).await
    }

    /// Starts with `extra` appended to the test config (TOML tables such as
    /// `[auth.trusted_header]`), on the store [`test_store`] names.
    pub async fn start_with_toml(upstream: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let database = match test_store().as_str() {
            "postgres" => Some(TestDatabase::create().await),
            _ => None,
        };
        Self::start_on(upstream, database, extra, env).await
    }

    /// Starts on `database` (a shared Postgres database), or on a fresh SQLite file.
    pub async fn start_on(
        upstream: &str,
        database: Option<std::sync::Arc<TestDatabase>>,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage_url = match &database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", dir.path().join("memgate.db").display()),
        };
        let (child, proxy, admin) = launch(dir.path(), &storage_url, upstream, extra, env);
        let mut memgate = Self {
            child,
            proxy,
            admin,
            dir,
            http: reqwest::Client::new(),
            storage_url,
            _database: database,
        };
        // A port picked free can be taken before memgate binds it (by another test's listener
        // on port 0): memgate then says so, and starts again on other ports.
        for _ in 0..4 {
            match memgate.wait_ready().await {
                Ready::Up => return memgate,
                Ready::PortTaken => memgate.kill().await,
            }
            (memgate.child, memgate.proxy, memgate.admin) = launch(
                memgate.dir.path(),
                &memgate.storage_url,
                upstream,
                extra,
                env,
            );
        }
        panic!(
            "memgate found its ports taken four times:\n{}",
            memgate.log()
        );
    }

    async fn wait_ready(&mut self) -> Ready {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.contains("is in use, will try again") {
                return Ready::PortTaken;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                if log.contains("cannot listen on") && log.contains("in use") {
                    return Ready::PortTaken;
                }
                panic!("memgate exited early ({status}):\n{log}");
            }
            // Answering is not enough: whoever took a port would answer too.
            let pid = self.child.id();
            let admin_ok = listens_on(pid, &self.admin)
                && self
                    .http
                    .get(format!("{}/readyz", self.admin))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            let proxy_ok = listens_on(pid, &self.proxy);
            if admin_ok && proxy_ok {
                return Ready::Up;
            }
            assert!(
                Instant::now() < deadline,
                "memgate not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGKILL: the process gets no chance to finish anything.
    pub async fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as Kubernetes does when it stops a pod.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// The exit status, once the process has exited within `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("memgate.log")).unwrap_or_default()
    }

    /// Platform spend recorded so far: (org, purpose, prompt tokens), by org and purpose.
    pub async fn usage_by_purpose(&self) -> Vec<(String, String, i64)> {
        let sql = "SELECT org_id, purpose, CAST(SUM(prompt_tokens) AS BIGINT) AS tokens
                   FROM usage GROUP BY org_id, purpose ORDER BY org_id, purpose";
        use sqlx::Row;
        if self.storage_url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&self.storage_url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.iter()
                .map(|r| (r.get("org_id"), r.get("purpose"), r.get("tokens")))
                .collect()
        } else {
            let pool = sqlx::SqlitePool::connect(&self.storage_url).await.unwrap();
            let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows.iter()
                .map(|r| (r.get("org_id"), r.get("purpose"), r.get("tokens")))
                .collect()
        }
    }

    /// A management API call: status and JSON body (`Null` when there is none).
    pub async fn api(
        &self,
        method: &str,
        key: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.admin));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_session(&self, key: &str, name: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/memory/session/create", self.admin))
            .bearer_auth(key)
            .json(&json!({"session_name": name, "engine_name": "mem0"}))
            .send()
            .await
            .expect("create session")
    }

    /// Creates a session of `engine` and asserts it was created.
    pub async fn create_engine_session(&self, key: &str, name: &str, engine: &str) {
        let (status, body) = self
            .api(
                "POST",
                Some(key),
                "/memory/session/create",
                Some(json!({"session_name": name, "engine_name": engine})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.chat_with_headers(key, &[], body).await
    }

    /// A chat request with extra headers, e.g. a mock gateway fault control.
    pub async fn chat_with_headers(
        &self,
        key: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v1/chat/completions", self.proxy))
            .bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.json(&body).send().await.expect("chat request")
    }

    pub async fn facts(&self, key: &str, memory_id: &str) -> Vec<String> {
        self.fact_entries(key, memory_id)
            .await
            .into_iter()
            .map(|(_, text)| text)
            .collect()
    }

    /// The session's facts as `(id, text)`, oldest first.
    pub async fn fact_entries(&self, key: &str, memory_id: &str) -> Vec<(String, String)> {
        let v: Value = self
            .http
            .get(format!("{}/memory/session/{memory_id}/facts", self.admin))
            .bearer_auth(key)
            .send()
            .await
            .expect("facts")
            .json()
            .await
            .expect("facts json");
        v["facts"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| Some((f["id"].as_str()?.into(), f["text"].as_str()?.into())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the session holds a fact containing `needle`; panics after 20 s.
    pub async fn wait_for_fact(&self, key: &str, memory_id: &str, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let facts = self.facts(key, memory_id).await;
            if facts.iter().any(|f| f.contains(needle)) {
                return facts;
            }
            assert!(
                Instant::now() < deadline,
                "no fact containing {needle:?} in {memory_id}: {facts:?}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Memgate {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- memgate log ----\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn user_chat(memory_id: Option<&str>, text: &str, stream: bool) -> Value {
    let mut body = json!({
        "model": "mock-model",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": text}
        ],
        "stream": stream,
    });
    if let Some(id) = memory_id {
        body["memory_id"] = json!(id);
    }
    body
}

/// The Python interpreter of the project's virtualenv (scripts/install-deps.sh makes it),
/// which has the OpenAI SDK and the OpenAPI validator.
pub fn python() -> PathBuf {
    let path = std::env::var_os("MEMGATE_PYTHON_ENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/memgate-python"))
        })
        .expect("HOME or MEMGATE_PYTHON_ENV")
        .join("bin/python");
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/install-deps.sh` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// What the SDK driver scripts in tests/python read: memgate, the member key, the mock (to
/// read what the upstream received), the session and whether to stream.
pub fn sdk_script_env(
    mg: &Memgate,
    mock: &MockGateway,
    memory_id: &str,
    stream: bool,
) -> Vec<(&'static str, String)> {
    vec![
        ("MEMGATE_URL", mg.proxy.clone()),
        ("MEMGATE_KEY", ACME_MEMBER.to_string()),
        ("MOCK_URL", mock.url()),
        ("MEMORY_ID", memory_id.to_string()),
        ("STREAM", if stream { "1" } else { "0" }.to_string()),
    ]
}

/// Runs `script` (under tests/) with the project's Python, asserts that it succeeded, and
/// returns the JSON lines it printed.
pub async fn python_json_lines(
    script: &str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
) -> Vec<Value> {
    let mut command = Command::new(python());
    command
        .arg(format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR")))
        .args(args)
        .envs(env);
    json_lines_of(command, script, String::new).await
}

/// Runs `command` (a driver script, named `what`), asserts that it succeeded — the failure
/// message ends with `context()` — and returns the JSON lines it printed.
pub async fn json_lines_of(
    mut command: Command,
    what: &str,
    context: impl FnOnce() -> String,
) -> Vec<Value> {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("driver task")
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        context()
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what} printed {l:?}: {e}")))
        .collect()
}

/// The system message the upstream received in its last (non-internal) chat request.
pub fn last_upstream_chat(mock: &MockGateway) -> Value {
    mock.chat_requests()
        .last()
        .expect("the upstream received a chat request")
        .body_json()
}
