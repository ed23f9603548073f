//! Session vectors kept in memory between searches. Reading a session's vectors row by row
//! out of SQLite dominates retrieval, and the embedded store has one writer (this process),
//! so invalidating on every write keeps the cache exact.
//!
//! A load that raced with a write must not put its stale result back: loads carry the
//! generation they started at, and every invalidation bumps it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::StoredVector;

pub type SessionVectors = Arc<Vec<StoredVector>>;

#[derive(Debug)]
pub struct VectorCache {
    entries: Mutex<HashMap<i64, SessionVectors>>,
    generation: AtomicU64,
    /// Bound on the floats held, over all sessions.
    max_floats: usize,
}

impl VectorCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            max_floats: max_bytes / std::mem::size_of::<f32>(),
        }
    }

    pub fn get(&self, session_id: i64) -> Option<SessionVectors> {
        self.entries.lock().ok()?.get(&session_id).cloned()
    }

    /// The generation to hand back to [`Self::insert`] after loading from the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn insert(&self, session_id: i64, vectors: SessionVectors, loaded_at: u64) {
        let size = floats(&vectors);
        if size > self.max_floats {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != loaded_at {
            return;
        }
        let mut held: usize = entries.values().map(|v| floats(v)).sum();
        while held + size > self.max_floats {
            let Some(victim) = entries.keys().next().copied() else {
                break;
            };
            if let Some(evicted) = entries.remove(&victim) {
                held -= floats(&evicted);
            }
        }
        entries.insert(session_id, vectors);
    }

    pub fn invalidate(&self, session_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(&session_id);
        }
    }
}

fn floats(vectors: &[StoredVector]) -> usize {
    vectors
        .iter()
        .map(|v| v.embedding.len())
        .sum::<usize>()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors(n: usize, dims: usize) -> SessionVectors {
        Arc::new(
            (0..n)
                .map(|i| StoredVector {
                    org_id: "acme".into(),
                    fact_id: i.to_string(),
                    text: String::new(),
                    updated_at: 0,
                    embedding: vec![0.0; dims],
                })
                .collect(),
        )
    }

    #[test]
    fn a_load_that_raced_a_write_is_not_cached() {
        let cache = VectorCache::new(1 << 20);
        let loaded_at = cache.generation();
        cache.invalidate(7);
        cache.insert(7, vectors(1, 4), loaded_at);
        assert!(cache.get(7).is_none());
        cache.insert(7, vectors(1, 4), cache.generation());
        assert!(cache.get(7).is_some());
        cache.invalidate(7);
        assert!(cache.get(7).is_none());
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = VectorCache::new(100 * 4);
        for session in 0..10 {
            cache.insert(session, vectors(2, 20), cache.generation());
        }
        let held: usize = (0..10)
            .filter_map(|s| cache.get(s))
            .map(|v| floats(&v))
            .sum();
        assert!(held <= 100, "{held}");
        cache.insert(99, vectors(10, 20), cache.generation());
        assert!(cache.get(99).is_none(), "larger than the whole cache");
    }
}
