//! What only the Postgres store has to show: replicas sharing one database, the outbox's
//! SKIP LOCKED claims, and the embedding dimension fixed on first start.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use memgate::config::StorageConfig;
use memgate::domain::outbox::TurnPayload;
use memgate::domain::{EngineKind, SessionConfig};
use memgate::store::{FactStore, OutboxStore, SessionStore, Store};
use serde_json::json;
use sqlx::Row;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_ingest_a_burst_exactly_once() {
    let mock = mock_gateway::spawn().await;
    let db = TestDatabase::create().await;
    let replicas = [
        Memgate::start_on(&mock.url(), Some(db.clone()), "", &[]).await,
        Memgate::start_on(&mock.url(), Some(db.clone()), "", &[]).await,
    ];
    assert_eq!(
        replicas[0]
            .create_session(ACME_ADMIN, "burst")
            .await
            .status(),
        201
    );

    const TURNS: usize = 40;
    let requests = (0..TURNS).map(|i| {
        // Two words of every statement are its own, so no two are near-duplicates.
        let text = format!("Remember token{i}alpha and token{i}omega.");
        let replica = &replicas[i % 2];
        async move {
            let response = replica
                .chat(ACME_MEMBER, user_chat(Some("burst"), &text, i % 3 == 0))
                .await;
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap();
        }
    });
    futures_util::future::join_all(requests).await;

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (rows, pending): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(*) FILTER (WHERE state <> 'done') FROM outbox")
                .fetch_one(&pool)
                .await
                .unwrap();
        if rows == TURNS as i64 && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} turns in the outbox, {pending} not done\n{}\n{}",
            replicas[0].log(),
            replicas[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts: Vec<i32> = sqlx::query_scalar("SELECT attempts FROM outbox")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(attempts.iter().all(|a| *a == 1), "{attempts:?}");

    // Each turn was extracted once, by one replica, and each left one fact.
    for i in 0..TURNS {
        let marker = format!("token{i}alpha");
        let extractions = mock
            .internal_requests()
            .iter()
            .filter(|r| r.path.ends_with("/chat/completions") && r.body.contains(&marker))
            .count();
        assert_eq!(extractions, 1, "turn {i} was extracted {extractions} times");
    }
    let facts: Vec<String> = sqlx::query("SELECT text FROM facts")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("text"))
        .collect();
    assert_eq!(facts.len(), TURNS);
    assert_eq!(facts.iter().collect::<HashSet<_>>().len(), TURNS);
    let adds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fact_history WHERE event = 'ADD'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(adds, TURNS as i64);
    let per_replica = [
        replicas[0].metric("memgate_turns_ingested_total").await,
        replicas[1].metric("memgate_turns_ingested_total").await,
    ];
    assert_eq!(per_replica[0] + per_replica[1], TURNS as f64);
    assert!(
        per_replica.iter().all(|n| *n > 0.0),
        "both replicas should have worked: {per_replica:?}"
    );
    pool.close().await;
}

fn storage(url: &str) -> StorageConfig {
    StorageConfig {
        url: url.parse().expect("a storage URL"),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_a_row() {
    let db = TestDatabase::create().await;
    let store = Store::connect(&storage(&db.url), 4).await.unwrap();
    store.migrate().await.unwrap();
    store.check_embeddings("m", 4).await.unwrap();
    let session = store
        .create_session("acme", "queue", EngineKind::Mem0, &SessionConfig::default())
        .await
        .unwrap();
    const ROWS: usize = 200;
    for i in 0..ROWS {
        store
            .enqueue_turn(
                &format!("k{i}"),
                "acme",
                session.id,
                &TurnPayload {
                    memory_id: "queue".into(),
                    messages: vec![],
                    request_id: None,
                    traceparent: None,
                    redacted: false,
                },
            )
            .await
            .unwrap();
    }
    // Two "replicas" (separate pools) claim in small batches at the same time: each round
    // starts both claims together, so neither can drain the queue before the other begins
    // (on a loaded machine one task could otherwise run alone).
    let other = Store::connect(&storage(&db.url), 4).await.unwrap();
    const BATCH: usize = 3;
    let rounds = ROWS / (2 * BATCH) + 2;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let claim_all = |s: Store, start: std::sync::Arc<tokio::sync::Barrier>| async move {
        let mut mine = Vec::new();
        for _ in 0..rounds {
            start.wait().await;
            let batch = s
                .claim_outbox(BATCH, Duration::from_secs(60))
                .await
                .unwrap();
            mine.extend(batch.into_iter().map(|r| r.id));
        }
        mine
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim_all(store.clone(), start.clone())),
        tokio::spawn(claim_all(other, start))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(a.len() + b.len(), ROWS, "a row was claimed twice");
    assert_eq!(all.len(), ROWS);
    assert!(!a.is_empty() && !b.is_empty(), "{} / {}", a.len(), b.len());

    // A lease that runs out makes the row claimable again, with its attempt counted.
    let id = a[0];
    store.fail_outbox(id, "boom", Some(0)).await.unwrap();
    let again = store
        .claim_outbox(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
        [(id, 2)]
    );
    store.fail_outbox(id, "boom", None).await.unwrap();
    assert_eq!(store.outbox_counts().await.unwrap().dead, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedding_dimension_is_fixed_on_first_start() {
    let mock = mock_gateway::spawn().await;
    let db = TestDatabase::create().await;
    {
        let mg = Memgate::start_on(&mock.url(), Some(db.clone()), "", &[]).await;
        mg.create_session(ACME_ADMIN, "dims").await;
        let (status, _) = mg
            .api(
                "POST",
                Some(ACME_MEMBER),
                "/memory/session/add",
                Some(json!({"memory_id": "dims", "messages": [{"role": "user", "content": "The atrium is on floor three."}]})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let column: String = sqlx::query_scalar(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
         WHERE attrelid = 'facts'::regclass AND attname = 'embedding'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(column, "vector(256)");
    pool.close().await;

    // Another dimension on the same database is refused at start, with the reason.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_memgate"))
        .arg("migrate")
        .env("MEMGATE_STORAGE__URL", &db.url)
        .env("MEMGATE_EMBEDDINGS__PROVIDER", "gateway")
        .env("MEMGATE_EMBEDDINGS__DIMENSIONS", "384")
        .env("MEMGATE_EMBEDDINGS__MODEL", "text-embedding-3-small")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("256-dimensional") && stderr.contains("384"),
        "{stderr}"
    );
}

/// A deterministic unit vector per index, spread over the 16 dimensions.
fn unit_vector(i: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..16)
        .map(|d| {
            (((i * 31 + d * 17) % 97) as f32 / 97.0) - 0.5 + if d == i % 16 { 1.0 } else { 0.0 }
        })
        .collect();
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.into_iter().map(|x| x / norm).collect()
}

async fn hnsw_scans(pool: &sqlx::PgPool) -> i64 {
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT COALESCE(SUM(idx_scan), 0)::bigint FROM pg_stat_user_indexes
         WHERE indexrelname = 'facts_embedding_hnsw'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sessions_are_searched_through_hnsw_small_ones_exactly() {
    use memgate::domain::FactChange;
    let db = TestDatabase::create().await;
    let store = Store::connect(
        &StorageConfig {
            hnsw_min_facts: 200,
            ..storage(&db.url)
        },
        16,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store.check_embeddings("m", 16).await.unwrap();
    let small = store
        .create_session("acme", "small", EngineKind::Mem0, &SessionConfig::default())
        .await
        .unwrap();
    store
        .create_session("acme", "large", EngineKind::Mem0, &SessionConfig::default())
        .await
        .unwrap();
    let stale_large = store.find_session("acme", "large").await.unwrap().unwrap();
    let add = |range: std::ops::Range<usize>| -> Vec<FactChange> {
        range
            .map(|i| FactChange::Add {
                text: format!("fact {i}"),
                embedding: unit_vector(i),
            })
            .collect()
    };
    store
        .apply_fact_changes(&small, &add(0..50), "ingest", false)
        .await
        .unwrap();
    store
        .apply_fact_changes(&stale_large, &add(1000..1400), "ingest", false)
        .await
        .unwrap();
    let small = store.find_session("acme", "small").await.unwrap().unwrap();
    let large = store.find_session("acme", "large").await.unwrap().unwrap();
    assert_eq!((small.stored_facts, large.stored_facts), (50, 400));

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let before = hnsw_scans(&pool).await;
    let exact = store
        .nearest(&small, &unit_vector(7), 5, None)
        .await
        .unwrap();
    assert_eq!(exact[0].text, "fact 7");
    assert!(exact[0].similarity > 0.999);
    assert!(exact.iter().all(|n| n.text.parse::<String>().is_ok()));
    assert!(exact.windows(2).all(|w| w[0].similarity >= w[1].similarity));

    let found = store
        .nearest(&large, &unit_vector(1234), 10, None)
        .await
        .unwrap();
    assert_eq!(found.len(), 10);
    assert_eq!(found[0].text, "fact 1234");
    assert!(found.windows(2).all(|w| w[0].similarity >= w[1].similarity));
    assert!(
        found.iter().all(|n| n.text.starts_with("fact 1")),
        "only the large session: {found:?}"
    );

    // The small session's search did not touch the HNSW index; the large one's did. Closing
    // the store ends its backends, which flushes their index statistics.
    store.close().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let scans = hnsw_scans(&pool).await - before;
        if scans >= 1 {
            assert_eq!(scans, 1, "the small session was searched through HNSW too");
            break;
        }
        assert!(Instant::now() < deadline, "the HNSW index was not used");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pool.close().await;
}

/// What memory did for a chat through `replica`, by its `x-memgate-memory` header (the status
/// code when the request was refused).
async fn memory_status(replica: &Memgate, memory_id: &str) -> String {
    let response = replica
        .chat(
            ACME_MEMBER,
            user_chat(Some(memory_id), "Which colour do I like?", false),
        )
        .await;
    let status = response.status().as_u16();
    let memory = response
        .headers()
        .get("x-memgate-memory")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    response.bytes().await.unwrap();
    memory.unwrap_or_else(|| status.to_string())
}

/// Polls `replica` until its memory status for `memory_id` is `wanted`; the time it took.
async fn until_status(replica: &Memgate, memory_id: &str, wanted: &str) -> Duration {
    let started = Instant::now();
    loop {
        if memory_status(replica, memory_id).await == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{memory_id} never became {wanted}:\n{}",
            replica.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_reaches_the_others_within_the_session_cache_ttl() {
    const TTL_MS: u64 = 2_000;
    let ttl = TTL_MS.to_string();
    let env = [("MEMGATE_MEMORY__SESSION_CACHE_TTL_MS", ttl.as_str())];
    let mock = mock_gateway::spawn().await;
    let db = TestDatabase::create().await;
    let a = Memgate::start_on(&mock.url(), Some(db.clone()), "", &env).await;
    let b = Memgate::start_on(&mock.url(), Some(db.clone()), "", &env).await;
    assert_eq!(a.create_session(ACME_ADMIN, "cached").await.status(), 201);
    let (status, body) = a
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/add",
            Some(json!({"memory_id": "cached", "messages": [
                {"role": "user", "content": "My favourite colour is teal."}
            ]})),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    a.wait_for_fact(ACME_ADMIN, "cached", "teal").await;

    // B looks the session up (and keeps it); then A switches its retrieval off.
    assert_eq!(memory_status(&b, "cached").await, "injected");
    let (status, body) = a
        .api(
            "PATCH",
            Some(ACME_ADMIN),
            "/memory/session/cached",
            Some(json!({"config": {"retrieval": false}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let patched = Instant::now();
    // The replica that made the change sees it at once; B, until its copy expires, does not
    // (the cache is in use), and then does, within the TTL.
    assert_eq!(memory_status(&a, "cached").await, "off");
    assert_eq!(memory_status(&b, "cached").await, "injected");
    until_status(&b, "cached", "off").await;
    let seen_after = patched.elapsed();
    assert!(
        seen_after < Duration::from_millis(TTL_MS + 1_000),
        "B saw the PATCH after {seen_after:?}"
    );

    // A deletes the session. B, still holding it, serves one more turn for it: the turn has
    // nowhere to go and is dropped, not journaled or retried. Then B answers 404 too.
    let (status, body) = a
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/cached", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let deleted = Instant::now();
    assert_eq!(memory_status(&a, "cached").await, "404");
    assert_eq!(memory_status(&b, "cached").await, "off");
    assert_eq!(b.metric("memgate_turns_session_gone_total").await, 1.0);
    assert_eq!(b.metric("memgate_turns_journaled_total").await, 0.0);
    until_status(&b, "cached", "404").await;
    let seen_after = deleted.elapsed();
    assert!(
        seen_after < Duration::from_millis(TTL_MS + 1_000),
        "B saw the DELETE after {seen_after:?}"
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let outbox: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
}
