//! Keyword search on the embedded store: Okapi BM25 (k1 = 1.2, b = 0.75, idf floored just
//! above 0, as FTS5's `bm25()`), over the session's rows that the vector search reads anyway
//! and keeps in memory. Words are runs of letters and digits, lowercased and stemmed with
//! Snowball's English stemmer, the one Postgres's `english` configuration uses, so a query
//! matches the same words on both stores ("offices" finds "office").
//!
//! Why not FTS5, which did this before: its query cost about 140 µs of CPU on the SQLite
//! connection's thread per memory request, plus two thread hand-offs, on rows already in
//! memory (`scripts/loadtest.sh`, 50 facts; the per-thread CPU of the run). The statistics
//! (row count, document frequencies, average length) are the session's own.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use crate::domain::KeywordMatch;
use crate::vector;

use super::StoredVector;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A fact's words: each distinct stem with its count, sorted by hash for lookups, and how
/// many words it has.
#[derive(Debug, Clone, Default)]
pub struct RowTerms {
    counts: Vec<(u64, u32)>,
    len: u32,
}

impl RowTerms {
    pub fn of(text: &str) -> Self {
        let mut hashes: Vec<u64> = words(text).map(|w| term_hash(&w)).collect();
        let len = u32::try_from(hashes.len()).unwrap_or(u32::MAX);
        hashes.sort_unstable();
        let mut counts: Vec<(u64, u32)> = Vec::new();
        for h in hashes {
            match counts.last_mut() {
                Some((last, n)) if *last == h => *n += 1,
                _ => counts.push((h, 1)),
            }
        }
        Self { counts, len }
    }

    fn count(&self, term: u64) -> u32 {
        self.counts
            .binary_search_by_key(&term, |(h, _)| *h)
            .map_or(0, |i| self.counts[i].1)
    }
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(stem)
}

fn stem(word: &str) -> String {
    stemmer().stem(&word.to_lowercase()).into_owned()
}

/// FNV-1a: stems are compared by hash; a collision between a query's word and a fact's
/// would cost one wrong keyword match, at odds of about 2^-64 a pair.
fn term_hash(term: &str) -> u64 {
    term.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The `limit` rows written since `since` that contain any of `terms`, best BM25 first.
pub fn search(
    rows: &[StoredVector],
    terms: &[String],
    since: i64,
    limit: usize,
) -> Vec<KeywordMatch> {
    let mut query: Vec<u64> = terms.iter().map(|t| term_hash(&stem(t))).collect();
    query.sort_unstable();
    query.dedup();
    let live: Vec<&StoredVector> = rows.iter().filter(|r| r.updated_at >= since).collect();
    if query.is_empty() || live.is_empty() || limit == 0 {
        return Vec::new();
    }
    let total = live.len() as f64;
    let average_len = (live.iter().map(|r| f64::from(r.terms.len)).sum::<f64>() / total).max(1.0);
    let idf: Vec<f64> = query
        .iter()
        .map(|&t| {
            let containing = live.iter().filter(|r| r.terms.count(t) > 0).count() as f64;
            ((total - containing + 0.5) / (containing + 0.5))
                .ln()
                .max(1e-6)
        })
        .collect();
    let scores = live.iter().map(|row| {
        let norm = K1 * (1.0 - B + B * f64::from(row.terms.len) / average_len);
        query
            .iter()
            .zip(&idf)
            .map(|(&t, idf)| {
                let tf = f64::from(row.terms.count(t));
                idf * tf * (K1 + 1.0) / (tf + norm)
            })
            .sum::<f64>()
    });
    // A row with none of the words scores 0: it is no match.
    let matched: Vec<(usize, f64)> = scores.enumerate().filter(|(_, s)| *s > 0.0).collect();
    vector::best_k(matched.iter().map(|(_, s)| *s as f32), limit)
        .into_iter()
        .map(|(i, _)| {
            let (row, score) = matched[i];
            KeywordMatch {
                fact_id: live[row].fact_id.clone(),
                text: live[row].text.clone(),
                updated_at: live[row].updated_at,
                score,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, text: &str, updated_at: i64) -> StoredVector {
        StoredVector::new("acme".into(), id.into(), text.into(), updated_at, vec![1.0])
    }

    fn ids(found: &[KeywordMatch]) -> Vec<&str> {
        found.iter().map(|m| m.fact_id.as_str()).collect()
    }

    #[test]
    fn words_are_stemmed_and_counted() {
        let terms = RowTerms::of("Teal, TEAL and teal-green: my 2 offices.");
        assert_eq!(terms.len, 8);
        assert_eq!(terms.count(term_hash("teal")), 3);
        assert_eq!(terms.count(term_hash(&stem("office"))), 1);
        assert_eq!(terms.count(term_hash("blue")), 0);
    }

    #[test]
    fn rarer_and_denser_matches_rank_first() {
        let rows = vec![
            row("long", "I like teal and I like the sea and the hills", 1),
            row("dense", "teal teal teal", 1),
            row("sea", "the sea is calm", 1),
            row("none", "nothing here", 1),
        ];
        let found = search(&rows, &["teal".into(), "sea".into()], 0, 10);
        // A row with neither word is no match at all.
        assert_eq!(found.len(), 3, "{:?}", ids(&found));
        assert!(!ids(&found).contains(&"none"));
        assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
        // Three times in a short row beats once in a long one.
        assert_eq!(ids(&found)[0], "dense");
        assert_eq!(search(&rows, &["seas".into()], 0, 10).len(), 2);
        assert_eq!(search(&rows, &["teal".into()], 0, 1).len(), 1);
    }

    #[test]
    fn old_rows_and_empty_queries_find_nothing() {
        let rows = vec![row("a", "teal", 5)];
        assert!(search(&rows, &["teal".into()], 6, 10).is_empty());
        assert!(search(&rows, &[], 0, 10).is_empty());
        assert_eq!(search(&rows, &["TEAL".into()], 5, 10).len(), 1);
    }
}
