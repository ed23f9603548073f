//! The memory engines this server offers.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use crate::app::AppState;

use super::responses::KeyErrors;
use super::views::{EngineList, EngineView};
use super::Caller;
use crate::domain::EngineKind;

/// Engines with their backends and search types; `available` says which can be created here.
#[utoipa::path(get, path = "/memory/engines", operation_id = "list_engines", tag = "sessions",
    responses((status = 200, body = EngineList), KeyErrors))]
pub async fn list(State(state): State<Arc<AppState>>, _caller: Caller) -> Json<EngineList> {
    let strings = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    Json(EngineList {
        engines: vec![
            EngineView {
                name: EngineKind::Mem0.as_str().into(),
                backends: strings(state.store.backends()),
                description: "Extracted facts with vectors: preferences, recent facts, short-to-medium semantic recall.".into(),
                search_types: strings(&["FACTS"]),
                available: true,
            },
            EngineView {
                name: EngineKind::Cognee.as_str().into(),
                backends: state.engine.graph.backends(),
                description: "Knowledge graph of entities and relationships: long-horizon reasoning, graph queries.".into(),
                search_types: strings(&["GRAPH_COMPLETION", "CHUNKS", "SUMMARIES"]),
                available: true,
            },
        ],
    })
}
