//! Key resolution beyond the static list: an authenticator's trusted headers, and the
//! gateway's key introspection (LiteLLM's `GET /key/info`).

mod common;

use common::*;
use serde_json::{json, Value};

const TRUSTED_FROM_LOOPBACK: &str = r#"
[auth.trusted_header]
enabled = true
networks = ["127.0.0.0/8"]
"#;

async fn with_headers(
    mg: &Memgate,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = mg.http.request(method, format!("{}{path}", mg.admin));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_headers_count_only_from_trusted_networks() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with_toml(&mock.url(), TRUSTED_FROM_LOOPBACK, &[]).await;
    let admin = [
        ("x-authenticated-org", "initech"),
        ("x-authenticated-role", "admin"),
    ];
    let (status, created) = with_headers(
        &mg,
        reqwest::Method::POST,
        "/memory/session/create",
        &admin,
        Some(json!({"session_name": "peter", "engine_name": "mem0"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    // A member by default, in the org the header names, on both listeners.
    let member = [("x-authenticated-org", "initech")];
    let (status, _) = with_headers(
        &mg,
        reqwest::Method::DELETE,
        "/memory/session/peter",
        &member,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let response = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .header("x-authenticated-org", "initech")
        .json(&user_chat(Some("peter"), "My stapler is red.", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let facts = wait_for_trusted_fact(&mg, "initech", "stapler").await;
    assert_eq!(facts, ["My stapler is red"]);

    // A bad role is refused, not downgraded to another source.
    let (status, _) = with_headers(
        &mg,
        reqwest::Method::GET,
        "/memory/sessions",
        &[
            ("x-authenticated-org", "initech"),
            ("x-authenticated-role", "root"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 401);

    // The header does not cross orgs: acme's key sees nothing of initech.
    let (status, _) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/peter", None)
        .await;
    assert_eq!(status, 404);
}

async fn wait_for_trusted_fact(mg: &Memgate, org: &str, needle: &str) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, v) = with_headers(
            mg,
            reqwest::Method::GET,
            "/memory/session/peter/facts",
            &[("x-authenticated-org", org)],
            None,
        )
        .await;
        let facts: Vec<String> = v["facts"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f["text"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if facts.iter().any(|f| f.contains(needle)) {
            return facts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{facts:?}\n{}",
            mg.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_headers_from_elsewhere_are_ignored() {
    let mock = mock_gateway::spawn().await;
    let extra = r#"
[auth.trusted_header]
enabled = true
networks = ["10.0.0.0/8"]
"#;
    let mg = Memgate::start_with_toml(&mock.url(), extra, &[]).await;
    let forged = [
        ("x-authenticated-org", "acme"),
        ("x-authenticated-role", "admin"),
    ];
    let (status, _) = with_headers(
        &mg,
        reqwest::Method::POST,
        "/memory/session/create",
        &forged,
        Some(json!({"session_name": "forged", "engine_name": "mem0"})),
    )
    .await;
    assert_eq!(status, 401);
    let response = mg
        .http
        .post(format!("{}/v1/chat/completions", mg.proxy))
        .header("x-authenticated-org", "acme")
        .json(&user_chat(Some("anything"), "hello", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Static keys still work beside it.
    assert_eq!(mg.create_session(ACME_ADMIN, "real").await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_introspection_resolves_and_caches_keys() {
    let mock = mock_gateway::spawn().await;
    mock.set_key_info(
        "sk-litellm-lead",
        json!({"team_id": "team-blue", "metadata": {"memgate_role": "admin"}}),
    );
    mock.set_key_info(
        "sk-litellm-dev",
        json!({"org_id": null, "team_id": "team-blue", "metadata": {}}),
    );
    mock.set_key_info("sk-litellm-red", json!({"org_id": "org-red"}));
    let extra = r#"
[auth.introspection]
enabled = true
"#;
    let mg = Memgate::start_with_toml(&mock.url(), extra, &[]).await;

    let (status, created) = mg
        .api(
            "POST",
            Some("sk-litellm-lead"),
            "/memory/session/create",
            Some(json!({"session_name": "blue-notes", "engine_name": "mem0"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (status, _) = mg
        .api(
            "POST",
            Some("sk-litellm-dev"),
            "/memory/session/create",
            Some(json!({"session_name": "dev-notes", "engine_name": "mem0"})),
        )
        .await;
    assert_eq!(status, 403, "no admin metadata: a member");
    for _ in 0..5 {
        let (status, listed) = mg
            .api("GET", Some("sk-litellm-dev"), "/memory/sessions", None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(listed["sessions"][0]["memory_id"], "blue-notes");
    }
    let (status, _) = mg
        .api(
            "GET",
            Some("sk-litellm-red"),
            "/memory/session/blue-notes",
            None,
        )
        .await;
    assert_eq!(status, 404, "another team's key");
    for _ in 0..3 {
        let (status, _) = mg
            .api("GET", Some("sk-unknown"), "/memory/sessions", None)
            .await;
        assert_eq!(status, 401);
    }
    // Each key was asked about once; the answers, refusals included, came from the cache.
    let asked = |key: &str| {
        mock.requests()
            .iter()
            .filter(|r| {
                r.path == "/key/info"
                    && r.headers
                        .iter()
                        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {key}"))
            })
            .count()
    };
    assert_eq!(asked("sk-litellm-dev"), 1);
    assert_eq!(asked("sk-unknown"), 1);
    // Static keys never leave memgate.
    mg.api("GET", Some(ACME_ADMIN), "/memory/sessions", None)
        .await;
    assert_eq!(asked(ACME_ADMIN), 0);

    // The gateway's key store down: the admin API says so (503), the LLM traffic goes on
    // without memory.
    mock.set_key_info_failing(true);
    let (status, e) = mg
        .api("GET", Some("sk-new-key"), "/memory/sessions", None)
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (503, Some("auth_unavailable"))
    );
    let response = mg
        .chat("sk-new-key", user_chat(Some("blue-notes"), "hello", false))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-memgate-memory"], "degraded");
    assert!(mg.metric("memgate_auth_unavailable_total").await >= 2.0);
    let log = mg.log();
    assert!(
        !log.contains("sk-new-key") && !log.contains("sk-litellm"),
        "keys in the log"
    );
}
