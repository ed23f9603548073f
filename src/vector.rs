//! Exact vector search in Rust: cosine similarity, top-k, and reciprocal rank fusion.

use std::cmp::Ordering;
use std::collections::HashMap;

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// The dot product, in eight independent lanes: without them the sum is one serial chain
/// (floating-point addition may not be reordered), with them the compiler keeps it in
/// vector registers. A 10,000-fact session is scanned several times faster.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

pub fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

/// Indices and scores of the `k` candidates most similar to `query`, best first.
pub fn top_k<'a>(
    query: &[f32],
    candidates: impl IntoIterator<Item = &'a [f32]>,
    k: usize,
) -> Vec<(usize, f32)> {
    best_k(candidates.into_iter().map(|v| cosine(query, v)), k)
}

/// Indices of the `k` best scores, best first (ties by index).
pub fn best_k(scores: impl IntoIterator<Item = f32>, k: usize) -> Vec<(usize, f32)> {
    let mut scored: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    let by_score_desc = |a: &(usize, f32), b: &(usize, f32)| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    };
    if scored.len() > k {
        scored.select_nth_unstable_by(k, by_score_desc);
        scored.truncate(k);
    }
    scored.sort_by(by_score_desc);
    scored
}

/// Weighted reciprocal rank fusion (Cormack et al.): each ranked list adds
/// `weight / (k + rank)` to an item. Rank-based, so BM25 and cosine scores need no common
/// scale. Ties keep the order in which items were first seen.
pub fn reciprocal_rank_fusion<T: Clone + Eq + std::hash::Hash>(
    lists: &[(&[T], f32)],
    k: f32,
) -> Vec<(T, f32)> {
    let mut scores: HashMap<T, f32> = HashMap::new();
    let mut first_seen: Vec<T> = Vec::new();
    for (list, weight) in lists {
        for (rank, item) in list.iter().enumerate() {
            let entry = scores.entry(item.clone()).or_insert_with(|| {
                first_seen.push(item.clone());
                0.0
            });
            *entry += weight / (k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(T, f32)> = first_seen
        .into_iter()
        .map(|item| {
            let score = scores[&item];
            (item, score)
        })
        .collect();
    fused.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));
    fused
}

pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn decode(blob: &[u8]) -> Option<Vec<f32>> {
    if !blob.len().is_multiple_of(4) {
        return None;
    }
    Some(
        blob.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
        let diagonal = cosine(&[1.0, 1.0], &[3.0, 0.0]);
        assert!((diagonal - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_best_first_and_truncates() {
        let c: Vec<Vec<f32>> = vec![
            vec![0.0, 1.0],
            vec![1.0, 0.1],
            vec![1.0, 0.0],
            vec![-1.0, 0.0],
        ];
        let got = top_k(&[1.0, 0.0], c.iter().map(|v| v.as_slice()), 2);
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 1]);
        let all = top_k(&[1.0, 0.0], c.iter().map(|v| v.as_slice()), 10);
        assert_eq!(all.len(), 4);
        assert_eq!(all[3].0, 3);
    }

    #[test]
    fn dot_agrees_with_the_plain_sum_at_every_length() {
        for len in [0, 1, 7, 8, 9, 17, 384] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-4, "length {len}");
        }
        assert!((norm(&[3.0, 4.0]) - 5.0).abs() < 1e-6);
    }

    #[test]
    fn rrf_rewards_agreement() {
        let fused = reciprocal_rank_fusion(
            &[(&["a", "b", "c"][..], 1.0), (&["b", "c", "d"][..], 1.0)],
            60.0,
        );
        assert_eq!(fused[0].0, "b");
        assert_eq!(fused.len(), 4);
    }

    #[test]
    fn rrf_weights_scale_a_list() {
        let lists = |w: f32| [(&["a", "b"][..], 1.0), (&["b", "a"][..], w)];
        assert_eq!(reciprocal_rank_fusion(&lists(0.5), 60.0)[0].0, "a");
        assert_eq!(reciprocal_rank_fusion(&lists(2.0), 60.0)[0].0, "b");
    }

    #[test]
    fn blob_roundtrip() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(decode(&encode(&v)).unwrap(), v);
        assert!(decode(&[1, 2, 3]).is_none());
    }
}
