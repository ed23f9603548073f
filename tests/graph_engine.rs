//! The cognee engine, black-box: turns through the proxy become a knowledge graph, a
//! two-hop relation is injected, each search type answers through the API, deletions hide
//! data at once and are purged from the graph server once it is back, and two orgs with the
//! same names never share an entity or an edge.
//!
//! The graph lives on a real Bolt server (ArcadeDB, started per test by `common::bolt`) when
//! the tests run on Postgres (`MEMGATE_TEST_STORE=postgres`, the production shape), and in
//! the embedded store's tables otherwise; the tests that stop the server always use one.

mod common;

use std::time::{Duration, Instant};

use common::bolt::BoltServer;
use common::{
    last_upstream_chat, test_store, user_chat, Memgate, ACME_ADMIN, ACME_MEMBER, GLOBEX_ADMIN,
};
use serde_json::{json, Value};

const TEAM_TURNS: [&str; 5] = [
    "Alice works with Bob.",
    "Bob lives in Lisbon.",
    "Carol lives in Paris.",
    "Alice leads Project Phoenix.",
    "Dave works with Carol.",
];
const TWO_HOP_QUESTION: &str = "Where is Alice's teammate based?";

fn graph_toml(bolt: &BoltServer) -> String {
    format!(
        "[graph]\nurl = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\ndatabase = \"{}\"\ntimeout_ms = 1500\n",
        bolt.url(),
        bolt.user(),
        bolt.password(),
        bolt.database()
    )
}

/// memgate on the harness store, with a Bolt server when the run is on Postgres.
async fn start(upstream: &str) -> (Memgate, Option<BoltServer>) {
    if test_store() == "postgres" {
        let bolt = BoltServer::start().await;
        let mg = Memgate::start_with_toml(upstream, &graph_toml(&bolt), &[]).await;
        (mg, Some(bolt))
    } else {
        (Memgate::start(upstream).await, None)
    }
}

async fn create_cognee(mg: &Memgate, key: &str, name: &str) {
    let (status, body) = mg
        .api(
            "POST",
            Some(key),
            "/memory/session/create",
            Some(json!({"session_name": name, "engine_name": "cognee"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["engine_name"], "cognee");
}

async fn add(mg: &Memgate, key: &str, memory_id: &str, text: &str) -> Value {
    let (status, body) = mg
        .api(
            "POST",
            Some(key),
            "/memory/session/add",
            Some(json!({"memory_id": memory_id, "messages": [{"role": "user", "content": text}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}\n{}", mg.log());
    body
}

async fn search(mg: &Memgate, key: &str, body: Value) -> (u16, Value) {
    mg.api("POST", Some(key), "/memory/session/search", Some(body))
        .await
}

fn texts(results: &Value) -> Vec<String> {
    results
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Counts what the Bolt server holds for an org, straight from the server.
async fn bolt_count(bolt: &BoltServer, org: &str) -> (i64, i64) {
    try_bolt_count(bolt, org).await.expect("count query")
}

/// The same, or the server's error: while a purge deletes the org's nodes, ArcadeDB can fail
/// a MATCH that reaches a record deleted under it (`EntityNotFound`).
async fn try_bolt_count(bolt: &BoltServer, org: &str) -> Result<(i64, i64), neo4rs::Error> {
    let graph = neo4rs::Graph::connect(
        neo4rs::ConfigBuilder::default()
            .uri(bolt.url())
            .user(bolt.user())
            .password(bolt.password())
            .db(bolt.database())
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let count = |cypher: &'static str| {
        let graph = graph.clone();
        let org = org.to_string();
        async move {
            let mut rows = graph
                .execute(neo4rs::query(cypher).param("org", org))
                .await?;
            let row = rows.next().await?.expect("a count row");
            Ok::<i64, neo4rs::Error>(row.get::<i64>("n").unwrap())
        }
    };
    let nodes = count("MATCH (n:Entity {org_id: $org}) RETURN count(n) AS n").await?;
    let edges =
        count("MATCH (a:Entity {org_id: $org})-[r:RELATES]->() RETURN count(r) AS n").await?;
    Ok((nodes, edges))
}

#[tokio::test]
async fn a_two_hop_relation_is_injected_before_the_call() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, bolt) = start(&mock.url()).await;
    create_cognee(&mg, ACME_ADMIN, "team").await;

    // The conversation goes through the proxy, streamed and not, as an application sends it.
    for (i, turn) in TEAM_TURNS.iter().enumerate() {
        let response = mg
            .chat(ACME_MEMBER, user_chat(Some("team"), turn, i % 2 == 0))
            .await;
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    }
    for needle in [
        "Alice works with Bob",
        "Bob lives in Lisbon",
        "Carol lives in Paris",
        "Alice leads Project Phoenix",
        "Dave works with Carol",
    ] {
        mg.wait_for_fact(ACME_MEMBER, "team", needle).await;
    }

    mock.clear();
    let graph_answers = mg.metric("memgate_graph_searches_graph_total").await;
    // Not stored, so that no ingestion call follows the request's own.
    let mut question = user_chat(Some("team"), TWO_HOP_QUESTION, false);
    question["store_memory"] = json!(false);
    let response = mg.chat(ACME_MEMBER, question).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-memgate-memory"],
        "injected",
        "{}",
        mg.log()
    );
    let upstream = last_upstream_chat(&mock);
    let system = upstream["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("[Past Context for ID: team]"), "{system}");
    // Alice → Bob → Lisbon: the answer needs both hops, and the graph brought the second.
    assert!(system.contains("- Alice works with Bob"), "{system}");
    assert!(system.contains("- Bob lives in Lisbon"), "{system}");
    // Carol's relations are not connected to Alice: the graph keeps them out.
    assert!(!system.contains("Paris"), "{system}");
    assert!(!system.contains("Dave"), "{system}");
    // No model call on the hot path: only the query embedding went to the gateway.
    let internal: Vec<String> = mock
        .internal_requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(internal, ["/v1/embeddings"], "{internal:?}");
    assert_eq!(
        mg.metric("memgate_graph_searches_graph_total").await,
        graph_answers + 1.0
    );

    // A relation two hops from the only entry point: Alice is near the query, Bob (and the
    // relationship joining them, a long one) is not.
    create_cognee(&mg, ACME_ADMIN, "chain").await;
    add(
        &mg,
        ACME_MEMBER,
        "chain",
        "Alice works closely every day with Bob. Bob lives in Lisbon.",
    )
    .await;
    let (_, found) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "chain", "query": "Tell me about Alice."}),
    )
    .await;
    let hops: Vec<(String, u64)> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap().to_string(),
                r["triplet"]["hops"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            ("Alice works closely every day with Bob".to_string(), 1),
            ("Bob lives in Lisbon".to_string(), 2)
        ],
        "{found}"
    );

    let (_, engines) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/engines", None)
        .await;
    let cognee = &engines["engines"][1];
    assert_eq!(cognee["available"], true);
    assert_eq!(
        cognee["backends"]
            .as_array()
            .unwrap()
            .contains(&json!("neo4j")),
        bolt.is_some(),
        "{cognee}"
    );
}

#[tokio::test]
async fn each_search_type_answers_through_the_api() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, _bolt) = start(&mock.url()).await;
    create_cognee(&mg, ACME_ADMIN, "notes").await;
    let added = add(
        &mg,
        ACME_MEMBER,
        "notes",
        "Alice works with Bob. Bob lives in Lisbon. The weather was rainy all week.",
    )
    .await;
    let events: Vec<(&str, &str)> = added["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["text"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("Alice works with Bob", "ADD"),
            ("Bob lives in Lisbon", "ADD")
        ]
    );
    // The same turn again writes nothing new.
    let again = add(
        &mg,
        ACME_MEMBER,
        "notes",
        "Alice works with Bob. Bob lives in Lisbon. The weather was rainy all week.",
    )
    .await;
    assert!(again["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "NONE"));

    // GRAPH_COMPLETION is the default: triplets, and the model's answer over them.
    let (status, graph) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": TWO_HOP_QUESTION}),
    )
    .await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(graph["search_type"], "GRAPH_COMPLETION");
    assert_eq!(graph["answered_by"], "graph");
    assert!(graph.get("fallback").is_none(), "{graph}");
    let first = &graph["results"][0];
    assert_eq!(first["text"], "Alice works with Bob");
    assert_eq!(
        first["triplet"]["source"],
        json!({"name": "Alice", "type": "Person"})
    );
    assert_eq!(first["triplet"]["relation"], "works_with");
    assert_eq!(first["triplet"]["target"]["name"], "Bob");
    assert_eq!(first["triplet"]["hops"], 1);
    assert!(first["triplet"]["sentence"]
        .as_str()
        .unwrap()
        .contains("Alice works with Bob"));
    assert!(texts(&graph["results"]).contains(&"Bob lives in Lisbon".to_string()));
    assert_eq!(
        graph["answer"], "From memory: Alice works with Bob; Bob lives in Lisbon.",
        "{graph}"
    );

    let (status, chunks) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": "rainy weather", "search_type": "CHUNKS"}),
    )
    .await;
    assert_eq!(status, 200, "{chunks}");
    assert_eq!(chunks["answered_by"], "chunks");
    assert!(chunks.get("answer").is_none());
    assert_eq!(
        texts(&chunks["results"]),
        ["user: Alice works with Bob. Bob lives in Lisbon. The weather was rainy all week."]
    );

    let (status, summaries) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": "Lisbon", "search_type": "summaries", "limit": 1}),
    )
    .await;
    assert_eq!(status, 200, "{summaries}");
    assert_eq!(summaries["search_type"], "SUMMARIES");
    assert_eq!(summaries["answered_by"], "summaries");
    let summary = texts(&summaries["results"]);
    assert_eq!(summary.len(), 1);
    assert!(summary[0].contains("Bob lives in Lisbon"), "{summary:?}");

    // Nothing in the graph near the query: answered from chunks, and said so.
    let (status, fallback) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": "rainy week"}),
    )
    .await;
    assert_eq!(status, 200, "{fallback}");
    assert_eq!(fallback["answered_by"], "chunks");
    assert_eq!(fallback["fallback"], "no_graph_match");
    assert!(texts(&fallback["results"])[0].contains("rainy"));
    assert_eq!(
        mg.metric("memgate_graph_searches_fallback_no_match_total")
            .await,
        1.0
    );

    // Search types belong to engines.
    let (status, e) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": "x", "search_type": "FACTS"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("unsupported_search_type"))
    );
    assert_eq!(mg.create_session(ACME_ADMIN, "prefs").await.status(), 201);
    let (status, e) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "prefs", "query": "x", "search_type": "GRAPH_COMPLETION"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("unsupported_search_type"))
    );
    // The graph has no TTL or cap.
    let (status, e) = mg
        .api(
            "PATCH",
            Some(ACME_ADMIN),
            "/memory/session/notes",
            Some(json!({"config": {"max_facts": 10}})),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("unsupported_setting")),
        "{e}"
    );

    // A cognee session's facts are its relationships; one can be deleted.
    let (_, listed) = mg
        .api(
            "GET",
            Some(ACME_MEMBER),
            "/memory/session/notes/facts",
            None,
        )
        .await;
    assert_eq!(listed["total"], 2, "{listed}");
    let lisbon = listed["facts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["text"] == "Bob lives in Lisbon")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = mg
        .api(
            "DELETE",
            Some(ACME_ADMIN),
            &format!("/memory/session/notes/facts/{lisbon}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        mg.facts(ACME_MEMBER, "notes").await,
        ["Alice works with Bob"]
    );
    let (_, graph) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "notes", "query": TWO_HOP_QUESTION}),
    )
    .await;
    assert_eq!(
        texts(&graph["results"]),
        ["Alice works with Bob"],
        "{graph}"
    );
    let (status, _) = mg
        .api(
            "DELETE",
            Some(ACME_ADMIN),
            &format!("/memory/session/notes/facts/{lisbon}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// The answer is a bonus on top of the results: a model that breaks the answer contract, or
/// an answering call that fails, costs the answer and never the search.
#[tokio::test]
async fn a_graph_completion_whose_model_misbehaves_still_returns_its_results() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, _bolt) = start(&mock.url()).await;
    create_cognee(&mg, ACME_ADMIN, "notes").await;
    add(
        &mg,
        ACME_MEMBER,
        "notes",
        "Alice works with Bob. Bob lives in Lisbon.",
    )
    .await;
    let question = json!({"memory_id": "notes", "query": TWO_HOP_QUESTION});

    mock.set_answers_malformed(true);
    let (status, malformed) = search(&mg, ACME_MEMBER, question.clone()).await;
    assert_eq!(status, 200, "{malformed}");
    assert_eq!(malformed["answered_by"], "graph");
    assert!(texts(&malformed["results"]).contains(&"Bob lives in Lisbon".to_string()));
    assert_eq!(malformed["answer"], Value::Null, "{malformed}");
    assert!(malformed.as_object().unwrap().contains_key("answer"));
    assert_eq!(malformed["answer_unavailable"], "malformed_answer");
    mock.set_answers_malformed(false);

    mock.set_internal_failing(true);
    let (status, failed) = search(&mg, ACME_MEMBER, question.clone()).await;
    mock.set_internal_failing(false);
    assert_eq!(status, 200, "{failed}");
    assert!(
        !failed["results"].as_array().unwrap().is_empty(),
        "{failed}"
    );
    assert_eq!(failed["answer"], Value::Null);
    assert_eq!(failed["answer_unavailable"], "model_failed");
    assert_eq!(mg.metric("memgate_graph_answers_failed_total").await, 2.0);

    let (status, answered) = search(&mg, ACME_MEMBER, question).await;
    assert_eq!(status, 200, "{answered}");
    assert!(answered["answer"]
        .as_str()
        .unwrap()
        .starts_with("From memory:"));
    assert!(answered.get("answer_unavailable").is_none(), "{answered}");
}

#[tokio::test]
async fn deletion_while_the_graph_server_is_down_hides_at_once_and_purges_later() {
    let mock = common::mock_gateway::spawn().await;
    let mut bolt = BoltServer::start().await;
    let mg = Memgate::start_with_toml(&mock.url(), &graph_toml(&bolt), &[]).await;
    create_cognee(&mg, ACME_ADMIN, "team").await;
    create_cognee(&mg, ACME_ADMIN, "kept").await;
    add(
        &mg,
        ACME_MEMBER,
        "team",
        "Alice works with Bob. Bob lives in Lisbon.",
    )
    .await;
    add(&mg, ACME_MEMBER, "kept", "Erin manages Frank.").await;
    assert_eq!(bolt_count(&bolt, "acme").await, (5, 3));

    bolt.stop().await;

    // The graph is down: the chat path answers from chunks, within the budget, still
    // injected, and the search API says which path answered.
    mock.clear();
    let started = Instant::now();
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("team"), TWO_HOP_QUESTION, false),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-memgate-memory"], "injected");
    assert!(started.elapsed() < Duration::from_secs(2));
    let system = last_upstream_chat(&mock)["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        system.contains("- user: Alice works with Bob. Bob lives in Lisbon."),
        "{system}"
    );
    let (status, found) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "team", "query": TWO_HOP_QUESTION}),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["answered_by"], "chunks");
    assert_eq!(found["fallback"], "graph_unavailable");
    assert!(
        mg.metric("memgate_graph_searches_fallback_unavailable_total")
            .await
            >= 2.0
    );

    // Deletions answer at once and the data is gone from every read.
    let (_, listed) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/kept/facts", None)
        .await;
    let erin = listed["facts"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = mg
        .api(
            "DELETE",
            Some(ACME_ADMIN),
            &format!("/memory/session/kept/facts/{erin}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(mg.facts(ACME_MEMBER, "kept").await.is_empty());
    let (status, deleted) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/team", None)
        .await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["facts_deleted"], 2);
    let (status, _) = mg
        .api("GET", Some(ACME_MEMBER), "/memory/session/team", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "team", "query": TWO_HOP_QUESTION}),
    )
    .await;
    assert_eq!(status, 404);
    // A new session of the same name starts empty.
    create_cognee(&mg, ACME_ADMIN, "team").await;
    assert!(mg.facts(ACME_MEMBER, "team").await.is_empty());
    let (_, found) = search(
        &mg,
        ACME_MEMBER,
        json!({"memory_id": "team", "query": TWO_HOP_QUESTION, "search_type": "CHUNKS"}),
    )
    .await;
    assert_eq!(found["results"], json!([]), "{found}");
    assert_eq!(mg.metric("memgate_graph_purges_pending").await, 2.0);

    // Back up: the purges complete and the server holds nothing of the deleted data.
    bolt.restart().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while mg.metric("memgate_graph_purges_pending").await > 0.0 {
        assert!(
            Instant::now() < deadline,
            "purges still pending\n{}",
            mg.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(mg.metric("memgate_graph_purge_failures_total").await >= 1.0);
    assert_eq!(mg.metric("memgate_graph_purges_done_total").await, 2.0);
    assert_eq!(bolt_count(&bolt, "acme").await, (0, 0));
}

#[tokio::test]
async fn two_orgs_with_the_same_names_share_nothing() {
    let mock = common::mock_gateway::spawn().await;
    let (mg, bolt) = start(&mock.url()).await;
    create_cognee(&mg, ACME_ADMIN, "team").await;
    create_cognee(&mg, GLOBEX_ADMIN, "team").await;
    add(
        &mg,
        ACME_MEMBER,
        "team",
        "Alice works with Bob. Bob lives in Lisbon.",
    )
    .await;
    add(
        &mg,
        common::GLOBEX_MEMBER,
        "team",
        "Alice works with Bob. Bob lives in Berlin.",
    )
    .await;

    let answer = |key: &'static str| {
        let mg = &mg;
        async move {
            let (status, found) = search(
                mg,
                key,
                json!({"memory_id": "team", "query": TWO_HOP_QUESTION, "limit": 10}),
            )
            .await;
            assert_eq!(status, 200, "{found}");
            assert_eq!(found["answered_by"], "graph");
            found
        }
    };
    let acme = answer(ACME_MEMBER).await;
    let globex = answer(common::GLOBEX_MEMBER).await;
    assert_eq!(
        texts(&acme["results"]),
        ["Alice works with Bob", "Bob lives in Lisbon"]
    );
    assert_eq!(
        texts(&globex["results"]),
        ["Alice works with Bob", "Bob lives in Berlin"]
    );
    let ids = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ids(&acme).iter().all(|id| !ids(&globex).contains(id)));
    // Neither org can read or delete the other's relationship by id.
    let (status, _) = mg
        .api(
            "DELETE",
            Some(ACME_ADMIN),
            &format!("/memory/session/team/facts/{}", ids(&globex)[1]),
            None,
        )
        .await;
    assert_eq!(status, 404);
    if let Some(bolt) = &bolt {
        assert_eq!(bolt_count(bolt, "acme").await, (3, 2));
        assert_eq!(bolt_count(bolt, "globex").await, (3, 2));
    }

    // Deleting one org's session leaves the other's graph whole.
    let (status, _) = mg
        .api("DELETE", Some(ACME_ADMIN), "/memory/session/team", None)
        .await;
    assert_eq!(status, 200);
    let globex = answer(common::GLOBEX_MEMBER).await;
    assert_eq!(
        texts(&globex["results"]),
        ["Alice works with Bob", "Bob lives in Berlin"]
    );
    if let Some(bolt) = &bolt {
        let deadline = Instant::now() + Duration::from_secs(20);
        // Counted while the purge runs, so a count may fail; only the end state is asserted.
        while try_bolt_count(bolt, "acme").await.ok() != Some((0, 0)) {
            assert!(Instant::now() < deadline, "acme's graph was not purged");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(bolt_count(bolt, "globex").await, (3, 2));
    }
}
