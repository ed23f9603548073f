//! The OpenAPI document at GET /openapi.json: valid OpenAPI 3 (checked by the
//! openapi-spec-validator package), complete, and true to the router.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

/// Every endpoint of SEED.md's Management API table, plus history and fact deletion.
const ENDPOINTS: &[(&str, &str)] = &[
    ("get", "/memory/engines"),
    ("post", "/memory/session/create"),
    ("get", "/memory/sessions"),
    ("get", "/memory/session/{memory_id}"),
    ("patch", "/memory/session/{memory_id}"),
    ("delete", "/memory/session/{memory_id}"),
    ("post", "/memory/session/add"),
    ("post", "/memory/session/search"),
    ("get", "/memory/session/{memory_id}/facts"),
    ("delete", "/memory/session/{memory_id}/facts/{fact_id}"),
    ("get", "/memory/session/{memory_id}/history"),
    ("get", "/memory/session/{memory_id}/graph"),
    ("get", "/memory/session/{memory_id}/export"),
    ("post", "/memory/session/import"),
    ("post", "/memory/session/{memory_id}/forget"),
    ("get", "/memory/whoami"),
    ("get", "/memory/outbox"),
    ("post", "/memory/outbox/{id}/retry"),
    ("get", "/memory/outbox/journal"),
    ("get", "/memory/turns/{turn_id}"),
    ("get", "/memory/usage"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_valid_complete_and_true() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let response = mg
        .http
        .get(format!("{}/openapi.json", mg.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ENDPOINTS {
        let op = &paths[*path][*method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path}: the 401 answer is not documented"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let session = &doc["components"]["schemas"]["SessionView"]["properties"];
    for field in [
        "memory_id",
        "engine_name",
        "config",
        "fact_count",
        "created_at",
        "last_activity_at",
    ] {
        assert!(session[field].is_object(), "SessionView.{field}");
    }

    // Every documented operation is served: without a key it is refused (401), never
    // unknown (404) or of the wrong method (405).
    let mut documented = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{memory_id}", "some-session")
                .replace("{fact_id}", "some-fact")
                .replace("{id}", "1");
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status = mg
                .http
                .request(m, format!("{}{concrete}", mg.admin))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let open = ["/healthz", "/readyz", "/metrics"].contains(&path.as_str());
            assert_eq!(status, if open { 200 } else { 401 }, "{method} {path}");
            // The document says the same: the open ones lift the API-wide bearer requirement.
            let security = &ops[method.as_str()]["security"];
            let expected = if open { json!([{}]) } else { Value::Null };
            assert_eq!(security, &expected, "{method} {path}: security");
            documented += 1;
        }
    }
    assert_eq!(
        documented,
        ENDPOINTS.len() + 3,
        "undocumented extras: {paths:?}"
    );

    let file = mg.dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let output = Command::new(python())
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("run the validator");
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
