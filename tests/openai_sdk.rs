//! The OpenAI Python SDK (pip `openai`) as a real client: `extra_body={"memory_id": …}`
//! through memgate, streaming and not, remembers across turns.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

async fn sdk_conversation(stream: bool) {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let memory_id = if stream { "sdk-stream" } else { "sdk-plain" };
    assert_eq!(mg.create_session(ACME_ADMIN, memory_id).await.status(), 201);

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/openai_sdk_memory.py"
    );
    let (proxy, mock_url) = (mg.proxy.clone(), mock.url());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("MEMGATE_URL", proxy)
            .env("MEMGATE_KEY", ACME_MEMBER)
            .env("MOCK_URL", mock_url)
            .env("MEMORY_ID", memory_id)
            .env("STREAM", if stream { "1" } else { "0" })
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let turns: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(turns.len(), 2, "{stdout}");

    // Turn 1: the SDK got the upstream's answer; the upstream never saw the memory fields.
    assert_eq!(
        turns[0]["reply"],
        "Echo: I live in Lisbon and I work on the Atlas project."
    );
    let first = &turns[0]["upstream"];
    assert!(first.get("memory_id").is_none() && first.get("store_memory").is_none());
    assert_eq!(first["stream"].as_bool().unwrap_or(false), stream);

    // Turn 2: what turn 1 taught is in the system message the upstream received.
    let second = &turns[1]["upstream"];
    assert_eq!(turns[1]["reply"], "Echo: Which city do I live in?");
    let system = second["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        system.starts_with(&format!("[Past Context for ID: {memory_id}]\n- ")),
        "{second}"
    );
    assert!(system.contains("I live in Lisbon"), "{system}");
    assert!(second.get("memory_id").is_none());
    assert_eq!(
        mg.facts(ACME_MEMBER, memory_id).await.len(),
        1,
        "turn 2 was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_remembers_across_turns() {
    sdk_conversation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_streaming_remembers_across_turns() {
    sdk_conversation(true).await;
}
