//! The engines a session can use, and the one entry point the proxy, the worker and the
//! admin API call: each operation goes to the engine the session was created with.

use std::time::Duration;

use crate::error::MemoryError;
use crate::memory::facts::{FactEvent, FactsEngine};
use crate::memory::graph::{Fallback, GraphEngine, GraphSearchType};
use crate::memory::{ScoredFact, Session, TurnMessage, COGNEE_ENGINE};
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
        if session.engine == COGNEE_ENGINE {
            self.graph.ingest(session, messages).await
        } else {
            self.facts.ingest(session, messages).await
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
        if session.engine != COGNEE_ENGINE {
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
}

impl Metrics {
    /// Counts which path answered a GRAPH_COMPLETION search.
    pub fn graph_search(&self, fallback: Option<Fallback>) {
        let counter = match fallback {
            None => &self.graph_searches_graph_total,
            Some(Fallback::GraphUnavailable) => &self.graph_searches_fallback_unavailable_total,
            Some(Fallback::NoGraphMatch) => &self.graph_searches_fallback_no_match_total,
        };
        Metrics::inc(counter);
    }
}
