//! Hybrid ranking: the session's facts nearest in meaning and those best matching the query's
//! words (SQLite: BM25 over the cached rows; Postgres full text), fused for every query: cosine plus a small
//! share of the lexical score relative to the answer's best (so the two stores' lexical
//! scales need not agree), plus, for questions about the present, a share for recency.
//! Weighted reciprocal rank fusion is kept as the alternative the benchmark compares.
//!
//! The weights come from `benches/quality` (`cargo bench --bench quality`), which sweeps
//! them on the project's conversations, both data shapes; see the constants.

use std::collections::HashMap;

use crate::domain::{KeywordMatch, Neighbour};
use crate::memory::query::{asks_for_current_state, classify, keyword_terms, QueryKind};
use crate::memory::ScoredFact;
use crate::vector;

/// Candidates taken from each ranking before fusion.
pub const CANDIDATES: usize = 20;

/// How the two rankings are combined for one query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    /// Weighted reciprocal rank fusion; `k` small rewards the top of each list more.
    Rrf {
        k: f32,
        dense_weight: f32,
        lexical_weight: f32,
    },
    /// Cosine plus `lexical_weight` times the lexical score relative to the best lexical
    /// match of the answer: the words break near-ties of meaning rather than overrule it. A
    /// fact found only by its words, outside the dense candidates, is given the lowest cosine
    /// among them, which bounds its own from above.
    Convex {
        lexical_weight: f32,
        /// Added in proportion to how recent a candidate is among the candidates (the
        /// newest gets all of it), for queries about the current state of things.
        recency_weight: f32,
    },
}

// The weights below had the best R@3 on both data shapes of the quality benchmark at once
// (a sweep of convex and RRF fusions; benches/quality prints it). Larger lexical weights
// on questions cost recall on clean facts, where words such as "work" or "live" match the
// wrong fact; RRF at any weight tried was worse than cosine alone.

/// Questions: the words only break near-ties of meaning.
pub const QUESTION_FUSION: Fusion = Fusion::Convex {
    lexical_weight: 0.01,
    recency_weight: RECENCY_WEIGHT,
};

/// Keyword-like queries ("beagle name"): their words are the point, so they weigh more.
pub const KEYWORD_FUSION: Fusion = Fusion::Convex {
    lexical_weight: 0.1,
    recency_weight: RECENCY_WEIGHT,
};

/// For "where do I live now?": an update told later should beat the fact it replaced,
/// whose words often match the question better.
const RECENCY_WEIGHT: f32 = 0.03;

impl Fusion {
    pub fn for_query(query: &str) -> Self {
        let fusion = match classify(query) {
            QueryKind::Question => QUESTION_FUSION,
            QueryKind::Keywords => KEYWORD_FUSION,
        };
        fusion.for_state_asked(query)
    }

    /// This fusion, its recency weight kept only when the query asks how things are now.
    pub fn for_state_asked(self, query: &str) -> Self {
        match self {
            Fusion::Convex {
                lexical_weight,
                recency_weight,
            } => Fusion::Convex {
                lexical_weight,
                recency_weight: if asks_for_current_state(query) {
                    recency_weight
                } else {
                    0.0
                },
            },
            rrf => rrf,
        }
    }
}

/// Words a question is made of that say nothing about its subject: matching them only
/// rewards long sentences, so they are not searched for.
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can",
    "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in",
    "is", "it", "its", "me", "my", "mine", "myself", "of", "on", "or", "our", "so", "that", "the",
    "their", "them", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what",
    "when", "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "you",
    "your",
];

/// The terms a query is searched by lexically: its words, function words left out (all of
/// them when nothing else is left).
pub fn lexical_terms(query: &str) -> Vec<String> {
    let terms = keyword_terms(query);
    let content: Vec<String> = terms
        .iter()
        .filter(|t| !FUNCTION_WORDS.contains(&t.as_str()))
        .cloned()
        .collect();
    if content.is_empty() {
        terms
    } else {
        content
    }
}

/// The best `limit` facts of the two rankings, each with its fused score.
pub fn fuse(
    by_meaning: Vec<Neighbour>,
    by_terms: Vec<KeywordMatch>,
    fusion: Fusion,
    limit: usize,
) -> Vec<ScoredFact> {
    let mut fused = match fusion {
        Fusion::Rrf {
            k,
            dense_weight,
            lexical_weight,
        } => rank_fusion(by_meaning, by_terms, k, dense_weight, lexical_weight),
        Fusion::Convex {
            lexical_weight,
            recency_weight,
        } => convex(by_meaning, by_terms, lexical_weight, recency_weight),
    };
    fused.truncate(limit);
    fused
}

fn rank_fusion(
    by_meaning: Vec<Neighbour>,
    by_terms: Vec<KeywordMatch>,
    k: f32,
    dense_weight: f32,
    lexical_weight: f32,
) -> Vec<ScoredFact> {
    let mut texts: HashMap<String, String> = HashMap::new();
    let meaning_ids: Vec<String> = by_meaning
        .into_iter()
        .map(|n| {
            texts.insert(n.fact_id.clone(), n.text);
            n.fact_id
        })
        .collect();
    let term_ids: Vec<String> = by_terms
        .into_iter()
        .map(|m| {
            texts.entry(m.fact_id.clone()).or_insert(m.text);
            m.fact_id
        })
        .collect();
    vector::reciprocal_rank_fusion(
        &[(&meaning_ids, dense_weight), (&term_ids, lexical_weight)],
        k,
    )
    .into_iter()
    .map(|(id, score)| ScoredFact {
        text: texts.remove(&id).unwrap_or_default(),
        id,
        score,
        triplet: None,
    })
    .collect()
}

fn convex(
    by_meaning: Vec<Neighbour>,
    by_terms: Vec<KeywordMatch>,
    lexical_weight: f32,
    recency_weight: f32,
) -> Vec<ScoredFact> {
    let mut written: Vec<i64> = by_meaning
        .iter()
        .map(|n| n.updated_at)
        .chain(by_terms.iter().map(|m| m.updated_at))
        .collect();
    written.sort_unstable();
    written.dedup();
    // By rank, not by age: a session's facts may span minutes or years.
    let recency = |at: i64| {
        if written.len() < 2 {
            return 0.0;
        }
        let rank = written.partition_point(|w| *w < at);
        recency_weight * rank as f32 / (written.len() - 1) as f32
    };
    let floor = by_meaning
        .iter()
        .map(|n| n.similarity)
        .fold(f32::INFINITY, f32::min);
    let best_words = by_terms.iter().map(|m| m.score).fold(0.0f64, f64::max);
    let relative = |score: f64| {
        if best_words > 0.0 {
            (score / best_words).clamp(0.0, 1.0) as f32
        } else {
            0.0
        }
    };
    let mut words: HashMap<String, f32> = HashMap::new();
    for m in &by_terms {
        words.insert(m.fact_id.clone(), relative(m.score));
    }
    let mut seen = std::collections::HashSet::new();
    let mut scored: Vec<ScoredFact> = Vec::with_capacity(by_meaning.len() + by_terms.len());
    for n in by_meaning {
        seen.insert(n.fact_id.clone());
        let bonus = words.get(&n.fact_id).copied().unwrap_or(0.0);
        scored.push(ScoredFact {
            score: n.similarity + lexical_weight * bonus + recency(n.updated_at),
            id: n.fact_id,
            text: n.text,
            triplet: None,
        });
    }
    let floor = if floor.is_finite() { floor } else { 0.0 };
    for m in by_terms {
        if seen.insert(m.fact_id.clone()) {
            scored.push(ScoredFact {
                score: floor + lexical_weight * relative(m.score) + recency(m.updated_at),
                id: m.fact_id,
                text: m.text,
                triplet: None,
            });
        }
    }
    // Stable: equal scores keep the dense order, then the lexical one.
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(id: &str) -> Neighbour {
        Neighbour {
            fact_id: id.into(),
            text: format!("text {id}"),
            updated_at: 0,
            similarity: 0.5,
        }
    }

    fn words(id: &str, score: f64) -> KeywordMatch {
        KeywordMatch {
            fact_id: id.into(),
            text: format!("text {id}"),
            updated_at: 0,
            score,
        }
    }

    #[test]
    fn rank_fusion_rewards_agreement() {
        let fused = fuse(
            vec![near("a"), near("b")],
            vec![words("b", 2.0), words("c", 1.0)],
            Fusion::Rrf {
                k: 60.0,
                dense_weight: 1.0,
                lexical_weight: 1.0,
            },
            3,
        );
        let ids: Vec<&str> = fused.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
    }

    #[test]
    fn words_only_found_facts_rank_below_the_dense_floor_plus_their_bonus() {
        let mut a = near("a");
        a.similarity = 0.8;
        let mut b = near("b");
        b.similarity = 0.6;
        let fused = fuse(
            vec![a, b],
            vec![words("c", 4.0), words("b", 1.0)],
            Fusion::Convex {
                lexical_weight: 0.1,
                recency_weight: 0.0,
            },
            3,
        );
        let scores: Vec<(&str, f32)> = fused.iter().map(|f| (f.id.as_str(), f.score)).collect();
        assert_eq!(scores[0], ("a", 0.8));
        assert_eq!(scores[1].0, "c");
        assert!((scores[1].1 - 0.7).abs() < 1e-6, "{scores:?}");
        assert!((scores[2].1 - 0.625).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn the_newer_of_two_close_facts_wins_when_the_query_asks_about_now() {
        let old = Neighbour {
            updated_at: 1_000,
            similarity: 0.39,
            ..near("lives-in-tunis")
        };
        let new = Neighbour {
            updated_at: 9_000,
            similarity: 0.37,
            ..near("relocated-to-mysore")
        };
        let first = |query: &str| {
            fuse(
                vec![old.clone(), new.clone()],
                Vec::new(),
                Fusion::for_query(query),
                2,
            )[0]
            .id
            .clone()
        };
        assert_eq!(first("Where do I live now?"), "relocated-to-mysore");
        assert_eq!(first("Where did I live?"), "lives-in-tunis");
    }

    #[test]
    fn function_words_are_not_searched_for() {
        assert_eq!(lexical_terms("What's my dog called?"), ["dog", "called"]);
        assert_eq!(lexical_terms("Where is it?"), ["where", "is", "it"]);
        assert_eq!(lexical_terms("beagle name"), ["beagle", "name"]);
    }

    #[test]
    fn a_fact_found_both_ways_beats_one_found_one_way() {
        let fused = fuse(
            vec![near("a"), near("b")],
            vec![words("b", 2.0), words("c", 1.0)],
            QUESTION_FUSION,
            3,
        );
        let ids: Vec<&str> = fused.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids[0], "b");
        assert_eq!(fused[0].text, "text b");
        assert!(fused.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn a_zero_weight_leaves_the_other_ranking_as_it_is() {
        let dense_only = Fusion::Convex {
            lexical_weight: 0.0,
            recency_weight: 0.0,
        };
        let fused = fuse(
            vec![near("a"), near("b"), near("c")],
            vec![words("c", 3.0)],
            dense_only,
            3,
        );
        let ids: Vec<&str> = fused.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
