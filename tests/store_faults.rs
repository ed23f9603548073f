//! The memory store failing under live traffic, for real: memgate reaches Postgres through a
//! TCP link the test cuts or stalls. Requests keep being served within the retrieval budget
//! (without context, flagged), turns finished meanwhile wait in the journal, and everything
//! recovers by itself once the store is back. Always on Postgres: the embedded store has no
//! connection to break.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::fault_link::FaultLink;
use common::{user_chat, Memgate, TestDatabase, ACME_ADMIN, ACME_MEMBER};
use serde_json::json;

const BUDGET_MS: &str = "300";

/// memgate on a fresh Postgres database reached through a fault link.
async fn start_behind_link(upstream: &str, env: &[(&str, &str)]) -> (Memgate, FaultLink) {
    let database = TestDatabase::create().await;
    let server: url_parts::Server = url_parts::parse(&common::postgres_server_url());
    let link = FaultLink::start(server.addr).await;
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        server.user, link.port, database.name
    );
    let mut all_env: Vec<(&str, &str)> = vec![
        ("MEMGATE_STORAGE__URL", &url),
        ("MEMGATE_MEMORY__RETRIEVAL_BUDGET_MS", BUDGET_MS),
    ];
    all_env.extend_from_slice(env);
    let mg = Memgate::start_on(upstream, Some(database), "", &all_env).await;
    (mg, link)
}

mod url_parts {
    use super::SocketAddr;

    pub struct Server {
        pub user: String,
        pub addr: SocketAddr,
    }

    /// `postgres://user@host:port` (the test server's URL has no password or path).
    pub fn parse(url: &str) -> Server {
        let rest = url.trim_start_matches("postgres://");
        let (user, host) = rest.split_once('@').expect("user@host");
        let host = host.trim_end_matches('/');
        let host = if host.starts_with("localhost") {
            host.replacen("localhost", "127.0.0.1", 1)
        } else {
            host.to_string()
        };
        Server {
            user: user.to_string(),
            addr: host.parse().expect("host:port"),
        }
    }
}

async fn memory_header(mg: &Memgate, text: &str, stream: bool) -> (String, Duration) {
    let started = Instant::now();
    let response = mg
        .chat(ACME_MEMBER, user_chat(Some("ops"), text, stream))
        .await;
    assert_eq!(response.status(), 200, "{}", mg.log());
    let header = response.headers()["x-memgate-memory"]
        .to_str()
        .unwrap()
        .to_string();
    let _ = response.bytes().await.unwrap();
    (header, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_hangs_or_drops_costs_a_request_its_budget_then_recovers() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, link) = start_behind_link(&mock.url(), &[]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "ops").await.status(), 201);
    let (status, _) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": "ops", "messages": [{"role": "user", "content": "My team is in Singapore."}]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        memory_header(&mg, "Where is my team?", false).await.0,
        "injected"
    );

    for (fault, apply) in [
        ("stalled", FaultLink::stall as fn(&FaultLink)),
        ("cut", FaultLink::cut),
    ] {
        apply(&link);
        for stream in [false, true] {
            let (header, took) = memory_header(&mg, "Where is my team?", stream).await;
            assert_eq!(header, "degraded", "store {fault}");
            // The budget (300 ms) plus the upstream call, with room for a loaded machine.
            assert!(
                took < Duration::from_millis(2500),
                "store {fault}: {took:?}"
            );
        }
        // Passing traffic is untouched, and the proxy stays in rotation.
        let models = mg
            .http
            .get(format!("{}/v1/models", mg.proxy))
            .bearer_auth(ACME_MEMBER)
            .send()
            .await
            .unwrap();
        assert_eq!(models.status(), 200);
        let ready = mg
            .http
            .get(format!("{}/readyz", mg.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 200);
        assert_eq!(
            ready.json::<serde_json::Value>().await.unwrap()["status"],
            "degraded"
        );
        link.restore();
        // Recovery needs no restart: the pool reconnects.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if memory_header(&mg, "Where is my team?", false).await.0 == "injected" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no recovery after the store was {fault}\n{}",
                mg.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(mg.metric("memgate_retrieval_degraded_total").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_finished_while_the_store_is_down_wait_in_the_journal_even_across_a_crash() {
    let mock = common::mock_gateway::spawn().await;
    let keep = tempfile::tempdir().unwrap();
    let journal = keep.path().join("turns.jsonl").display().to_string();
    let (mut mg, link) =
        start_behind_link(&mock.url(), &[("MEMGATE_WORKER__JOURNAL_PATH", &journal)]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "ops").await.status(), 201);

    // Streams that start while the store is up and end after it went away.
    let slow = [("x-mock-chunk-delay-ms", "150")];
    let mut streams = Vec::new();
    let mut turns = Vec::new();
    for city in ["Lisbon", "Porto"] {
        let response = mg
            .chat_with_headers(
                ACME_MEMBER,
                &slow,
                user_chat(Some("ops"), &format!("Our office is in {city}."), true),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-memgate-memory"], "empty");
        turns.push(
            response.headers()["x-memgate-turn"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        streams.push(response);
    }
    link.cut();
    for response in streams {
        let body = response.text().await.unwrap();
        assert!(body.contains("[DONE]"), "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while mg.metric("memgate_turns_journaled_total").await < 2.0 {
        assert!(
            Instant::now() < deadline,
            "turns not journaled\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mg.metric("memgate_journal_turns").await, 2.0);
    // The backlog is visible in the admin API while the store is down, to the org's admins.
    let (status, backlog) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/outbox/journal", None)
        .await;
    assert_eq!(
        (status, backlog["journaled_turns"].as_u64()),
        (200, Some(2))
    );
    let (status, other) = mg
        .api(
            "GET",
            Some(common::GLOBEX_ADMIN),
            "/memory/outbox/journal",
            None,
        )
        .await;
    assert_eq!((status, other["journaled_turns"].as_u64()), (200, Some(0)));
    let (status, _) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/outbox/journal", None)
        .await;
    assert_eq!(status, 403);
    // Each turn's receipt says where it is, to any key of the org, while the store is down.
    for turn in &turns {
        let (status, receipt) = mg
            .api(
                "GET",
                Some(ACME_MEMBER),
                &format!("/memory/turns/{turn}"),
                None,
            )
            .await;
        assert_eq!(
            (status, receipt["state"].as_str()),
            (200, Some("journaled")),
            "{receipt}"
        );
        assert_eq!(receipt["memory_id"], "ops");
    }

    // A crash now loses nothing: the journal is on disk.
    mg.kill().await;
    link.restore();
    let restarted = Memgate::start_with(
        &mock.url(),
        &[
            ("MEMGATE_STORAGE__URL", &mg.storage_url),
            ("MEMGATE_WORKER__JOURNAL_PATH", &journal),
        ],
    )
    .await;
    restarted.wait_for_fact(ACME_MEMBER, "ops", "Lisbon").await;
    let facts = restarted.wait_for_fact(ACME_MEMBER, "ops", "Porto").await;
    assert_eq!(facts.len(), 2, "{facts:?}");
    assert_eq!(restarted.metric("memgate_journal_turns").await, 0.0);
    assert_eq!(restarted.metric("memgate_turns_replayed_total").await, 2.0);
    assert!(!std::path::Path::new(&journal).exists());
    for turn in &turns {
        let path = format!("/memory/turns/{turn}");
        // Its facts are readable a moment before its receipt is written.
        let deadline = Instant::now() + Duration::from_secs(10);
        let receipt = loop {
            let (status, receipt) = restarted.api("GET", Some(ACME_MEMBER), &path, None).await;
            if status == 200 && receipt["state"] == "stored" {
                break receipt;
            }
            assert!(Instant::now() < deadline, "{status} {receipt}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            receipt["facts"]["added"].as_array().map(Vec::len),
            Some(1),
            "{receipt}"
        );
        let (status, _) = restarted
            .api("GET", Some(common::GLOBEX_ADMIN), &path, None)
            .await;
        assert_eq!(status, 404, "another org's turn");
    }
}

/// What a burst of requests during an outage left to be stored.
struct Outage {
    /// Texts of the turns that must be remembered.
    kept: Vec<String>,
    /// Requests answered without memory because the store could not be asked.
    degraded: usize,
    /// Whether the turn for the session that does not exist was kept (its existence could
    /// not be checked) rather than refused with 404.
    ghost_kept: bool,
    /// That turn's id (`x-memgate-turn`), when kept.
    ghost_turn: Option<String>,
}

/// Sends `turns` chat requests for session `ops` (every other one streamed), one with
/// `store_memory: false` and one for a session that does not exist.
async fn turns_during_an_outage(mg: &Memgate, turns: usize) -> Outage {
    let mut outage = Outage {
        kept: Vec::new(),
        degraded: 0,
        ghost_kept: false,
        ghost_turn: None,
    };
    for i in 0..turns {
        let text = format!("Shipment s{i} leaves from dock d{i}.");
        let response = mg
            .chat(ACME_MEMBER, user_chat(Some("ops"), &text, i % 2 == 0))
            .await;
        assert_eq!(response.status(), 200, "{}", mg.log());
        let memory = response.headers()["x-memgate-memory"].clone();
        let body = response.text().await.unwrap();
        assert!(body.contains("Echo"), "{body}");
        outage.degraded += usize::from(memory == "degraded");
        outage.kept.push(format!("s{i}"));
    }
    let mut unstored = user_chat(Some("ops"), "Parcel p9 is confidential.", false);
    unstored["store_memory"] = json!(false);
    let unstored = mg.chat(ACME_MEMBER, unstored).await;
    assert_eq!(unstored.status(), 200);
    assert!(
        unstored.headers().get("x-memgate-turn").is_none(),
        "not to be stored"
    );
    // Its existence cannot be checked either: answered, kept, and dropped once it can.
    let ghost = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("ghost"), "Crate c7 is blue.", false),
        )
        .await;
    assert!(matches!(ghost.status().as_u16(), 200 | 404));
    outage.ghost_kept = ghost.status() == 200;
    outage.ghost_turn = ghost
        .headers()
        .get("x-memgate-turn")
        .map(|t| t.to_str().unwrap().to_string());
    assert_eq!(outage.ghost_turn.is_some(), outage.ghost_kept);
    outage
}

/// After the outage: every kept turn is stored, the unstored one is not, the unknown
/// session's turn is dropped (and counted), and the journal is empty.
async fn all_kept_turns_are_stored(mg: &Memgate, outage: &Outage) {
    for needle in &outage.kept {
        mg.wait_for_fact(ACME_MEMBER, "ops", needle).await;
    }
    let dropped = if outage.ghost_kept { 1.0 } else { 0.0 };
    let deadline = Instant::now() + Duration::from_secs(20);
    while mg.metric("memgate_journal_turns").await > 0.0
        || mg.metric("memgate_journal_turns_dropped_total").await < dropped
    {
        assert!(
            Instant::now() < deadline,
            "journal not replayed\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let facts = mg.facts(ACME_MEMBER, "ops").await;
    assert!(!facts.iter().any(|f| f.contains("p9")), "{facts:?}");
    assert_eq!(
        mg.metric("memgate_journal_turns_dropped_total").await,
        dropped
    );
    assert_eq!(mg.metric("memgate_turns_lost_total").await, 0.0);
    let (status, _) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/ghost", None)
        .await;
    assert_eq!(status, 404);
    // The dropped turn's receipt says why.
    if let Some(turn) = &outage.ghost_turn {
        let path = format!("/memory/turns/{turn}");
        let (status, receipt) = mg.api("GET", Some(ACME_MEMBER), &path, None).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["state"], "dropped", "{receipt}");
        assert_eq!(receipt["reason"], "the session does not exist");
        assert_eq!(receipt["memory_id"], "ghost");
    }
}

/// A session lookup that fails or runs out of budget used to drop the turn: the client held a
/// complete answer that was never remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_whose_session_could_not_be_looked_up_are_stored_once_postgres_is_back() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, link) = start_behind_link(&mock.url(), &[]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "ops").await.status(), 201);
    link.cut();
    let outage = turns_during_an_outage(&mg, 4).await;
    assert_eq!(outage.degraded, 4);
    assert!(outage.ghost_kept);
    assert!(mg.metric("memgate_turns_journaled_total").await >= 5.0);
    link.restore();
    all_kept_turns_are_stored(&mg, &outage).await;
}

/// The embedded store has no connection to cut; it is unavailable while another process holds
/// its write lock and memgate's one connection waits on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_whose_session_could_not_be_looked_up_are_stored_once_sqlite_is_free() {
    use sqlx::Connection;

    let mock = common::mock_gateway::spawn().await;
    let env = [
        ("MEMGATE_MEMORY__RETRIEVAL_BUDGET_MS", BUDGET_MS),
        ("MEMGATE_STORAGE__MAX_CONNECTIONS", "1"),
    ];
    let mg = Memgate::start_on(&mock.url(), None, "", &env).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "ops").await.status(), 201);
    let mut lock = sqlx::SqliteConnection::connect(&mg.storage_url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
    // The worker's next claim now waits on the lock, holding memgate's one connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outage = turns_during_an_outage(&mg, 4).await;
    assert!(
        outage.degraded >= 1,
        "no lookup failed: the lock did not bite"
    );
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    all_kept_turns_are_stored(&mg, &outage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_turn_is_written_redacted() {
    const EMAIL: &str = "bob.jones@example.org";
    const SECRET: &str = "ghp_R8kLm2Qx7Vz4Tn9Wb3Yc6Hd1Jf5Gs0Ap2Ek8";
    let mock = common::mock_gateway::spawn().await;
    let keep = tempfile::tempdir().unwrap();
    let journal = keep.path().join("turns.jsonl");
    let journal_path = journal.display().to_string();
    let (mg, link) = start_behind_link(
        &mock.url(),
        &[("MEMGATE_WORKER__JOURNAL_PATH", &journal_path)],
    )
    .await;
    let (status, body) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/create",
            Some(json!({"session_name": "vault", "engine_name": "mem0", "config": {"redaction": {"email": true}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let slow = [("x-mock-chunk-delay-ms", "150")];
    let text = format!("Write to {EMAIL}, token {SECRET}, about the Oslo office.");
    let response = mg
        .chat_with_headers(ACME_MEMBER, &slow, user_chat(Some("vault"), &text, true))
        .await;
    assert_eq!(response.status(), 200);
    link.cut();
    let answer = response.text().await.unwrap();
    assert!(answer.contains("[DONE]"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while mg.metric("memgate_turns_journaled_total").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "turn not journaled\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = std::fs::read_to_string(&journal).unwrap();
    assert!(
        written.contains("[email]") && written.contains("[secret]"),
        "{written}"
    );
    assert!(
        !written.contains(EMAIL) && !written.contains(SECRET),
        "{written}"
    );
    link.restore();
    let facts = mg.wait_for_fact(ACME_ADMIN, "vault", "Oslo").await;
    assert!(
        facts
            .iter()
            .all(|f| !f.contains(EMAIL) && !f.contains(SECRET)),
        "{facts:?}"
    );
}
