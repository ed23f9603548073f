//! Sessions as the proxy looks them up, kept for a short, bounded time.
//!
//! Every request that names a `memory_id` needs its session (id, engine, config) before it can
//! go upstream; asking the store each time cost a query per request. A looked-up session is
//! kept here for at most `memory.session_cache_ttl_ms`:
//! - a PATCH or DELETE through this process's admin API drops its entry at once;
//! - one through another replica reaches this one when the entry expires, so a replica acts
//!   on a session's old config (or on a deleted session) for at most the TTL. A turn stored
//!   for a session deleted meanwhile is dropped when it reaches the store or the worker.
//!
//! Only sessions that exist are kept: a session created on another replica is usable here at
//! once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::Session;

/// Sessions kept at most; past it, expired entries go, then (a burst of distinct sessions
/// within one TTL) everything.
const CAPACITY: usize = 16_384;

pub struct SessionCache {
    ttl: Duration,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, Cached>,
    /// Bumped by every invalidation: a lookup that started before one does not keep what it
    /// read, which may predate the change.
    generation: u64,
}

struct Cached {
    session: Session,
    fetched: Instant,
}

/// What a lookup needs to hand its result back with [`SessionCache::keep`].
#[derive(Debug)]
pub struct Lookup {
    key: String,
    generation: u64,
}

impl SessionCache {
    /// A TTL of zero keeps nothing: every lookup goes to the store.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// The session when a fresh copy is kept, else what [`SessionCache::keep`] needs after
    /// the store has been asked.
    pub fn get(&self, org_id: &str, memory_id: &str) -> Result<Session, Lookup> {
        let key = key(org_id, memory_id);
        let Ok(entries) = self.inner.lock() else {
            return Err(Lookup { key, generation: 0 });
        };
        if let Some(cached) = entries.by_key.get(&key) {
            if cached.fetched.elapsed() < self.ttl {
                return Ok(cached.session.clone());
            }
        }
        let generation = entries.generation;
        Err(Lookup { key, generation })
    }

    /// Keeps a session read from the store, unless an invalidation happened since the lookup
    /// began.
    pub fn keep(&self, lookup: Lookup, session: &Session, fetched: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.inner.lock() else {
            return;
        };
        if entries.generation != lookup.generation {
            return;
        }
        if entries.by_key.len() >= CAPACITY {
            let ttl = self.ttl;
            entries.by_key.retain(|_, c| c.fetched.elapsed() < ttl);
            if entries.by_key.len() >= CAPACITY {
                entries.by_key.clear();
            }
        }
        entries.by_key.insert(
            lookup.key,
            Cached {
                session: session.clone(),
                fetched,
            },
        );
    }

    /// Forgets a session changed or deleted through this process.
    pub fn invalidate(&self, org_id: &str, memory_id: &str) {
        if let Ok(mut entries) = self.inner.lock() {
            entries.generation += 1;
            entries.by_key.remove(&key(org_id, memory_id));
        }
    }
}

/// Org ids and memory ids cannot hold a NUL, so the pair maps to one key without ambiguity.
fn key(org_id: &str, memory_id: &str) -> String {
    let mut key = String::with_capacity(org_id.len() + 1 + memory_id.len());
    key.push_str(org_id);
    key.push('\0');
    key.push_str(memory_id);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EngineKind, SessionConfig};

    fn session(id: i64, memory_id: &str) -> Session {
        Session {
            id,
            org_id: "acme".into(),
            memory_id: memory_id.into(),
            engine: EngineKind::Mem0,
            config: SessionConfig::default(),
            stored_facts: 0,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn look_up_and_keep(cache: &SessionCache, s: &Session) {
        let lookup = cache.get(&s.org_id, &s.memory_id).unwrap_err();
        cache.keep(lookup, s, Instant::now());
    }

    #[test]
    fn a_kept_session_is_served_until_its_ttl() {
        let cache = SessionCache::new(Duration::from_millis(50));
        let alice = session(1, "alice");
        look_up_and_keep(&cache, &alice);
        assert_eq!(cache.get("acme", "alice").unwrap().id, 1);
        // Another org's session of the same name is another key.
        assert!(cache.get("globex", "alice").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("acme", "alice").is_err());
    }

    #[test]
    fn invalidation_drops_the_entry_and_a_lookup_that_raced_it() {
        let cache = SessionCache::new(Duration::from_secs(60));
        let alice = session(1, "alice");
        look_up_and_keep(&cache, &alice);
        cache.invalidate("acme", "alice");
        assert!(cache.get("acme", "alice").is_err());

        // A lookup that read the store before a PATCH landed must not keep what it read.
        let lookup = cache.get("acme", "alice").unwrap_err();
        cache.invalidate("acme", "alice");
        cache.keep(lookup, &alice, Instant::now());
        assert!(cache.get("acme", "alice").is_err());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        look_up_and_keep(&cache, &session(1, "alice"));
        assert!(cache.get("acme", "alice").is_err());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = SessionCache::new(Duration::from_secs(60));
        for i in 0..CAPACITY as i64 + 10 {
            look_up_and_keep(&cache, &session(i, &format!("s{i}")));
        }
        let kept = cache.inner.lock().unwrap().by_key.len();
        assert!(kept <= CAPACITY, "{kept}");
        assert!(cache.get("acme", &format!("s{}", CAPACITY + 9)).is_ok());
    }
}
