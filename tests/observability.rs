//! Operations: Prometheus metrics that move with the traffic, JSON logs, and one request id
//! from the proxy's answer into the ingest worker's log lines.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn series(name: &str, labels: &str) -> String {
    format!("{name}{{{labels}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_request_ids_reach_the_worker_logs() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_LOG__FORMAT", "json")]).await;
    mg.create_session(ACME_ADMIN, "observed").await;
    let chats_before = mg.metric("memgate_chat_requests_total").await;

    let response = mg
        .chat_with_headers(
            ACME_MEMBER,
            &[("x-request-id", "req-obs-1")],
            user_chat(Some("observed"), "Our standup is at 9:30.", false),
        )
        .await;
    assert_eq!(response.headers()["x-request-id"], "req-obs-1");
    assert_eq!(response.headers()["x-memgate-memory"], "empty");
    mg.wait_for_fact(ACME_MEMBER, "observed", "standup").await;
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("observed"), "When is standup?", true),
        )
        .await;
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 36, "a fresh UUID: {generated}");
    assert_eq!(response.headers()["x-memgate-memory"], "injected");
    response.bytes().await.unwrap();
    let rejected = mg
        .chat(ACME_MEMBER, user_chat(Some("bad id!"), "hello", false))
        .await;
    assert_eq!(rejected.status(), 400);
    assert!(rejected.headers().contains_key("x-request-id"));
    mg.http
        .get(format!("{}/v1/models", mg.proxy))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    assert_eq!(
        mg.metric("memgate_chat_requests_total").await - chats_before,
        3.0
    );
    let count = |outcome: &str| {
        let route = if outcome == "ok" {
            "passthrough"
        } else {
            "chat_completions"
        };
        series(
            "memgate_request_duration_seconds_count",
            &format!("route=\"{route}\",outcome=\"{outcome}\""),
        )
    };
    // The histograms are written when each request's logging phase ends, just after the
    // client's last byte: wait for them rather than race them.
    let deadline = Instant::now() + Duration::from_secs(5);
    for outcome in ["empty", "injected", "rejected", "ok"] {
        while mg.metric(&count(outcome)).await < 1.0 {
            assert!(Instant::now() < deadline, "no {outcome} request counted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(mg.metric("memgate_retrieval_duration_seconds_count").await >= 2.0);
    assert!(
        mg.metric(&series(
            "memgate_ingest_duration_seconds_count",
            "outcome=\"ok\""
        ))
        .await
            >= 1.0
    );
    assert!(mg.metric("memgate_facts_injected_total").await >= 1.0);
    let text = mg
        .http
        .get(format!("{}/metrics", mg.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("memgate_outbox_oldest_pending_age_seconds "));
    assert!(text.contains("# TYPE memgate_request_duration_seconds histogram"));

    // JSON logs: the proxy's line and the ingest worker's line carry the same request id.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<Value> = mg
            .log()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let served = lines.iter().any(|l| {
            l["fields"]["message"] == "request served" && l["fields"]["request_id"] == "req-obs-1"
        });
        let ingested = lines.iter().any(|l| {
            l["fields"]["message"] == "turn ingested"
                && l["spans"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["name"] == "ingest" && s["request_id"] == "req-obs-1")
                })
        });
        if served && ingested {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "served {served}, ingested {ingested}:\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
