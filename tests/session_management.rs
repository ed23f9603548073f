//! The session endpoints beyond create: list, details, PATCH of a config that the proxy
//! honours, delete of a session or a fact, history.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn add(mg: &Memgate, memory_id: &str, text: &str) -> Value {
    let (status, added) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": memory_id, "messages": [{"role": "user", "content": text}]})),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    added
}

async fn patch(mg: &Memgate, memory_id: &str, body: Value) -> (u16, Value) {
    mg.api(
        "PATCH",
        Some(ACME_ADMIN),
        &format!("/memory/session/{memory_id}"),
        Some(body),
    )
    .await
}

/// The context block the upstream received on the last application request, if any.
fn injected_block(mock: &MockGateway) -> Option<String> {
    let body = last_upstream_chat(mock);
    let system = body["messages"][0]["content"].as_str()?.to_string();
    system
        .split_once("[Past Context for ID:")
        .map(|(_, block)| block.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patched_config_is_honoured_by_the_proxy() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let (status, created) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/create",
            Some(json!({"session_name": "tuned", "engine_name": "mem0", "config": {"top_k": 1}})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["config"]["top_k"], 1);
    assert_eq!(created["config"]["retrieval"], true);
    add(&mg, "tuned", "The office is in Lisbon.").await;
    add(&mg, "tuned", "The office dog is called Rex.").await;

    // top_k = 1: one fact injected.
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("tuned"), "Tell me about the office", false),
        )
        .await;
    assert_eq!(response.headers()["x-memgate-memory"], "injected");
    let block = injected_block(&mock).expect("a context block");
    assert_eq!(block.matches("\n- ").count(), 1, "{block}");

    // top_k back to the server default (3): both facts.
    let (status, patched) = patch(&mg, "tuned", json!({"config": {"top_k": null}})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["config"]["top_k"], Value::Null);
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("tuned"), "Tell me about the office", false),
    )
    .await;
    let block = injected_block(&mock).expect("a context block");
    assert_eq!(block.matches("\n- ").count(), 2, "{block}");

    // Retrieval off: nothing injected, and the header says why.
    patch(&mg, "tuned", json!({"config": {"retrieval": false}})).await;
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("tuned"), "Tell me about the office", false),
        )
        .await;
    assert_eq!(response.headers()["x-memgate-memory"], "off");
    assert!(injected_block(&mock).is_none());

    // store_memory defaults to false: a turn that does not say is not kept; one that says
    // `true` is, and serves as the barrier for the first.
    patch(&mg, "tuned", json!({"config": {"store_memory": false}})).await;
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("tuned"), "My badge number is 4471.", false),
    )
    .await;
    let mut explicit = user_chat(Some("tuned"), "My parking spot is B12.", false);
    explicit["store_memory"] = json!(true);
    mg.chat(ACME_MEMBER, explicit).await;
    let facts = mg.wait_for_fact(ACME_MEMBER, "tuned", "B12").await;
    assert!(!facts.iter().any(|f| f.contains("4471")), "{facts:?}");

    // Bad config and engine changes are refused and change nothing.
    let (status, e) = patch(&mg, "tuned", json!({"config": {"top_k": "three"}})).await;
    assert_eq!(status, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config.top_k"),
        "{e}"
    );
    let (status, e) = patch(&mg, "tuned", json!({"engine_name": "cognee"})).await;
    assert_eq!(status, 409);
    assert_eq!(
        e["error"]["message"],
        "Sessions cannot change engine after creation"
    );
    let (status, _) = patch(&mg, "tuned", json!({"engine_name": "mem0"})).await;
    assert_eq!(status, 200, "naming the current engine is no change");
    let (status, _) = patch(&mg, "tuned", json!({"session_name": "renamed"})).await;
    assert_eq!(status, 409);
    let (status, e) = patch(&mg, "tuned", json!({"colour": "blue"})).await;
    assert_eq!(status, 422);
    assert!(e["error"]["message"].as_str().unwrap().contains("colour"));
    let (_, details) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/tuned", None)
        .await;
    assert_eq!(
        details["config"],
        json!({"top_k": null, "retrieval": false, "store_memory": false, "fact_ttl_seconds": null, "max_facts": null, "placement": null, "redaction": null})
    );
    assert_eq!(details["engine_name"], "mem0");
    assert_eq!(details["fact_count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fact_ttl_hides_then_purges_and_the_cap_trims() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(
        &mock.url(),
        &[("MEMGATE_WORKER__RETENTION_INTERVAL_MS", "100")],
    )
    .await;
    mg.create_session(ACME_ADMIN, "fleeting").await;
    add(&mg, "fleeting", "The wifi password is tulip.").await;
    add(&mg, "fleeting", "The printer is on floor two.").await;
    add(&mg, "fleeting", "Lunch is at noon.").await;

    // A cap below the count trims at once, least recently written first.
    let (status, capped) = patch(&mg, "fleeting", json!({"config": {"max_facts": 2}})).await;
    assert_eq!(status, 200, "{capped}");
    assert_eq!(capped["fact_count"], 2);
    let facts = mg.facts(ACME_MEMBER, "fleeting").await;
    assert!(!facts.iter().any(|f| f.contains("tulip")), "{facts:?}");
    add(&mg, "fleeting", "The gym opens at six.").await;
    assert_eq!(
        mg.facts(ACME_MEMBER, "fleeting").await.len(),
        2,
        "the cap holds on ingest"
    );

    let (_, history) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            "/memory/session/fleeting/history",
            None,
        )
        .await;
    let reasons: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == "DELETE")
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["capacity", "capacity"], "{history}");

    // A TTL: once it has run out the facts are neither listed nor injected, then purged.
    patch(&mg, "fleeting", json!({"config": {"fact_ttl_seconds": 1}})).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(mg.facts(ACME_MEMBER, "fleeting").await.is_empty());
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("fleeting"), "When does the gym open?", false),
        )
        .await;
    assert_eq!(response.headers()["x-memgate-memory"], "empty");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, history) = mg
            .api(
                "GET",
                Some(ACME_MEMBER),
                "/memory/session/fleeting/history",
                None,
            )
            .await;
        let expired = history["history"]
            .as_array()
            .map(|h| h.iter().filter(|e| e["reason"] == "expired").count())
            .unwrap_or(0);
        if expired == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not purged: {history}\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mg.metric("memgate_facts_expired_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_a_fact_then_the_session() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "doomed").await;
    let added = add(&mg, "doomed", "My locker is number 12.").await;
    let fact = added["results"][0]["id"].as_str().unwrap().to_string();
    add(&mg, "doomed", "My desk is by the window.").await;

    let path = format!("/memory/session/doomed/facts/{fact}");
    let (status, deleted) = mg.api("DELETE", Some(ACME_ADMIN), &path, None).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        deleted,
        json!({"id": fact, "memory_id": "doomed", "deleted": true})
    );
    let (status, e) = mg.api("DELETE", Some(ACME_ADMIN), &path, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("fact_not_found"))
    );
    assert_eq!(
        mg.facts(ACME_MEMBER, "doomed").await,
        ["My desk is by the window"]
    );
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("doomed"), "Where is my locker and desk?", false),
    )
    .await;
    let block = injected_block(&mock).unwrap_or_default();
    assert!(
        !block.contains("locker"),
        "a deleted fact was injected: {block}"
    );

    let (_, history) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            &format!("/memory/session/doomed/history?fact_id={fact}"),
            None,
        )
        .await;
    let events: Vec<(&str, &str)> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["event"].as_str().unwrap(), h["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(events, [("ADD", "ingest"), ("DELETE", "api")], "{history}");

    let (status, gone) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/doomed", None)
        .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["facts_deleted"], 1);
    for path in [
        "/memory/session/doomed",
        "/memory/session/doomed/facts",
        "/memory/session/doomed/history",
    ] {
        let (status, _) = mg.api("GET", Some(ACME_ADMIN), path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("doomed"), "Where is my desk?", false),
        )
        .await;
    assert_eq!(response.status(), 404);

    // The name is free again, and the new session starts empty.
    assert_eq!(mg.create_session(ACME_ADMIN, "doomed").await.status(), 201);
    assert!(mg.facts(ACME_MEMBER, "doomed").await.is_empty());
    let (_, history) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            "/memory/session/doomed/history",
            None,
        )
        .await;
    assert_eq!(history["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_with_details_and_pages() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    for name in ["s-a", "s-b", "s-c"] {
        assert_eq!(mg.create_session(ACME_ADMIN, name).await.status(), 201);
    }
    mg.create_session(GLOBEX_ADMIN, "s-globex").await;
    add(&mg, "s-b", "The build server is called Atlas.").await;

    let (status, page) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/sessions?limit=2", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3);
    let names: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["memory_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["s-a", "s-b"]);
    assert_eq!(page["sessions"][1]["fact_count"], 1);
    let (_, rest) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            "/memory/sessions?limit=2&offset=2",
            None,
        )
        .await;
    assert_eq!(rest["sessions"][0]["memory_id"], "s-c");

    let (status, details) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/s-b", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(details["engine_name"], "mem0");
    assert_eq!(details["fact_count"], 1);
    assert_eq!(details["pending_turns"], 0);
    assert!(details["created_at"].as_str().unwrap().ends_with('Z'));

    for bad in ["limit=0", "limit=501", "offset=-1", "limit=ten", "page=2"] {
        let (status, e) = mg
            .api(
                "GET",
                Some(ACME_MEMBER),
                &format!("/memory/sessions?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {e}");
        assert_eq!(e["error"]["code"], "invalid_query");
        let name = bad.split('=').next().unwrap();
        assert!(
            e["error"]["message"].as_str().unwrap().contains(name),
            "{e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_keep_one_shape() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_ADMIN__MAX_BODY_BYTES", "2048")]).await;
    mg.create_session(ACME_ADMIN, "shape").await;
    let raw = |method: &str, path: &str, body: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        mg.http
            .request(method, format!("{}{path}", mg.admin))
            .bearer_auth(ACME_ADMIN)
            .body(body.to_string())
            .send()
    };
    let cases = [
        (
            "POST",
            "/memory/session/search",
            "{not json".to_string(),
            400,
        ),
        (
            "POST",
            "/memory/session/search",
            r#"{"memory_id": 5, "query": "x"}"#.into(),
            422,
        ),
        (
            "POST",
            "/memory/session/search",
            format!(
                r#"{{"memory_id": "shape", "query": "{}"}}"#,
                "x".repeat(4096)
            ),
            413,
        ),
        (
            "PATCH",
            "/memory/session/shape",
            r#"{"config": []}"#.into(),
            422,
        ),
        ("PUT", "/memory/session/shape", "{}".into(), 405),
        ("GET", "/memory/nothing-here", String::new(), 404),
        (
            "POST",
            "/memory/session/create",
            r#"{"session_name": "shape", "engine_name": "mem0"}"#.into(),
            409,
        ),
        (
            "POST",
            "/memory/session/create",
            r#"{"session_name": "bad name", "engine_name": "mem0"}"#.into(),
            422,
        ),
    ];
    for (method, path, body, expected) in cases {
        let response = raw(method, path, &body).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let e: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, expected, "{method} {path}: {e}");
        assert_eq!(content_type, "application/json");
        for field in ["message", "type", "code"] {
            assert!(e["error"][field].is_string(), "{method} {path}: {e}");
        }
    }
}
