//! Platform spend: memgate's own embedding and extraction calls go to the gateway under the
//! service-account key with the configured tags, and their tokens are reported per org, day,
//! kind and session (GET /memory/usage) and in the metrics.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_calls_are_platform_spend_reported_per_org_and_session() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with_toml(
        &mock.url(),
        "[internal.headers]\nx-litellm-tags = \"memgate,platform\"\n",
        &[],
    )
    .await;
    mg.create_session(ACME_ADMIN, "spender").await;
    let (status, _) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": "spender", "messages": [{"role": "user", "content": "Our budget review is on Fridays."}]})),
        )
        .await;
    assert_eq!(status, 200);
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("spender"), "When is the budget review?", false),
    )
    .await;

    // Every internal call carried the service key and the tags, never the caller's key.
    let internal = mock.internal_requests();
    assert!(internal.len() >= 3, "{internal:?}");
    for r in &internal {
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("authorization").as_deref(),
            Some("Bearer sk-internal-service")
        );
        assert_eq!(
            header("x-litellm-tags").as_deref(),
            Some("memgate,platform")
        );
        assert_eq!(header("x-memgate-org").as_deref(), Some("acme"));
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    let report = loop {
        let (status, report) = mg.api("GET", Some(ACME_ADMIN), "/memory/usage", None).await;
        assert_eq!(status, 200, "{report}");
        let kinds: Vec<&str> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        if kinds == ["extraction", "fact_embedding", "query_embedding"] {
            break report;
        }
        assert!(Instant::now() < deadline, "{report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report["org"], "acme");
    let today = report["to"].as_str().unwrap().to_string();
    for row in report["rows"].as_array().unwrap() {
        assert_eq!(row["day"], today.as_str());
        assert!(row["prompt_tokens"].as_i64().unwrap() > 0, "{row}");
        assert!(row.get("memory_id").is_none());
    }
    assert!(report["total_prompt_tokens"].as_i64().unwrap() > 0);

    let (_, by_session) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/usage?by=session", None)
        .await;
    assert!(
        by_session["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["memory_id"] == "spender"),
        "{by_session}"
    );

    let (_, other_org) = mg
        .api("GET", Some(GLOBEX_ADMIN), "/memory/usage", None)
        .await;
    assert_eq!(other_org["total_calls"], 0, "{other_org}");
    assert_eq!(
        mg.api("GET", Some(ACME_MEMBER), "/memory/usage", None)
            .await
            .0,
        403
    );
    let (_, future) = mg
        .api(
            "GET",
            Some(ACME_ADMIN),
            "/memory/usage?from=2099-01-01&to=2099-01-31",
            None,
        )
        .await;
    assert_eq!(future["rows"], json!([]));
    for bad in [
        "from=yesterday",
        "to=2026-02-30",
        "from=2026-02-01&to=2026-01-01",
        "by=org",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (status, e): (u16, Value) = mg
            .api(
                "GET",
                Some(ACME_ADMIN),
                &format!("/memory/usage?{bad}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{bad}: {e}");
    }

    let tokens = mg
        .metric("memgate_internal_tokens_total{purpose=\"fact_embedding\",type=\"prompt\"}")
        .await;
    assert!(tokens > 0.0);
}
