//! The management API on the admin listener, through the real binary.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post(mg: &Memgate, key: Option<&str>, path: &str, body: Value) -> (u16, Value) {
    let mut request = mg
        .http
        .post(format!("{}{path}", mg.admin))
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(mg: &Memgate, key: &str, path: &str) -> (u16, Value) {
    let response = mg
        .http
        .get(format!("{}{path}", mg.admin))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lifecycle_add_search_and_list() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;

    let (status, created) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/create",
        json!({"session_name": "user-alice", "engine_name": "mem0"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["memory_id"], "user-alice");
    assert_eq!(created["engine_name"], "mem0");
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        created_at.starts_with("20") && created_at.ends_with('Z'),
        "{created_at}"
    );

    let (status, clash) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/create",
        json!({"session_name": "user-alice", "engine_name": "mem0"}),
    )
    .await;
    assert_eq!(status, 409, "{clash}");

    // SEED's example, sent the way curl -d sends it (form content type).
    let response = mg
        .http
        .post(format!("{}/memory/session/add", mg.admin))
        .bearer_auth(ACME_MEMBER)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"memory_id": "user-alice", "messages": [{"role": "user", "content": "My team is in Singapore."}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["results"][0]["event"], "ADD", "{added}");
    assert_eq!(added["results"][0]["text"], "My team is in Singapore");

    let (_, again) = post(
        &mg,
        Some(ACME_MEMBER),
        "/memory/session/add",
        json!({"memory_id": "user-alice", "messages": [{"role": "user", "content": "My team is in Singapore!"}]}),
    )
    .await;
    assert_eq!(
        again["results"][0]["event"], "NONE",
        "duplicates add nothing: {again}"
    );

    post(
        &mg,
        Some(ACME_MEMBER),
        "/memory/session/add",
        json!({"memory_id": "user-alice", "messages": [
            {"role": "user", "content": "I prefer summaries under 200 words. I am working on the Q3 APAC analysis."}
        ]}),
    )
    .await;

    let (status, found) = post(
        &mg,
        Some(ACME_MEMBER),
        "/memory/session/search",
        json!({"memory_id": "user-alice", "query": "Singapore team location"}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["query_kind"], "keywords");
    assert_eq!(
        found["results"][0]["text"], "My team is in Singapore",
        "{found}"
    );

    let (_, question) = post(
        &mg,
        Some(ACME_MEMBER),
        "/memory/session/search",
        json!({"memory_id": "user-alice", "query": "How long should summaries be?", "limit": 1}),
    )
    .await;
    assert_eq!(question["query_kind"], "question");
    assert_eq!(question["results"].as_array().unwrap().len(), 1);
    assert!(question["results"][0]["text"]
        .as_str()
        .unwrap()
        .contains("summaries"));

    let (status, listed) = get(&mg, ACME_MEMBER, "/memory/session/user-alice/facts?limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 3, "{listed}");
    assert_eq!(listed["facts"].as_array().unwrap().len(), 2);
    let (_, rest) = get(
        &mg,
        ACME_MEMBER,
        "/memory/session/user-alice/facts?limit=2&offset=2",
    )
    .await;
    assert_eq!(rest["facts"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_cannot_reach_each_others_sessions() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "shared-name").await;
    mg.create_session(GLOBEX_ADMIN, "globex-private").await;
    post(
        &mg,
        Some(GLOBEX_MEMBER),
        "/memory/session/add",
        json!({"memory_id": "globex-private", "messages": [{"role": "user", "content": "Our launch code is Falcon."}]}),
    )
    .await;

    let (status, e) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/search",
        json!({"memory_id": "globex-private", "query": "launch code"}),
    )
    .await;
    assert_eq!(status, 404, "{e}");
    assert_eq!(e["error"]["code"], "memory_session_not_found");
    let (status, _) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/add",
        json!({"memory_id": "globex-private", "messages": [{"role": "user", "content": "Injected by acme here."}]}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&mg, ACME_ADMIN, "/memory/session/globex-private/facts").await;
    assert_eq!(status, 404);

    // The same name in two orgs is two sessions.
    let (status, _) = post(
        &mg,
        Some(GLOBEX_ADMIN),
        "/memory/session/create",
        json!({"session_name": "shared-name", "engine_name": "mem0"}),
    )
    .await;
    assert_eq!(status, 201);

    let facts = mg.facts(GLOBEX_MEMBER, "globex-private").await;
    assert_eq!(facts, vec!["Our launch code is Falcon"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_roles_and_input_errors() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let create = json!({"session_name": "s1", "engine_name": "mem0"});

    let (status, e) = post(&mg, None, "/memory/session/create", create.clone()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (status, _) = post(
        &mg,
        Some("sk-wrong"),
        "/memory/session/create",
        create.clone(),
    )
    .await;
    assert_eq!(status, 401);
    let malformed = mg
        .http
        .post(format!("{}/memory/session/create", mg.admin))
        .header("authorization", "Token abc")
        .body(create.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 401);
    let (status, _) = post(&mg, Some(ACME_MEMBER), "/memory/session/create", create).await;
    assert_eq!(status, 403, "members cannot create sessions");

    let (status, e) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/create",
        json!({"session_name": "s2", "engine_name": "nope"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("engine_name"));

    let (status, e) = post(
        &mg,
        Some(ACME_ADMIN),
        "/memory/session/create",
        json!({"session_name": 7, "engine_name": "mem0"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session_name"),
        "{e}"
    );

    let response = mg
        .http
        .post(format!("{}/memory/session/search", mg.admin))
        .bearer_auth(ACME_ADMIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let (status, engines) = get(&mg, ACME_MEMBER, "/memory/engines").await;
    assert_eq!(status, 200);
    assert_eq!(engines["engines"][0]["name"], "mem0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_embedding_model_is_refused_at_start() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let storage = mg.storage_url.clone();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_memgate"))
        .arg("migrate")
        .env("MEMGATE_STORAGE__URL", &storage)
        .env("MEMGATE_EMBEDDINGS__PROVIDER", "gateway")
        .env("MEMGATE_EMBEDDINGS__DIMENSIONS", "256")
        .env("MEMGATE_EMBEDDINGS__MODEL", "another-embedding-model")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("another-embedding-model"), "{stderr}");
    let same = std::process::Command::new(env!("CARGO_BIN_EXE_memgate"))
        .arg("migrate")
        .env("MEMGATE_STORAGE__URL", &storage)
        .env("MEMGATE_EMBEDDINGS__PROVIDER", "gateway")
        .env("MEMGATE_EMBEDDINGS__DIMENSIONS", "256")
        .env("MEMGATE_EMBEDDINGS__MODEL", "text-embedding-3-small")
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
}
