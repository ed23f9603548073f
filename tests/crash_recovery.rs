//! memgate killed with SIGKILL in the middle of a burst of streaming requests. After a
//! restart on the same store, every turn whose answer completed is ingested, exactly once;
//! turns whose answer was cut are not stored at all.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{test_store, user_chat, Memgate, ACME_ADMIN, ACME_MEMBER};

const TURNS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_completed_turn_is_ingested_exactly_once_after_a_sigkill() {
    let mock = common::mock_gateway::spawn().await;
    // Slow extraction keeps most turns in the outbox, some of them claimed, at the kill.
    mock.set_embeddings_delay_ms(250);
    // Postgres leases are shared by replicas and wait out their time; keep it short here.
    let lease = [("MEMGATE_WORKER__LEASE_MS", "2000")];
    let mut mg = Memgate::start_with(&mock.url(), &lease).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "burst").await.status(), 201);

    let completed: Vec<_> = (0..TURNS)
        .map(|i| {
            let http = mg.http.clone();
            let url = format!("{}/v1/chat/completions", mg.proxy);
            tokio::spawn(async move {
                let body = user_chat(
                    Some("burst"),
                    &format!("Ticket {i} belongs to queue q{i}."),
                    true,
                );
                let response = http
                    .post(url)
                    .bearer_auth(ACME_MEMBER)
                    .header("x-mock-chunk-delay-ms", "20")
                    .json(&body)
                    .send()
                    .await
                    .expect("chat");
                assert_eq!(response.status(), 200);
                let text = response.text().await.expect("stream");
                assert!(text.contains("[DONE]"), "{text}");
            })
        })
        .collect();
    // Answers cut mid-stream by the upstream: nothing of them may be stored.
    let cut: Vec<_> = (0..4)
        .map(|i| {
            let http = mg.http.clone();
            let url = format!("{}/v1/chat/completions", mg.proxy);
            tokio::spawn(async move {
                let body = user_chat(Some("burst"), &format!("Crate {i} is broken."), true);
                let response = http
                    .post(url)
                    .bearer_auth(ACME_MEMBER)
                    .header("x-mock-cut-stream", "1")
                    .json(&body)
                    .send()
                    .await
                    .expect("chat");
                let _ = response.text().await;
            })
        })
        .collect();
    for task in completed.into_iter().chain(cut) {
        task.await.unwrap();
    }
    // Every answer is complete. The kill comes once the worker has ingested a first turn, so
    // that some turns are done, some claimed mid-ingest and the rest waiting.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !mg.log().contains("turn ingested") {
        assert!(Instant::now() < deadline, "nothing ingested\n{}", mg.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    mg.kill().await;
    let ingested_before = mg.log().matches("turn ingested").count();
    assert!(
        ingested_before < TURNS,
        "the kill came too late to test anything: {ingested_before} turns already ingested"
    );

    mock.set_embeddings_delay_ms(0);
    let restarted = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_STORAGE__URL", &mg.storage_url), lease[0]],
    )
    .await;
    // Done means every completed turn's outbox row is done: a turn whose facts were written
    // just before the kill, but not yet marked done, is ingested again, and must add nothing.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, done) = restarted
            .api(
                "GET",
                Some(ACME_ADMIN),
                "/memory/outbox?state=done&limit=100",
                None,
            )
            .await;
        assert_eq!(status, 200);
        if done["total"] == TURNS as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {TURNS} turns done after the restart ({ingested_before} before the kill)\n{}",
            done["total"],
            restarted.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for fact in restarted.facts(ACME_MEMBER, "burst").await {
        *counts.entry(fact).or_default() += 1;
    }
    for i in 0..TURNS {
        let fact = format!("Ticket {i} belongs to queue q{i}");
        assert_eq!(counts.get(&fact), Some(&1), "{fact}: {counts:?}");
    }
    assert_eq!(counts.len(), TURNS, "{counts:?}");
    // One outbox row per completed turn (all done, above); none for the cut answers.
    for state in ["pending", "dead"] {
        let (_, rows) = restarted
            .api(
                "GET",
                Some(ACME_ADMIN),
                &format!("/memory/outbox?state={state}"),
                None,
            )
            .await;
        assert_eq!(rows["total"], 0, "{state}: {rows}");
    }
    eprintln!(
        "store {}: {ingested_before} of {TURNS} turns ingested before the kill, the rest after the restart",
        test_store()
    );
}

/// The end of a stream reaches the client only once its turn is durable, however the upstream
/// splits the `[DONE]` marker: a client that has read to `[DONE]` and sees memgate killed right
/// after still finds the turn remembered after a restart. The upstream keeps the stream open
/// after `[DONE]`, so a turn stored only at the upstream's close would be lost to the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_read_to_a_split_done_marker_survives_a_kill() {
    let mock = common::mock_gateway::spawn().await;
    // The turn is claimed by the worker before the kill: on Postgres its lease must run out
    // before the restarted process takes it over.
    let lease = ("MEMGATE_WORKER__LEASE_MS", "2000");
    let mut mg = Memgate::start_with(&mock.url(), &[lease]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "split").await.status(), 201);
    // Nothing is ingested before the kill: the turn must be in the outbox (or the journal).
    mock.set_embeddings_delay_ms(60_000);
    let mut response = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .bearer_auth(ACME_MEMBER)
        .header("x-mock-split-done", "1")
        .header("x-mock-linger-ms", "20000")
        .json(&user_chat(Some("split"), "Pallet 42 sits in bay b7.", true))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(&body).contains("data: [DONE]") {
        let chunk = tokio::time::timeout_at(deadline.into(), response.chunk())
            .await
            .expect("no [DONE] within 15 s")
            .expect("stream")
            .expect("the stream ended before [DONE]");
        body.extend_from_slice(&chunk);
    }
    mg.kill().await;
    drop(response);

    mock.set_embeddings_delay_ms(0);
    let journal = mg
        .dir
        .path()
        .join("turn-journal.jsonl")
        .display()
        .to_string();
    let restarted = Memgate::start_with(
        &mock.url(),
        &[
            ("MEMGATE_STORAGE__URL", &mg.storage_url),
            ("MEMGATE_WORKER__JOURNAL_PATH", &journal),
            lease,
        ],
    )
    .await;
    let facts = restarted
        .wait_for_fact(ACME_MEMBER, "split", "Pallet 42")
        .await;
    assert_eq!(facts, ["Pallet 42 sits in bay b7"], "{facts:?}");
}
