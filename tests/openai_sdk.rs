//! The OpenAI Python SDK (pip `openai`) as a real client: `extra_body={"memory_id": …}`
//! through memgate, streaming and not, remembers across turns.

mod common;

use common::*;

async fn sdk_conversation(stream: bool) {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let memory_id = if stream { "sdk-stream" } else { "sdk-plain" };
    assert_eq!(mg.create_session(ACME_ADMIN, memory_id).await.status(), 201);

    let env = sdk_script_env(&mg, &mock, memory_id, stream);
    let turns = python_json_lines("python/openai_sdk_memory.py", Vec::new(), env).await;
    assert_eq!(turns.len(), 2, "{turns:?}");

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
