//! The "mem0" engine: facts extracted from turns, embedded, deduplicated, and searched by
//! meaning and keywords together (`ranking.rs`).

use std::collections::HashMap;

use serde::Serialize;

use crate::config::{ExtractionConfig, MemoryConfig};
use crate::domain::usage::{CallScope, Purpose};
use crate::domain::FactChange;
use crate::domain::Neighbour;
use crate::domain::{now_ms, Fact, Session, TurnMessage};
use crate::embed::Embedder;
use crate::error::{MemoryError, StoreError};
use crate::llm::{prompts, LlmClient};
use crate::memory::ranking::{fuse, lexical_terms, Fusion, CANDIDATES};
use crate::memory::{declarative, ScoredFact};
use crate::redaction::RedactedTurn;
use crate::store::FactStore;
use crate::store::Store;
use crate::vector;

/// Stored facts shown to the update model per new fact.
const UPDATE_NEIGHBOURS: usize = 5;

#[derive(Clone)]
pub struct FactsEngine {
    store: Store,
    llm: LlmClient,
    embedder: Embedder,
    extraction: ExtractionConfig,
    dedup_threshold: f32,
}

#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FactEvent {
    /// The fact written, or the stored fact a `NONE` matched.
    pub id: Option<String>,
    pub text: String,
    /// `ADD`, `UPDATE`, `DELETE` or `NONE`.
    #[schema(value_type = String)]
    pub event: &'static str,
}

impl FactsEngine {
    pub fn new(
        store: Store,
        llm: LlmClient,
        embedder: Embedder,
        extraction: ExtractionConfig,
        memory: &MemoryConfig,
    ) -> Self {
        Self {
            store,
            llm,
            embedder,
            extraction,
            dedup_threshold: memory.dedup_threshold,
        }
    }

    pub async fn ingest(
        &self,
        session: &Session,
        turn: &RedactedTurn,
    ) -> Result<Vec<FactEvent>, MemoryError> {
        let facts = self.extract(session, turn.messages()).await;
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let embeddings = self
            .embedder
            .embed(CallScope::of(session), Purpose::FactEmbedding, &facts)
            .await?;
        // Expired facts awaiting their purge must not absorb new ones as duplicates.
        let fresh_since = session.config.fresh_since(now_ms());
        let mut existing = Vec::with_capacity(embeddings.len());
        for embedding in &embeddings {
            existing.push(
                self.store
                    .nearest(session, embedding, UPDATE_NEIGHBOURS, fresh_since)
                    .await?,
            );
        }
        let planned = if self.extraction.enabled && self.extraction.llm_updates {
            match self
                .plan_with_llm(session, &facts, &embeddings, &existing)
                .await
            {
                Ok(planned) => planned,
                Err(e) => {
                    tracing::warn!(error = %e, "memory update model failed; deduplicating by similarity");
                    self.plan_by_similarity(&facts, &embeddings, &existing)
                }
            }
        } else {
            self.plan_by_similarity(&facts, &embeddings, &existing)
        };
        let changes: Vec<FactChange> = planned.iter().filter_map(|p| p.change.clone()).collect();
        let mut ids = self
            .store
            .apply_fact_changes(session, &changes, "ingest", turn.redacted())
            .await?
            .into_iter();
        Ok(planned
            .into_iter()
            .map(|p| FactEvent {
                id: if p.change.is_some() {
                    ids.next()
                } else {
                    p.known_id
                },
                text: p.text,
                event: p.event,
            })
            .collect())
    }

    /// A page of the session's facts, oldest first, those past its TTL left out.
    pub async fn list(
        &self,
        session: &Session,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Fact>, i64), StoreError> {
        let fresh_since = session.config.fresh_since(now_ms());
        self.store
            .list_facts(session, fresh_since, limit, offset)
            .await
    }

    /// Deletes one fact, with its history row; `false` when the session has no such fact.
    pub async fn delete(&self, session: &Session, fact_id: &str) -> Result<bool, StoreError> {
        let change = FactChange::Delete {
            fact_id: fact_id.to_string(),
        };
        let touched = self
            .store
            .apply_fact_changes(session, &[change], "api", false)
            .await?;
        Ok(!touched.is_empty())
    }

    pub async fn search(
        &self,
        session: &Session,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ScoredFact>, MemoryError> {
        if limit == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let fresh_since = session.config.fresh_since(now_ms());
        let candidates = CANDIDATES.max(limit);
        let terms = lexical_terms(query);
        let question = [query.to_string()];
        // The words need no vector: their search runs while the query is embedded.
        let (query_vector, by_terms) = tokio::join!(
            self.embedder
                .embed(CallScope::of(session), Purpose::QueryEmbedding, &question),
            async {
                if terms.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.store
                        .keyword_search(session, &terms, candidates, fresh_since)
                        .await
                }
            }
        );
        let query_vector = query_vector?.pop().unwrap_or_default();
        let by_terms = by_terms?;
        let by_meaning = self
            .store
            .nearest(session, &query_vector, candidates, fresh_since)
            .await?;
        Ok(fuse(by_meaning, by_terms, Fusion::for_query(query), limit))
    }

    /// Facts worth keeping from a conversation: the extraction model's, or, with extraction
    /// off or failing after its retries, the user's declarative sentences.
    async fn extract(&self, session: &Session, messages: &[TurnMessage]) -> Vec<String> {
        let facts = if self.extraction.enabled {
            match self
                .llm
                .chat_json(
                    CallScope::of(session),
                    Purpose::Extraction,
                    prompts::EXTRACTION_SYSTEM,
                    &prompts::extraction_user(messages),
                )
                .await
            {
                Ok(answer) => string_list(&answer["facts"]),
                Err(e) => {
                    tracing::warn!(error = %e, "fact extraction failed; keeping the user's declarative sentences");
                    fallback_facts(messages)
                }
            }
        } else {
            fallback_facts(messages)
        };
        let mut seen = Vec::new();
        facts
            .into_iter()
            .filter(|f| {
                let key = normalise(f);
                let fresh = !key.is_empty() && !seen.contains(&key);
                seen.push(key);
                fresh
            })
            .collect()
    }

    fn plan_by_similarity(
        &self,
        facts: &[String],
        embeddings: &[Vec<f32>],
        neighbours: &[Vec<Neighbour>],
    ) -> Vec<Planned> {
        let mut accepted: Vec<(&str, &[f32])> = Vec::new();
        let mut planned = Vec::with_capacity(facts.len());
        for ((text, embedding), near) in facts.iter().zip(embeddings).zip(neighbours) {
            let stored_match = near.iter().find(|s| {
                normalise(&s.text) == normalise(text) || s.similarity >= self.dedup_threshold
            });
            let batch_match = accepted.iter().any(|(t, e)| {
                normalise(t) == normalise(text)
                    || vector::cosine(e, embedding) >= self.dedup_threshold
            });
            if let Some(s) = stored_match {
                planned.push(Planned::none(text, Some(s.fact_id.clone())));
            } else if batch_match {
                planned.push(Planned::none(text, None));
            } else {
                accepted.push((text, embedding));
                planned.push(Planned {
                    text: text.clone(),
                    event: "ADD",
                    known_id: None,
                    change: Some(FactChange::Add {
                        text: text.clone(),
                        embedding: embedding.clone(),
                    }),
                });
            }
        }
        planned
    }

    /// Mem0's update step: the model sees each new fact's nearest stored facts (under short
    /// local ids, so it cannot invent real ones) and decides ADD/UPDATE/DELETE/NONE.
    async fn plan_with_llm(
        &self,
        session: &Session,
        facts: &[String],
        embeddings: &[Vec<f32>],
        neighbours: &[Vec<Neighbour>],
    ) -> Result<Vec<Planned>, MemoryError> {
        let mut shown: Vec<&Neighbour> = Vec::new();
        for n in neighbours.iter().flatten() {
            if !shown.iter().any(|s| s.fact_id == n.fact_id) {
                shown.push(n);
            }
        }
        let local: Vec<(String, String)> = shown
            .iter()
            .enumerate()
            .map(|(i, s)| (i.to_string(), s.text.clone()))
            .collect();
        let answer = self
            .llm
            .chat_json(
                CallScope::of(session),
                Purpose::MemoryUpdate,
                prompts::UPDATE_SYSTEM,
                &prompts::update_user(&local, facts),
            )
            .await?;
        let decisions = answer["memory"].as_array().cloned().unwrap_or_default();
        let known: HashMap<&str, &Vec<f32>> =
            facts.iter().map(String::as_str).zip(embeddings).collect();
        let mut to_embed = Vec::new();
        let mut planned = Vec::new();
        for d in &decisions {
            let text = d["text"].as_str().unwrap_or_default().trim().to_string();
            let target = d["id"]
                .as_str()
                .and_then(|id| id.parse::<usize>().ok())
                .and_then(|i| shown.get(i))
                .map(|s| s.fact_id.clone());
            match (d["event"].as_str().unwrap_or_default(), target) {
                ("ADD", _) if !text.is_empty() => {
                    to_embed.push(text.clone());
                    planned.push(Planned::pending("ADD", text, None));
                }
                ("UPDATE", Some(id)) if !text.is_empty() => {
                    to_embed.push(text.clone());
                    planned.push(Planned::pending("UPDATE", text, Some(id)));
                }
                ("DELETE", Some(id)) => planned.push(Planned {
                    text,
                    event: "DELETE",
                    known_id: Some(id.clone()),
                    change: Some(FactChange::Delete { fact_id: id }),
                }),
                (_, id) => planned.push(Planned::none(&text, id)),
            }
        }
        let missing: Vec<String> = to_embed
            .iter()
            .filter(|t| !known.contains_key(t.as_str()))
            .cloned()
            .collect();
        let fresh = self
            .embedder
            .embed(CallScope::of(session), Purpose::FactEmbedding, &missing)
            .await?;
        let fresh: HashMap<&str, &Vec<f32>> =
            missing.iter().map(String::as_str).zip(&fresh).collect();
        for p in planned.iter_mut().filter(|p| p.change.is_none()) {
            let Some(embedding) = known
                .get(p.text.as_str())
                .or_else(|| fresh.get(p.text.as_str()))
            else {
                continue;
            };
            p.change = match p.event {
                "ADD" => Some(FactChange::Add {
                    text: p.text.clone(),
                    embedding: (*embedding).clone(),
                }),
                "UPDATE" => p.known_id.clone().map(|fact_id| FactChange::Update {
                    fact_id,
                    text: p.text.clone(),
                    embedding: (*embedding).clone(),
                }),
                _ => None,
            };
        }
        Ok(planned)
    }
}

struct Planned {
    text: String,
    event: &'static str,
    known_id: Option<String>,
    change: Option<FactChange>,
}

impl Planned {
    fn none(text: &str, known_id: Option<String>) -> Self {
        Self {
            text: text.to_string(),
            event: "NONE",
            known_id,
            change: None,
        }
    }

    /// A change whose embedding is filled in once all texts needing one are embedded.
    fn pending(event: &'static str, text: String, known_id: Option<String>) -> Self {
        Self {
            text,
            event,
            known_id,
            change: None,
        }
    }
}

fn fallback_facts(messages: &[TurnMessage]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.role == "user")
        .flat_map(|m| declarative::declarative_sentences(&m.content))
        .collect()
}

fn string_list(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|xs| {
            xs.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Lowercase alphanumerics only: "My team is in Singapore." and "my team is in singapore"
/// are the same fact.
fn normalise(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_ignores_case_and_punctuation() {
        assert_eq!(
            normalise("My team is in Singapore."),
            normalise("my team is in singapore")
        );
    }

    #[test]
    fn string_list_keeps_non_empty_strings() {
        let v = serde_json::json!(["a fact", " ", 3, "another "]);
        assert_eq!(string_list(&v), vec!["a fact", "another"]);
        assert!(string_list(&serde_json::json!(null)).is_empty());
    }
}
