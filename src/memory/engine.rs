//! The engines a session can use, and the one entry point the proxy, the worker and the
//! admin API call: each operation goes to the engine the session was created with.

use std::time::Duration;

use crate::domain::{EngineKind, Fact, Session, TurnMessage};
use crate::error::MemoryError;
use crate::memory::facts::{FactEvent, FactsEngine};
use crate::memory::graph::{GraphEngine, GraphSearchType};
use crate::memory::ScoredFact;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Engines {
    pub facts: FactsEngine,
    pub graph: GraphEngine,
}

impl Engines {
    pub async fn ingest(
        &self,
        session: &Session,
        messages: &[TurnMessage],
    ) -> Result<Vec<FactEvent>, MemoryError> {
        match session.engine {
            EngineKind::Mem0 => self.facts.ingest(session, messages).await,
            EngineKind::Cognee => self.graph.ingest(session, messages).await,
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
