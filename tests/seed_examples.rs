//! SEED.md's curl examples, run with curl as written there, apart from host and key.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn curl(args: &[&str]) -> Value {
    let output = Command::new("curl")
        .arg("-sS")
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_curl_examples_work_as_written() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let base = mg.admin.clone();
    let admin = format!("Authorization: Bearer {ACME_ADMIN}");
    let member = format!("Authorization: Bearer {ACME_MEMBER}");

    let created = tokio::task::block_in_place(|| {
        curl(&[
            "-X",
            "POST",
            &format!("{base}/memory/session/create"),
            "-H",
            &admin,
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{
"session_name": "user-alice",
"engine_name": "mem0"
}"#,
        ])
    });
    assert_eq!(created["memory_id"], "user-alice", "{created}");

    // The next three are written without a content type (curl -d sends a form one) and, in
    // SEED.md, without a key; the key is the one difference allowed.
    let added = tokio::task::block_in_place(|| {
        curl(&[
            "-X",
            "POST",
            &format!("{base}/memory/session/add"),
            "-H",
            &member,
            "-d",
            r#"{"memory_id": "user-alice", "messages": [{"role": "user", "content": "My team is in Singapore."}]}"#,
        ])
    });
    assert_eq!(added["results"][0]["event"], "ADD", "{added}");

    let found = tokio::task::block_in_place(|| {
        curl(&[
            "-X",
            "POST",
            &format!("{base}/memory/session/search"),
            "-H",
            &member,
            "-d",
            r#"{"memory_id": "user-alice", "query": "location preferences"}"#,
        ])
    });
    assert_eq!(
        found["results"][0]["text"], "My team is in Singapore",
        "{found}"
    );

    let listed = tokio::task::block_in_place(|| {
        curl(&[
            &format!("{base}/memory/session/user-alice/facts"),
            "-H",
            &member,
        ])
    });
    assert_eq!(
        listed["facts"][0]["text"], "My team is in Singapore",
        "{listed}"
    );
    assert_eq!(listed["total"], 1);
}
