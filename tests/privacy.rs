//! Privacy on write, black-box: redaction before anything leaves or is stored, export and
//! import of a session, and erasure by content. On the store `MEMGATE_TEST_STORE` names.

mod common;

use std::time::{Duration, Instant};

use common::{user_chat, Memgate, ACME_ADMIN, ACME_MEMBER, GLOBEX_ADMIN};
use serde_json::{json, Value};

const EMAIL: &str = "alice.smith@example.com";
const SECRET: &str = "sk-proj-Q7xT2mZp9LrV4nKw8sYb3HcJ6dFgA1eR";

/// Every text column the store keeps a turn or a fact in, on either backend, as one string.
async fn stored_text(mg: &Memgate) -> String {
    use sqlx::Row;
    let tables = [
        "SELECT CAST(payload AS TEXT) AS t FROM outbox",
        "SELECT text AS t FROM facts",
        "SELECT COALESCE(old_text, '') || ' ' || COALESCE(new_text, '') AS t FROM fact_history",
        "SELECT text || ' ' || COALESCE(sentence, '') AS t FROM graph_items",
    ];
    let mut all = String::new();
    if mg.storage_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&mg.storage_url).await.unwrap();
        for sql in tables {
            for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
                all.push_str(&row.get::<String, _>("t"));
                all.push('\n');
            }
        }
        pool.close().await;
    } else {
        // The file itself, write-ahead log included, not only what queries show.
        let path = mg.storage_url.trim_start_matches("sqlite://");
        for file in [path.to_string(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                all.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    all
}

async fn history(mg: &Memgate, memory_id: &str) -> Vec<Value> {
    let (status, body) = mg
        .api(
            "GET",
            Some(ACME_ADMIN),
            &format!("/memory/session/{memory_id}/history?limit=500"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["history"].as_array().cloned().unwrap_or_default()
}

async fn create(mg: &Memgate, key: &str, name: &str, engine: &str, config: Value) {
    let (status, body) = mg
        .api(
            "POST",
            Some(key),
            "/memory/session/create",
            Some(json!({"session_name": name, "engine_name": engine, "config": config})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn add(mg: &Memgate, memory_id: &str, text: &str) -> Value {
    let (status, body) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/add",
            Some(json!({"memory_id": memory_id, "messages": [{"role": "user", "content": text}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn search(
    mg: &Memgate,
    memory_id: &str,
    query: &str,
    search_type: Option<&str>,
) -> Vec<String> {
    let mut body = json!({"memory_id": memory_id, "query": query, "limit": 50});
    if let Some(t) = search_type {
        body["search_type"] = json!(t);
    }
    let (status, found) = mg
        .api(
            "POST",
            Some(ACME_ADMIN),
            "/memory/session/search",
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_and_an_email_reach_no_model_and_no_store_and_the_answer_is_untouched() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    // The server redacts secrets only (the default); this session asks for e-mails too.
    create(
        &mg,
        ACME_ADMIN,
        "alice",
        "mem0",
        json!({"redaction": {"email": true}}),
    )
    .await;
    let text = format!("My email is {EMAIL} and my key is {SECRET}. I live in Lisbon.");
    let response = mg
        .chat(ACME_MEMBER, user_chat(Some("alice"), &text, false))
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let said = answer["choices"][0]["message"]["content"].as_str().unwrap();
    // The client's own answer is never redacted.
    assert!(said.contains(EMAIL) && said.contains(SECRET), "{said}");
    let facts = mg.wait_for_fact(ACME_ADMIN, "alice", "Lisbon").await;
    assert!(
        facts
            .iter()
            .any(|f| f.contains("[email]") && f.contains("[secret]")),
        "{facts:?}"
    );

    // The same through the management API's add, and a search naming the secret.
    add(&mg, "alice", &format!("Ping me at {EMAIL} about Porto.")).await;
    search(&mg, "alice", &format!("what is {SECRET} for?"), None).await;

    let internal: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("embeddings") || r.is_internal())
        .collect();
    assert!(
        internal.iter().any(|r| r.path.contains("embeddings"))
            && internal.iter().any(|r| r.path.contains("chat")),
        "the turn was neither embedded nor extracted: {internal:?}"
    );
    for request in &internal {
        assert!(
            !request.body.contains(EMAIL) && !request.body.contains(SECRET),
            "{} got {}",
            request.path,
            request.body
        );
    }
    let stored = stored_text(&mg).await;
    assert!(
        stored.contains("[email]"),
        "the store holds no redacted turn"
    );
    assert!(!stored.contains(EMAIL) && !stored.contains(SECRET));
    // Each fact's history says it was redacted, never what was.
    let events = history(&mg, "alice").await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["redacted"] == json!(true)),
        "{events:?}"
    );
    assert!(
        mg.metric(r#"memgate_redactions_total{detector="email"}"#)
            .await
            >= 2.0
    );
    assert!(
        mg.metric(r#"memgate_redactions_total{detector="secret"}"#)
            .await
            >= 2.0
    );
    assert_eq!(
        mg.metric(r#"memgate_redactions_total{detector="card"}"#)
            .await,
        0.0
    );

    // A session that turns secrets off keeps them.
    create(
        &mg,
        ACME_ADMIN,
        "raw",
        "mem0",
        json!({"redaction": {"secret": false}}),
    )
    .await;
    add(&mg, "raw", &format!("The key of Bob is {SECRET}")).await;
    let kept = mg.facts(ACME_ADMIN, "raw").await;
    assert!(kept.iter().any(|f| f.contains(SECRET)), "{kept:?}");
    let events = history(&mg, "raw").await;
    assert!(
        events.iter().all(|e| e["redacted"] == json!(false)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_settings_are_checked_where_they_are_set() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    let refused = [
        (json!({"redaction": {"mail": true}}), "config.redaction"),
        (
            json!({"redaction": {"custom": [{"label": "Ticket", "pattern": "T-\\d+"}]}}),
            "config.redaction.custom[0].label",
        ),
        (
            json!({"redaction": {"custom": [{"label": "ticket", "pattern": "(T-"}]}}),
            "config.redaction.custom[0].pattern",
        ),
        (
            json!({"redaction": {"custom": [{"label": "email", "pattern": "x"}]}}),
            "config.redaction.custom[0].label",
        ),
    ];
    for (config, param) in refused {
        let (status, body) = mg
            .api(
                "POST",
                Some(ACME_ADMIN),
                "/memory/session/create",
                Some(json!({"session_name": "s", "engine_name": "mem0", "config": config})),
            )
            .await;
        assert_eq!(status, 422, "{config}: {body}");
        assert!(
            body["error"]["param"].as_str().unwrap().starts_with(param),
            "{config}: {body}"
        );
    }
    // A custom rule of the session's own, merged into its config by PATCH.
    create(&mg, ACME_ADMIN, "tickets", "mem0", json!({})).await;
    let (status, body) = mg
        .api(
            "PATCH",
            Some(ACME_ADMIN),
            "/memory/session/tickets",
            Some(json!({"config": {"redaction": {"custom": [{"label": "ticket", "pattern": "TCK-[0-9]{6}"}]}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = mg
        .api(
            "PATCH",
            Some(ACME_ADMIN),
            "/memory/session/tickets",
            Some(json!({"config": {"redaction": {"phone": true}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["config"]["redaction"]["phone"], json!(true));
    assert_eq!(body["config"]["redaction"]["custom"][0]["label"], "ticket");
    add(
        &mg,
        "tickets",
        "Ticket TCK-123456 is about the Lisbon office.",
    )
    .await;
    let facts = mg.facts(ACME_ADMIN, "tickets").await;
    assert!(facts.iter().any(|f| f.contains("[ticket]")), "{facts:?}");
    assert!(!facts.iter().any(|f| f.contains("TCK-123456")), "{facts:?}");
    assert_eq!(
        mg.metric(r#"memgate_redactions_total{detector="custom"}"#)
            .await,
        1.0
    );
}

async fn export(mg: &Memgate, key: &str, memory_id: &str) -> (u16, String) {
    let response = mg
        .http
        .get(format!("{}/memory/session/{memory_id}/export", mg.admin))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    }
    (status, response.text().await.unwrap())
}

async fn import(mg: &Memgate, key: &str, query: &str, dump: &str) -> (u16, Value) {
    let response = mg
        .http
        .post(format!("{}/memory/session/import{query}", mg.admin))
        .bearer_auth(key)
        .header("content-type", "application/x-ndjson")
        .body(dump.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Facts as the API lists them (id, text, created_at, updated_at).
async fn listed(mg: &Memgate, memory_id: &str) -> Vec<Value> {
    let (status, body) = mg
        .api(
            "GET",
            Some(ACME_ADMIN),
            &format!("/memory/session/{memory_id}/facts?limit=500"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["facts"].as_array().cloned().unwrap()
}

/// History without its own row ids, which a restore numbers afresh.
fn events_of(history: &[Value]) -> Vec<Value> {
    history
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("id");
            e
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mem0_session_exported_deleted_and_imported_comes_back_the_same() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    create(&mg, ACME_ADMIN, "alice", "mem0", json!({"top_k": 4})).await;
    for text in [
        "I live in Lisbon.",
        "My team is in Singapore.",
        "I prefer short summaries.",
    ] {
        add(&mg, "alice", text).await;
    }
    let facts = listed(&mg, "alice").await;
    assert_eq!(facts.len(), 3);
    let gone = facts[1]["id"].as_str().unwrap();
    let (status, _) = mg
        .api(
            "DELETE",
            Some(ACME_ADMIN),
            &format!("/memory/session/alice/facts/{gone}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let before = (
        listed(&mg, "alice").await,
        events_of(&history(&mg, "alice").await),
    );
    assert_eq!(before.1.len(), 4, "{:?}", before.1);

    let (status, _) = export(&mg, ACME_MEMBER, "alice").await;
    assert_eq!(status, 403);
    let (status, _) = export(&mg, GLOBEX_ADMIN, "alice").await;
    assert_eq!(status, 404);
    let (status, dump) = export(&mg, ACME_ADMIN, "alice").await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "session");
    assert_eq!(lines[0]["config"]["top_k"], 4);
    assert_eq!(lines.iter().filter(|l| l["type"] == "fact").count(), 2);
    assert_eq!(lines.iter().filter(|l| l["type"] == "history").count(), 4);
    assert_eq!(
        lines.last().unwrap(),
        &json!({"type": "end", "facts": 2, "graph_items": 0, "history": 4})
    );

    let (status, _) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/alice", None)
        .await;
    assert_eq!(status, 200);
    // What would go wrong is refused, and writes nothing.
    let cut: String = dump
        .lines()
        .take(lines.len() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let (status, body) = import(&mg, ACME_ADMIN, "", &cut).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_export")),
        "{body}"
    );
    let (status, body) = import(&mg, GLOBEX_ADMIN, "", &dump).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("foreign_export")),
        "{body}"
    );
    let (status, _) = import(&mg, ACME_MEMBER, "", &dump).await;
    assert_eq!(status, 403);
    let (status, _) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/alice", None)
        .await;
    assert_eq!(status, 404);

    let embeddings_before = mock
        .requests()
        .iter()
        .filter(|r| r.path.contains("embeddings"))
        .count();
    let (status, receipt) = import(&mg, ACME_ADMIN, "", &dump).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(
        receipt,
        json!({"memory_id": "alice", "facts": 2, "graph_items": 0, "history": 4, "reembedded": 0})
    );
    // The same model: the vectors came with the export.
    let embeddings_after = mock
        .requests()
        .iter()
        .filter(|r| r.path.contains("embeddings"))
        .count();
    assert_eq!(embeddings_before, embeddings_after);
    let after = (
        listed(&mg, "alice").await,
        events_of(&history(&mg, "alice").await),
    );
    assert_eq!(before, after);
    let (_, session) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/alice", None)
        .await;
    assert_eq!(session["config"]["top_k"], 4);
    assert!(search(&mg, "alice", "Lisbon", None).await[0].contains("Lisbon"));

    // Again: the name is taken; under another name the fact ids are (by the restored one).
    let (status, _) = import(&mg, ACME_ADMIN, "", &dump).await;
    assert_eq!(status, 409);
    let (status, body) = import(&mg, ACME_ADMIN, "?memory_id=alice-copy", &dump).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/session/alice-copy", None)
        .await;
    assert_eq!(status, 404, "a refused import wrote its session");

    // From another model, every text is embedded again.
    let elsewhere = dump.replacen(
        "\"embedding_model\":\"text-embedding-3-small\"",
        "\"embedding_model\":\"other-model\"",
        1,
    );
    assert_ne!(elsewhere, dump);
    let (status, _) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/alice", None)
        .await;
    assert_eq!(status, 200);
    let (status, receipt) = import(&mg, ACME_ADMIN, "", &elsewhere).await;
    assert_eq!(
        (status, receipt["reembedded"].as_u64()),
        (201, Some(2)),
        "{receipt}"
    );
    assert_eq!(listed(&mg, "alice").await, before.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cognee_session_exported_deleted_and_imported_comes_back_the_same() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    create(&mg, ACME_ADMIN, "graph", "cognee", json!({})).await;
    add(&mg, "graph", "Bob lives in Berlin. Bob works at Acme.").await;
    // Relationships written in the same instant are listed by id, which the new session
    // derives afresh: compared as sets.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let before_facts: Vec<String> = sorted(mg.facts(ACME_ADMIN, "graph").await);
    assert!(!before_facts.is_empty());
    let texts = |h: &[Value]| -> Vec<(String, String, String)> {
        h.iter()
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_string(),
                    e["new_text"].as_str().unwrap_or_default().to_string(),
                    e["created_at"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before_history = texts(&history(&mg, "graph").await);
    let (status, dump) = export(&mg, ACME_ADMIN, "graph").await;
    assert_eq!(status, 200);
    assert!(dump.contains("\"type\":\"graph_item\""));
    let (status, _) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/graph", None)
        .await;
    assert_eq!(status, 200);
    let (status, receipt) = import(&mg, ACME_ADMIN, "", &dump).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(sorted(mg.facts(ACME_ADMIN, "graph").await), before_facts);
    let after = history(&mg, "graph").await;
    let mut a = texts(&after);
    let mut b = before_history.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // The history follows each relationship to its id in the new session.
    let ids: Vec<String> = listed(&mg, "graph")
        .await
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(after
        .iter()
        .all(|e| ids.contains(&e["fact_id"].as_str().unwrap().to_string())));
    let found = search(
        &mg,
        "graph",
        "Where does Bob live?",
        Some("GRAPH_COMPLETION"),
    )
    .await;
    assert!(found.iter().any(|t| t.contains("Berlin")), "{found:?}");
    // A turn naming the same relationship updates it, rather than adding a twin.
    add(&mg, "graph", "Bob lives in Berlin.").await;
    assert_eq!(
        mg.facts(ACME_ADMIN, "graph").await.len(),
        before_facts.len()
    );
}

async fn forget(mg: &Memgate, key: &str, memory_id: &str, body: Value) -> (u16, Value) {
    mg.api(
        "POST",
        Some(key),
        &format!("/memory/session/{memory_id}/forget"),
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_facts_and_turns_are_gone_from_every_search_of_a_mem0_session() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start_with(&mock.url(), &[("MEMGATE_WORKER__MAX_ATTEMPTS", "1")]).await;
    create(&mg, ACME_ADMIN, "alice", "mem0", json!({})).await;
    for text in [
        "I live in Lisbon.",
        "My sister lives in lisbon too.",
        "My team is in Singapore.",
        "I prefer short summaries.",
    ] {
        add(&mg, "alice", text).await;
    }
    // A turn that could not be ingested (a dead letter) still holds the text.
    mock.set_internal_failing(true);
    mock.set_embeddings_failing(true);
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("alice"), "Lisbon has the best tiles.", false),
        )
        .await;
    assert_eq!(response.status(), 200);
    let dead_turn = response.headers()["x-memgate-turn"]
        .to_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mg.metric("memgate_turns_dead_lettered_total").await < 1.0 {
        assert!(Instant::now() < deadline, "no dead letter\n{}", mg.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mock.set_internal_failing(false);
    mock.set_embeddings_failing(false);
    let singapore = listed(&mg, "alice").await[2]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, _) = forget(&mg, ACME_MEMBER, "alice", json!({"query": "lisbon"})).await;
    assert_eq!(status, 403);
    let (status, _) = forget(&mg, GLOBEX_ADMIN, "alice", json!({"query": "lisbon"})).await;
    assert_eq!(status, 404);
    for bad in [
        json!({"querry": "lisbon"}),
        json!({"query": "li"}),
        json!({"query": 5}),
        json!({"fact_ids": "x"}),
    ] {
        let (status, body) = forget(&mg, ACME_ADMIN, "alice", bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    // Nothing named, nothing matched: an empty receipt.
    let (status, nothing) = forget(&mg, ACME_ADMIN, "alice", json!({"fact_ids": []})).await;
    assert_eq!(status, 200, "{nothing}");
    assert_eq!(nothing["removed"]["facts"], json!([]));
    let (status, preview) = forget(
        &mg,
        ACME_ADMIN,
        "alice",
        json!({"query": "LISBON", "dry_run": true}),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview["removed"]["facts"].as_array().unwrap().len(),
        2,
        "{preview}"
    );
    assert_eq!(preview["removed"]["turns"], json!([dead_turn]));
    assert_eq!(
        listed(&mg, "alice").await.len(),
        4,
        "a dry run removed something"
    );

    let (status, done) = forget(
        &mg,
        ACME_ADMIN,
        "alice",
        json!({"query": "LISBON", "fact_ids": [singapore, "no-such-fact"]}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        done["removed"]["facts"].as_array().unwrap().len(),
        3,
        "{done}"
    );
    assert_eq!(done["removed"]["turns"], json!([dead_turn]));
    assert_eq!(done["removed"]["not_found"], json!(["no-such-fact"]));
    assert!(done["removed"]["history_events_erased"].as_u64().unwrap() >= 3);
    let left = mg.facts(ACME_ADMIN, "alice").await;
    assert_eq!(left, vec!["I prefer short summaries".to_string()]);
    for query in ["Lisbon", "Where do I live?", "Singapore team"] {
        let found = search(&mg, "alice", query, None).await;
        assert!(
            found
                .iter()
                .all(|t| !t.to_lowercase().contains("lisbon") && !t.contains("Singapore")),
            "{query}: {found:?}"
        );
    }
    let events = history(&mg, "alice").await;
    for event in &events {
        let texts = format!("{} {}", event["old_text"], event["new_text"]);
        assert!(
            !texts.to_lowercase().contains("lisbon") && !texts.contains("Singapore"),
            "{event}"
        );
    }
    assert_eq!(
        events.iter().filter(|e| e["reason"] == "forget").count(),
        3,
        "{events:?}"
    );
    // The dead letter is gone, and its receipt says why.
    let (_, dead) = mg
        .api("GET", Some(ACME_ADMIN), "/memory/outbox?state=dead", None)
        .await;
    assert_eq!(dead["total"], json!(0), "{dead}");
    let (status, receipt) = mg
        .api(
            "GET",
            Some(ACME_ADMIN),
            &format!("/memory/turns/{dead_turn}"),
            None,
        )
        .await;
    assert_eq!(
        (status, receipt["state"].as_str()),
        (200, Some("dropped")),
        "{receipt}"
    );
    assert!(!stored_text(&mg).await.to_lowercase().contains("lisbon"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_an_entity_takes_its_relationships_chunks_and_summaries() {
    let mock = common::mock_gateway::spawn().await;
    let mg = Memgate::start(&mock.url()).await;
    create(&mg, ACME_ADMIN, "graph", "cognee", json!({})).await;
    add(&mg, "graph", "Bob lives in Berlin.").await;
    add(&mg, "graph", "Carol works at Acme.").await;
    let (status, done) = forget(&mg, ACME_ADMIN, "graph", json!({"query": "berlin"})).await;
    assert_eq!(status, 200, "{done}");
    let removed = &done["removed"];
    assert!(!removed["facts"].as_array().unwrap().is_empty(), "{done}");
    assert!(
        !removed["entities"].as_array().unwrap().is_empty(),
        "{done}"
    );
    assert!(!removed["chunks"].as_array().unwrap().is_empty(), "{done}");
    for search_type in ["GRAPH_COMPLETION", "CHUNKS", "SUMMARIES"] {
        for query in ["Where does Bob live?", "Berlin"] {
            let found = search(&mg, "graph", query, Some(search_type)).await;
            assert!(
                found.iter().all(|t| !t.contains("Berlin")),
                "{search_type} {query}: {found:?}"
            );
        }
    }
    let left = mg.facts(ACME_ADMIN, "graph").await;
    assert!(left.iter().any(|f| f.contains("Acme")), "{left:?}");
    assert!(left.iter().all(|f| !f.contains("Berlin")), "{left:?}");
    assert!(!stored_text(&mg).await.contains("Berlin"));
}
