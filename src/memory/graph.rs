//! The "cognee" engine: each turn kept as chunks and a summary, and merged into the session's
//! knowledge graph (entities and relationships), everything embedded as entry points.
//!
//! Search types:
//! - GRAPH_COMPLETION: the entities and relationships nearest to the query are entry points;
//!   the graph is walked 1-2 hops from them, and the relationships found (triplets) are
//!   ranked by meaning and distance. Through the search API an LLM also answers over them.
//! - CHUNKS and SUMMARIES: the turns' chunks or summaries nearest to the query.
//!
//! When the graph server fails, or the graph has nothing for the query, GRAPH_COMPLETION is
//! answered from CHUNKS, and the answer says so.
//!
//! The relational store (SQLite or Postgres + pgvector) holds every item with its vector and
//! is the truth about what exists: the graph server's copy is written before it and purged
//! after it, and triplets it returns are kept only if their rows are live.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::graph::{
    graph_item_id, Fallback, GraphItem, GraphItemVector, GraphKind, GraphPurge, NewGraphItem,
};
use crate::domain::usage::{CallScope, Purpose};
use crate::domain::{Fact, Session};
use crate::embed::Embedder;
use crate::error::{GraphError, MemoryError, StoreError};
use crate::graph_server::{BoltGraph, GraphEdge, GraphNode};
use crate::llm::{prompts, LlmClient};
use crate::memory::chunking::{chunk_turn, MAX_CHUNK_CHARS};
use crate::memory::facts::FactEvent;
use crate::memory::graph_extraction::{self, render_triplet};
use crate::memory::ScoredFact;
use crate::redaction::RedactedTurn;
use crate::store::GraphItemStore;
use crate::store::Store;
use crate::vector;

/// What [`GraphEngine::picture`] draws: relationships and the entities at their ends.
#[derive(Debug)]
pub struct GraphPicture {
    pub entities: Vec<GraphItem>,
    pub relationships: Vec<GraphItem>,
    pub total_relationships: i64,
}

/// Entities and relationships considered as entry points.
const ENTRY_CANDIDATES: usize = 10;
/// An entry point must be at least this fraction as similar to the query as the best one.
const ENTRY_RELATIVE_FLOOR: f32 = 0.5;
/// Hops walked from the entry points.
const HOPS: u8 = 2;
/// Edges read per hop, so a hub entity cannot make a search unbounded.
const EDGES_PER_HOP: usize = 200;
/// Nearness in the graph, added to a triplet's similarity: a relationship touching an entry
/// point outranks an equally similar one a hop further.
const HOP_BONUS: [f32; 3] = [0.0, 0.2, 0.1];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GraphSearchType {
    GraphCompletion,
    Chunks,
    Summaries,
}

impl GraphSearchType {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "GRAPH_COMPLETION" => Some(Self::GraphCompletion),
            "CHUNKS" => Some(Self::Chunks),
            "SUMMARIES" => Some(Self::Summaries),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GraphCompletion => "GRAPH_COMPLETION",
            Self::Chunks => "CHUNKS",
            Self::Summaries => "SUMMARIES",
        }
    }
}

/// Which path produced a graph search's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnsweredBy {
    Graph,
    Chunks,
    Summaries,
}

impl AnsweredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Chunks => "chunks",
            Self::Summaries => "summaries",
        }
    }
}

/// Why a GRAPH_COMPLETION search came back with `answer: null`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// The search found nothing to answer over.
    NoResults,
    /// The answering call failed: the gateway refused it, broke or did not answer.
    ModelFailed,
    /// The model answered, but not with the `{"answer": "…"}` it was asked for.
    MalformedAnswer,
}

impl NoAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            NoAnswer::NoResults => "no_results",
            NoAnswer::ModelFailed => "model_failed",
            NoAnswer::MalformedAnswer => "malformed_answer",
        }
    }
}

#[derive(Clone, Debug)]
pub struct GraphRetrieval {
    pub results: Vec<ScoredFact>,
    pub answered_by: AnsweredBy,
    pub fallback: Option<Fallback>,
}

/// A relationship found in the graph, as the search API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Triplet {
    pub source: TripletEntity,
    /// snake_case, e.g. `works_with`.
    pub relation: String,
    pub target: TripletEntity,
    /// The sentence it was extracted from.
    pub sentence: String,
    /// 1 when it touches an entry point, 2 when it is one hop further.
    pub hops: u8,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TripletEntity {
    pub name: String,
    #[serde(rename = "type")]
    pub entity_type: String,
}

#[derive(Clone)]
pub struct GraphEngine {
    store: Store,
    llm: LlmClient,
    embedder: Embedder,
    bolt: Option<BoltGraph>,
}

impl GraphEngine {
    pub fn new(store: Store, llm: LlmClient, embedder: Embedder, bolt: Option<BoltGraph>) -> Self {
        Self {
            store,
            llm,
            embedder,
            bolt,
        }
    }

    /// Whether the graph lives on a Bolt server (whose deletions are queued as purges).
    pub fn remote_graph(&self) -> bool {
        self.bolt.is_some()
    }

    /// The graph server, when there is one.
    pub fn bolt(&self) -> Option<&BoltGraph> {
        self.bolt.as_ref()
    }

    pub fn backends(&self) -> Vec<String> {
        let graph: &[&str] = if self.bolt.is_some() { &["neo4j"] } else { &[] };
        graph
            .iter()
            .chain(self.store.backends())
            .map(|b| b.to_string())
            .collect()
    }

    /// Chunks, summary, entities and relationships of one turn (or manual add). Every model
    /// call happens before anything is written, and ids are derived from content, so a turn
    /// retried after a failure is written once.
    pub async fn ingest(
        &self,
        session: &Session,
        turn: &RedactedTurn,
    ) -> Result<Vec<FactEvent>, MemoryError> {
        let messages = turn.messages();
        let scope = session.graph_scope();
        let conversation = prompts::extraction_user(messages);
        let chunks = chunk_turn(messages, MAX_CHUNK_CHARS);
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let call = CallScope::of(session);
        let summary = self
            .llm
            .chat_json(
                call,
                Purpose::Summary,
                prompts::SUMMARY_SYSTEM,
                &conversation,
            )
            .await?["summary"]
            .as_str()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty());
        let graph = graph_extraction::parse(
            &self
                .llm
                .chat_json(
                    call,
                    Purpose::GraphExtraction,
                    prompts::GRAPH_EXTRACTION_SYSTEM,
                    &conversation,
                )
                .await?,
        );

        let mut items = Vec::new();
        for chunk in &chunks {
            items.push(plain_item(&scope, GraphKind::Chunk, chunk, chunk));
        }
        if let Some(summary) = &summary {
            items.push(plain_item(
                &scope,
                GraphKind::Summary,
                summary,
                &conversation,
            ));
        }
        for entity in &graph.entities {
            items.push(NewGraphItem {
                entity_key: Some(entity.key.clone()),
                entity_type: Some(entity.entity_type.clone()),
                ..plain_item(&scope, GraphKind::Entity, &entity.name, &entity.key)
            });
        }
        let mut edges = Vec::with_capacity(graph.relationships.len());
        for r in &graph.relationships {
            let natural = format!("{}|{}|{}", r.source_key, r.relation, r.target_key);
            let item = NewGraphItem {
                source_key: Some(r.source_key.clone()),
                relation: Some(r.relation.clone()),
                target_key: Some(r.target_key.clone()),
                sentence: Some(r.sentence.clone()),
                ..plain_item(&scope, GraphKind::Edge, &graph.render(r), &natural)
            };
            edges.push(GraphEdge {
                id: item.id.clone(),
                source_key: r.source_key.clone(),
                relation: r.relation.clone(),
                target_key: r.target_key.clone(),
                sentence: r.sentence.clone(),
            });
            items.push(item);
        }
        let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
        let embeddings = self
            .embedder
            .embed(call, Purpose::GraphEmbedding, &texts)
            .await?;
        if embeddings.len() != items.len() {
            return Err(MemoryError::Llm(crate::error::LlmError::Decode(format!(
                "{} embeddings for {} inputs",
                embeddings.len(),
                items.len()
            ))));
        }
        for (item, embedding) in items.iter_mut().zip(embeddings) {
            item.embedding = embedding;
        }

        if let Some(bolt) = &self.bolt {
            let nodes: Vec<GraphNode> = graph
                .entities
                .iter()
                .map(|e| GraphNode {
                    key: e.key.clone(),
                    name: e.name.clone(),
                    entity_type: e.entity_type.clone(),
                })
                .collect();
            bolt.merge(&session.org_id, &scope, &nodes, &edges).await?;
        }
        let fresh = match self
            .store
            .write_graph_items(session, &items, turn.redacted())
            .await
        {
            Ok(fresh) => fresh,
            Err(StoreError::SessionGone(memory_id)) => {
                // Deleted while this turn was being extracted: what was just merged into the
                // graph server must go too.
                if self.bolt.is_some() {
                    self.store
                        .enqueue_graph_purge(&session.org_id, &scope, None, None)
                        .await?;
                }
                return Err(StoreError::SessionGone(memory_id).into());
            }
            Err(e) => return Err(e.into()),
        };
        Ok(items
            .iter()
            .zip(fresh)
            .filter(|(item, _)| item.kind == GraphKind::Edge)
            .map(|(item, fresh)| FactEvent {
                id: Some(item.id.clone()),
                text: item.text.clone(),
                event: if fresh { "ADD" } else { "NONE" },
            })
            .collect())
    }

    /// Searches the session. `graph_limit` bounds the walk on the graph server, so that a
    /// slow server leaves time to answer from chunks.
    pub async fn search(
        &self,
        session: &Session,
        query: &str,
        limit: usize,
        search_type: GraphSearchType,
        graph_limit: Duration,
    ) -> Result<GraphRetrieval, MemoryError> {
        if limit == 0 || query.trim().is_empty() {
            let answered_by = match search_type {
                GraphSearchType::GraphCompletion => AnsweredBy::Graph,
                GraphSearchType::Chunks => AnsweredBy::Chunks,
                GraphSearchType::Summaries => AnsweredBy::Summaries,
            };
            return Ok(GraphRetrieval {
                results: Vec::new(),
                answered_by,
                fallback: None,
            });
        }
        let query_vector = self
            .embedder
            .embed(
                CallScope::of(session),
                Purpose::QueryEmbedding,
                &[query.to_string()],
            )
            .await?
            .pop()
            .unwrap_or_default();
        match search_type {
            GraphSearchType::Chunks => Ok(GraphRetrieval {
                results: self
                    .nearest_texts(session, GraphKind::Chunk, &query_vector, limit)
                    .await?,
                answered_by: AnsweredBy::Chunks,
                fallback: None,
            }),
            GraphSearchType::Summaries => Ok(GraphRetrieval {
                results: self
                    .nearest_texts(session, GraphKind::Summary, &query_vector, limit)
                    .await?,
                answered_by: AnsweredBy::Summaries,
                fallback: None,
            }),
            GraphSearchType::GraphCompletion => {
                let fallback = match self
                    .triplets(session, &query_vector, limit, graph_limit)
                    .await
                {
                    Ok(found) if !found.is_empty() => {
                        return Ok(GraphRetrieval {
                            results: found,
                            answered_by: AnsweredBy::Graph,
                            fallback: None,
                        })
                    }
                    Ok(_) => Fallback::NoGraphMatch,
                    Err(GraphError::Store(e)) => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(error = %e, memory_id = %session.memory_id, "graph search failed; answering from chunks");
                        Fallback::GraphUnavailable
                    }
                };
                Ok(GraphRetrieval {
                    results: self
                        .nearest_texts(session, GraphKind::Chunk, &query_vector, limit)
                        .await?,
                    answered_by: AnsweredBy::Chunks,
                    fallback: Some(fallback),
                })
            }
        }
    }

    /// An LLM's answer to `question` over the context a search found. The answer is a bonus
    /// on top of the results the search already has, so a model that fails or ignores the
    /// answer contract costs the answer, never the search.
    pub async fn answer(
        &self,
        session: &Session,
        question: &str,
        context: &[String],
    ) -> Result<String, NoAnswer> {
        let reply = self
            .llm
            .chat_json(
                CallScope::of(session),
                Purpose::GraphCompletion,
                prompts::GRAPH_ANSWER_SYSTEM,
                &prompts::graph_answer_user(context, question),
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, memory_id = %session.memory_id, "graph completion answer failed; results returned without it");
                NoAnswer::ModelFailed
            })?;
        match reply["answer"].as_str() {
            Some(answer) => Ok(answer.trim().to_string()),
            None => {
                tracing::warn!(memory_id = %session.memory_id, "graph completion answer has no `answer` string; results returned without it");
                Err(NoAnswer::MalformedAnswer)
            }
        }
    }

    /// A page of the session's relationships (a cognee session's facts), oldest first, and
    /// how many there are.
    pub async fn list_relationships(
        &self,
        session: &Session,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), StoreError> {
        let (edges, total) = self
            .store
            .list_graph_items(session, GraphKind::Edge, limit, offset)
            .await?;
        let facts = edges
            .into_iter()
            .map(|e| Fact {
                id: e.id,
                text: e.text,
                created_at: e.created_at,
                updated_at: e.updated_at,
            })
            .collect();
        Ok((facts, total))
    }

    /// A page of the session's relationships, oldest first, with the entities they join (so
    /// that every edge of the page can be drawn), and how many relationships there are.
    pub async fn picture(
        &self,
        session: &Session,
        limit: i64,
        offset: i64,
    ) -> Result<GraphPicture, StoreError> {
        let (relationships, total_relationships) = self
            .store
            .list_graph_items(session, GraphKind::Edge, limit, offset)
            .await?;
        let mut keys: Vec<String> = relationships
            .iter()
            .flat_map(|e| [e.source_key.clone(), e.target_key.clone()])
            .flatten()
            .collect();
        keys.sort();
        keys.dedup();
        let mut entities = self.store.graph_entities_named(session, &keys).await?;
        entities.sort_by(|a, b| a.entity_key.cmp(&b.entity_key));
        Ok(GraphPicture {
            entities,
            relationships,
            total_relationships,
        })
    }

    /// Deletes one relationship (a cognee session's fact). The rows go at once; the graph
    /// server's copy is purged by the worker.
    pub async fn delete_relationship(
        &self,
        session: &Session,
        edge_id: &str,
    ) -> Result<bool, StoreError> {
        self.store
            .delete_graph_edge(session, edge_id, self.bolt.is_some())
            .await
    }

    /// Carries out a queued deletion on the graph server.
    pub async fn purge(&self, purge: &GraphPurge) -> Result<(), GraphError> {
        match &self.bolt {
            Some(bolt) => {
                bolt.purge(
                    &purge.org_id,
                    &purge.scope,
                    purge.edge_ids.as_deref(),
                    purge.entity_keys.as_deref(),
                )
                .await
            }
            // Written by a process that had a graph server configured; nothing here to purge.
            None => Ok(()),
        }
    }

    async fn nearest_texts(
        &self,
        session: &Session,
        kind: GraphKind,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<ScoredFact>, StoreError> {
        Ok(self
            .store
            .nearest_graph_items(session, &[kind], query, limit)
            .await?
            .into_iter()
            .map(|s| ScoredFact {
                id: s.item.id,
                text: s.item.text,
                score: s.similarity,
                triplet: None,
            })
            .collect())
    }

    /// GRAPH_COMPLETION's graph path: entry points, a walk of [`HOPS`] hops, live triplets
    /// ranked by meaning and nearness.
    async fn triplets(
        &self,
        session: &Session,
        query: &[f32],
        limit: usize,
        graph_limit: Duration,
    ) -> Result<Vec<ScoredFact>, GraphError> {
        let candidates = self
            .store
            .nearest_graph_items(
                session,
                &[GraphKind::Entity, GraphKind::Edge],
                query,
                ENTRY_CANDIDATES,
            )
            .await?;
        let best = candidates.first().map_or(0.0, |c| c.similarity);
        let mut entry_keys: Vec<String> = Vec::new();
        for c in candidates
            .iter()
            .filter(|c| c.similarity > 0.0 && c.similarity >= best * ENTRY_RELATIVE_FLOOR)
        {
            let keys = [
                c.item.entity_key.as_ref(),
                c.item.source_key.as_ref(),
                c.item.target_key.as_ref(),
            ];
            for key in keys.into_iter().flatten() {
                if !entry_keys.contains(key) {
                    entry_keys.push(key.clone());
                }
            }
        }
        if entry_keys.is_empty() {
            return Ok(Vec::new());
        }
        let walk = tokio::time::timeout(graph_limit, self.walk(session, entry_keys))
            .await
            .map_err(|_| GraphError::Timeout(graph_limit.as_millis() as u64))??;
        if walk.is_empty() {
            return Ok(Vec::new());
        }
        // Only rows still in the relational store count: a deletion hides a relationship
        // there at once, before the graph server is purged.
        let ids: Vec<String> = walk.keys().cloned().collect();
        let edges = self.store.graph_items_by_id(session, &ids).await?;
        let mut keys: Vec<String> = Vec::new();
        for e in &edges {
            for key in [&e.item.source_key, &e.item.target_key]
                .into_iter()
                .flatten()
            {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        let entities: HashMap<String, GraphItemVector> = self
            .store
            .graph_entities(session, &keys)
            .await?
            .into_iter()
            .filter_map(|e| e.item.entity_key.clone().map(|k| (k, e)))
            .collect();
        let mut scored: Vec<ScoredFact> = edges
            .into_iter()
            .filter(|e| e.item.kind == GraphKind::Edge.as_str())
            .filter_map(|edge| {
                let hops = *walk.get(&edge.item.id)?;
                let source = entities.get(edge.item.source_key.as_deref()?)?;
                let target = entities.get(edge.item.target_key.as_deref()?)?;
                let nearest_end = vector::cosine(query, &source.embedding)
                    .max(vector::cosine(query, &target.embedding));
                let score = vector::cosine(query, &edge.embedding)
                    + 0.5 * nearest_end
                    + HOP_BONUS[usize::from(hops.min(HOPS))];
                Some(triplet_fact(
                    edge.item,
                    &source.item,
                    &target.item,
                    hops,
                    score,
                ))
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        scored.truncate(limit);
        Ok(scored)
    }

    /// Breadth-first from the entry entities: each edge found, with the hop it was found at.
    async fn walk(
        &self,
        session: &Session,
        entry_keys: Vec<String>,
    ) -> Result<HashMap<String, u8>, GraphError> {
        let scope = session.graph_scope();
        let mut seen_keys: HashSet<String> = entry_keys.iter().cloned().collect();
        let mut frontier = entry_keys;
        let mut found: HashMap<String, u8> = HashMap::new();
        for hop in 1..=HOPS {
            if frontier.is_empty() {
                break;
            }
            let edges: Vec<(String, String, String)> = match &self.bolt {
                Some(bolt) => {
                    bolt.edges_touching(&session.org_id, &scope, &frontier, EDGES_PER_HOP)
                        .await?
                }
                None => self
                    .store
                    .graph_edges_touching(session, &frontier, EDGES_PER_HOP)
                    .await?
                    .into_iter()
                    .filter_map(|e| Some((e.id, e.source_key?, e.target_key?)))
                    .collect(),
            };
            let mut next = Vec::new();
            for (id, source, target) in edges {
                found.entry(id).or_insert(hop);
                for key in [source, target] {
                    if seen_keys.insert(key.clone()) {
                        next.push(key);
                    }
                }
            }
            frontier = next;
        }
        Ok(found)
    }
}

fn plain_item(scope: &str, kind: GraphKind, text: &str, natural_key: &str) -> NewGraphItem {
    NewGraphItem {
        id: graph_item_id(scope, kind, natural_key),
        kind,
        text: text.to_string(),
        entity_key: None,
        entity_type: None,
        source_key: None,
        relation: None,
        target_key: None,
        sentence: None,
        embedding: Vec::new(),
    }
}

fn triplet_fact(
    edge: GraphItem,
    source: &GraphItem,
    target: &GraphItem,
    hops: u8,
    score: f32,
) -> ScoredFact {
    let relation = edge.relation.unwrap_or_default();
    let entity = |e: &GraphItem| TripletEntity {
        name: e.text.clone(),
        entity_type: e.entity_type.clone().unwrap_or_default(),
    };
    ScoredFact {
        id: edge.id,
        text: render_triplet(&source.text, &relation, &target.text),
        score,
        triplet: Some(Triplet {
            source: entity(source),
            relation,
            target: entity(target),
            sentence: edge.sentence.unwrap_or_default(),
            hops,
        }),
    }
}
