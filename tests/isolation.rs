//! Org isolation: two orgs, each with an admin and a member key. Every endpoint, and the chat
//! path, is tried with the other org's session; nothing of it is read, listed, searched,
//! added to, patched or deleted, and the answer is exactly the one for a session that does
//! not exist.

mod common;

use common::*;
use serde_json::{json, Value};

/// Every session-scoped call, for `memory_id` (and a fact id for the fact deletion).
fn session_calls(memory_id: &str, fact_id: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", format!("/memory/session/{memory_id}"), None),
        (
            "PATCH",
            format!("/memory/session/{memory_id}"),
            Some(json!({"config": {"top_k": 1, "retrieval": false}})),
        ),
        ("GET", format!("/memory/session/{memory_id}/facts"), None),
        ("GET", format!("/memory/session/{memory_id}/history"), None),
        (
            "POST",
            "/memory/session/add".into(),
            Some(
                json!({"memory_id": memory_id, "messages": [{"role": "user", "content": "I was planted by another org."}]}),
            ),
        ),
        (
            "POST",
            "/memory/session/search".into(),
            Some(json!({"memory_id": memory_id, "query": "launch code"})),
        ),
        (
            "DELETE",
            format!("/memory/session/{memory_id}/facts/{fact_id}"),
            None,
        ),
        ("DELETE", format!("/memory/session/{memory_id}"), None),
    ]
}

/// The error with the session's name taken out, to compare "another org's" with "none".
fn without_name(body: &Value, name: &str) -> Value {
    let mut body = body.clone();
    if let Some(m) = body["error"]["message"].as_str() {
        body["error"]["message"] = json!(m.replace(name, "<id>"));
    }
    body
}

async fn snapshot(mg: &Memgate, key: &str, memory_id: &str) -> (Value, Value, Value) {
    let (_, details) = mg
        .api(
            "GET",
            Some(key),
            &format!("/memory/session/{memory_id}"),
            None,
        )
        .await;
    let (_, facts) = mg
        .api(
            "GET",
            Some(key),
            &format!("/memory/session/{memory_id}/facts"),
            None,
        )
        .await;
    let (_, history) = mg
        .api(
            "GET",
            Some(key),
            &format!("/memory/session/{memory_id}/history"),
            None,
        )
        .await;
    (details, facts, history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_org_reaches_another_orgs_memory() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;

    assert_eq!(
        mg.create_session(ACME_ADMIN, "acme-notes").await.status(),
        201
    );
    assert_eq!(
        mg.create_session(GLOBEX_ADMIN, "globex-notes")
            .await
            .status(),
        201
    );
    let (status, added) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": "acme-notes", "messages": [{"role": "user", "content": "Our launch code is Falcon."}]})),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    let acme_fact = added["results"][0]["id"].as_str().unwrap().to_string();
    mg.api(
        "POST",
        Some(GLOBEX_MEMBER),
        "/memory/session/add",
        Some(json!({"memory_id": "globex-notes", "messages": [{"role": "user", "content": "Our mascot is a heron."}]})),
    )
    .await;
    let before = snapshot(&mg, ACME_ADMIN, "acme-notes").await;
    assert_eq!(before.1["total"], 1);

    for key in [GLOBEX_ADMIN, GLOBEX_MEMBER] {
        for ((method, path, body), (_, ghost_path, ghost_body)) in
            session_calls("acme-notes", &acme_fact)
                .into_iter()
                .zip(session_calls("no-such-session", &acme_fact))
        {
            let (status, answer) = mg.api(method, Some(key), &path, body).await;
            let (ghost_status, ghost) = mg.api(method, Some(key), &ghost_path, ghost_body).await;
            let expected = if key == GLOBEX_MEMBER && matches!(method, "PATCH" | "DELETE") {
                403
            } else {
                404
            };
            assert_eq!(status, expected, "{key} {method} {path}: {answer}");
            assert_eq!(
                (status, without_name(&answer, "acme-notes")),
                (ghost_status, without_name(&ghost, "no-such-session")),
                "{key} {method} {path}: another org's session must look like none"
            );
        }
        // An id of acme's fact under globex's own session reaches nothing either.
        let (status, _) = mg
            .api(
                "DELETE",
                Some(GLOBEX_ADMIN),
                &format!("/memory/session/globex-notes/facts/{acme_fact}"),
                None,
            )
            .await;
        assert_eq!(status, 404);

        let (status, listed) = mg.api("GET", Some(key), "/memory/sessions", None).await;
        assert_eq!(status, 200);
        let names: Vec<&str> = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["memory_id"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["globex-notes"], "{listed}");

        // The chat path: refused, and nothing reaches the upstream.
        mock.clear();
        let response = mg
            .chat(
                key,
                user_chat(Some("acme-notes"), "What is our launch code?", false),
            )
            .await;
        assert_eq!(response.status(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "memory_session_not_found");
        assert!(mock.requests().is_empty(), "{:?}", mock.requests());
    }

    // The same name in both orgs stays two sessions.
    assert_eq!(
        mg.create_session(GLOBEX_ADMIN, "acme-notes").await.status(),
        201
    );
    let (_, globex_copy) = mg
        .api(
            "GET",
            Some(GLOBEX_ADMIN),
            "/memory/session/acme-notes/facts",
            None,
        )
        .await;
    assert_eq!(globex_copy["total"], 0, "{globex_copy}");

    let after = snapshot(&mg, ACME_ADMIN, "acme-notes").await;
    assert_eq!(before, after, "acme's session changed");
    assert_eq!(
        mg.facts(ACME_MEMBER, "acme-notes").await,
        ["Our launch code is Falcon"]
    );
    let (_, globex_facts) = mg
        .api(
            "GET",
            Some(GLOBEX_MEMBER),
            "/memory/session/globex-notes/facts",
            None,
        )
        .await;
    assert_eq!(
        globex_facts["total"], 1,
        "nothing was planted: {globex_facts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_create_patch_or_delete() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "team").await;
    let (_, added) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/add",
            Some(json!({"memory_id": "team", "messages": [{"role": "user", "content": "Standup is at nine."}]})),
        )
        .await;
    let fact = added["results"][0]["id"].as_str().unwrap().to_string();
    let before = snapshot(&mg, ACME_ADMIN, "team").await;

    let attempts = [
        (
            "POST",
            "/memory/session/create".to_string(),
            Some(json!({"session_name": "mine", "engine_name": "mem0"})),
        ),
        (
            "PATCH",
            "/memory/session/team".into(),
            Some(json!({"config": {"retrieval": false}})),
        ),
        ("DELETE", format!("/memory/session/team/facts/{fact}"), None),
        ("DELETE", "/memory/session/team".into(), None),
    ];
    for (method, path, body) in attempts {
        let (status, e) = mg.api(method, Some(ACME_MEMBER), &path, body).await;
        assert_eq!(status, 403, "{method} {path}: {e}");
        assert_eq!(e["error"]["code"], "forbidden");
    }
    assert_eq!(before, snapshot(&mg, ACME_ADMIN, "team").await);
    let (status, _) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/mine", None)
        .await;
    assert_eq!(status, 404, "the member's create left nothing behind");

    // What members may do.
    let (status, _) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/sessions", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = mg
        .api(
            "POST",
            Some(ACME_MEMBER),
            "/memory/session/search",
            Some(json!({"memory_id": "team", "query": "standup"})),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_needs_a_valid_key() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "locked").await;
    let mut calls = session_calls("locked", "some-fact");
    calls.push(("GET", "/memory/sessions".into(), None));
    calls.push(("GET", "/memory/engines".into(), None));
    calls.push((
        "POST",
        "/memory/session/create".into(),
        Some(json!({"session_name": "x", "engine_name": "mem0"})),
    ));
    let bad_headers = [
        None,
        Some("Bearer sk-wrong"),
        Some("Token sk-acme-admin"),
        Some("Bearer"),
        Some("sk-acme-admin"),
        Some("Basic c2stYWNtZS1hZG1pbjo="),
    ];
    for (method, path, body) in calls {
        for header in bad_headers {
            let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = mg.http.request(method_, format!("{}{path}", mg.admin));
            if let Some(h) = header {
                request = request.header("authorization", h);
            }
            if let Some(b) = &body {
                request = request.json(b);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {header:?}");
            let e: Value = response.json().await.unwrap();
            assert_eq!(e["error"]["type"], "authentication_error");
        }
    }
    // The chat path asks for a key only when memory is used.
    for header in bad_headers {
        let mut request = mg
            .http
            .post(format!("{}/v1/chat/completions", mg.proxy))
            .json(&user_chat(Some("locked"), "hello", false));
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        assert_eq!(request.send().await.unwrap().status(), 401, "{header:?}");
    }
    let (status, facts) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/locked", None)
        .await;
    assert_eq!((status, &facts["fact_count"]), (200, &json!(0)));
}
