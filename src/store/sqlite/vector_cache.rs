//! Session vectors kept in memory between searches. Reading a session's vectors row by row
//! out of SQLite dominates retrieval, and the embedded store has one writer (this process),
//! so applying each committed write to the cached session keeps it exact without reading
//! the session again: an ingest costs the same at 10 facts and at 10,000.
//!
//! A load that raced a write must not put its stale result back: loads carry the session's
//! generation at their start, and every write to the session bumps it. Generations are per
//! session, so writes to one session never stop another's load from being kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::StoredVector;
use crate::store::sql::FactWrite;

/// One session's vectors, searched under the read lock and edited in place under the write
/// lock.
#[derive(Debug)]
pub struct SessionVectors {
    pub org_id: String,
    rows: RwLock<Rows>,
}

#[derive(Debug, Default)]
pub struct Rows {
    pub vectors: Vec<StoredVector>,
    position: HashMap<String, usize>,
}

impl Rows {
    fn upsert(&mut self, row: StoredVector) -> isize {
        let floats = row.embedding.len() as isize;
        match self.position.get(&row.fact_id) {
            Some(&i) => {
                let before = self.vectors[i].embedding.len() as isize;
                self.vectors[i] = row;
                floats - before
            }
            None => {
                self.position
                    .insert(row.fact_id.clone(), self.vectors.len());
                self.vectors.push(row);
                floats
            }
        }
    }

    fn remove(&mut self, fact_id: &str) -> isize {
        let Some(i) = self.position.remove(fact_id) else {
            return 0;
        };
        let removed = self.vectors.swap_remove(i);
        if let Some(moved) = self.vectors.get(i) {
            self.position.insert(moved.fact_id.clone(), i);
        }
        -(removed.embedding.len() as isize)
    }
}

impl SessionVectors {
    pub fn new(org_id: String, vectors: Vec<StoredVector>) -> Self {
        let position = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (v.fact_id.clone(), i))
            .collect();
        Self {
            org_id,
            rows: RwLock::new(Rows { vectors, position }),
        }
    }

    /// Runs `f` over the rows, under the read lock (no await inside).
    pub fn read<T>(&self, f: impl FnOnce(&[StoredVector]) -> T) -> T {
        match self.rows.read() {
            Ok(rows) => f(&rows.vectors),
            Err(poisoned) => f(&poisoned.into_inner().vectors),
        }
    }

    fn floats(&self) -> usize {
        self.read(|rows| rows.iter().map(|v| v.embedding.len()).sum::<usize>())
            .max(1)
    }
}

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<i64, Arc<SessionVectors>>,
    generations: HashMap<i64, u64>,
    /// Floats held over all sessions.
    held: usize,
}

#[derive(Debug)]
pub struct VectorCache {
    entries: Mutex<Entries>,
    /// Bound on the floats held, over all sessions.
    max_floats: usize,
}

impl VectorCache {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            max_floats: max_bytes / std::mem::size_of::<f32>(),
        }
    }

    pub fn get(&self, session_id: i64) -> Option<Arc<SessionVectors>> {
        self.entries.lock().ok()?.sessions.get(&session_id).cloned()
    }

    /// The generation to hand back to [`Self::insert`] after loading the session.
    pub fn generation(&self, session_id: i64) -> u64 {
        self.entries
            .lock()
            .map_or(0, |e| e.generations.get(&session_id).copied().unwrap_or(0))
    }

    pub fn insert(&self, session_id: i64, vectors: Arc<SessionVectors>, loaded_at: u64) {
        let size = vectors.floats();
        if size > self.max_floats {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.generations.get(&session_id).copied().unwrap_or(0) != loaded_at {
            return;
        }
        if let Some(replaced) = entries.sessions.remove(&session_id) {
            entries.held = entries.held.saturating_sub(replaced.floats());
        }
        while entries.held + size > self.max_floats {
            let Some(victim) = entries.sessions.keys().next().copied() else {
                break;
            };
            if let Some(evicted) = entries.sessions.remove(&victim) {
                entries.held = entries.held.saturating_sub(evicted.floats());
            }
        }
        entries.held += size;
        entries.sessions.insert(session_id, vectors);
    }

    /// A committed write: applied to the cached session, if there is one.
    pub fn apply(&self, session_id: i64, writes: &[FactWrite<'_>]) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        *entries.generations.entry(session_id).or_insert(0) += 1;
        let Some(cached) = entries.sessions.get(&session_id).cloned() else {
            return;
        };
        let org_id = cached.org_id.clone();
        let mut grown: isize = 0;
        {
            let Ok(mut rows) = cached.rows.write() else {
                entries.sessions.remove(&session_id);
                return;
            };
            for write in writes {
                grown += match write {
                    FactWrite::Stored {
                        fact_id,
                        text,
                        embedding,
                        updated_at,
                    } => rows.upsert(StoredVector::new(
                        org_id.clone(),
                        fact_id.clone(),
                        text.to_string(),
                        *updated_at,
                        embedding.to_vec(),
                    )),
                    FactWrite::Removed(fact_id) => rows.remove(fact_id),
                };
            }
        }
        entries.held = entries.held.saturating_add_signed(grown);
        if entries.held > self.max_floats {
            // Over the bound: this session is read again when next searched.
            entries.held = entries.held.saturating_sub(cached.floats());
            entries.sessions.remove(&session_id);
        }
    }

    /// A write whose effect on the rows is not known here (retention, deletion).
    pub fn invalidate(&self, session_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            *entries.generations.entry(session_id).or_insert(0) += 1;
            if let Some(dropped) = entries.sessions.remove(&session_id) {
                entries.held = entries.held.saturating_sub(dropped.floats());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, dims: usize) -> StoredVector {
        StoredVector::new(
            "acme".into(),
            id.into(),
            format!("fact {id}"),
            0,
            vec![0.5; dims],
        )
    }

    fn session(n: usize, dims: usize) -> Arc<SessionVectors> {
        Arc::new(SessionVectors::new(
            "acme".into(),
            (0..n).map(|i| row(&i.to_string(), dims)).collect(),
        ))
    }

    fn ids(cache: &VectorCache, session_id: i64) -> Vec<String> {
        let mut ids = cache
            .get(session_id)
            .unwrap()
            .read(|rows| rows.iter().map(|r| r.fact_id.clone()).collect::<Vec<_>>());
        ids.sort();
        ids
    }

    #[test]
    fn a_load_that_raced_a_write_is_not_cached() {
        let cache = VectorCache::new(1 << 20);
        let loaded_at = cache.generation(7);
        cache.invalidate(7);
        cache.insert(7, session(1, 4), loaded_at);
        assert!(cache.get(7).is_none());
        cache.insert(7, session(1, 4), cache.generation(7));
        assert!(cache.get(7).is_some());
        cache.invalidate(7);
        assert!(cache.get(7).is_none());
    }

    #[test]
    fn a_write_to_one_session_does_not_spoil_another_sessions_load() {
        let cache = VectorCache::new(1 << 20);
        let loaded_at = cache.generation(1);
        cache.apply(2, &[FactWrite::Removed("x".into())]);
        cache.invalidate(3);
        cache.insert(1, session(2, 4), loaded_at);
        assert!(cache.get(1).is_some());
    }

    #[test]
    fn writes_are_applied_to_the_cached_session() {
        let cache = VectorCache::new(1 << 20);
        cache.insert(1, session(3, 4), cache.generation(1));
        let embedding = vec![1.0; 4];
        cache.apply(
            1,
            &[
                FactWrite::Stored {
                    fact_id: "new".into(),
                    text: "a new fact",
                    embedding: &embedding,
                    updated_at: 5,
                },
                FactWrite::Stored {
                    fact_id: "1".into(),
                    text: "reworded",
                    embedding: &embedding,
                    updated_at: 6,
                },
                FactWrite::Removed("0".into()),
                FactWrite::Removed("never-stored".into()),
            ],
        );
        assert_eq!(ids(&cache, 1), ["1", "2", "new"]);
        let reworded = cache
            .get(1)
            .unwrap()
            .read(|rows| rows.iter().find(|r| r.fact_id == "1").cloned())
            .unwrap();
        assert_eq!(
            (reworded.text.as_str(), reworded.updated_at),
            ("reworded", 6)
        );
        // Every position still points at its own row after the swap-remove.
        cache.apply(1, &[FactWrite::Removed("new".into())]);
        cache.apply(1, &[FactWrite::Removed("2".into())]);
        assert_eq!(ids(&cache, 1), ["1"]);
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = VectorCache::new(100 * 4);
        for s in 0..10 {
            cache.insert(s, session(2, 20), cache.generation(s));
        }
        let held: usize = (0..10)
            .filter_map(|s| cache.get(s))
            .map(|v| v.floats())
            .sum();
        assert!(held <= 100, "{held}");
        cache.insert(99, session(10, 20), cache.generation(99));
        assert!(cache.get(99).is_none(), "larger than the whole cache");
        let grown: Vec<StoredVector> = (0..6).map(|i| row(&format!("g{i}"), 20)).collect();
        let s = (0..10).find(|s| cache.get(*s).is_some()).unwrap();
        let writes: Vec<FactWrite<'_>> = grown
            .iter()
            .map(|r| FactWrite::Stored {
                fact_id: r.fact_id.clone(),
                text: &r.text,
                embedding: &r.embedding,
                updated_at: 0,
            })
            .collect();
        cache.apply(s, &writes);
        let held: usize = (0..10)
            .filter_map(|s| cache.get(s))
            .map(|v| v.floats())
            .sum();
        assert!(
            held <= 100,
            "a session grown past the bound is dropped: {held}"
        );
    }
}
