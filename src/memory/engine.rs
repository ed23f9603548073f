//! The engines a session can use, and the one entry point the proxy, the worker and the
//! admin API call: each operation goes to the engine the session was created with.

use std::time::Duration;

use crate::domain::{EngineKind, Fact, FieldError, Session};
use crate::embed::Embedder;
use crate::error::MemoryError;
use crate::memory::facts::{FactEvent, FactsEngine};
use crate::memory::graph::{GraphEngine, GraphSearchType};
use crate::memory::ScoredFact;
use crate::metrics::Metrics;
use crate::redaction::RedactedTurn;
use crate::store::Store;

/// What a search through the management API runs, by the session's engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchPlan {
    /// The mem0 engine's facts (`FACTS`).
    Facts,
    /// One of the cognee engine's search types.
    Graph(GraphSearchType),
}

#[derive(Clone)]
pub struct Engines {
    pub facts: FactsEngine,
    pub graph: GraphEngine,
    /// What both engines store in, embed with, and the model the vectors come from: an
    /// export names it, an import compares it.
    pub store: Store,
    pub embedder: Embedder,
    pub embedding_model: EmbeddingModel,
}

/// The configured embedding model, as vectors are labelled with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingModel {
    pub name: String,
    pub dimensions: usize,
}

impl Engines {
    /// The search `requested` (a `search_type`, case-insensitive; the engine's default when
    /// absent) on this session, or why its engine cannot run it.
    pub fn search_plan(
        session: &Session,
        requested: Option<&str>,
    ) -> Result<SearchPlan, FieldError> {
        match session.engine {
            EngineKind::Mem0 => match requested {
                Some(t) if !t.eq_ignore_ascii_case("FACTS") => Err(FieldError::new(
                    "unsupported_search_type",
                    "search_type",
                    format!(
                        "`{t}` is not supported by the {} engine (FACTS)",
                        session.engine
                    ),
                )),
                _ => Ok(SearchPlan::Facts),
            },
            EngineKind::Cognee => {
                let requested = requested.unwrap_or("GRAPH_COMPLETION");
                GraphSearchType::parse(requested).map(SearchPlan::Graph).ok_or_else(|| FieldError::new(
                    "unsupported_search_type",
                    "search_type",
                    format!("`{requested}` is not supported by the cognee engine (GRAPH_COMPLETION, CHUNKS, SUMMARIES)"),
                ))
            }
        }
    }

    pub async fn ingest(
        &self,
        session: &Session,
        turn: &RedactedTurn,
    ) -> Result<Vec<FactEvent>, MemoryError> {
        match session.engine {
            EngineKind::Mem0 => self.facts.ingest(session, turn).await,
            EngineKind::Cognee => self.graph.ingest(session, turn).await,
        }
    }

    /// The facts injected before a chat call: the mem0 engine's facts, or the cognee
    /// engine's GRAPH_COMPLETION triplets (no LLM call, chunks when the graph cannot answer).
    /// `budget` is what is left of the retrieval budget; the graph walk gets part of it so a
    /// slow graph server still leaves time for the chunks.
    pub async fn context(
        &self,
        session: &Session,
        query: &str,
        k: usize,
        budget: Duration,
        metrics: &Metrics,
    ) -> Result<Vec<ScoredFact>, MemoryError> {
        if session.engine == EngineKind::Mem0 {
            return self.facts.search(session, query, k).await;
        }
        let found = self
            .graph
            .search(
                session,
                query,
                k,
                GraphSearchType::GraphCompletion,
                budget / 2,
            )
            .await?;
        metrics.graph_search(found.fallback);
        Ok(found.results)
    }

    /// A page of the session's facts, oldest first, and how many there are: a mem0
    /// session's facts (those past its TTL left out), a cognee session's relationships.
    pub async fn list_facts(
        &self,
        session: &Session,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), MemoryError> {
        match session.engine {
            EngineKind::Mem0 => Ok(self.facts.list(session, limit, offset).await?),
            EngineKind::Cognee => Ok(self
                .graph
                .list_relationships(session, limit, offset)
                .await?),
        }
    }

    /// Deletes one fact (a cognee session's relationship, whose graph-server copy the
    /// worker purges); `false` when the session has no such fact. The deletion is kept in
    /// the history.
    pub async fn delete_fact(&self, session: &Session, fact_id: &str) -> Result<bool, MemoryError> {
        match session.engine {
            EngineKind::Mem0 => Ok(self.facts.delete(session, fact_id).await?),
            EngineKind::Cognee => Ok(self.graph.delete_relationship(session, fact_id).await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SessionConfig;

    fn session(engine: EngineKind) -> Session {
        Session {
            id: 1,
            org_id: "acme".into(),
            memory_id: "alice".into(),
            engine,
            config: SessionConfig::default(),
            stored_facts: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn each_engine_runs_its_own_search_types() {
        let mem0 = session(EngineKind::Mem0);
        for requested in [None, Some("FACTS"), Some("facts")] {
            assert_eq!(
                Engines::search_plan(&mem0, requested),
                Ok(SearchPlan::Facts)
            );
        }
        let refused = Engines::search_plan(&mem0, Some("CHUNKS")).unwrap_err();
        assert_eq!(refused.code, "unsupported_search_type");
        assert!(
            refused.message.contains("mem0 engine (FACTS)"),
            "{}",
            refused.message
        );

        let cognee = session(EngineKind::Cognee);
        assert_eq!(
            Engines::search_plan(&cognee, None),
            Ok(SearchPlan::Graph(GraphSearchType::GraphCompletion))
        );
        assert_eq!(
            Engines::search_plan(&cognee, Some("chunks")),
            Ok(SearchPlan::Graph(GraphSearchType::Chunks))
        );
        let refused = Engines::search_plan(&cognee, Some("FACTS")).unwrap_err();
        assert_eq!(refused.code, "unsupported_search_type");
        assert!(
            refused.message.contains("cognee engine"),
            "{}",
            refused.message
        );
    }
}
