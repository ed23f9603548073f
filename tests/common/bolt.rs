//! A real Bolt graph server for one test: ArcadeDB, installed by scripts/install-arcadedb.sh,
//! on free ports and a temporary directory. It can be stopped and restarted on the same ports
//! and data, to test what memgate does while the graph server is down.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

const PASSWORD: &str = "memgate-test-password";

pub struct BoltServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bolt_port: u16,
    http_port: u16,
}

fn launcher() -> PathBuf {
    let home = std::env::var("MEMGATE_ARCADEDB_HOME").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/memgate-arcadedb"),
        PathBuf::from,
    );
    let launcher = home.join("bin/arcadedb-server");
    assert!(
        launcher.exists(),
        "{} is missing: run bash scripts/install-arcadedb.sh (scripts/test.sh does)",
        launcher.display()
    );
    launcher
}

impl BoltServer {
    pub async fn start() -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            bolt_port: free_port(),
            http_port: free_port(),
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("bolt://127.0.0.1:{}", self.bolt_port)
    }

    pub fn user(&self) -> &str {
        "root"
    }

    pub fn password(&self) -> &str {
        PASSWORD
    }

    pub fn database(&self) -> &str {
        "memgate"
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("arcadedb.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the server's log, for panic messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(launcher())
            .arg(self.dir.path().join("server"))
            .arg(self.bolt_port.to_string())
            .arg(self.http_port.to_string())
            .arg(PASSWORD)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start ArcadeDB");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Ready when a Cypher query answers over Bolt, not merely when the port is open: ArcadeDB
    /// opens its Bolt port about a second before it has created the database. Alone a server is
    /// ready in about 3 s; four starting at once on two cores take 15-18 s, hence the margin.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "ArcadeDB exited ({status}); its log ends:\n{}",
                    self.log_tail()
                );
            }
            if self.answers().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "ArcadeDB not ready on {} after 90 s; its log ends:\n{}",
                self.url(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn answers(&self) -> bool {
        let Ok(config) = neo4rs::ConfigBuilder::default()
            .uri(self.url())
            .user(self.user())
            .password(self.password())
            .db(self.database())
            .build()
        else {
            return false;
        };
        let attempt = async {
            let graph = neo4rs::Graph::connect(config).await.ok()?;
            let mut rows = graph.execute(neo4rs::query("RETURN 1 AS ok")).await.ok()?;
            rows.next().await.ok()?
        };
        tokio::time::timeout(Duration::from_secs(2), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
    }

    /// Kills the server (its data stays) and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}

impl Drop for BoltServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
