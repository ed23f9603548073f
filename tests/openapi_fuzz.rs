//! Schemathesis (pip `schemathesis`, pinned in scripts/python-requirements.txt) generates
//! requests from GET /openapi.json, valid and invalid ones, sends them to the running binary
//! under an admin key, and checks every answer against the document: no 5xx, no status the
//! document does not list, bodies that match their schemas, valid input accepted and invalid
//! input refused, and the key needed wherever the document says so. Its settings, and the
//! session names it draws from, are in tests/schemathesis.toml.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// The sessions tests/schemathesis.toml names: the `sessions` dictionary, then the `doomed`
/// ones, which only DELETE is given.
const SESSIONS: &[(&str, &str)] = &[
    ("fuzz-mem0", "mem0"),
    ("fuzz-cognee", "cognee"),
    ("doomed-mem0", "mem0"),
    ("doomed-cognee", "cognee"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_answers_as_its_openapi_document_says() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    for (name, engine) in SESSIONS {
        mg.create_engine_session(ACME_ADMIN, name, engine).await;
        // Something to list, search, delete and show the history of.
        let (status, body) = mg
            .api(
                "POST",
                Some(ACME_ADMIN),
                "/memory/session/add",
                Some(json!({"memory_id": name, "messages": [{
                    "role": "user",
                    "content": "I live in Lisbon and I work on the Atlas project."
                }]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py");
    // Schemathesis keeps its caches in the working directory: the instance's temp dir.
    let workdir = mg.dir.path().to_path_buf();
    let schema = format!("{}/openapi.json", mg.admin);
    let admin = mg.admin.clone();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .args([
                "-m",
                "schemathesis.cli",
                "--no-color",
                "--config-file",
                config,
            ])
            .args(["run", &schema, "--url", &admin])
            .args(["--header", &format!("Authorization: Bearer {ACME_ADMIN}")])
            .args(["--output-truncate", "false"])
            .env("SCHEMATHESIS_HOOKS", hooks)
            .current_dir(workdir)
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "schemathesis found answers that are not what the document says (after {elapsed:?}; its report is above):\n{}",
        String::from_utf8_lossy(&output.stderr),
    );
    // The settings are sized for a short run; a slow one means they no longer are.
    assert!(
        elapsed < Duration::from_secs(120),
        "schemathesis took {elapsed:?}"
    );
}
