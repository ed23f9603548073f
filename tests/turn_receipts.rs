//! Receipts: every memory response names the facts it injected (`x-memgate-facts`) and the
//! turn it will store (`x-memgate-turn`), and `GET /memory/turns/{id}` says where that turn
//! is: pending, stored (with its facts), dead (with the error) or dropped (with why). The
//! journaled state during a store outage is in tests/store_faults.rs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn receipt(mg: &Memgate, key: &str, turn_id: &str) -> (u16, Value) {
    mg.api("GET", Some(key), &format!("/memory/turns/{turn_id}"), None)
        .await
}

/// Polls the turn's receipt until its state is `state`; panics after 20 s.
async fn wait_for_state(mg: &Memgate, turn_id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = receipt(mg, ACME_MEMBER, turn_id).await;
        if status == 200 && body["state"] == state {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "turn {turn_id} never {state}: {status} {body}\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn turn_of(response: &reqwest::Response) -> String {
    response.headers()["x-memgate-turn"]
        .to_str()
        .unwrap()
        .to_string()
}

async fn fact_ids(mg: &Memgate, memory_id: &str) -> Vec<String> {
    let facts = mg.fact_entries(ACME_MEMBER, memory_id).await;
    facts.into_iter().map(|(id, _)| id).collect()
}

/// A turn is pending while its ingestion fails, stored (with the facts it added) once it
/// works, and the injected fact ids of the next answer are those facts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_moves_from_pending_to_stored_and_its_facts_are_the_ones_injected() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(
        &mock.url(),
        &[
            ("MEMGATE_WORKER__BACKOFF_BASE_MS", "100"),
            ("MEMGATE_WORKER__BACKOFF_MAX_MS", "200"),
        ],
    )
    .await;
    assert_eq!(
        mg.create_session(ACME_ADMIN, "receipts").await.status(),
        201
    );

    mock.set_embeddings_failing(true);
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("receipts"), "I work at the Lisbon office.", false),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-memgate-facts"], "");
    let turn = turn_of(&response);
    let _ = response.text().await;
    let pending = wait_for_state(&mg, &turn, "pending").await;
    assert_eq!(pending["memory_id"], "receipts");
    // Pending after a failed attempt says why.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = receipt(&mg, ACME_MEMBER, &turn).await;
        if body["attempts"].as_i64() >= Some(1) && body["last_error"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "no failed attempt: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another org cannot see it, nor can anyone see a turn that does not exist.
    let (status, body) = receipt(&mg, GLOBEX_ADMIN, &turn).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("turn_not_found"))
    );
    let (status, _) = receipt(&mg, ACME_MEMBER, "0192f7a4-0000-7000-8000-000000000000").await;
    assert_eq!(status, 404);
    let (status, _) = mg
        .api("GET", None, &format!("/memory/turns/{turn}"), None)
        .await;
    assert_eq!(status, 401);

    mock.set_embeddings_failing(false);
    let stored = wait_for_state(&mg, &turn, "stored").await;
    let added: Vec<String> = serde_json::from_value(stored["facts"]["added"].clone()).unwrap();
    assert_eq!(added.len(), 1, "{stored}");
    assert_eq!(
        stored["facts"],
        json!({"added": added, "updated": [], "deleted": []})
    );
    assert_eq!(fact_ids(&mg, "receipts").await, added);

    // The next answer injects that fact and names it.
    let response = mg
        .chat(
            ACME_MEMBER,
            json!({"model": "m", "messages": [{"role": "user", "content": "Which office do I work at?"}], "memory_id": "receipts", "store_memory": false}),
        )
        .await;
    assert_eq!(response.headers()["x-memgate-memory"], "injected");
    assert_eq!(response.headers()["x-memgate-facts"], added[0].as_str());
    assert!(response.headers().get("x-memgate-turn").is_none());
}

/// A turn whose answer broke off is dropped, and one whose every attempt failed is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_answers_are_dropped_and_failed_turns_dead_with_their_error() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_WORKER__MAX_ATTEMPTS", "1")]).await;
    assert_eq!(mg.create_session(ACME_ADMIN, "broken").await.status(), 201);

    for stream in [true, false] {
        let response = mg
            .chat_with_headers(
                ACME_MEMBER,
                &[("x-mock-cut-stream", "1")],
                user_chat(Some("broken"), "I live in Lisbon.", stream),
            )
            .await;
        let turn = turn_of(&response);
        assert!(response.text().await.is_err(), "the cut reaches the client");
        let dropped = wait_for_state(&mg, &turn, "dropped").await;
        assert_eq!(
            dropped["reason"], "the answer broke off before it was complete",
            "{dropped}"
        );
    }

    mock.set_embeddings_failing(true);
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("broken"), "I live in Porto.", false),
        )
        .await;
    let turn = turn_of(&response);
    let _ = response.text().await;
    let dead = wait_for_state(&mg, &turn, "dead").await;
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert!(
        dead["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{dead}"
    );
}
