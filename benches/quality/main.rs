//! Retrieval quality on the project's own conversations (`benches/quality/data`, made by
//! `generate.py` with a fixed seed): recall@3, recall@10 and MRR of memgate's search beside
//! exact cosine and BM25 over the same stored facts, with the local embedding model, on two
//! data shapes — clean extracted facts, and the user's raw sentences as memgate stores them
//! with extraction off. Then the fusion weights swept on the same candidate lists, and the
//! dedup threshold against labelled near-duplicate pairs.
//!
//! ```sh
//! bash scripts/install-model.sh
//! cargo bench --bench quality                       # the embedded store
//! QUALITY_STORE=postgres://postgres@127.0.0.1/empty cargo bench --bench quality
//! ```
//!
//! A question's evidence is a set of turns; a stored fact counts for the turns it came from
//! (a sentence merged into an earlier fact counts for both turns).

#[path = "../support/local_engine.rs"]
mod local_engine;

use local_engine::LocalEngine;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use memgate::domain::usage::{CallScope, Purpose};
use memgate::domain::{EngineKind, FactChange, Session, SessionConfig, TurnMessage};
use memgate::memory::query::{classify, tokens, QueryKind};
use memgate::memory::ranking::{self, Fusion, CANDIDATES};
use memgate::store::{FactStore, SessionStore};
use memgate::vector;
use serde::Deserialize;

#[derive(Deserialize)]
struct Dataset {
    conversations: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Conversation {
    id: String,
    turns: Vec<Turn>,
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Turn {
    id: String,
    user: String,
    facts: Vec<LabelledFact>,
}

#[derive(Deserialize)]
struct LabelledFact {
    text: String,
}

#[derive(Deserialize)]
struct Question {
    text: String,
    style: String,
    evidence_turns: Vec<String>,
}

#[derive(Deserialize)]
struct Pairs {
    pairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    a: String,
    b: String,
    duplicate: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Facts,
    Sentences,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Facts => "clean facts",
            Shape::Sentences => "raw sentences",
        }
    }
}

#[derive(Default, Clone)]
struct Score {
    questions: usize,
    recall3: f64,
    recall10: f64,
    reciprocal_rank: f64,
}

impl Score {
    fn add(&mut self, ranked_turns: &[HashSet<String>], evidence: &[String]) {
        let covered = |k: usize| {
            let found: HashSet<&String> = ranked_turns.iter().take(k).flatten().collect();
            evidence.iter().filter(|e| found.contains(e)).count() as f64 / evidence.len() as f64
        };
        self.questions += 1;
        self.recall3 += covered(3);
        self.recall10 += covered(10);
        if let Some(rank) = ranked_turns
            .iter()
            .position(|turns| evidence.iter().any(|e| turns.contains(e)))
        {
            self.reciprocal_rank += 1.0 / (rank + 1) as f64;
        }
    }

    fn row(&self, name: &str) -> String {
        let n = self.questions.max(1) as f64;
        format!(
            "| {name} | {:.3} | {:.3} | {:.3} |",
            self.recall3 / n,
            self.recall10 / n,
            self.reciprocal_rank / n
        )
    }
}

/// Okapi BM25 (k1 1.2, b 0.75) over the session's stored texts, every query word searched.
struct Bm25 {
    docs: Vec<HashMap<String, f64>>,
    lengths: Vec<f64>,
    document_frequency: HashMap<String, f64>,
    average_length: f64,
}

impl Bm25 {
    fn new(texts: &[String]) -> Self {
        let docs: Vec<HashMap<String, f64>> = texts
            .iter()
            .map(|t| {
                let mut counts = HashMap::new();
                for w in tokens(t) {
                    *counts.entry(w.to_lowercase()).or_insert(0.0) += 1.0;
                }
                counts
            })
            .collect();
        let lengths: Vec<f64> = docs.iter().map(|d| d.values().sum()).collect();
        let mut document_frequency = HashMap::new();
        for d in &docs {
            for w in d.keys() {
                *document_frequency.entry(w.clone()).or_insert(0.0) += 1.0;
            }
        }
        let average_length = lengths.iter().sum::<f64>() / lengths.len().max(1) as f64;
        Self {
            docs,
            lengths,
            document_frequency,
            average_length,
        }
    }

    fn top(&self, query: &str, k: usize) -> Vec<usize> {
        let n = self.docs.len() as f64;
        let words: Vec<String> = tokens(query).map(str::to_lowercase).collect();
        let mut scored: Vec<(usize, f64)> = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let score = words
                    .iter()
                    .map(|w| {
                        let tf = d.get(w).copied().unwrap_or(0.0);
                        if tf == 0.0 {
                            return 0.0;
                        }
                        let df = self.document_frequency[w];
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        idf * tf * 2.2
                            / (tf + 1.2 * (0.25 + 0.75 * self.lengths[i] / self.average_length))
                    })
                    .sum::<f64>();
                (i, score)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }
}

/// The fusions tried beside the shipped one: one for questions, one for keyword-like
/// queries (`None`: the shipped pair).
type Variant = (String, Option<(Fusion, Fusion)>);

fn variants() -> Vec<Variant> {
    let convex = |lexical_weight, recency_weight| Fusion::Convex {
        lexical_weight,
        recency_weight,
    };
    let mut all: Vec<Variant> = vec![("shipped".to_string(), None)];
    for question_lexical in [0.0, 0.01, 0.015, 0.02, 0.03, 0.05] {
        for keyword_lexical in [0.05, 0.1, 0.15, 0.2] {
            for recency in [0.03, 0.05, 0.08] {
                all.push((
                    format!(
                        "convex questions {question_lexical}, keywords {keyword_lexical}, recency {recency}"
                    ),
                    Some((
                        convex(question_lexical, recency),
                        convex(keyword_lexical, recency),
                    )),
                ));
            }
        }
    }
    for k in [10.0, 60.0] {
        for lexical_weight in [0.25, 1.0] {
            let rrf = Fusion::Rrf {
                k,
                dense_weight: 1.0,
                lexical_weight,
            };
            all.push((
                format!("rrf k={k} lexical={lexical_weight}"),
                Some((rrf, rrf)),
            ));
        }
    }
    all
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/quality/data");
    let dataset: Dataset = serde_json::from_slice(
        &std::fs::read(here.join("conversations.json")).expect("conversations.json"),
    )
    .expect("dataset");
    let pairs: Pairs =
        serde_json::from_slice(&std::fs::read(here.join("dedup_pairs.json")).expect("pairs"))
            .expect("pairs");
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("QUALITY_STORE")
        .unwrap_or_else(|_| format!("sqlite://{}", scratch.path().join("quality.db").display()));
    let bench = local_engine::start(&url).await;
    println!(
        "# retrieval quality: {} conversations, {} questions, store {}\n",
        dataset.conversations.len(),
        dataset
            .conversations
            .iter()
            .map(|c| c.questions.len())
            .sum::<usize>(),
        url.split(':').next().unwrap_or_default()
    );
    for shape in [Shape::Facts, Shape::Sentences] {
        bench.run(&dataset, shape).await;
    }
    bench.dedup(&pairs).await;
}

impl LocalEngine {
    /// A user turn as the engine ingests it: through the server's default redaction.
    async fn redacted(&self, text: &str) -> memgate::redaction::RedactedTurn {
        let message = TurnMessage {
            role: "user".into(),
            content: text.to_string(),
        };
        self.redactor
            .redact_turn(self.redactor.rules(None), vec![message])
            .await
    }

    async fn embed(&self, session: &Session, texts: &[String], purpose: Purpose) -> Vec<Vec<f32>> {
        self.embedder
            .embed(CallScope::of(session), purpose, texts)
            .await
            .expect("embed")
    }

    /// Stores the conversation in the shape asked for; the turns each stored fact stands for.
    async fn ingest(
        &self,
        session: &Session,
        conversation: &Conversation,
        shape: Shape,
    ) -> HashMap<String, HashSet<String>> {
        let mut turns_of: HashMap<String, HashSet<String>> = HashMap::new();
        for turn in &conversation.turns {
            let ids: Vec<String> = match shape {
                Shape::Facts => {
                    let texts: Vec<String> = turn.facts.iter().map(|f| f.text.clone()).collect();
                    let vectors = self.embed(session, &texts, Purpose::FactEmbedding).await;
                    let changes: Vec<FactChange> = texts
                        .into_iter()
                        .zip(vectors)
                        .map(|(text, embedding)| FactChange::Add { text, embedding })
                        .collect();
                    self.store
                        .apply_fact_changes(session, &changes, "bench", false)
                        .await
                        .expect("store facts")
                }
                Shape::Sentences => self
                    .engine
                    .ingest(session, &self.redacted(&turn.user).await)
                    .await
                    .expect("ingest")
                    .into_iter()
                    .filter_map(|event| event.id)
                    .collect(),
            };
            for id in ids {
                turns_of.entry(id).or_default().insert(turn.id.clone());
            }
        }
        turns_of
    }

    async fn run(&self, dataset: &Dataset, shape: Shape) {
        let started = Instant::now();
        let variants = variants();
        let mut memgate = Score::default();
        let mut cosine = Score::default();
        let mut bm25 = Score::default();
        let mut swept = vec![Score::default(); variants.len()];
        let mut by_style: HashMap<String, [Score; 3]> = HashMap::new();
        let mut stored = 0;
        // QUALITY_MISSES=1 prints each question memgate's top 3 missed entirely.
        let show_misses = std::env::var_os("QUALITY_MISSES").is_some();
        for conversation in &dataset.conversations {
            let memory_id = format!(
                "{}-{}",
                conversation.id,
                if shape == Shape::Facts {
                    "facts"
                } else {
                    "raw"
                }
            );
            let session = self
                .store
                .create_session(
                    "bench",
                    &memory_id,
                    EngineKind::Mem0,
                    &SessionConfig::default(),
                )
                .await
                .expect("session");
            let turns_of = self.ingest(&session, conversation, shape).await;
            let (facts, _) = self
                .store
                .list_facts(&session, None, i64::MAX, 0)
                .await
                .expect("facts");
            stored += facts.len();
            let texts: Vec<String> = facts.iter().map(|f| f.text.clone()).collect();
            let vectors = self.embed(&session, &texts, Purpose::FactEmbedding).await;
            let lexical = Bm25::new(&texts);
            let turns = |id: &str| turns_of.get(id).cloned().unwrap_or_default();
            for question in &conversation.questions {
                let evidence = &question.evidence_turns;
                let found = self
                    .engine
                    .search(&session, &question.text, 10)
                    .await
                    .expect("search");
                let ours: Vec<HashSet<String>> = found.iter().map(|f| turns(&f.id)).collect();
                memgate.add(&ours, evidence);
                if show_misses && !ours.iter().take(3).flatten().any(|t| evidence.contains(t)) {
                    let said: Vec<&str> = conversation
                        .turns
                        .iter()
                        .filter(|t| evidence.contains(&t.id))
                        .map(|t| t.user.as_str())
                        .collect();
                    println!(
                        "MISS [{}] {}\n  evidence: {said:?}",
                        question.style, question.text
                    );
                    for f in found.iter().take(3) {
                        println!("  got {:.3} {}", f.score, f.text);
                    }
                }
                let query = self
                    .embed(
                        &session,
                        std::slice::from_ref(&question.text),
                        Purpose::QueryEmbedding,
                    )
                    .await
                    .remove(0);
                let exact: Vec<HashSet<String>> =
                    vector::top_k(&query, vectors.iter().map(Vec::as_slice), 10)
                        .into_iter()
                        .map(|(i, _)| turns(&facts[i].id))
                        .collect();
                cosine.add(&exact, evidence);
                let best_words: Vec<HashSet<String>> = lexical
                    .top(&question.text, 10)
                    .into_iter()
                    .map(|i| turns(&facts[i].id))
                    .collect();
                bm25.add(&best_words, evidence);
                let style = by_style.entry(question.style.clone()).or_default();
                style[0].add(&ours, evidence);
                style[1].add(&exact, evidence);
                style[2].add(&best_words, evidence);

                let by_meaning = self
                    .store
                    .nearest(&session, &query, CANDIDATES, None)
                    .await
                    .expect("nearest");
                let terms = ranking::lexical_terms(&question.text);
                let by_terms = self
                    .store
                    .keyword_search(&session, &terms, CANDIDATES, None)
                    .await
                    .expect("keywords");
                for ((_, fusion), score) in variants.iter().zip(&mut swept) {
                    let fusion = match fusion {
                        Some((question_fusion, keyword_fusion)) => match classify(&question.text) {
                            QueryKind::Question => *question_fusion,
                            QueryKind::Keywords => *keyword_fusion,
                        }
                        .for_state_asked(&question.text),
                        None => Fusion::for_query(&question.text),
                    };
                    let fused = ranking::fuse(by_meaning.clone(), by_terms.clone(), fusion, 10);
                    let ranked: Vec<HashSet<String>> = fused.iter().map(|f| turns(&f.id)).collect();
                    score.add(&ranked, evidence);
                }
            }
        }
        println!(
            "## {} ({stored} stored facts, {:.0} s)\n",
            shape.name(),
            started.elapsed().as_secs_f64()
        );
        println!("| method | R@3 | R@10 | MRR |\n| --- | --- | --- | --- |");
        println!("{}", memgate.row("memgate search (hybrid)"));
        println!("{}", cosine.row("exact cosine"));
        println!("{}", bm25.row("BM25"));
        println!("\nR@3 by question style (memgate / exact cosine / BM25):\n");
        let mut styles: Vec<_> = by_style.into_iter().collect();
        styles.sort_by(|a, b| a.0.cmp(&b.0));
        for (style, [ours, exact, words]) in styles {
            let r3 = |s: &Score| s.recall3 / s.questions.max(1) as f64;
            println!(
                "- {style} ({}): {:.3} / {:.3} / {:.3}",
                ours.questions,
                r3(&ours),
                r3(&exact),
                r3(&words)
            );
        }
        println!("\nFusion sweep on memgate's own candidate lists ({CANDIDATES} each):\n");
        println!("| fusion | R@3 | R@10 | MRR |\n| --- | --- | --- | --- |");
        for ((name, _), score) in variants.iter().zip(&swept) {
            println!("{}", score.row(name));
        }
        println!();
    }

    /// How many labelled duplicates each threshold merges, and how many distinct facts it
    /// merges by mistake.
    async fn dedup(&self, pairs: &Pairs) {
        let session = self
            .store
            .create_session(
                "bench",
                "dedup",
                EngineKind::Mem0,
                &SessionConfig::default(),
            )
            .await
            .expect("session");
        let a: Vec<String> = pairs.pairs.iter().map(|p| p.a.clone()).collect();
        let b: Vec<String> = pairs.pairs.iter().map(|p| p.b.clone()).collect();
        let va = self.embed(&session, &a, Purpose::FactEmbedding).await;
        let vb = self.embed(&session, &b, Purpose::FactEmbedding).await;
        let similarity: Vec<f32> = va
            .iter()
            .zip(&vb)
            .map(|(x, y)| vector::cosine(x, y))
            .collect();
        let duplicates = pairs.pairs.iter().filter(|p| p.duplicate).count();
        let distinct = pairs.pairs.len() - duplicates;
        println!("## dedup threshold ({duplicates} duplicate pairs, {distinct} distinct pairs)\n");
        println!("| threshold | duplicates merged | distinct facts merged (false merges) |");
        println!("| --- | --- | --- |");
        for threshold in [0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98] {
            let merged = |duplicate: bool| {
                pairs
                    .pairs
                    .iter()
                    .zip(&similarity)
                    .filter(|(p, s)| p.duplicate == duplicate && **s >= threshold)
                    .count()
            };
            println!(
                "| {threshold:.2} | {:.1}% | {:.1}% |",
                100.0 * merged(true) as f64 / duplicates.max(1) as f64,
                100.0 * merged(false) as f64 / distinct.max(1) as f64
            );
        }
        println!();
    }
}
