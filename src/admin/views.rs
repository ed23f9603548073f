//! The management API's answers, as typed structs so that the OpenAPI document is generated
//! from the same types the handlers return.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::time::rfc3339;
use crate::domain::SessionStats;
use crate::domain::{Fact, FactHistoryEvent, Session, SessionConfig};
use crate::memory::facts::FactEvent;
use crate::memory::graph::{GraphPicture, NoAnswer};
use crate::memory::ScoredFact;

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// What callers pass as `memory_id`; equal to `session_name`.
    pub memory_id: String,
    pub session_name: String,
    pub engine_name: String,
    pub config: SessionConfig,
    pub fact_count: i64,
    /// Finished turns waiting to be ingested.
    pub pending_turns: i64,
    /// Turns whose ingestion failed for good.
    pub dead_turns: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its config last changed.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The latest of: a change to its memory (a history event, a relationship), the arrival
    /// of a turn still waiting to be ingested (or dead), a change to its config.
    #[schema(format = DateTime)]
    pub last_activity_at: String,
}

impl SessionView {
    pub fn new(session: Session, stats: SessionStats) -> Self {
        Self {
            session_name: session.memory_id.clone(),
            memory_id: session.memory_id,
            engine_name: session.engine.as_str().to_string(),
            config: session.config,
            fact_count: stats.fact_count,
            pending_turns: stats.pending_turns,
            dead_turns: stats.dead_turns,
            created_at: rfc3339(session.created_at),
            last_activity_at: rfc3339(
                stats
                    .last_written_at
                    .map_or(session.updated_at, |at| at.max(session.updated_at)),
            ),
            updated_at: rfc3339(session.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SessionDeleted {
    pub memory_id: String,
    pub deleted: bool,
    pub facts_deleted: i64,
}

#[derive(Serialize, ToSchema)]
pub struct FactList {
    pub memory_id: String,
    pub facts: Vec<Fact>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub struct FactDeleted {
    pub id: String,
    pub memory_id: String,
    pub deleted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryList {
    pub memory_id: String,
    pub history: Vec<FactHistoryEvent>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub struct GraphView {
    pub memory_id: String,
    /// Every entity the listed relationships join.
    pub entities: Vec<EntityView>,
    pub relationships: Vec<RelationshipView>,
    pub total_relationships: i64,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Serialize, ToSchema)]
pub struct EntityView {
    /// What relationships name it by.
    pub key: String,
    pub name: String,
    /// `Person`, `Place`, `Project`, … as extracted.
    #[serde(rename = "type")]
    pub entity_type: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RelationshipView {
    /// The fact id (DELETE /memory/session/{memory_id}/facts/{fact_id} removes it).
    pub id: String,
    /// The `key` of the entity it starts at.
    pub source: String,
    pub relation: String,
    /// The `key` of the entity it ends at.
    pub target: String,
    /// The relationship as a sentence.
    pub text: String,
}

impl GraphView {
    pub fn new(memory_id: String, picture: GraphPicture, limit: i64, offset: i64) -> Self {
        Self {
            memory_id,
            entities: picture
                .entities
                .into_iter()
                .map(|e| EntityView {
                    key: e.entity_key.unwrap_or_default(),
                    name: e.text,
                    entity_type: e.entity_type,
                })
                .collect(),
            relationships: picture
                .relationships
                .into_iter()
                .map(|r| RelationshipView {
                    id: r.id,
                    source: r.source_key.unwrap_or_default(),
                    relation: r.relation.unwrap_or_default(),
                    target: r.target_key.unwrap_or_default(),
                    text: r.text,
                })
                .collect(),
            total_relationships: picture.total_relationships,
            limit,
            offset,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AddResult {
    pub memory_id: String,
    /// What happened to each extracted fact: `ADD`, `UPDATE`, `DELETE` or `NONE`.
    pub results: Vec<FactEvent>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    pub memory_id: String,
    pub query: String,
    /// `question` (searched by meaning) or `keywords` (meaning fused with full-text).
    pub query_kind: String,
    /// `FACTS` (mem0), or `GRAPH_COMPLETION`, `CHUNKS`, `SUMMARIES` (cognee).
    pub search_type: String,
    /// Which path produced `results`: `facts`, `graph`, `chunks` or `summaries`.
    pub answered_by: String,
    /// Why GRAPH_COMPLETION was answered from chunks: `graph_unavailable` (the graph server
    /// failed) or `no_graph_match` (nothing in the graph near the query).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// GRAPH_COMPLETION only: the model's answer over `results`, or null when there is none
    /// (`answer_unavailable` says why).
    #[serde(skip_serializing_if = "Answer::is_not_asked")]
    #[schema(value_type = Option<String>)]
    pub answer: Answer,
    /// GRAPH_COMPLETION without an answer: `no_results` (nothing to answer over),
    /// `model_failed` (the answering call failed) or `malformed_answer` (the model did not
    /// answer `{"answer": "…"}`). The results are complete either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_unavailable: Option<&'static str>,
    /// Best first. GRAPH_COMPLETION results carry their `triplet`.
    pub results: Vec<ScoredFact>,
}

/// The model's answer of a search: absent for search types that have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NotAsked,
    Answered(String),
    Unavailable(NoAnswer),
}

impl Answer {
    fn is_not_asked(&self) -> bool {
        matches!(self, Answer::NotAsked)
    }

    pub fn unavailable_reason(&self) -> Option<&'static str> {
        match self {
            Answer::Unavailable(reason) => Some(reason.as_str()),
            _ => None,
        }
    }
}

impl From<Result<String, NoAnswer>> for Answer {
    fn from(answered: Result<String, NoAnswer>) -> Self {
        match answered {
            Ok(text) => Answer::Answered(text),
            Err(reason) => Answer::Unavailable(reason),
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Answer::Answered(text) => serializer.serialize_str(text),
            Answer::NotAsked | Answer::Unavailable(_) => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EngineView {
    pub name: String,
    pub backends: Vec<String>,
    pub description: String,
    pub search_types: Vec<String>,
    /// Whether sessions of this engine can be created on this server.
    pub available: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EngineList {
    pub engines: Vec<EngineView>,
}

/// Every error of the API, in OpenAI's shape.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    /// The request field at fault (`session_name`, `config.top_k`, `messages[0]`), on
    /// errors about one field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}
