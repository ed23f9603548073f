//! OTLP trace export: a client's trace continues through memgate's request span into the
//! ingestion of the turn, both spans reach a collector (a local OTLP/HTTP JSON receiver), and
//! the requests memgate sends on carry the trace.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use common::*;
use serde_json::Value;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[derive(Clone, Debug)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Receives `POST /v1/traces` (OTLP/HTTP, JSON encoding) and keeps every span.
async fn spawn_collector() -> (String, Arc<Mutex<Vec<ExportedSpan>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: String| {
            let store = store.clone();
            async move {
                let export: Value = serde_json::from_str(&body).expect("OTLP JSON body");
                store.lock().unwrap().extend(spans_of(&export));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

fn string_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn attributes_of(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| {
            let value = kv["value"]
                .as_object()
                .and_then(|v| v.values().next())
                .map(string_of)
                .unwrap_or_default();
            (string_of(&kv["key"]), value)
        })
        .collect()
}

fn spans_of(export: &Value) -> Vec<ExportedSpan> {
    let mut out = Vec::new();
    for resource_spans in export["resourceSpans"].as_array().into_iter().flatten() {
        let resource = attributes_of(&resource_spans["resource"]["attributes"]);
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for scope in resource_spans["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for span in scope["spans"].as_array().into_iter().flatten() {
                out.push(ExportedSpan {
                    service: service.clone(),
                    name: string_of(&span["name"]),
                    trace_id: string_of(&span["traceId"]).to_ascii_lowercase(),
                    span_id: string_of(&span["spanId"]).to_ascii_lowercase(),
                    parent_span_id: span["parentSpanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    attributes: attributes_of(&span["attributes"]),
                });
            }
        }
    }
    out
}

async fn wait_for_span(
    spans: &Mutex<Vec<ExportedSpan>>,
    what: &str,
    matches: impl Fn(&ExportedSpan) -> bool,
) -> ExportedSpan {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(span) = spans.lock().unwrap().iter().find(|s| matches(s)) {
            return span.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no {what} span exported; got {:#?}",
            spans.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_trace_continues_into_the_ingestion_of_its_turn() {
    let mock = mock_gateway::spawn().await;
    let (collector, spans) = spawn_collector().await;
    let mg = Memgate::start_with_toml(
        &mock.url(),
        &format!(
            "[telemetry]\notlp_endpoint = \"{collector}\"\notlp_protocol = \"http/json\"\nservice_name = \"memgate-test\"\n"
        ),
        // The SDK's standard variable: export every 100 ms instead of every 5 s.
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    mg.create_session(ACME_ADMIN, "traced").await;

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01");
    let response = mg
        .chat_with_headers(
            ACME_MEMBER,
            &[
                ("traceparent", traceparent.as_str()),
                ("x-request-id", "req-traced-1"),
            ],
            user_chat(
                Some("traced"),
                "Our release train leaves on Thursdays.",
                true,
            ),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    mg.wait_for_fact(ACME_MEMBER, "traced", "Thursdays").await;

    let chat = wait_for_span(&spans, "chat", |s| {
        s.name == "chat" && s.trace_id == TRACE_ID
    })
    .await;
    assert_eq!(chat.parent_span_id, CLIENT_SPAN_ID, "{chat:?}");
    assert_eq!(chat.attribute("request_id"), Some("req-traced-1"));
    assert_eq!(chat.service, "memgate-test");

    let ingest = wait_for_span(&spans, "ingest", |s| {
        s.name == "ingest" && s.trace_id == TRACE_ID
    })
    .await;
    assert_eq!(ingest.parent_span_id, chat.span_id, "{ingest:?}");
    assert_eq!(ingest.attribute("request_id"), Some("req-traced-1"));
    assert_eq!(ingest.attribute("memory_id"), Some("traced"));

    // What memgate sends on continues the trace: the chat from the request span, the
    // extraction and fact embedding from the ingestion.
    let upstream = mock.chat_requests();
    assert_eq!(
        upstream[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", chat.span_id).as_str())
    );
    for purpose in ["extraction", "fact_embedding"] {
        let call = mock
            .requests()
            .into_iter()
            .find(|r| r.header("x-memgate-purpose") == Some(purpose))
            .unwrap_or_else(|| panic!("no {purpose} call"));
        let traceparent = call.header("traceparent").unwrap_or_default();
        assert!(
            traceparent.starts_with(&format!("00-{TRACE_ID}-")),
            "{purpose}: {traceparent:?}"
        );
    }

    // A request without a traceparent starts a trace of its own, also exported.
    let response = mg
        .chat(
            ACME_MEMBER,
            user_chat(Some("traced"), "When does the release train leave?", false),
        )
        .await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let own = wait_for_span(&spans, "second chat", |s| {
        s.name == "chat" && s.attribute("request_id") == Some(request_id.as_str())
    })
    .await;
    assert_ne!(own.trace_id, TRACE_ID);
    assert!(own.parent_span_id.is_empty(), "{own:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_does_not_touch_the_traffic() {
    let mock = mock_gateway::spawn().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mg = Memgate::start_with_toml(
        &mock.url(),
        &format!("[telemetry]\notlp_endpoint = \"{closed}\"\n"),
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
    )
    .await;
    mg.create_session(ACME_ADMIN, "untraced").await;
    for i in 0..5 {
        let response = mg
            .chat(
                ACME_MEMBER,
                user_chat(Some("untraced"), &format!("Fact number {i} is here."), true),
            )
            .await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    mg.wait_for_fact(ACME_MEMBER, "untraced", "number 4").await;
}
