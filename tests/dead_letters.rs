//! Turns whose ingestion keeps failing are dead-lettered, shown to the org's admins, and can
//! be sent back to the queue.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

async fn dead_turns(mg: &Memgate, key: &str) -> (u16, Value) {
    mg.api("GET", Some(key), "/memory/outbox?state=dead", None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_shown_per_org_and_can_be_retried() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_WORKER__MAX_ATTEMPTS", "2")]).await;
    mg.create_session(ACME_ADMIN, "fragile").await;
    mock.set_embeddings_failing(true);
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("fragile"), "My desk plant is a fern.", false),
        )
        .await;
    assert_eq!(response.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (status, dead) = dead_turns(&mg, ACME_ADMIN).await;
        assert_eq!(status, 200, "{dead}");
        // The page and its count are two reads: the turn can die between them.
        if dead["total"] == 1 && dead["turns"].as_array().map(Vec::len) == Some(1) {
            break dead;
        }
        assert!(Instant::now() < deadline, "{dead}\n{}", mg.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let turn = &dead["turns"][0];
    assert_eq!(turn["memory_id"], "fragile");
    assert_eq!(turn["attempts"], 2);
    assert!(
        turn["last_error"].as_str().unwrap().contains("503"),
        "{turn}"
    );
    let (_, details) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/fragile", None)
        .await;
    assert_eq!(details["dead_turns"], 1);
    assert!(mg.metric("memgate_turns_dead_lettered_total").await >= 1.0);

    // Only the org's admins see or retry it.
    let id = turn["id"].as_i64().unwrap();
    let retry = format!("/memory/outbox/{id}/retry");
    assert_eq!(dead_turns(&mg, ACME_MEMBER).await.0, 403);
    let (_, foreign) = dead_turns(&mg, GLOBEX_ADMIN).await;
    assert_eq!(foreign["total"], 0, "{foreign}");
    assert_eq!(
        mg.api("POST", Some(GLOBEX_ADMIN), &retry, None).await.0,
        404
    );
    assert_eq!(mg.api("POST", Some(ACME_MEMBER), &retry, None).await.0, 403);

    mock.set_embeddings_failing(false);
    let (status, retried) = mg.api("POST", Some(ACME_ADMIN), &retry, None).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["state"], "pending");
    mg.wait_for_fact(ACME_MEMBER, "fragile", "fern").await;
    let (_, dead) = dead_turns(&mg, ACME_ADMIN).await;
    assert_eq!(dead["total"], 0);
    assert_eq!(
        mg.api("POST", Some(ACME_ADMIN), &retry, None).await.0,
        404,
        "no longer dead"
    );
}
