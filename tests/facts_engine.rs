//! The "mem0" engine through the admin API: LLM memory updates, the fallback extractor when
//! the extraction model is off or down, and platform-spend accounting of internal calls.

mod common;

use common::*;
use serde_json::{json, Value};

async fn add(mg: &Memgate, memory_id: &str, text: &str) -> Value {
    let response = mg
        .http
        .post(format!("{}/memory/session/add", mg.admin))
        .bearer_auth(ACME_MEMBER)
        .json(&json!({"memory_id": memory_id, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn events(answer: &Value) -> Vec<(String, String)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap().to_string(),
                r["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_updates_add_update_and_delete_with_history() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_EXTRACTION__LLM_UPDATES", "true")]).await;
    mg.create_session(ACME_ADMIN, "user-gina").await;

    let first = add(&mg, "user-gina", "I live in Oslo with my partner.").await;
    assert_eq!(
        events(&first),
        vec![("ADD".into(), "I live in Oslo with my partner".into())]
    );
    let fact_id = first["results"][0]["id"].as_str().unwrap().to_string();

    let same = add(&mg, "user-gina", "I live in Oslo with my partner!").await;
    assert_eq!(same["results"][0]["event"], "NONE", "{same}");

    let moved = add(
        &mg,
        "user-gina",
        "I live in Oslo with my partner and our dog.",
    )
    .await;
    assert_eq!(moved["results"][0]["event"], "UPDATE", "{moved}");
    assert_eq!(
        moved["results"][0]["id"],
        fact_id.as_str(),
        "updates keep the fact's id"
    );
    assert_eq!(
        mg.facts(ACME_MEMBER, "user-gina").await,
        vec!["I live in Oslo with my partner and our dog"]
    );

    let forget = add(
        &mg,
        "user-gina",
        "Forget I live in Oslo with my partner and our dog.",
    )
    .await;
    assert_eq!(forget["results"][0]["event"], "DELETE", "{forget}");
    assert!(mg.facts(ACME_MEMBER, "user-gina").await.is_empty());

    let (status, history) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            &format!("/memory/session/user-gina/history?fact_id={fact_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    let history: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(history, vec!["ADD", "UPDATE", "DELETE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extraction_disabled_keeps_the_users_statements() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_EXTRACTION__ENABLED", "false")]).await;
    mg.create_session(ACME_ADMIN, "user-hank").await;
    let added = add(
        &mg,
        "user-hank",
        "Can you help me? I manage the Berlin office. Please be brief.",
    )
    .await;
    assert_eq!(
        events(&added),
        vec![("ADD".into(), "I manage the Berlin office".into())]
    );
    assert!(
        mock.requests()
            .iter()
            .all(|r| !r.path.ends_with("/chat/completions")),
        "no extraction call when extraction is off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_extraction_falls_back_and_loses_no_turn() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_EXTRACTION__MAX_RETRIES", "1")]).await;
    mg.create_session(ACME_ADMIN, "user-ivy").await;
    mock.set_internal_failing(true);
    mg.chat(
        ACME_MEMBER,
        user_chat(
            Some("user-ivy"),
            "My manager is Dana. What should I prepare?",
            false,
        ),
    )
    .await;
    let facts = mg.wait_for_fact(ACME_MEMBER, "user-ivy", "Dana").await;
    assert_eq!(facts, vec!["My manager is Dana"]);
    let extraction_attempts = mock
        .internal_requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count();
    assert_eq!(
        extraction_attempts, 2,
        "one try and one retry before falling back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_calls_are_accounted_as_platform_spend_of_the_org() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "user-jo").await;
    add(&mg, "user-jo", "I work on the Q3 APAC analysis.").await;
    mg.chat(
        ACME_MEMBER,
        user_chat(Some("user-jo"), "What do I work on?", false),
    )
    .await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let purposes = mg.usage_by_purpose().await;
        let names: Vec<&str> = purposes.iter().map(|p| p.1.as_str()).collect();
        if names == ["extraction", "fact_embedding", "query_embedding"] {
            assert!(
                purposes.iter().all(|p| p.0 == "acme" && p.2 > 0),
                "{purposes:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage so far: {purposes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let tagged = mock.internal_requests().iter().all(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "x-memgate-org" && v == "acme")
    });
    assert!(tagged);
}

/// Embeddings are asked for as base64; a gateway that refuses it is asked for floats, and
/// from then on only floats, with the same facts found either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_fall_back_to_floats_when_the_gateway_refuses_base64() {
    let mock = mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    mg.create_session(ACME_ADMIN, "encodings").await;
    let add = |text: &str| json!({"memory_id": "encodings", "messages": [{"role": "user", "content": text}]});
    let search = |query: &str| json!({"memory_id": "encodings", "query": query});
    let (status, added) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/add",
            Some(add("My team is in Singapore.")),
        )
        .await;
    assert_eq!(status, 200, "{added}");
    let (_, found) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/search",
            Some(search("Where is my team?")),
        )
        .await;
    assert_eq!(
        found["results"][0]["text"], "My team is in Singapore",
        "{found}"
    );

    mock.set_base64_embeddings_refused(true);
    let asked_before = encodings_asked(&mock).len();
    let (status, added) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/add",
            Some(add("My cat is called Miso.")),
        )
        .await;
    assert_eq!(status, 200, "{added}\n{}", mg.log());
    let (_, found) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/search",
            Some(search("What is my cat called?")),
        )
        .await;
    assert_eq!(
        found["results"][0]["text"], "My cat is called Miso",
        "{found}"
    );

    let asked = encodings_asked(&mock);
    assert!(
        asked[..asked_before].iter().all(|e| e == "base64"),
        "{asked:?}"
    );
    assert_eq!(
        asked[asked_before..],
        ["base64", "float", "float"],
        "one refusal, then floats only: {asked:?}"
    );
}

fn encodings_asked(mock: &MockGateway) -> Vec<String> {
    mock.requests()
        .iter()
        .filter(|r| r.path.ends_with("/embeddings"))
        .map(|r| {
            r.body_json()["encoding_format"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}
