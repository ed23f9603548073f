//! Platform spend: what an internal call is for, whose spend it is, and the report rows.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    QueryEmbedding,
    FactEmbedding,
    Extraction,
    MemoryUpdate,
    /// The cognee engine: chunks, summaries, entities and relationships embedded.
    GraphEmbedding,
    GraphExtraction,
    Summary,
    /// The answer of a GRAPH_COMPLETION search.
    GraphCompletion,
}

impl Purpose {
    pub const ALL: [Purpose; 8] = [
        Purpose::QueryEmbedding,
        Purpose::FactEmbedding,
        Purpose::Extraction,
        Purpose::MemoryUpdate,
        Purpose::GraphEmbedding,
        Purpose::GraphExtraction,
        Purpose::Summary,
        Purpose::GraphCompletion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::QueryEmbedding => "query_embedding",
            Purpose::FactEmbedding => "fact_embedding",
            Purpose::Extraction => "extraction",
            Purpose::MemoryUpdate => "memory_update",
            Purpose::GraphEmbedding => "graph_embedding",
            Purpose::GraphExtraction => "graph_extraction",
            Purpose::Summary => "summary",
            Purpose::GraphCompletion => "graph_completion",
        }
    }
}

/// Whose spend an internal call is: the org and the session it served.
#[derive(Clone, Copy, Debug)]
pub struct CallScope<'a> {
    pub org: &'a str,
    pub memory_id: &'a str,
}

impl<'a> CallScope<'a> {
    pub fn of(session: &'a crate::domain::Session) -> Self {
        Self {
            org: &session.org_id,
            memory_id: &session.memory_id,
        }
    }
}

/// Who did the work: the gateway (billed by it, platform spend) or memgate's own local model
/// (no spend; its tokens are still counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Gateway,
    Local,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Gateway => "gateway",
            Provider::Local => "local",
        }
    }
}

#[derive(Clone, Debug)]
pub struct UsageEvent {
    pub org: String,
    pub memory_id: String,
    pub purpose: Purpose,
    pub provider: Provider,
    pub model: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl UsageEvent {
    pub fn new(
        scope: CallScope<'_>,
        purpose: Purpose,
        provider: Provider,
        model: &str,
        prompt_tokens: i64,
        completion_tokens: i64,
    ) -> Self {
        Self {
            org: scope.org.to_string(),
            memory_id: scope.memory_id.to_string(),
            purpose,
            provider,
            model: model.to_string(),
            prompt_tokens,
            completion_tokens,
        }
    }
}

/// Platform spend of one org for one day, kind of call and model (and session, when asked).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// UTC date, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub day: String,
    /// `query_embedding`, `fact_embedding`, `extraction`, `memory_update`, `graph_embedding`,
    /// `graph_extraction`, `summary` or `graph_completion`.
    pub kind: String,
    /// `gateway` (a call billed by the gateway) or `local` (memgate's own embedding model:
    /// no spend, tokens counted all the same).
    pub provider: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_id: Option<String>,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}
