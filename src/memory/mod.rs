//! The engines: what a session's facts or graph are made of, how a turn is ingested and how
//! a query is answered. The one place that dispatches on the session's engine kind
//! (`engine.rs`).

pub mod chunking;
pub mod context_block;
pub mod declarative;
pub mod engine;
pub mod facts;
pub mod graph;
pub mod graph_extraction;
pub mod query;
pub mod ranking;
pub mod session_cache;
pub mod transfer;

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScoredFact {
    pub id: String,
    pub text: String,
    pub score: f32,
    /// The relationship, for a cognee session's GRAPH_COMPLETION results.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triplet: Option<graph::Triplet>,
}
