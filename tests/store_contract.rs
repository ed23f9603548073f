//! The store's contract, once for both relational backends: every operation of
//! [`memgate::store::Store`] (and its graph items) run on the embedded SQLite store and on
//! Postgres + pgvector, through the public API only. Each test body is written once;
//! `both_stores!(name)` makes `name::sqlite` and `name::postgres` of it, so a backend that
//! drifts from what the doc comments on `Store` promise fails by name.
//!
//! A test that shows such a drift stays written for the documented behaviour, with
//! `#[ignore = "backend drift: …"]` on the failing backend only.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use memgate::config::StorageConfig;
use memgate::domain::erasure::ForgetSelection;
use memgate::domain::graph::{graph_item_id, GraphItem, GraphKind, GraphPurgeCounts, NewGraphItem};
use memgate::domain::outbox::{FactChanges, OutboxCounts, TurnOutcome, TurnPayload, TurnState};
use memgate::domain::time as timestamp;
use memgate::domain::transfer::{ExportedHistory, SessionImport};
use memgate::domain::usage::{Provider, Purpose, UsageEvent};
use memgate::domain::{
    now_ms, EngineKind, FactChange, Session, SessionConfig, SessionStats, TurnMessage,
};
use memgate::error::StoreError;
use memgate::store::{
    ErasureStore, FactStore, GraphItemStore, OutboxStore, SessionStore, Store, TransferStore,
    UsageStore,
};

const MODEL: &str = "contract-embedding-model";
const DIMS: usize = 3;
/// Long enough that a claim never runs out within a test.
const LONG_LEASE: Duration = Duration::from_secs(60);
/// Short enough to wait out, long enough that the next claim comes before it runs out.
const SHORT_LEASE: Duration = Duration::from_millis(1000);
/// How far ahead a retry is scheduled, for the same reasons.
const RETRY_IN_MS: i64 = 1000;

// ---- the harness ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A migrated store on a fresh database, with what keeps that database alive.
struct Backend {
    store: Store,
    kind: Kind,
    url: String,
    _db: Option<Arc<common::TestDatabase>>,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for Backend {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/m.db", dir.path().display());
        Self::open(Kind::Sqlite, url, None, Some(dir)).await
    }

    async fn postgres() -> Self {
        let db = common::TestDatabase::create().await;
        let url = db.url.clone();
        Self::open(Kind::Postgres, url, Some(db), None).await
    }

    async fn open(
        kind: Kind,
        url: String,
        db: Option<Arc<common::TestDatabase>>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        let config = StorageConfig {
            url: url.parse().expect("a storage URL"),
            max_connections: 4,
            ..Default::default()
        };
        let store = Store::connect(&config, DIMS).await.expect("connect");
        store.migrate().await.expect("migrate");
        // Postgres fixes the facts' vector column to DIMS here.
        store
            .check_embeddings(MODEL, DIMS)
            .await
            .expect("check_embeddings");
        Self {
            store,
            kind,
            url,
            _db: db,
            _dir: dir,
        }
    }

    /// Integers a read-only query returns, on a connection of its own. For the few
    /// assertions the API cannot make; `sql` must read the same in both dialects (`$1` is
    /// the one placeholder they share).
    async fn raw_i64s(&self, sql: &str, arg: Option<i64>) -> Vec<i64> {
        match self.kind {
            Kind::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
                let mut query = sqlx::query_scalar::<_, i64>(sql);
                if let Some(arg) = arg {
                    query = query.bind(arg);
                }
                let out = query.fetch_all(&pool).await.unwrap();
                pool.close().await;
                out
            }
            Kind::Postgres => {
                let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
                let mut query = sqlx::query_scalar::<_, i64>(sql);
                if let Some(arg) = arg {
                    query = query.bind(arg);
                }
                let out = query.fetch_all(&pool).await.unwrap();
                pool.close().await;
                out
            }
        }
    }

    /// Rows keyword search reads for a session: on both stores the facts themselves
    /// (Postgres's generated `terms` column; SQLite's words are taken from the text).
    async fn keyword_index_rows(&self, session_id: i64) -> i64 {
        self.raw_i64s(
            "SELECT COUNT(*) FROM facts WHERE session_id = $1",
            Some(session_id),
        )
        .await[0]
    }

    async fn session(&self, org: &str, memory_id: &str) -> Session {
        self.create_session(org, memory_id, EngineKind::Mem0, &SessionConfig::default())
            .await
            .unwrap()
    }

    async fn graph_session(&self, org: &str, memory_id: &str) -> Session {
        self.create_session(
            org,
            memory_id,
            EngineKind::Cognee,
            &SessionConfig::default(),
        )
        .await
        .unwrap()
    }

    async fn add_facts(&self, session: &Session, texts: &[(&str, [f32; DIMS])]) -> Vec<String> {
        let changes: Vec<FactChange> = texts.iter().map(|(t, e)| add(t, *e)).collect();
        self.apply_fact_changes(session, &changes, "ingest", false)
            .await
            .unwrap()
    }

    async fn fact_texts(&self, session: &Session) -> Vec<String> {
        let (facts, _) = self.list_facts(session, None, 100, 0).await.unwrap();
        facts.into_iter().map(|f| f.text).collect()
    }

    /// Enqueues a turn and returns its outbox id (read back from the org's pending list).
    async fn enqueue(&self, key: &str, session: &Session) -> i64 {
        self.enqueue_turn(
            key,
            &session.org_id,
            session.id,
            &payload(&session.memory_id),
        )
        .await
        .unwrap();
        let (pending, _) = self
            .list_outbox(&session.org_id, "pending", 1000, 0)
            .await
            .unwrap();
        pending.last().expect("the turn just enqueued").id
    }

    /// A turn of `session` failed for good.
    async fn dead_turn(&self, key: &str, session: &Session) -> i64 {
        let id = self.enqueue(key, session).await;
        let claimed = self.claim_outbox(100, LONG_LEASE).await.unwrap();
        assert!(claimed.iter().any(|r| r.id == id), "{claimed:?}");
        self.fail_outbox(id, "boom", None).await.unwrap();
        for other in claimed.iter().filter(|r| r.id != id) {
            // Others claimed along the way go back to the queue at once.
            self.fail_outbox(other.id, "released", Some(0))
                .await
                .unwrap();
        }
        id
    }

    async fn graph_kind_ids(&self, session: &Session, kind: GraphKind) -> BTreeSet<String> {
        let (items, total) = self.list_graph_items(session, kind, 1000, 0).await.unwrap();
        assert_eq!(items.len() as i64, total);
        items.into_iter().map(|i| i.id).collect()
    }
}

/// `both_stores!(name)` runs `async fn name(b: Backend)` as `name::sqlite` and
/// `name::postgres`; `sqlite = #[attr]` / `postgres = #[attr]` put an attribute (such as
/// `#[ignore = "backend drift: …"]`) on one of them only.
macro_rules! both_stores {
    ($name:ident $(, sqlite = #[$sqlite:meta])? $(, postgres = #[$postgres:meta])? $(,)?) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$sqlite])?
            async fn sqlite() {
                super::$name(super::Backend::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$postgres])?
            async fn postgres() {
                super::$name(super::Backend::postgres().await).await;
            }
        }
    };
}

// ---- helpers ----

fn add(text: &str, embedding: [f32; DIMS]) -> FactChange {
    FactChange::Add {
        text: text.into(),
        embedding: embedding.to_vec(),
    }
}

fn update(fact_id: &str, text: &str, embedding: [f32; DIMS]) -> FactChange {
    FactChange::Update {
        fact_id: fact_id.into(),
        text: text.into(),
        embedding: embedding.to_vec(),
    }
}

fn delete(fact_id: &str) -> FactChange {
    FactChange::Delete {
        fact_id: fact_id.into(),
    }
}

const E1: [f32; DIMS] = [1.0, 0.0, 0.0];
const E2: [f32; DIMS] = [0.0, 1.0, 0.0];
const E3: [f32; DIMS] = [0.0, 0.0, 1.0];

fn payload(memory_id: &str) -> TurnPayload {
    TurnPayload {
        memory_id: memory_id.into(),
        messages: vec![],
        request_id: None,
        traceparent: None,
        redacted: false,
    }
}

fn usage(org: &str, memory_id: &str, purpose: Purpose, model: &str, p: i64, c: i64) -> UsageEvent {
    UsageEvent {
        org: org.into(),
        memory_id: memory_id.into(),
        purpose,
        provider: Provider::Gateway,
        model: model.into(),
        prompt_tokens: p,
        completion_tokens: c,
    }
}

/// Keyword matches as (id, text), best first.
fn found(matches: Vec<memgate::domain::KeywordMatch>) -> Vec<(String, String)> {
    matches.into_iter().map(|m| (m.fact_id, m.text)).collect()
}

fn assert_close(actual: f32, expected: f32) {
    assert!(
        (actual - expected).abs() < 1e-4,
        "similarity {actual}, expected {expected}"
    );
}

/// The same session seen from another org: what it finds must be nothing.
fn as_org(session: &Session, org: &str) -> Session {
    let mut foreign = session.clone();
    foreign.org_id = org.into();
    foreign
}

/// Facts, pending turns and dead turns, as [`counts_of`] reads them off a [`SessionStats`].
fn stats(fact_count: i64, pending_turns: i64, dead_turns: i64) -> (i64, i64, i64) {
    (fact_count, pending_turns, dead_turns)
}

fn counts_of(stats: SessionStats) -> (i64, i64, i64) {
    (stats.fact_count, stats.pending_turns, stats.dead_turns)
}

/// Until the store's clock has passed `at_ms`.
async fn sleep_until(at_ms: i64) {
    let wait = (at_ms - now_ms()).max(0) as u64 + 20;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

async fn pause() {
    // Timestamps are milliseconds: a few of them apart makes "written later" unambiguous.
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// A session's knowledge graph: a chunk and a summary, three entities, and two edges,
/// `alice -works_at-> acme` and `bob -knows-> alice`.
struct Graph {
    chunk: NewGraphItem,
    summary: NewGraphItem,
    alice: NewGraphItem,
    acme: NewGraphItem,
    bob: NewGraphItem,
    works_at: NewGraphItem,
    knows: NewGraphItem,
}

impl Graph {
    fn of(session: &Session) -> Self {
        let scope = session.graph_scope();
        Graph {
            chunk: plain(
                &scope,
                GraphKind::Chunk,
                "chunk-0",
                "Alice works at Acme. Bob knows Alice.",
                [1.0, 0.0, 0.0],
            ),
            summary: plain(
                &scope,
                GraphKind::Summary,
                "summary-0",
                "Alice is at Acme; Bob knows her.",
                [0.8, 0.6, 0.0],
            ),
            alice: entity(&scope, "person:alice", "Alice", "person", [0.0, 1.0, 0.0]),
            acme: entity(&scope, "org:acme", "Acme", "organization", [0.0, 0.0, 1.0]),
            bob: entity(&scope, "person:bob", "Bob", "person", [0.0, 0.8, 0.6]),
            works_at: edge(
                &scope,
                "person:alice",
                "works_at",
                "org:acme",
                [0.8, 0.6, 0.0],
            ),
            knows: edge(
                &scope,
                "person:bob",
                "knows",
                "person:alice",
                [0.0, 0.28, 0.96],
            ),
        }
    }

    fn items(&self) -> Vec<NewGraphItem> {
        vec![
            self.chunk.clone(),
            self.summary.clone(),
            self.alice.clone(),
            self.acme.clone(),
            self.bob.clone(),
            self.works_at.clone(),
            self.knows.clone(),
        ]
    }
}

fn plain(
    scope: &str,
    kind: GraphKind,
    natural: &str,
    text: &str,
    embedding: [f32; DIMS],
) -> NewGraphItem {
    NewGraphItem {
        id: graph_item_id(scope, kind, natural),
        kind,
        text: text.into(),
        entity_key: None,
        entity_type: None,
        source_key: None,
        relation: None,
        target_key: None,
        sentence: None,
        embedding: embedding.to_vec(),
    }
}

fn entity(scope: &str, key: &str, name: &str, ty: &str, embedding: [f32; DIMS]) -> NewGraphItem {
    NewGraphItem {
        entity_key: Some(key.into()),
        entity_type: Some(ty.into()),
        ..plain(scope, GraphKind::Entity, key, name, embedding)
    }
}

fn edge(
    scope: &str,
    source: &str,
    relation: &str,
    target: &str,
    embedding: [f32; DIMS],
) -> NewGraphItem {
    let natural = format!("{source}|{relation}|{target}");
    NewGraphItem {
        source_key: Some(source.into()),
        relation: Some(relation.into()),
        target_key: Some(target.into()),
        sentence: Some(format!("{source} {relation} {target}.")),
        ..plain(
            scope,
            GraphKind::Edge,
            &natural,
            &format!("{source} {relation} {target}"),
            embedding,
        )
    }
}

fn ids(items: &[GraphItem]) -> BTreeSet<String> {
    items.iter().map(|i| i.id.clone()).collect()
}

fn set<const N: usize>(ids: [&str; N]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn write_graph(b: &Backend, session: &Session) -> Graph {
    let graph = Graph::of(session);
    let fresh = b
        .write_graph_items(session, &graph.items(), false)
        .await
        .unwrap();
    assert_eq!(fresh, vec![true; 7]);
    graph
}

// ---- the store itself ----

both_stores!(ping_and_backend_names);
async fn ping_and_backend_names(b: Backend) {
    b.ping().await.unwrap();
    match b.kind {
        Kind::Sqlite => {
            assert_eq!(b.backend(), "sqlite");
            assert_eq!(b.backends(), ["sqlite"]);
        }
        Kind::Postgres => {
            assert_eq!(b.backend(), "postgres");
            assert_eq!(b.backends(), ["postgres", "pgvector"]);
        }
    }
    b.close().await;
    assert!(b.ping().await.is_err(), "a closed store still answers");
}

both_stores!(embeddings_of_another_model_or_dimension_are_refused);
async fn embeddings_of_another_model_or_dimension_are_refused(b: Backend) {
    // The harness recorded MODEL at DIMS: the same again is fine, any change is refused.
    b.check_embeddings(MODEL, DIMS).await.unwrap();
    let other_model = b.check_embeddings("another-model", DIMS).await;
    assert!(
        matches!(other_model, Err(StoreError::EmbeddingsChanged(_))),
        "{other_model:?}"
    );
    let other_dims = b.check_embeddings(MODEL, DIMS + 1).await;
    assert!(
        matches!(other_dims, Err(StoreError::EmbeddingsChanged(_))),
        "{other_dims:?}"
    );
    // A refusal changes nothing: the recorded model still passes, and vectors of its
    // dimension are stored and found.
    b.check_embeddings(MODEL, DIMS).await.unwrap();
    let s = b.session("acme", "dims").await;
    let ids = b.add_facts(&s, &[("three dimensions", E1)]).await;
    let found = b.nearest(&s, &E1, 1, None).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].fact_id, ids[0]);
}

both_stores!(migrate_again_keeps_the_data);
async fn migrate_again_keeps_the_data(b: Backend) {
    let s = b.session("acme", "kept").await;
    b.add_facts(&s, &[("survives a second migrate", E1)]).await;
    b.migrate().await.unwrap();
    b.check_embeddings(MODEL, DIMS).await.unwrap();
    let again = b.find_session("acme", "kept").await.unwrap().unwrap();
    assert_eq!(again.id, s.id);
    assert_eq!(b.fact_texts(&again).await, ["survives a second migrate"]);
}

// ---- sessions ----

both_stores!(sessions_are_unique_per_org);
async fn sessions_are_unique_per_org(b: Backend) {
    let before = now_ms();
    let a = b.session("acme", "alice").await;
    let after = now_ms();
    assert_eq!(
        (a.org_id.as_str(), a.memory_id.as_str(), a.engine),
        ("acme", "alice", EngineKind::Mem0)
    );
    assert_eq!(a.config, SessionConfig::default());
    assert_eq!(a.created_at, a.updated_at);
    assert!((before..=after).contains(&a.created_at), "{}", a.created_at);

    // The same name in the same org, whatever the engine or config, is a conflict.
    let again = b
        .create_session(
            "acme",
            "alice",
            EngineKind::Cognee,
            &SessionConfig::default(),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    // The same name in another org is another session.
    let config = SessionConfig {
        top_k: Some(3),
        ..Default::default()
    };
    let g = b
        .create_session("globex", "alice", EngineKind::Cognee, &config)
        .await
        .unwrap();
    assert_ne!(a.id, g.id);

    assert!(b.find_session("initech", "alice").await.unwrap().is_none());
    assert!(b.find_session("acme", "bob").await.unwrap().is_none());
    let found = b.find_session("globex", "alice").await.unwrap().unwrap();
    assert_eq!(found.id, g.id);
    assert_eq!(found.engine, EngineKind::Cognee);
    assert_eq!(found.config, config);
    assert_eq!(found.created_at, g.created_at);
    let found = b.find_session("acme", "alice").await.unwrap().unwrap();
    assert_eq!((found.id, found.engine), (a.id, EngineKind::Mem0));
    assert_eq!(found.config, SessionConfig::default());
}

both_stores!(find_or_create_is_race_free);
async fn find_or_create_is_race_free(b: Backend) {
    for round in 0..8 {
        let name = format!("race-{round}");
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let racer = |store: Store, start: Arc<tokio::sync::Barrier>, name: String| async move {
            start.wait().await;
            store
                .find_or_create_session("acme", &name, EngineKind::Mem0)
                .await
                .unwrap()
        };
        let (x, y) = tokio::join!(
            tokio::spawn(racer(b.store.clone(), start.clone(), name.clone())),
            tokio::spawn(racer(b.store.clone(), start, name.clone()))
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.id, y.id, "round {round}: two sessions for one name");
        assert_eq!(
            b.find_session("acme", &name).await.unwrap().unwrap().id,
            x.id
        );
    }
    let (_, total) = b.list_sessions("acme", 100, 0).await.unwrap();
    assert_eq!(total, 8);

    // An existing session is found as it is, whatever engine is asked for.
    let first = b.find_session("acme", "race-0").await.unwrap().unwrap();
    let found = b
        .find_or_create_session("acme", "race-0", EngineKind::Cognee)
        .await
        .unwrap();
    assert_eq!((found.id, found.engine), (first.id, EngineKind::Mem0));
    // Another org gets its own, with the engine asked for and the default config.
    let other = b
        .find_or_create_session("globex", "race-0", EngineKind::Cognee)
        .await
        .unwrap();
    assert_ne!(other.id, first.id);
    assert_eq!(other.engine, EngineKind::Cognee);
    assert_eq!(other.config, SessionConfig::default());
    assert_eq!(b.list_sessions("acme", 100, 0).await.unwrap().1, 8);
}

both_stores!(sessions_list_per_org_with_counts);
async fn sessions_list_per_org_with_counts(b: Backend) {
    let a = b.session("acme", "a").await;
    let bb = b.session("acme", "b").await;
    let c = b.session("globex", "c").await;
    b.add_facts(&a, &[("x", E1), ("y", E2)]).await;
    b.add_facts(&c, &[("z", E3)]).await;
    b.dead_turn("b-dead", &bb).await;
    b.enqueue("b-pending", &bb).await;

    let (page, total) = b.list_sessions("acme", 1, 0).await.unwrap();
    assert_eq!((total, page.len()), (2, 1));
    assert_eq!(page[0].0.memory_id, "a");
    assert_eq!(page[0].0.id, a.id);
    assert_eq!(counts_of(page[0].1), stats(2, 0, 0));

    let (page, total) = b.list_sessions("acme", 10, 1).await.unwrap();
    assert_eq!((total, page.len()), (2, 1));
    assert_eq!(page[0].0.memory_id, "b");
    assert_eq!(counts_of(page[0].1), stats(0, 1, 1));

    // Oldest first, all of the org's and nothing else's.
    let (page, _) = b.list_sessions("acme", 10, 0).await.unwrap();
    let names: Vec<&str> = page.iter().map(|(s, _)| s.memory_id.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(page.iter().all(|(s, _)| s.org_id == "acme"));

    let (page, total) = b.list_sessions("acme", 10, 5).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 2);

    let (page, total) = b.list_sessions("globex", 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(page[0].0.id, c.id);
    assert_eq!(counts_of(page[0].1), stats(1, 0, 0));

    let (page, total) = b.list_sessions("initech", 10, 0).await.unwrap();
    assert!(page.is_empty());
    assert_eq!(total, 0);
}

both_stores!(session_list_counts_edges_as_facts_like_session_stats);
async fn session_list_counts_edges_as_facts_like_session_stats(b: Backend) {
    // A cognee session's "facts" are its edges: `list_sessions` and `session_stats` (and
    // `delete_session`) must count the same.
    let g = b.graph_session("acme", "graph").await;
    let m = b.session("acme", "facts").await;
    write_graph(&b, &g).await;
    b.add_facts(&m, &[("one fact", E1)]).await;
    assert_eq!(
        counts_of(b.session_stats(&g).await.unwrap()),
        stats(2, 0, 0)
    );
    assert_eq!(
        counts_of(b.session_stats(&m).await.unwrap()),
        stats(1, 0, 0)
    );

    let (page, total) = b.list_sessions("acme", 10, 0).await.unwrap();
    assert_eq!(total, 2);
    let listed: Vec<(&str, (i64, i64, i64))> = page
        .iter()
        .map(|(s, st)| (s.memory_id.as_str(), counts_of(*st)))
        .collect();
    assert_eq!(
        listed,
        [("graph", stats(2, 0, 0)), ("facts", stats(1, 0, 0))]
    );
}

both_stores!(session_stats_count_facts_and_turns_of_the_session);
async fn session_stats_count_facts_and_turns_of_the_session(b: Backend) {
    let s = b.session("acme", "stats").await;
    let noise = b.session("acme", "noise").await;
    assert_eq!(b.session_stats(&s).await.unwrap(), SessionStats::default());

    let ids = b
        .add_facts(&s, &[("one", E1), ("two", E2), ("three", E3)])
        .await;
    b.apply_fact_changes(&s, &[delete(&ids[0])], "api", false)
        .await
        .unwrap();
    b.add_facts(&noise, &[("not counted", E1)]).await;

    b.dead_turn("dead", &s).await;
    let done = b.enqueue("done", &s).await;
    b.claim_outbox(100, LONG_LEASE).await.unwrap();
    b.complete_outbox(done).await.unwrap();
    b.enqueue("pending-1", &s).await;
    b.enqueue("pending-2", &s).await;
    b.enqueue("noise-turn", &noise).await;

    assert_eq!(
        counts_of(b.session_stats(&s).await.unwrap()),
        stats(2, 2, 1)
    );
    assert_eq!(
        counts_of(b.session_stats(&noise).await.unwrap()),
        stats(1, 1, 0)
    );
    // Org-scoped: the same session id seen from another org holds nothing.
    assert_eq!(
        b.session_stats(&as_org(&s, "globex")).await.unwrap(),
        SessionStats::default()
    );
}

both_stores!(last_written_at_follows_turns_facts_and_edges_of_the_session);
async fn last_written_at_follows_turns_facts_and_edges_of_the_session(b: Backend) {
    let s = b.session("acme", "active").await;
    let g = b.graph_session("acme", "graph").await;
    let noise = b.session("acme", "noise").await;
    let last = |stats: SessionStats| stats.last_written_at;
    assert_eq!(last(b.session_stats(&s).await.unwrap()), None);

    let before_turn = now_ms();
    pause().await;
    b.enqueue("turn", &s).await;
    let after_turn = last(b.session_stats(&s).await.unwrap()).expect("a turn arrived");
    assert!(after_turn >= before_turn);

    pause().await;
    b.add_facts(&s, &[("remembered", E1)]).await;
    let after_fact = last(b.session_stats(&s).await.unwrap()).unwrap();
    assert!(after_fact > after_turn, "{after_fact} after {after_turn}");

    // Another session's writes, and another org's view, are not this session's activity.
    pause().await;
    b.add_facts(&noise, &[("elsewhere", E2)]).await;
    assert_eq!(last(b.session_stats(&s).await.unwrap()), Some(after_fact));
    assert_eq!(
        last(b.session_stats(&as_org(&s, "globex")).await.unwrap()),
        None
    );

    assert_eq!(last(b.session_stats(&g).await.unwrap()), None);
    write_graph(&b, &g).await;
    let (page, _) = b.list_sessions("acme", 10, 0).await.unwrap();
    let listed: Vec<(&str, bool)> = page
        .iter()
        .map(|(s, st)| (s.memory_id.as_str(), st.last_written_at.is_some()))
        .collect();
    assert_eq!(listed, [("active", true), ("graph", true), ("noise", true)]);
}

both_stores!(update_session_config_is_org_scoped);
async fn update_session_config_is_org_scoped(b: Backend) {
    let s = b.session("acme", "cfg").await;
    let theirs = b.session("globex", "cfg").await;
    pause().await;
    let config = SessionConfig {
        top_k: Some(3),
        retrieval: false,
        store_memory: false,
        fact_ttl_seconds: Some(60),
        max_facts: Some(10),
        placement: Some(memgate::domain::Placement::BeforeLastUser),
        redaction: Some(memgate::domain::redaction::SessionRedaction {
            email: Some(true),
            secret: Some(false),
            custom: vec![memgate::domain::redaction::CustomRedaction {
                label: "ticket".into(),
                pattern: r"TCK-\d{6}".into(),
            }],
            ..Default::default()
        }),
    };
    let updated = b
        .update_session_config("acme", "cfg", &config)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.id, s.id);
    assert_eq!(updated.config, config);
    assert_eq!(updated.engine, EngineKind::Mem0);
    assert_eq!(updated.created_at, s.created_at);
    assert!(updated.updated_at > s.updated_at);
    let found = b.find_session("acme", "cfg").await.unwrap().unwrap();
    assert_eq!(found.config, config);
    assert_eq!(found.updated_at, updated.updated_at);

    // Another org's session of the same name is untouched, and no org reaches another's.
    let untouched = b.find_session("globex", "cfg").await.unwrap().unwrap();
    assert_eq!(untouched.config, SessionConfig::default());
    assert_eq!(untouched.updated_at, theirs.updated_at);
    let none = b
        .update_session_config("initech", "cfg", &SessionConfig::default())
        .await
        .unwrap();
    assert!(none.is_none());
    let none = b
        .update_session_config("acme", "unknown", &SessionConfig::default())
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(
        b.find_session("acme", "cfg").await.unwrap().unwrap().config,
        config
    );
}

both_stores!(sessions_with_ttl_are_every_orgs_sessions_with_a_ttl);
async fn sessions_with_ttl_are_every_orgs_sessions_with_a_ttl(b: Backend) {
    let ttl = |seconds| SessionConfig {
        fact_ttl_seconds: Some(seconds),
        ..Default::default()
    };
    assert!(b.sessions_with_ttl().await.unwrap().is_empty());
    b.create_session("acme", "short", EngineKind::Mem0, &ttl(60))
        .await
        .unwrap();
    b.session("acme", "forever").await;
    b.create_session("globex", "long", EngineKind::Cognee, &ttl(3600))
        .await
        .unwrap();
    b.session("acme", "later").await;
    b.update_session_config("acme", "later", &ttl(5))
        .await
        .unwrap()
        .unwrap();
    // A cap alone is no TTL.
    b.create_session(
        "acme",
        "capped",
        EngineKind::Mem0,
        &SessionConfig {
            max_facts: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let listed = |sessions: Vec<Session>| -> BTreeSet<(String, String, Option<u64>)> {
        sessions
            .into_iter()
            .map(|s| (s.org_id, s.memory_id, s.config.fact_ttl_seconds))
            .collect()
    };
    let expected: BTreeSet<_> = [
        ("acme", "later", Some(5)),
        ("acme", "short", Some(60)),
        ("globex", "long", Some(3600)),
    ]
    .into_iter()
    .map(|(o, m, t)| (o.to_string(), m.to_string(), t))
    .collect();
    assert_eq!(listed(b.sessions_with_ttl().await.unwrap()), expected);

    // Dropping the TTL takes a session off the list; deleting one does too.
    b.update_session_config("acme", "later", &SessionConfig::default())
        .await
        .unwrap()
        .unwrap();
    b.delete_session("globex", "long", false).await.unwrap();
    let expected: BTreeSet<_> = [("acme".to_string(), "short".to_string(), Some(60))].into();
    assert_eq!(listed(b.sessions_with_ttl().await.unwrap()), expected);
}

both_stores!(postgres_counts_a_sessions_facts_through_every_kind_of_write);
async fn postgres_counts_a_sessions_facts_through_every_kind_of_write(b: Backend) {
    let capped = b
        .create_session(
            "acme",
            "counted",
            EngineKind::Mem0,
            &SessionConfig {
                max_facts: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stored = || async {
        b.find_session("acme", "counted")
            .await
            .unwrap()
            .unwrap()
            .stored_facts
    };
    // SQLite keeps no count (it searches every session exactly); Postgres keeps the true one.
    let want = |n: i64| if b.kind == Kind::Postgres { n } else { 0 };
    let ids = b
        .add_facts(&capped, &[("Alpha one", E1), ("Bravo two", E2)])
        .await;
    assert_eq!(stored().await, want(2));
    b.apply_fact_changes(
        &capped,
        &[
            update(&ids[0], "Alpha again", E3),
            delete(&ids[1]),
            delete("no-such-fact"),
        ],
        "ingest",
        false,
    )
    .await
    .unwrap();
    assert_eq!(stored().await, want(1));
    b.add_facts(
        &capped,
        &[
            ("Charlie", E1),
            ("Delta", E2),
            ("Echo", E3),
            ("Foxtrot", E1),
        ],
    )
    .await;
    assert_eq!(stored().await, want(3), "the cap trimmed two");
    let (listed, total) = b.list_facts(&capped, None, 10, 0).await.unwrap();
    assert_eq!((listed.len(), total), (3, 3));
}

both_stores!(deleted_session_takes_everything_and_refuses_late_writes);
async fn deleted_session_takes_everything_and_refuses_late_writes(b: Backend) {
    // `gone` is the newest session, so on SQLite a new one may take its id.
    let keep = b.session("acme", "keep").await;
    let gone = b.session("acme", "gone").await;
    let ids = b.add_facts(&gone, &[("Team is in Singapore", E1)]).await;
    b.apply_fact_changes(
        &gone,
        &[update(&ids[0], "Team is in Tokyo", E2)],
        "ingest",
        false,
    )
    .await
    .unwrap();
    b.dead_turn("gone-dead", &gone).await;
    b.enqueue("gone-pending", &gone).await;
    b.add_facts(&keep, &[("Team is in Tokyo too", E2)]).await;
    b.enqueue("keep-pending", &keep).await;

    assert_eq!(
        b.delete_session("globex", "gone", false).await.unwrap(),
        None
    );
    assert_eq!(
        b.delete_session("acme", "unknown", false).await.unwrap(),
        None
    );
    assert_eq!(
        b.delete_session("acme", "gone", false).await.unwrap(),
        Some(1)
    );
    assert_eq!(b.delete_session("acme", "gone", false).await.unwrap(), None);
    assert!(b.find_session("acme", "gone").await.unwrap().is_none());

    // Facts, history and turns went with it; the other session kept its own.
    assert_eq!(b.list_facts(&gone, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.fact_history(&gone, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(
        b.session_stats(&gone).await.unwrap(),
        SessionStats::default()
    );
    assert!(b.nearest(&gone, &E2, 5, None).await.unwrap().is_empty());
    let tokyo = ["tokyo".to_string()];
    assert!(b
        .keyword_search(&gone, &tokyo, 5, None)
        .await
        .unwrap()
        .is_empty());
    let (pending, _) = b.list_outbox("acme", "pending", 10, 0).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| e.memory_id.as_str())
            .collect::<Vec<_>>(),
        ["keep"]
    );
    assert_eq!(b.list_outbox("acme", "dead", 10, 0).await.unwrap().1, 0);
    let counts = b.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead), (1, 0));
    assert_eq!(b.fact_texts(&keep).await, ["Team is in Tokyo too"]);
    assert_eq!(
        counts_of(b.session_stats(&keep).await.unwrap()),
        stats(1, 1, 0)
    );
    // No row of any table still names the deleted session.
    for table in ["facts", "fact_history", "outbox", "graph_items"] {
        let left = b
            .raw_i64s(
                &format!("SELECT COUNT(*) FROM {table} WHERE session_id = $1"),
                Some(gone.id),
            )
            .await;
        assert_eq!(left, [0], "{table} keeps rows of a deleted session");
    }

    assert_eq!(b.keyword_index_rows(gone.id).await, 0);
    assert_eq!(b.keyword_index_rows(keep.id).await, 1);

    // An ingest under way when the session went must not bring it back...
    let late = b
        .apply_fact_changes(&gone, &[add("late fact", E1)], "ingest", false)
        .await;
    assert!(matches!(late, Err(StoreError::SessionGone(_))), "{late:?}");
    // ...even once a new session of the same name exists (SQLite may give it the same id).
    pause().await;
    let reborn = b.session("acme", "gone").await;
    let late = b
        .apply_fact_changes(&gone, &[add("late fact", E1)], "ingest", false)
        .await;
    assert!(matches!(late, Err(StoreError::SessionGone(_))), "{late:?}");
    assert_eq!(b.list_facts(&reborn, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.fact_history(&reborn, None, 10, 0).await.unwrap().1, 0);
    assert!(b
        .keyword_search(&reborn, &tokyo, 5, None)
        .await
        .unwrap()
        .is_empty());
    // The new session itself takes writes.
    b.add_facts(&reborn, &[("fresh start", E3)]).await;
    assert_eq!(b.fact_texts(&reborn).await, ["fresh start"]);
}

// ---- facts ----

both_stores!(keyword_search_stems_and_ranks_on_both_stores);
/// Both stores stem English words (Snowball's stemmer, Postgres's `english` configuration)
/// and rank a fact that says more of the query, more often, first.
async fn keyword_search_stems_and_ranks_on_both_stores(b: Backend) {
    let s = b.session("acme", "ranked").await;
    let ids = b
        .add_facts(
            &s,
            &[
                ("The offices are in Lisbon", E1),
                ("Nothing about that here at all", E2),
                ("The Lisbon office runs the Lisbon team", E3),
            ],
        )
        .await;
    let (b, s) = (&b, &s);
    let search = |terms: &[&str]| {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        async move { found(b.keyword_search(s, &terms, 10, None).await.unwrap()) }
    };
    let offices: Vec<String> = search(&["office"])
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(offices.len(), 2, "{offices:?}");
    assert!(!offices.contains(&ids[1]));
    let lisbon = search(&["lisbon", "team"]).await;
    assert_eq!(
        lisbon.first().map(|(id, _)| id),
        Some(&ids[2]),
        "{lisbon:?}"
    );
    assert!(search(&["porto"]).await.is_empty());
}

both_stores!(fact_changes_write_history_and_keep_search_in_step);
async fn fact_changes_write_history_and_keep_search_in_step(b: Backend) {
    let s = b.session("acme", "alice").await;
    let ids = b.add_facts(&s, &[("Team is in Singapore", E1)]).await;
    assert_eq!(ids.len(), 1);
    let id = ids[0].clone();
    let singapore = ["singapore".to_string()];
    let tokyo = ["tokyo".to_string()];
    assert_eq!(
        found(b.keyword_search(&s, &singapore, 5, None).await.unwrap()),
        [(id.clone(), "Team is in Singapore".to_string())]
    );
    let foreign = as_org(&s, "globex");
    assert!(b
        .keyword_search(&foreign, &singapore, 5, None)
        .await
        .unwrap()
        .is_empty());
    assert!(b.nearest(&foreign, &E1, 5, None).await.unwrap().is_empty());
    assert_eq!(b.list_facts(&foreign, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.fact_history(&foreign, None, 10, 0).await.unwrap().1, 0);

    let touched = b
        .apply_fact_changes(&s, &[update(&id, "Team is in Tokyo", E2)], "ingest", false)
        .await
        .unwrap();
    assert_eq!(touched, std::slice::from_ref(&id));
    assert!(b
        .keyword_search(&s, &singapore, 5, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        found(b.keyword_search(&s, &tokyo, 5, None).await.unwrap()),
        [(id.clone(), "Team is in Tokyo".to_string())]
    );
    let near = b.nearest(&s, &E2, 5, None).await.unwrap();
    assert_eq!(near.len(), 1);
    assert_eq!(
        (near[0].fact_id.as_str(), near[0].text.as_str()),
        (id.as_str(), "Team is in Tokyo")
    );
    assert_close(near[0].similarity, 1.0);

    let touched = b
        .apply_fact_changes(&s, &[delete(&id)], "api", false)
        .await
        .unwrap();
    assert_eq!(touched, std::slice::from_ref(&id));
    assert!(b
        .keyword_search(&s, &tokyo, 5, None)
        .await
        .unwrap()
        .is_empty());
    assert!(b.nearest(&s, &E2, 5, None).await.unwrap().is_empty());
    assert_eq!(b.list_facts(&s, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.keyword_index_rows(s.id).await, 0);

    let (history, total) = b.fact_history(&s, None, 10, 0).await.unwrap();
    assert_eq!(total, 3);
    let events: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.fact_id.as_str(),
                h.event.as_str(),
                h.old_text.as_deref(),
                h.new_text.as_deref(),
                h.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            (
                id.as_str(),
                "ADD",
                None,
                Some("Team is in Singapore"),
                Some("ingest")
            ),
            (
                id.as_str(),
                "UPDATE",
                Some("Team is in Singapore"),
                Some("Team is in Tokyo"),
                Some("ingest")
            ),
            (
                id.as_str(),
                "DELETE",
                Some("Team is in Tokyo"),
                None,
                Some("api")
            ),
        ]
    );
    assert!(history.windows(2).all(|w| w[0].id < w[1].id));
    assert!(history
        .windows(2)
        .all(|w| w[0].created_at <= w[1].created_at));
}

both_stores!(fact_history_filters_by_fact_and_pages);
async fn fact_history_filters_by_fact_and_pages(b: Backend) {
    let s = b.session("acme", "history").await;
    let other = b.session("acme", "other").await;
    let ids = b.add_facts(&s, &[("a", E1), ("b", E2)]).await;
    let (a, bb) = (ids[0].clone(), ids[1].clone());
    b.apply_fact_changes(&s, &[update(&a, "a2", E1), delete(&bb)], "ingest", false)
        .await
        .unwrap();
    let theirs = b.add_facts(&other, &[("theirs", E3)]).await;

    let summary = |events: &[memgate::domain::FactHistoryEvent]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|h| (h.fact_id.clone(), h.event.clone()))
            .collect()
    };
    let (all, total) = b.fact_history(&s, None, 10, 0).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        summary(&all),
        [
            (a.clone(), "ADD".to_string()),
            (bb.clone(), "ADD".to_string()),
            (a.clone(), "UPDATE".to_string()),
            (bb.clone(), "DELETE".to_string()),
        ]
    );

    let (of_a, total) = b.fact_history(&s, Some(&a), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        summary(&of_a),
        [
            (a.clone(), "ADD".to_string()),
            (a.clone(), "UPDATE".to_string())
        ]
    );
    assert_eq!(of_a[1].old_text.as_deref(), Some("a"));
    assert_eq!(of_a[1].new_text.as_deref(), Some("a2"));
    let (of_b, total) = b.fact_history(&s, Some(&bb), 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(of_b[1].event, "DELETE");
    assert_eq!(of_b[1].old_text.as_deref(), Some("b"));
    let (none, total) = b
        .fact_history(&s, Some("no-such-fact"), 10, 0)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(total, 0);
    // Another session's fact is not in this session's history, even by id.
    assert_eq!(
        b.fact_history(&s, Some(&theirs[0]), 10, 0).await.unwrap().1,
        0
    );
    assert_eq!(b.fact_history(&other, None, 10, 0).await.unwrap().1, 1);

    // Pages, oldest first, each with the full total.
    let (page1, t1) = b.fact_history(&s, None, 2, 0).await.unwrap();
    let (page2, t2) = b.fact_history(&s, None, 2, 2).await.unwrap();
    let (page3, t3) = b.fact_history(&s, None, 2, 4).await.unwrap();
    assert_eq!((t1, t2, t3), (4, 4, 4));
    assert_eq!(summary(&page1), summary(&all[..2]));
    assert_eq!(summary(&page2), summary(&all[2..]));
    assert!(page3.is_empty());
    let (page, total) = b.fact_history(&s, Some(&a), 1, 1).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(summary(&page), [(a.clone(), "UPDATE".to_string())]);
}

both_stores!(changes_to_missing_facts_are_skipped);
async fn changes_to_missing_facts_are_skipped(b: Backend) {
    let s = b.session("acme", "mine").await;
    let other = b.session("acme", "theirs").await;
    let mine = b.add_facts(&s, &[("mine", E1)]).await;
    let theirs = b.add_facts(&other, &[("theirs", E2)]).await;

    let touched = b
        .apply_fact_changes(
            &s,
            &[
                update("no-such-fact", "nothing", E1),
                delete("no-such-fact"),
                // Another session's fact is missing from this one.
                update(&theirs[0], "hijacked", E1),
                delete(&theirs[0]),
                update(&mine[0], "mine, updated", E1),
            ],
            "ingest",
            false,
        )
        .await
        .unwrap();
    assert_eq!(touched, [mine[0].clone()]);
    assert_eq!(b.fact_texts(&s).await, ["mine, updated"]);
    assert_eq!(b.fact_texts(&other).await, ["theirs"]);
    let (history, _) = b.fact_history(&s, None, 10, 0).await.unwrap();
    let events: Vec<&str> = history.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, ["ADD", "UPDATE"]);
    assert_eq!(b.fact_history(&other, None, 10, 0).await.unwrap().1, 1);

    // A deleted fact is missing too.
    b.apply_fact_changes(&s, &[delete(&mine[0])], "api", false)
        .await
        .unwrap();
    let touched = b
        .apply_fact_changes(
            &s,
            &[update(&mine[0], "back", E1), delete(&mine[0])],
            "ingest",
            false,
        )
        .await
        .unwrap();
    assert!(touched.is_empty(), "{touched:?}");
    assert_eq!(b.list_facts(&s, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.fact_history(&s, None, 10, 0).await.unwrap().1, 3);
}

both_stores!(nearest_orders_by_similarity_with_k_and_fresh_since);
async fn nearest_orders_by_similarity_with_k_and_fresh_since(b: Backend) {
    let s = b.session("acme", "near").await;
    let other = b.session("acme", "far").await;
    b.add_facts(
        &s,
        &[
            ("north", [0.0, 1.0, 0.0]),
            ("east", [1.0, 0.0, 0.0]),
            ("mostly east", [0.8, 0.6, 0.0]),
        ],
    )
    .await;
    b.add_facts(&other, &[("also east", E1)]).await;

    let found = b.nearest(&s, &E1, 10, None).await.unwrap();
    let texts: Vec<&str> = found.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["east", "mostly east", "north"]);
    for (n, expected) in found.iter().zip([1.0, 0.8, 0.0]) {
        assert_close(n.similarity, expected);
    }
    let (listed, _) = b.list_facts(&s, None, 10, 0).await.unwrap();
    let east = listed.iter().find(|f| f.text == "east").unwrap();
    assert_eq!(found[0].fact_id, east.id);

    let top2 = b.nearest(&s, &E1, 2, None).await.unwrap();
    assert_eq!(
        top2.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(),
        ["east", "mostly east"]
    );
    assert!(b.nearest(&s, &E1, 0, None).await.unwrap().is_empty());
    // Scale does not matter, direction does.
    let scaled = b.nearest(&s, &[0.0, 5.0, 0.0], 1, None).await.unwrap();
    assert_eq!(scaled[0].text, "north");
    assert_close(scaled[0].similarity, 1.0);

    // Only facts written since `fresh_since`.
    pause().await;
    let since = now_ms();
    pause().await;
    b.add_facts(&s, &[("late", [0.0, 0.0, 1.0])]).await;
    let fresh = b.nearest(&s, &E1, 10, Some(since)).await.unwrap();
    assert_eq!(
        fresh.iter().map(|n| n.text.as_str()).collect::<Vec<_>>(),
        ["late"]
    );
    assert_close(fresh[0].similarity, 0.0);
    assert_eq!(b.nearest(&s, &E1, 10, None).await.unwrap().len(), 4);
    assert!(b
        .nearest(&s, &E1, 10, Some(now_ms() + 60_000))
        .await
        .unwrap()
        .is_empty());
}

both_stores!(keyword_search_ranks_follows_writes_and_is_org_scoped);
async fn keyword_search_ranks_follows_writes_and_is_org_scoped(b: Backend) {
    let s = b.session("acme", "drinks").await;
    let other = b.session("acme", "other").await;
    let ids = b
        .add_facts(
            &s,
            &[
                ("Alice drinks tea", E1),
                ("Bob drinks coffee and tea", E2),
                ("Carol drinks water", E3),
            ],
        )
        .await;
    b.add_facts(&other, &[("Dave drinks tea", E1)]).await;
    let terms = |words: &[&str]| -> Vec<String> { words.iter().map(|w| w.to_string()).collect() };

    // Best first: the fact with both terms, then the one with one; never the one with none.
    let hits = b
        .keyword_search(&s, &terms(&["tea", "coffee"]), 10, None)
        .await
        .unwrap();
    assert_eq!(
        found(hits.clone()),
        [
            (ids[1].clone(), "Bob drinks coffee and tea".to_string()),
            (ids[0].clone(), "Alice drinks tea".to_string()),
        ]
    );
    // Scores are the store's own, higher for the better match, and positive.
    assert!(
        hits[0].score > hits[1].score && hits[1].score > 0.0,
        "{hits:?}"
    );
    assert!(hits.iter().all(|h| h.updated_at > 0), "{hits:?}");
    let top = b
        .keyword_search(&s, &terms(&["tea", "coffee"]), 1, None)
        .await
        .unwrap();
    assert_eq!(top, [hits[0].clone()]);
    assert!(b
        .keyword_search(&s, &terms(&["juice"]), 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .keyword_search(&s, &[], 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .keyword_search(&as_org(&s, "globex"), &terms(&["tea"]), 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .keyword_search(&s, &terms(&["tea"]), 10, Some(now_ms() + 60_000))
        .await
        .unwrap()
        .is_empty());

    // Updates and deletes are searched as written.
    b.apply_fact_changes(
        &s,
        &[update(&ids[2], "Carol drinks coffee", E3), delete(&ids[0])],
        "ingest",
        false,
    )
    .await
    .unwrap();
    assert!(b
        .keyword_search(&s, &terms(&["water"]), 10, None)
        .await
        .unwrap()
        .is_empty());
    let coffee: BTreeSet<String> = b
        .keyword_search(&s, &terms(&["coffee"]), 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|hit| hit.fact_id)
        .collect();
    assert_eq!(coffee, BTreeSet::from([ids[1].clone(), ids[2].clone()]));
    let tea = b
        .keyword_search(&s, &terms(&["tea"]), 10, None)
        .await
        .unwrap();
    assert_eq!(
        found(tea),
        [(ids[1].clone(), "Bob drinks coffee and tea".to_string())]
    );
}

both_stores!(list_facts_pages_oldest_first_and_hides_stale);
async fn list_facts_pages_oldest_first_and_hides_stale(b: Backend) {
    let s = b.session("acme", "list").await;
    let mut ids = Vec::new();
    for (text, e) in [("f1", E1), ("f2", E2), ("f3", E3)] {
        ids.extend(b.add_facts(&s, &[(text, e)]).await);
        pause().await;
    }
    let page = |facts: &[memgate::domain::Fact]| -> Vec<(String, String)> {
        facts
            .iter()
            .map(|f| (f.id.clone(), f.text.clone()))
            .collect()
    };
    let (first, total) = b.list_facts(&s, None, 2, 0).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        page(&first),
        [
            (ids[0].clone(), "f1".to_string()),
            (ids[1].clone(), "f2".to_string())
        ]
    );
    assert!(first.iter().all(|f| f.created_at == f.updated_at));
    let (second, total) = b.list_facts(&s, None, 2, 2).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(page(&second), [(ids[2].clone(), "f3".to_string())]);
    let (past, total) = b.list_facts(&s, None, 2, 3).await.unwrap();
    assert!(past.is_empty());
    assert_eq!(total, 3);

    // An update keeps the fact's place (creation order) and moves its write time.
    let since = now_ms();
    pause().await;
    b.apply_fact_changes(&s, &[update(&ids[0], "f1 again", E1)], "ingest", false)
        .await
        .unwrap();
    let (all, _) = b.list_facts(&s, None, 10, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|f| f.text.as_str()).collect::<Vec<_>>(),
        ["f1 again", "f2", "f3"]
    );
    assert!(all[0].updated_at > all[0].created_at);
    assert_eq!(all[0].created_at, first[0].created_at);

    // Facts written before `fresh_since` are left out, of the page and of the total.
    let (fresh, total) = b.list_facts(&s, Some(since), 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(page(&fresh), [(ids[0].clone(), "f1 again".to_string())]);
    let (fresh, total) = b
        .list_facts(&s, Some(now_ms() + 60_000), 10, 0)
        .await
        .unwrap();
    assert!(fresh.is_empty());
    assert_eq!(total, 0);
}

both_stores!(cap_evicts_the_least_recently_written_with_history);
async fn cap_evicts_the_least_recently_written_with_history(b: Backend) {
    let config = SessionConfig {
        max_facts: Some(2),
        ..Default::default()
    };
    let s = b
        .create_session("acme", "capped", EngineKind::Mem0, &config)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for text in ["first", "second", "third"] {
        ids.extend(b.add_facts(&s, &[(text, E1)]).await);
        pause().await;
    }
    let (facts, total) = b.list_facts(&s, None, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    let texts: Vec<&str> = facts.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(texts, ["second", "third"]);
    let capacity =
        |history: &[memgate::domain::FactHistoryEvent]| -> Vec<(String, String, String)> {
            history
                .iter()
                .filter(|h| h.reason.as_deref() == Some("capacity"))
                .map(|h| {
                    (
                        h.fact_id.clone(),
                        h.event.clone(),
                        h.old_text.clone().unwrap_or_default(),
                    )
                })
                .collect()
        };
    let (history, _) = b.fact_history(&s, None, 10, 0).await.unwrap();
    assert_eq!(
        capacity(&history),
        [(ids[0].clone(), "DELETE".to_string(), "first".to_string())]
    );

    // Least recently *written*: an update makes "second" newer than "third".
    b.apply_fact_changes(
        &s,
        &[update(&ids[1], "second, rewritten", E1)],
        "ingest",
        false,
    )
    .await
    .unwrap();
    pause().await;
    let touched = b.add_facts(&s, &[("fourth", E1)]).await;
    assert_eq!(touched.len(), 1, "only the new fact is reported");
    assert_eq!(b.fact_texts(&s).await, ["second, rewritten", "fourth"]);
    let (history, _) = b.fact_history(&s, None, 20, 0).await.unwrap();
    assert_eq!(
        capacity(&history),
        [
            (ids[0].clone(), "DELETE".to_string(), "first".to_string()),
            (ids[2].clone(), "DELETE".to_string(), "third".to_string()),
        ]
    );
    // Evicted facts are gone from search too.
    let third = ["third".to_string()];
    assert!(b
        .keyword_search(&s, &third, 5, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.nearest(&s, &E1, 10, None).await.unwrap().len(), 2);
}

both_stores!(ttl_hides_then_purges);
async fn ttl_hides_then_purges(b: Backend) {
    let s = b.session("acme", "ttl").await;
    b.add_facts(&s, &[("old news", E1)]).await;
    let future = now_ms() + 10;
    assert_eq!(b.list_facts(&s, Some(future), 10, 0).await.unwrap().1, 0);
    assert_eq!(b.list_facts(&s, None, 10, 0).await.unwrap().1, 1);
    // Without a TTL or a cap, retention removes nothing.
    assert_eq!(b.enforce_retention(&s).await.unwrap(), 0);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    b.add_facts(&s, &[("fresh news", E2)]).await;
    let expiring = b
        .update_session_config(
            "acme",
            "ttl",
            &SessionConfig {
                fact_ttl_seconds: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    let with_ttl: Vec<i64> = b
        .sessions_with_ttl()
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(with_ttl, [s.id]);
    assert_eq!(b.enforce_retention(&expiring).await.unwrap(), 1);
    assert_eq!(b.fact_texts(&s).await, ["fresh news"]);
    let (history, _) = b.fact_history(&s, None, 10, 0).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (
            last.event.as_str(),
            last.old_text.as_deref(),
            last.reason.as_deref()
        ),
        ("DELETE", Some("old news"), Some("expired"))
    );
    assert!(b
        .keyword_search(&s, &["old".to_string()], 5, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.enforce_retention(&expiring).await.unwrap(), 0);
}

both_stores!(enforce_retention_applies_a_lowered_cap);
async fn enforce_retention_applies_a_lowered_cap(b: Backend) {
    let s = b.session("acme", "shrink").await;
    for text in ["a", "b", "c"] {
        b.add_facts(&s, &[(text, E1)]).await;
        pause().await;
    }
    assert_eq!(b.enforce_retention(&s).await.unwrap(), 0);
    let capped = b
        .update_session_config(
            "acme",
            "shrink",
            &SessionConfig {
                max_facts: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.enforce_retention(&capped).await.unwrap(), 2);
    assert_eq!(b.fact_texts(&s).await, ["c"]);
    let (history, _) = b.fact_history(&s, None, 10, 0).await.unwrap();
    let mut evicted: Vec<&str> = history
        .iter()
        .filter(|h| h.reason.as_deref() == Some("capacity"))
        .map(|h| h.old_text.as_deref().unwrap_or_default())
        .collect();
    evicted.sort();
    assert_eq!(evicted, ["a", "b"]);
    assert_eq!(b.enforce_retention(&capped).await.unwrap(), 0);
}

// ---- outbox ----

both_stores!(outbox_claims_under_a_lease_and_dead_letters);
async fn outbox_claims_under_a_lease_and_dead_letters(b: Backend) {
    let s = b.session("acme", "alice").await;
    let p = payload("alice");
    b.enqueue_turn("k1", "acme", s.id, &p).await.unwrap();
    b.enqueue_turn("k1", "acme", s.id, &p).await.unwrap();
    let claimed = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "idempotency key deduplicates");
    assert_eq!(claimed[0].attempts, 1);
    assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());

    b.fail_outbox(claimed[0].id, "boom", Some(0)).await.unwrap();
    let again = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
        [(claimed[0].id, 2)]
    );
    b.fail_outbox(again[0].id, "boom", None).await.unwrap();
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 0,
            done: 0,
            dead: 1,
            oldest_pending_ms: None
        }
    );
    assert!(
        b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty(),
        "a dead letter is not claimed"
    );

    b.enqueue_turn("k2", "acme", s.id, &p).await.unwrap();
    let k2 = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(k2.len(), 1);
    assert_ne!(k2[0].id, claimed[0].id);
    b.complete_outbox(k2[0].id).await.unwrap();
    assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());
    assert_eq!(b.purge_done_outbox(now_ms() + 1).await.unwrap(), 1);
    let left = b.outbox_counts().await.unwrap();
    assert_eq!(
        (left.pending, left.done, left.dead),
        (0, 0, 1),
        "dead rows are kept"
    );
}

both_stores!(a_turns_receipt_follows_it_from_the_outbox_to_its_outcome);
async fn a_turns_receipt_follows_it_from_the_outbox_to_its_outcome(b: Backend) {
    let s = b.session("acme", "alice").await;
    assert!(b.turn_receipt("acme", "t1").await.unwrap().is_none());
    b.enqueue_turn("t1", "acme", s.id, &payload("alice"))
        .await
        .unwrap();
    let pending = b.turn_receipt("acme", "t1").await.unwrap().unwrap();
    assert_eq!(
        (pending.state, pending.attempts),
        (TurnState::Pending, Some(0))
    );
    assert_eq!(pending.memory_id, "alice");
    assert!(
        b.turn_receipt("globex", "t1").await.unwrap().is_none(),
        "org-scoped"
    );

    let claimed = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(claimed[0].turn_id, "t1");
    b.fail_outbox(claimed[0].id, "boom", None).await.unwrap();
    let dead = b.turn_receipt("acme", "t1").await.unwrap().unwrap();
    assert_eq!(
        (dead.state, dead.attempts, dead.last_error.as_deref()),
        (TurnState::Dead, Some(1), Some("boom"))
    );

    let facts = FactChanges {
        added: vec!["f1".into()],
        updated: vec!["f2".into()],
        deleted: vec![],
    };
    b.settle_turn(
        "t1",
        "acme",
        "alice",
        &TurnOutcome::Stored {
            facts: facts.clone(),
        },
    )
    .await
    .unwrap();
    let stored = b.turn_receipt("acme", "t1").await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.facts),
        (TurnState::Stored, Some(facts))
    );
    assert!(b.turn_receipt("globex", "t1").await.unwrap().is_none());

    // The first settlement stands (a turn ingested again after a crash finds its facts known).
    let again = TurnOutcome::Stored {
        facts: FactChanges::default(),
    };
    b.settle_turn("t1", "acme", "alice", &again).await.unwrap();
    let kept = b.turn_receipt("acme", "t1").await.unwrap().unwrap();
    assert_eq!(kept.facts.map(|f| f.added), Some(vec!["f1".to_string()]));

    // A receipt outlives its session.
    let dropped = TurnOutcome::Dropped {
        reason: "why".into(),
    };
    b.settle_turn("t2", "acme", "gone", &dropped).await.unwrap();
    let receipt = b.turn_receipt("acme", "t2").await.unwrap().unwrap();
    assert_eq!(
        (
            receipt.state,
            receipt.reason.as_deref(),
            receipt.memory_id.as_str()
        ),
        (TurnState::Dropped, Some("why"), "gone")
    );
    b.purge_done_outbox(now_ms() + 1).await.unwrap();
    assert!(
        b.turn_receipt("acme", "t2").await.unwrap().is_none(),
        "purged with done rows"
    );
}

both_stores!(an_expired_lease_makes_a_turn_claimable_again);
async fn an_expired_lease_makes_a_turn_claimable_again(b: Backend) {
    let s = b.session("acme", "lease").await;
    let id = b.enqueue("k", &s).await;
    let first = b.claim_outbox(10, SHORT_LEASE).await.unwrap();
    assert_eq!(
        first.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
        [(id, 1)]
    );
    assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());
    // Still counted as pending while leased.
    assert_eq!(b.outbox_counts().await.unwrap().pending, 1);
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let again = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
        [(id, 2)]
    );
    assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());
}

both_stores!(enqueue_is_idempotent_and_keeps_the_payload);
async fn enqueue_is_idempotent_and_keeps_the_payload(b: Backend) {
    let s = b.session("acme", "turns").await;
    let first = TurnPayload {
        memory_id: "turns".into(),
        messages: vec![
            TurnMessage {
                role: "user".into(),
                content: "Where is the team?".into(),
            },
            TurnMessage {
                role: "assistant".into(),
                content: "In Tokyo, «東京».".into(),
            },
        ],
        request_id: Some("req-1".into()),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        redacted: true,
    };
    let second = TurnPayload {
        messages: vec![],
        request_id: Some("req-2".into()),
        ..first.clone()
    };
    b.enqueue_turn("turn-1", "acme", s.id, &first)
        .await
        .unwrap();
    b.enqueue_turn("turn-1", "acme", s.id, &second)
        .await
        .unwrap();
    assert_eq!(b.outbox_counts().await.unwrap().pending, 1);
    let claimed = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let row = &claimed[0];
    assert_eq!(
        (row.org_id.as_str(), row.session_id, row.attempts),
        ("acme", s.id, 1)
    );
    assert_eq!(row.payload, first, "the first enqueue wins");

    // Claims take at most `limit`, oldest first.
    let ids = [
        b.enqueue("turn-2", &s).await,
        b.enqueue("turn-3", &s).await,
        b.enqueue("turn-4", &s).await,
    ];
    let batch = b.claim_outbox(2, LONG_LEASE).await.unwrap();
    assert_eq!(batch.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
    let rest = b.claim_outbox(2, LONG_LEASE).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.id).collect::<Vec<_>>(), ids[2..]);
    assert_eq!(rest[0].payload, payload("turns"));
}

both_stores!(failed_turns_wait_for_retry_at);
async fn failed_turns_wait_for_retry_at(b: Backend) {
    let s = b.session("acme", "retry").await;
    let id = b.enqueue("k", &s).await;
    assert_eq!(b.claim_outbox(10, LONG_LEASE).await.unwrap().len(), 1);
    let retry_at = now_ms() + RETRY_IN_MS;
    b.fail_outbox(id, "try later", Some(retry_at))
        .await
        .unwrap();
    assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());
    let (pending, total) = b.list_outbox("acme", "pending", 10, 0).await.unwrap();
    assert_eq!(total, 1);
    let entry = &pending[0];
    assert_eq!(
        (
            entry.id,
            entry.state.as_str(),
            entry.attempts,
            entry.last_error.as_deref(),
            entry.next_attempt_at
        ),
        (id, "pending", 1, Some("try later"), retry_at)
    );
    sleep_until(retry_at).await;
    let again = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
        [(id, 2)]
    );
    b.complete_outbox(id).await.unwrap();
    assert_eq!(b.list_outbox("acme", "pending", 10, 0).await.unwrap().1, 0);
    let (done, _) = b.list_outbox("acme", "done", 10, 0).await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!((done[0].id, done[0].last_error.as_deref()), (id, None));
}

both_stores!(list_outbox_by_state_for_one_org);
async fn list_outbox_by_state_for_one_org(b: Backend) {
    let alpha = b.session("acme", "alpha").await;
    let gamma = b.session("globex", "gamma").await;
    let before = now_ms();
    let dead = b.enqueue("a-dead", &alpha).await;
    let done = b.enqueue("a-done", &alpha).await;
    let pending = b.enqueue("a-pending", &alpha).await;
    let theirs = b.enqueue("g-dead", &gamma).await;
    let claimed = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 4);
    b.fail_outbox(dead, "boom", None).await.unwrap();
    b.complete_outbox(done).await.unwrap();
    b.fail_outbox(pending, "again", Some(0)).await.unwrap();
    b.fail_outbox(theirs, "theirs", None).await.unwrap();

    let brief =
        |entries: &[memgate::domain::outbox::OutboxEntry]| -> Vec<(i64, String, String, i64)> {
            entries
                .iter()
                .map(|e| (e.id, e.memory_id.clone(), e.state.clone(), e.attempts))
                .collect()
        };
    let entry = |id: i64, memory_id: &str, state: &str, attempts: i64| {
        vec![(id, memory_id.to_string(), state.to_string(), attempts)]
    };
    let (list, total) = b.list_outbox("acme", "dead", 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(brief(&list), entry(dead, "alpha", "dead", 1));
    assert_eq!(list[0].last_error.as_deref(), Some("boom"));
    assert!((before..=now_ms()).contains(&list[0].created_at));
    let (list, _) = b.list_outbox("acme", "done", 10, 0).await.unwrap();
    assert_eq!(brief(&list), entry(done, "alpha", "done", 1));
    let (list, _) = b.list_outbox("acme", "pending", 10, 0).await.unwrap();
    assert_eq!(brief(&list), entry(pending, "alpha", "pending", 1));
    assert_eq!(list[0].last_error.as_deref(), Some("again"));
    let (list, total) = b.list_outbox("globex", "dead", 10, 0).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(brief(&list), entry(theirs, "gamma", "dead", 1));
    assert_eq!(
        b.list_outbox("globex", "pending", 10, 0).await.unwrap().1,
        0
    );
    let (list, total) = b.list_outbox("initech", "dead", 10, 0).await.unwrap();
    assert!(list.is_empty());
    assert_eq!(total, 0);

    // Pages, oldest first.
    let mut all = vec![pending];
    for i in 0..3 {
        all.push(b.enqueue(&format!("more-{i}"), &alpha).await);
    }
    let (page1, t1) = b.list_outbox("acme", "pending", 2, 0).await.unwrap();
    let (page2, t2) = b.list_outbox("acme", "pending", 2, 2).await.unwrap();
    let (page3, t3) = b.list_outbox("acme", "pending", 2, 4).await.unwrap();
    assert_eq!((t1, t2, t3), (4, 4, 4));
    assert_eq!(page1.iter().map(|e| e.id).collect::<Vec<_>>(), all[..2]);
    assert_eq!(page2.iter().map(|e| e.id).collect::<Vec<_>>(), all[2..]);
    assert!(page3.is_empty());
}

both_stores!(retry_outbox_only_for_own_dead_turns);
async fn retry_outbox_only_for_own_dead_turns(b: Backend) {
    let s = b.session("acme", "mine").await;
    let g = b.session("globex", "theirs").await;
    let dead = b.dead_turn("dead", &s).await;
    let theirs = b.dead_turn("their-dead", &g).await;
    let pending = b.enqueue("pending", &s).await;

    assert!(!b.retry_outbox("globex", dead).await.unwrap());
    assert!(!b.retry_outbox("acme", theirs).await.unwrap());
    assert!(!b.retry_outbox("acme", pending).await.unwrap());
    assert!(!b
        .retry_outbox("acme", dead + theirs + pending + 1000)
        .await
        .unwrap());
    assert_eq!(b.list_outbox("acme", "dead", 10, 0).await.unwrap().1, 1);

    assert!(b.retry_outbox("acme", dead).await.unwrap());
    assert!(
        !b.retry_outbox("acme", dead).await.unwrap(),
        "no longer dead"
    );
    assert_eq!(b.list_outbox("acme", "dead", 10, 0).await.unwrap().1, 0);
    let (list, _) = b.list_outbox("acme", "pending", 10, 0).await.unwrap();
    let retried = list.iter().find(|e| e.id == dead).expect("retried turn");
    assert_eq!(retried.attempts, 0, "a fresh attempt budget");
    // Claimable at once, with its attempts counted from zero.
    let claimed = b.claim_outbox(10, LONG_LEASE).await.unwrap();
    let mut seen: Vec<(i64, i64)> = claimed.iter().map(|r| (r.id, r.attempts)).collect();
    seen.sort();
    let mut expected = vec![(dead, 1), (pending, 1)];
    expected.sort();
    assert_eq!(seen, expected);
    // The other org's dead letter stays dead.
    assert_eq!(b.list_outbox("globex", "dead", 10, 0).await.unwrap().1, 1);
}

both_stores!(outbox_counts_and_purge_of_done_turns);
async fn outbox_counts_and_purge_of_done_turns(b: Backend) {
    assert_eq!(b.outbox_counts().await.unwrap(), OutboxCounts::default());
    let s = b.session("acme", "counts").await;
    let g = b.session("globex", "counts").await;
    let first = b.enqueue("first", &s).await;
    pause().await;
    let second = b.enqueue("second", &g).await;
    let (listed, _) = b.list_outbox("acme", "pending", 10, 0).await.unwrap();
    let first_created = listed[0].created_at;
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 2,
            done: 0,
            dead: 0,
            oldest_pending_ms: Some(first_created)
        },
        "counts span every org"
    );

    b.claim_outbox(10, LONG_LEASE).await.unwrap();
    let before_done = now_ms();
    pause().await;
    b.complete_outbox(first).await.unwrap();
    let (listed, _) = b.list_outbox("globex", "pending", 10, 0).await.unwrap();
    let second_created = listed[0].created_at;
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 1,
            done: 1,
            dead: 0,
            oldest_pending_ms: Some(second_created)
        }
    );
    b.fail_outbox(second, "boom", None).await.unwrap();
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 0,
            done: 1,
            dead: 1,
            oldest_pending_ms: None
        }
    );

    // Only done rows finished before the bound go; dead ones stay.
    assert_eq!(b.purge_done_outbox(before_done).await.unwrap(), 0);
    assert_eq!(b.purge_done_outbox(now_ms() + 1).await.unwrap(), 1);
    assert_eq!(b.purge_done_outbox(now_ms() + 1).await.unwrap(), 0);
    assert_eq!(
        b.outbox_counts().await.unwrap(),
        OutboxCounts {
            pending: 0,
            done: 0,
            dead: 1,
            oldest_pending_ms: None
        }
    );
    assert_eq!(b.list_outbox("acme", "done", 10, 0).await.unwrap().1, 0);
}

both_stores!(release_stale_leases_frees_on_sqlite_only);
async fn release_stale_leases_frees_on_sqlite_only(b: Backend) {
    // The embedded store has one process per file, so at start every lease is a dead
    // process's; replicas sharing Postgres wait for leases to run out instead.
    let s = b.session("acme", "stale").await;
    assert_eq!(b.release_stale_leases().await.unwrap(), 0);
    let id = b.enqueue("k", &s).await;
    let done = b.enqueue("done", &s).await;
    assert_eq!(b.claim_outbox(10, LONG_LEASE).await.unwrap().len(), 2);
    b.complete_outbox(done).await.unwrap();
    match b.kind {
        Kind::Sqlite => {
            assert_eq!(b.release_stale_leases().await.unwrap(), 1);
            let again = b.claim_outbox(10, LONG_LEASE).await.unwrap();
            assert_eq!(
                again.iter().map(|r| (r.id, r.attempts)).collect::<Vec<_>>(),
                [(id, 2)]
            );
        }
        Kind::Postgres => {
            assert_eq!(b.release_stale_leases().await.unwrap(), 0);
            assert!(b.claim_outbox(10, LONG_LEASE).await.unwrap().is_empty());
        }
    }
    assert_eq!(b.outbox_counts().await.unwrap().done, 1);
}

// ---- usage ----

both_stores!(usage_batches_of_any_size_are_recorded_whole);
async fn usage_batches_of_any_size_are_recorded_whole(b: Backend) {
    // Sizes around the store's rows-per-statement, and a batch as large as the writer's.
    let mut expected_calls = 0;
    let mut expected_prompt = 0;
    for size in [1_i64, 31, 32, 33, 70, 256] {
        let batch: Vec<UsageEvent> = (0..size)
            .map(|i| usage("acme", "alpha", Purpose::QueryEmbedding, "emb-1", i, 1))
            .collect();
        b.record_usage(&batch).await.unwrap();
        expected_calls += size;
        expected_prompt += size * (size - 1) / 2;
    }
    let report = b
        .usage_report("acme", 0, now_ms() + 1, false)
        .await
        .unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(
        (
            report[0].calls,
            report[0].prompt_tokens,
            report[0].completion_tokens
        ),
        (expected_calls, expected_prompt, expected_calls)
    );
}

both_stores!(usage_report_by_day_kind_model_and_session);
async fn usage_report_by_day_kind_model_and_session(b: Backend) {
    b.record_usage(&[]).await.unwrap();
    b.record_usage(&[
        usage("acme", "alpha", Purpose::Extraction, "gpt-x", 10, 5),
        usage("acme", "alpha", Purpose::Extraction, "gpt-x", 1, 2),
        usage("acme", "beta", Purpose::Extraction, "gpt-x", 100, 50),
        usage("acme", "alpha", Purpose::FactEmbedding, "emb-1", 7, 0),
        usage("acme", "alpha", Purpose::Extraction, "gpt-y", 3, 3),
        usage("globex", "gamma", Purpose::Extraction, "gpt-x", 1000, 1000),
    ])
    .await
    .unwrap();
    let created = b
        .raw_i64s("SELECT DISTINCT created_at FROM usage", None)
        .await;
    assert_eq!(created.len(), 1, "one batch, one time: {created:?}");
    let day = timestamp::date(created[0]);

    type Row = (String, String, String, Option<String>, i64, i64, i64);
    let rows = |report: Vec<memgate::domain::usage::UsageRow>| -> Vec<Row> {
        report
            .into_iter()
            .map(|r| {
                (
                    r.day,
                    r.kind,
                    r.model,
                    r.memory_id,
                    r.calls,
                    r.prompt_tokens,
                    r.completion_tokens,
                )
            })
            .collect()
    };
    let row = |kind: &str, model: &str, memory_id: Option<&str>, calls, p, c| -> Row {
        (
            day.clone(),
            kind.into(),
            model.into(),
            memory_id.map(Into::into),
            calls,
            p,
            c,
        )
    };
    let report = b.usage_report("acme", 0, i64::MAX, false).await.unwrap();
    assert_eq!(
        rows(report),
        [
            row("extraction", "gpt-x", None, 3, 111, 57),
            row("extraction", "gpt-y", None, 1, 3, 3),
            row("fact_embedding", "emb-1", None, 1, 7, 0),
        ]
    );
    let report = b.usage_report("acme", 0, i64::MAX, true).await.unwrap();
    assert_eq!(
        rows(report),
        [
            row("extraction", "gpt-x", Some("alpha"), 2, 11, 7),
            row("extraction", "gpt-x", Some("beta"), 1, 100, 50),
            row("extraction", "gpt-y", Some("alpha"), 1, 3, 3),
            row("fact_embedding", "emb-1", Some("alpha"), 1, 7, 0),
        ]
    );
    let report = b.usage_report("globex", 0, i64::MAX, true).await.unwrap();
    assert_eq!(
        rows(report),
        [row("extraction", "gpt-x", Some("gamma"), 1, 1000, 1000)]
    );
    assert!(b
        .usage_report("initech", 0, i64::MAX, false)
        .await
        .unwrap()
        .is_empty());
}

both_stores!(usage_of_local_work_is_reported_apart_from_gateway_spend);
async fn usage_of_local_work_is_reported_apart_from_gateway_spend(b: Backend) {
    let local = UsageEvent {
        provider: Provider::Local,
        ..usage(
            "acme",
            "alpha",
            Purpose::QueryEmbedding,
            "all-MiniLM-L6-v2",
            9,
            0,
        )
    };
    b.record_usage(&[
        local.clone(),
        local,
        usage(
            "acme",
            "alpha",
            Purpose::QueryEmbedding,
            "all-MiniLM-L6-v2",
            4,
            0,
        ),
    ])
    .await
    .unwrap();
    let report = b.usage_report("acme", 0, i64::MAX, false).await.unwrap();
    let rows: Vec<(&str, i64, i64)> = report
        .iter()
        .map(|r| (r.provider.as_str(), r.calls, r.prompt_tokens))
        .collect();
    assert_eq!(rows, [("gateway", 1, 4), ("local", 2, 18)]);
}

both_stores!(usage_report_range_is_from_inclusive_to_exclusive);
async fn usage_report_range_is_from_inclusive_to_exclusive(b: Backend) {
    b.record_usage(&[usage("acme", "a", Purpose::Summary, "m1", 1, 1)])
        .await
        .unwrap();
    pause().await;
    b.record_usage(&[usage("acme", "a", Purpose::Summary, "m2", 2, 2)])
        .await
        .unwrap();
    let times = b
        .raw_i64s("SELECT created_at FROM usage ORDER BY created_at", None)
        .await;
    assert_eq!(times.len(), 2);
    let (t1, t2) = (times[0], times[1]);
    assert!(t1 < t2, "{times:?}");

    async fn models(b: &Backend, from: i64, to: i64) -> Vec<String> {
        b.usage_report("acme", from, to, false)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.model)
            .collect()
    }
    assert_eq!(models(&b, t1, t2 + 1).await, ["m1", "m2"]);
    assert_eq!(models(&b, t1, t2).await, ["m1"], "`to` is exclusive");
    assert_eq!(models(&b, t2, t2 + 1).await, ["m2"], "`from` is inclusive");
    assert_eq!(models(&b, t1 + 1, t2 + 1).await, ["m2"]);
    assert!(models(&b, t1, t1).await.is_empty());
    assert!(models(&b, t2 + 1, i64::MAX).await.is_empty());
    assert!(models(&b, 0, t1).await.is_empty());
}

// ---- graph items ----

both_stores!(graph_items_are_written_once_and_updated_in_place);
async fn graph_items_are_written_once_and_updated_in_place(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &s).await;
    // Idempotent: the same turn again writes nothing new.
    assert_eq!(
        b.write_graph_items(&s, &graph.items(), false)
            .await
            .unwrap(),
        vec![false; 7]
    );
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Entity).await.len(), 3);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Edge).await.len(), 2);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Chunk).await.len(), 1);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Summary).await.len(), 1);
    let before = b
        .graph_items_by_id(&s, std::slice::from_ref(&graph.alice.id))
        .await
        .unwrap()
        .remove(0);

    pause().await;
    // A chunk is written once; an entity or edge seen again takes the latest wording.
    let chunk = NewGraphItem {
        text: "another wording".into(),
        ..graph.chunk.clone()
    };
    let alice = NewGraphItem {
        text: "Alice Smith".into(),
        entity_type: Some("engineer".into()),
        embedding: vec![0.0, 0.6, 0.8],
        ..graph.alice.clone()
    };
    let knows = NewGraphItem {
        sentence: Some("Bob has known Alice for years.".into()),
        ..graph.knows.clone()
    };
    let carol = entity(
        &s.graph_scope(),
        "person:carol",
        "Carol",
        "person",
        [1.0, 1.0, 0.0],
    );
    let fresh = b
        .write_graph_items(&s, &[chunk, alice, knows, carol.clone()], false)
        .await
        .unwrap();
    assert_eq!(fresh, [false, false, false, true]);

    let got = b
        .graph_items_by_id(
            &s,
            &[
                graph.chunk.id.clone(),
                graph.alice.id.clone(),
                graph.knows.id.clone(),
            ],
        )
        .await
        .unwrap();
    let by_id = |id: &str| got.iter().find(|g| g.item.id == id).unwrap();
    assert_eq!(by_id(&graph.chunk.id).item.text, graph.chunk.text);
    let alice = by_id(&graph.alice.id);
    assert_eq!(alice.item.text, "Alice Smith");
    assert_eq!(alice.item.entity_type.as_deref(), Some("engineer"));
    assert_eq!(alice.embedding, [0.0, 0.6, 0.8]);
    assert_eq!(alice.item.created_at, before.item.created_at);
    assert!(alice.item.updated_at > before.item.updated_at);
    assert_eq!(
        by_id(&graph.knows.id).item.sentence.as_deref(),
        Some("Bob has known Alice for years.")
    );
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Entity).await.len(), 4);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Chunk).await.len(), 1);
}

both_stores!(nearest_graph_items_by_kind);
async fn nearest_graph_items_by_kind(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let other = b.graph_session("acme", "other").await;
    let graph = write_graph(&b, &s).await;
    b.write_graph_items(
        &other,
        &[entity(
            &other.graph_scope(),
            "person:alice",
            "Other Alice",
            "person",
            [0.0, 1.0, 0.0],
        )],
        false,
    )
    .await
    .unwrap();

    let north = [0.0, 1.0, 0.0];
    // (kinds, query, k, the items expected in order with their similarity)
    type Case<'a> = (
        &'a [GraphKind],
        [f32; DIMS],
        usize,
        Vec<(&'a NewGraphItem, f32)>,
    );
    let cases: [Case; 5] = [
        (
            &[GraphKind::Entity],
            north,
            10,
            vec![(&graph.alice, 1.0), (&graph.bob, 0.8), (&graph.acme, 0.0)],
        ),
        (
            &[GraphKind::Entity],
            north,
            2,
            vec![(&graph.alice, 1.0), (&graph.bob, 0.8)],
        ),
        (
            &[GraphKind::Chunk, GraphKind::Summary],
            E1,
            10,
            vec![(&graph.chunk, 1.0), (&graph.summary, 0.8)],
        ),
        (
            &[GraphKind::Edge],
            north,
            10,
            vec![(&graph.works_at, 0.6), (&graph.knows, 0.28)],
        ),
        (
            &[GraphKind::Entity, GraphKind::Edge],
            north,
            3,
            vec![
                (&graph.alice, 1.0),
                (&graph.bob, 0.8),
                (&graph.works_at, 0.6),
            ],
        ),
    ];
    for (kinds, query, k, expected) in cases {
        let got = b.nearest_graph_items(&s, kinds, &query, k).await.unwrap();
        assert_eq!(
            got.iter().map(|g| g.item.id.as_str()).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(i, _)| i.id.as_str())
                .collect::<Vec<_>>(),
            "{kinds:?} k={k}: {got:?}"
        );
        for (g, (_, want)) in got.iter().zip(&expected) {
            assert_close(g.similarity, *want);
        }
    }
    assert!(b
        .nearest_graph_items(&s, &[], &north, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .nearest_graph_items(&s, &[GraphKind::Entity], &north, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .nearest_graph_items(&as_org(&s, "globex"), &[GraphKind::Entity], &north, 10)
        .await
        .unwrap()
        .is_empty());
    let theirs = b
        .nearest_graph_items(&other, &[GraphKind::Entity, GraphKind::Edge], &north, 10)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].item.text, "Other Alice");
}

both_stores!(graph_lookups_by_id_key_and_touching_edges);
async fn graph_lookups_by_id_key_and_touching_edges(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let other = b.graph_session("acme", "other").await;
    let graph = write_graph(&b, &s).await;
    let theirs = write_graph(&b, &other).await;

    let got = b
        .graph_items_by_id(
            &s,
            &[
                graph.chunk.id.clone(),
                graph.works_at.id.clone(),
                "no-such-item".into(),
                theirs.alice.id.clone(),
            ],
        )
        .await
        .unwrap();
    let mut got: Vec<_> = got
        .into_iter()
        .map(|g| (g.item.id.clone(), g.item.kind.clone(), g.embedding, g.item))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    let mut expected = vec![
        (
            graph.chunk.id.clone(),
            "chunk".to_string(),
            graph.chunk.embedding.clone(),
        ),
        (
            graph.works_at.id.clone(),
            "edge".to_string(),
            graph.works_at.embedding.clone(),
        ),
    ];
    expected.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got.iter()
            .map(|(id, kind, e, _)| (id.clone(), kind.clone(), e.clone()))
            .collect::<Vec<_>>(),
        expected
    );
    let works_at = &got.iter().find(|g| g.0 == graph.works_at.id).unwrap().3;
    assert_eq!(
        (
            works_at.text.as_str(),
            works_at.source_key.as_deref(),
            works_at.relation.as_deref(),
            works_at.target_key.as_deref(),
            works_at.sentence.as_deref(),
            works_at.entity_key.as_deref(),
        ),
        (
            "person:alice works_at org:acme",
            Some("person:alice"),
            Some("works_at"),
            Some("org:acme"),
            Some("person:alice works_at org:acme."),
            None,
        )
    );
    assert!(b.graph_items_by_id(&s, &[]).await.unwrap().is_empty());
    assert!(b
        .graph_items_by_id(&as_org(&s, "globex"), std::slice::from_ref(&graph.chunk.id))
        .await
        .unwrap()
        .is_empty());

    let keys = |ks: &[&str]| -> Vec<String> { ks.iter().map(|k| k.to_string()).collect() };
    let entities = b
        .graph_entities(&s, &keys(&["person:alice", "org:acme", "person:nobody"]))
        .await
        .unwrap();
    let mut found: Vec<_> = entities
        .iter()
        .map(|e| {
            (
                e.item.entity_key.clone().unwrap(),
                e.item.entity_type.clone().unwrap(),
                e.item.text.clone(),
                e.embedding.clone(),
                e.item.id.clone(),
            )
        })
        .collect();
    found.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        found,
        [
            (
                "org:acme".to_string(),
                "organization".to_string(),
                "Acme".to_string(),
                graph.acme.embedding.clone(),
                graph.acme.id.clone()
            ),
            (
                "person:alice".to_string(),
                "person".to_string(),
                "Alice".to_string(),
                graph.alice.embedding.clone(),
                graph.alice.id.clone()
            ),
        ]
    );
    assert!(b.graph_entities(&s, &[]).await.unwrap().is_empty());
    assert!(b
        .graph_entities(&as_org(&s, "globex"), &keys(&["person:alice"]))
        .await
        .unwrap()
        .is_empty());
    // The same entities without their vectors, for showing them.
    let named = b
        .graph_entities_named(&s, &keys(&["person:alice", "org:acme", "person:nobody"]))
        .await
        .unwrap();
    assert!(named.iter().all(|e| e.kind == "entity"));
    let mut named: Vec<_> = named
        .into_iter()
        .map(|e| (e.entity_key, e.text, e.id))
        .collect();
    named.sort();
    let expected: Vec<_> = found
        .iter()
        .map(|(key, _, text, _, id)| (Some(key.clone()), text.clone(), id.clone()))
        .collect();
    assert_eq!(named, expected);
    assert!(b
        .graph_entities_named(&as_org(&s, "globex"), &keys(&["person:alice"]))
        .await
        .unwrap()
        .is_empty());

    // One hop: edges from or to the keys, at most `limit`, of this session only.
    let touching = b
        .graph_edges_touching(&s, &keys(&["person:alice"]), 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&touching),
        set([graph.works_at.id.as_str(), graph.knows.id.as_str()])
    );
    assert!(touching.iter().all(|e| e.kind == "edge"));
    let one = b
        .graph_edges_touching(&s, &keys(&["person:alice"]), 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(ids(&touching).contains(&one[0].id));
    assert_eq!(
        ids(&b
            .graph_edges_touching(&s, &keys(&["org:acme"]), 10)
            .await
            .unwrap()),
        set([graph.works_at.id.as_str()])
    );
    assert_eq!(
        ids(&b
            .graph_edges_touching(&s, &keys(&["org:acme", "person:bob"]), 10)
            .await
            .unwrap()),
        set([graph.works_at.id.as_str(), graph.knows.id.as_str()])
    );
    assert!(b
        .graph_edges_touching(&s, &keys(&["person:nobody"]), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .graph_edges_touching(&s, &[], 10)
        .await
        .unwrap()
        .is_empty());
    assert!(b
        .graph_edges_touching(&as_org(&s, "globex"), &keys(&["person:alice"]), 10)
        .await
        .unwrap()
        .is_empty());
}

both_stores!(list_graph_items_pages_by_kind_oldest_first);
async fn list_graph_items_pages_by_kind_oldest_first(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let empty = b.graph_session("acme", "empty").await;
    let graph = write_graph(&b, &s).await;
    pause().await;
    let carol = entity(
        &s.graph_scope(),
        "person:carol",
        "Carol",
        "person",
        [1.0, 0.0, 0.0],
    );
    b.write_graph_items(&s, std::slice::from_ref(&carol), false)
        .await
        .unwrap();

    let (page1, t1) = b
        .list_graph_items(&s, GraphKind::Entity, 3, 0)
        .await
        .unwrap();
    let (page2, t2) = b
        .list_graph_items(&s, GraphKind::Entity, 3, 3)
        .await
        .unwrap();
    let (page3, t3) = b
        .list_graph_items(&s, GraphKind::Entity, 3, 6)
        .await
        .unwrap();
    assert_eq!((t1, t2, t3), (4, 4, 4));
    assert_eq!((page1.len(), page2.len()), (3, 1));
    assert!(page3.is_empty());
    assert_eq!(
        ids(&page1),
        set([
            graph.alice.id.as_str(),
            graph.acme.id.as_str(),
            graph.bob.id.as_str()
        ])
    );
    assert_eq!(page2[0].id, carol.id, "the newest comes last");
    assert!(page1.iter().chain(&page2).all(|i| i.kind == "entity"));
    assert!(page1[0].created_at < page2[0].created_at);

    let (edges, total) = b
        .list_graph_items(&s, GraphKind::Edge, 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        ids(&edges),
        set([graph.works_at.id.as_str(), graph.knows.id.as_str()])
    );
    let (chunks, total) = b
        .list_graph_items(&s, GraphKind::Chunk, 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(chunks[0].id, graph.chunk.id);
    assert_eq!(chunks[0].text, graph.chunk.text);
    let (summaries, total) = b
        .list_graph_items(&s, GraphKind::Summary, 10, 0)
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(summaries[0].id, graph.summary.id);
    let (none, total) = b
        .list_graph_items(&empty, GraphKind::Entity, 10, 0)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(total, 0);
    assert_eq!(
        b.list_graph_items(&as_org(&s, "globex"), GraphKind::Entity, 10, 0)
            .await
            .unwrap()
            .1,
        0
    );
}

/// A history event's kind, fact id, old text, new text and reason.
type HistoryRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

both_stores!(relationships_have_a_history_like_facts);
async fn relationships_have_a_history_like_facts(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &s).await;
    let events = |history: Vec<memgate::domain::FactHistoryEvent>| -> Vec<HistoryRow> {
        history
            .into_iter()
            .map(|e| (e.event, e.fact_id, e.old_text, e.new_text, e.reason))
            .collect()
    };
    let added = |item: &NewGraphItem| {
        (
            "ADD".to_string(),
            item.id.clone(),
            None,
            Some(item.text.clone()),
            Some("ingest".to_string()),
        )
    };
    // The edges are the session's facts; chunks, summaries and entities are not.
    let (history, total) = b.fact_history(&s, None, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        events(history),
        [added(&graph.works_at), added(&graph.knows)]
    );

    // Seen again with the same wording: nothing happened. With new wording: an UPDATE.
    b.write_graph_items(&s, std::slice::from_ref(&graph.knows), false)
        .await
        .unwrap();
    let reworded = NewGraphItem {
        text: "bob has known alice for years".into(),
        ..graph.knows.clone()
    };
    b.write_graph_items(&s, std::slice::from_ref(&reworded), false)
        .await
        .unwrap();
    assert!(b
        .delete_graph_edge(&s, &graph.works_at.id, false)
        .await
        .unwrap());
    let (history, total) = b.fact_history(&s, None, 10, 2).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(
        events(history),
        [
            (
                "UPDATE".to_string(),
                graph.knows.id.clone(),
                Some(graph.knows.text.clone()),
                Some(reworded.text.clone()),
                Some("ingest".to_string())
            ),
            (
                "DELETE".to_string(),
                graph.works_at.id.clone(),
                Some(graph.works_at.text.clone()),
                None,
                Some("api".to_string())
            ),
        ]
    );

    // Another session's write of the same id is no change of this one's.
    let other = b.graph_session("globex", "graph").await;
    b.write_graph_items(&other, std::slice::from_ref(&reworded), false)
        .await
        .unwrap();
    assert_eq!(b.fact_history(&other, None, 10, 0).await.unwrap().1, 0);
    assert_eq!(b.fact_history(&s, None, 10, 0).await.unwrap().1, 4);
}

both_stores!(delete_graph_edge_takes_the_entities_it_leaves_alone);
async fn delete_graph_edge_takes_the_entities_it_leaves_alone(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &s).await;

    assert!(!b
        .delete_graph_edge(&s, "no-such-edge", false)
        .await
        .unwrap());
    assert!(
        !b.delete_graph_edge(&s, &graph.alice.id, false)
            .await
            .unwrap(),
        "an entity is not an edge"
    );
    assert!(!b
        .delete_graph_edge(&as_org(&s, "globex"), &graph.works_at.id, false)
        .await
        .unwrap());
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Entity).await.len(), 3);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Edge).await.len(), 2);

    // Acme had only this edge; Alice keeps another.
    assert!(b
        .delete_graph_edge(&s, &graph.works_at.id, false)
        .await
        .unwrap());
    assert_eq!(
        b.graph_kind_ids(&s, GraphKind::Edge).await,
        set([graph.knows.id.as_str()])
    );
    assert_eq!(
        b.graph_kind_ids(&s, GraphKind::Entity).await,
        set([graph.alice.id.as_str(), graph.bob.id.as_str()])
    );
    assert!(!b
        .delete_graph_edge(&s, &graph.works_at.id, false)
        .await
        .unwrap());
    assert_eq!(b.session_stats(&s).await.unwrap().fact_count, 1);

    assert!(b
        .delete_graph_edge(&s, &graph.knows.id, false)
        .await
        .unwrap());
    assert!(b.graph_kind_ids(&s, GraphKind::Edge).await.is_empty());
    assert!(b.graph_kind_ids(&s, GraphKind::Entity).await.is_empty());
    // Chunks and summaries are not the graph's nodes: they stay.
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Chunk).await.len(), 1);
    assert_eq!(b.graph_kind_ids(&s, GraphKind::Summary).await.len(), 1);
    assert_eq!(
        b.graph_purge_counts().await.unwrap().pending,
        0,
        "nothing queued without purge_graph"
    );
}

both_stores!(delete_graph_edge_with_purge_queues_the_edge_and_its_orphans);
async fn delete_graph_edge_with_purge_queues_the_edge_and_its_orphans(b: Backend) {
    let s = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &s).await;

    assert!(!b.delete_graph_edge(&s, "no-such-edge", true).await.unwrap());
    assert_eq!(
        b.graph_purge_counts().await.unwrap(),
        GraphPurgeCounts::default()
    );

    assert!(b
        .delete_graph_edge(&s, &graph.knows.id, true)
        .await
        .unwrap());
    assert!(b
        .delete_graph_edge(&s, &graph.works_at.id, true)
        .await
        .unwrap());
    assert_eq!(b.graph_purge_counts().await.unwrap().pending, 2);
    let purges = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    let seen: Vec<_> = purges
        .iter()
        .map(|p| {
            let mut keys = p.entity_keys.clone().expect("entity keys");
            keys.sort();
            (
                p.org_id.clone(),
                p.scope.clone(),
                p.edge_ids.clone(),
                keys,
                p.attempts,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "acme".to_string(),
                s.graph_scope(),
                Some(vec![graph.knows.id.clone()]),
                vec!["person:bob".to_string()],
                1
            ),
            (
                "acme".to_string(),
                s.graph_scope(),
                Some(vec![graph.works_at.id.clone()]),
                vec!["org:acme".to_string(), "person:alice".to_string()],
                1
            ),
        ]
    );
    assert!(b.graph_kind_ids(&s, GraphKind::Entity).await.is_empty());
}

both_stores!(graph_purges_claim_under_a_lease_and_retry_until_done);
async fn graph_purges_claim_under_a_lease_and_retry_until_done(b: Backend) {
    assert_eq!(
        b.graph_purge_counts().await.unwrap(),
        GraphPurgeCounts::default()
    );
    let before = now_ms();
    let edges = vec!["e1".to_string(), "e2".to_string()];
    let keys = vec!["person:alice".to_string()];
    b.enqueue_graph_purge("acme", "1-100", Some(&edges), Some(&keys))
        .await
        .unwrap();
    pause().await;
    b.enqueue_graph_purge("globex", "2-200", None, None)
        .await
        .unwrap();
    let counts = b.graph_purge_counts().await.unwrap();
    assert_eq!(counts.pending, 2);
    let oldest = counts.oldest_ms.expect("oldest");
    assert!((before..now_ms()).contains(&oldest), "{oldest}");

    let first = b.claim_graph_purges(1, SHORT_LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    let acme = first[0].clone();
    assert_eq!(
        (
            acme.org_id.as_str(),
            acme.scope.as_str(),
            acme.edge_ids.as_deref(),
            acme.entity_keys.as_deref(),
            acme.attempts
        ),
        (
            "acme",
            "1-100",
            Some(edges.as_slice()),
            Some(keys.as_slice()),
            1
        )
    );
    let second = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    assert_eq!(second.len(), 1);
    let globex = second[0].clone();
    assert_eq!(
        (
            globex.org_id.as_str(),
            globex.scope.as_str(),
            globex.edge_ids.clone(),
            globex.entity_keys.clone(),
            globex.attempts
        ),
        ("globex", "2-200", None, None, 1)
    );
    assert!(b
        .claim_graph_purges(10, LONG_LEASE)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.graph_purge_counts().await.unwrap().pending,
        2,
        "leased ones count"
    );

    // A lease that runs out makes the purge claimable again.
    tokio::time::sleep(SHORT_LEASE + Duration::from_millis(100)).await;
    let again = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|p| (p.id, p.attempts)).collect::<Vec<_>>(),
        [(acme.id, 2)]
    );
    // A failure waits for its retry time.
    let retry_at = now_ms() + RETRY_IN_MS;
    b.fail_graph_purge(acme.id, "graph server down", retry_at)
        .await
        .unwrap();
    assert!(b
        .claim_graph_purges(10, LONG_LEASE)
        .await
        .unwrap()
        .is_empty());
    sleep_until(retry_at).await;
    let again = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|p| (p.id, p.attempts)).collect::<Vec<_>>(),
        [(acme.id, 3)]
    );
    b.fail_graph_purge(acme.id, "still down", 0).await.unwrap();
    let again = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    assert_eq!(
        again.iter().map(|p| (p.id, p.attempts)).collect::<Vec<_>>(),
        [(acme.id, 4)]
    );

    b.complete_graph_purge(acme.id).await.unwrap();
    let counts = b.graph_purge_counts().await.unwrap();
    assert_eq!(counts.pending, 1);
    b.complete_graph_purge(globex.id).await.unwrap();
    assert_eq!(
        b.graph_purge_counts().await.unwrap(),
        GraphPurgeCounts::default()
    );
    assert!(b
        .claim_graph_purges(10, LONG_LEASE)
        .await
        .unwrap()
        .is_empty());
}

both_stores!(delete_session_with_purge_graph_queues_a_scope_purge);
async fn delete_session_with_purge_graph_queues_a_scope_purge(b: Backend) {
    let g = b.graph_session("acme", "graph").await;
    let quiet = b.graph_session("acme", "quiet").await;
    let m = b.session("acme", "facts").await;
    write_graph(&b, &g).await;
    write_graph(&b, &quiet).await;
    b.add_facts(&m, &[("a fact", E1)]).await;

    // A mem0 session has nothing on a graph server; without purge_graph nothing is queued.
    assert_eq!(
        b.delete_session("acme", "facts", true).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        b.delete_session("acme", "quiet", false).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        b.delete_session("globex", "graph", true).await.unwrap(),
        None
    );
    assert_eq!(b.graph_purge_counts().await.unwrap().pending, 0);

    // A cognee session's count is its edges, and its whole scope is queued.
    assert_eq!(
        b.delete_session("acme", "graph", true).await.unwrap(),
        Some(2)
    );
    assert_eq!(b.graph_purge_counts().await.unwrap().pending, 1);
    let purges = b.claim_graph_purges(10, LONG_LEASE).await.unwrap();
    assert_eq!(purges.len(), 1);
    let p = &purges[0];
    assert_eq!(
        (
            p.org_id.as_str(),
            p.scope.clone(),
            p.edge_ids.clone(),
            p.entity_keys.clone(),
            p.attempts
        ),
        ("acme", g.graph_scope(), None, None, 1)
    );
    for kind in [
        GraphKind::Chunk,
        GraphKind::Summary,
        GraphKind::Entity,
        GraphKind::Edge,
    ] {
        assert!(b.graph_kind_ids(&g, kind).await.is_empty(), "{kind:?}");
        assert!(b.graph_kind_ids(&quiet, kind).await.is_empty(), "{kind:?}");
    }
    let left = b.raw_i64s("SELECT COUNT(*) FROM graph_items", None).await;
    assert_eq!(left, [0]);
}

both_stores!(late_graph_writes_to_a_deleted_session_are_refused);
async fn late_graph_writes_to_a_deleted_session_are_refused(b: Backend) {
    let g = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &g).await;
    assert_eq!(
        b.delete_session("acme", "graph", false).await.unwrap(),
        Some(2)
    );
    let late = b.write_graph_items(&g, &graph.items(), false).await;
    assert!(matches!(late, Err(StoreError::SessionGone(_))), "{late:?}");

    // Not even into a new session of the same name (which SQLite may give the same id).
    pause().await;
    let reborn = b.graph_session("acme", "graph").await;
    let late = b.write_graph_items(&g, &graph.items(), false).await;
    assert!(matches!(late, Err(StoreError::SessionGone(_))), "{late:?}");
    for kind in [GraphKind::Chunk, GraphKind::Entity, GraphKind::Edge] {
        assert!(b.graph_kind_ids(&reborn, kind).await.is_empty(), "{kind:?}");
    }
    let fresh = b
        .write_graph_items(&reborn, &Graph::of(&reborn).items(), false)
        .await
        .unwrap();
    assert_eq!(fresh, vec![true; 7]);
}

both_stores!(writes_racing_a_delete_leave_nothing_behind);
async fn writes_racing_a_delete_leave_nothing_behind(b: Backend) {
    // Each write either lands before the delete (and goes with the session) or is refused;
    // none leaves rows of a deleted session.
    for round in 0..10 {
        let name = format!("race-{round}");
        let m = b.session("acme", &name).await;
        let g = b.graph_session("acme", &format!("{name}-graph")).await;
        let items = Graph::of(&g).items();
        let start = Arc::new(tokio::sync::Barrier::new(4));
        let (store, s1, s2, s3) = (&b.store, start.clone(), start.clone(), start.clone());
        let (facts, deleted, graph, graph_deleted) = tokio::join!(
            async {
                s1.wait().await;
                store
                    .apply_fact_changes(&m, &[add("racing", E1)], "ingest", false)
                    .await
            },
            async {
                s2.wait().await;
                store.delete_session("acme", &name, false).await
            },
            async {
                s3.wait().await;
                store.write_graph_items(&g, &items, false).await
            },
            async {
                start.wait().await;
                store
                    .delete_session("acme", &format!("{name}-graph"), false)
                    .await
            },
        );
        match facts {
            Ok(ids) => assert_eq!(ids.len(), 1),
            Err(StoreError::SessionGone(_)) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        match graph {
            Ok(fresh) => assert_eq!(fresh, vec![true; 7]),
            Err(StoreError::SessionGone(_)) => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
        let deleted = deleted.unwrap().expect("the session was there");
        assert!(deleted <= 1, "{deleted}");
        let graph_deleted = graph_deleted.unwrap().expect("the session was there");
        assert!(graph_deleted == 0 || graph_deleted == 2, "{graph_deleted}");
        for (table, id) in [
            ("facts", m.id),
            ("fact_history", m.id),
            ("graph_items", g.id),
        ] {
            let left = b
                .raw_i64s(
                    &format!("SELECT COUNT(*) FROM {table} WHERE session_id = $1"),
                    Some(id),
                )
                .await;
            assert_eq!(
                left,
                [0],
                "round {round}: {table} kept rows of a deleted session"
            );
        }
    }
}

both_stores!(edge_deletes_racing_graph_writes_orphan_no_edge);
async fn edge_deletes_racing_graph_writes_orphan_no_edge(b: Backend) {
    // Deleting Alice's only edge while a turn attaches a new edge to her: whichever goes
    // first, every edge left has both its entities.
    for round in 0..10 {
        let s = b.graph_session("acme", &format!("race-{round}")).await;
        let scope = s.graph_scope();
        let alice = entity(&scope, "person:alice", "Alice", "person", E2);
        let acme = entity(&scope, "org:acme", "Acme", "organization", E3);
        let bob = entity(&scope, "person:bob", "Bob", "person", E1);
        let works_at = edge(&scope, "person:alice", "works_at", "org:acme", E1);
        let knows = edge(&scope, "person:bob", "knows", "person:alice", E2);
        b.write_graph_items(&s, &[alice.clone(), acme, works_at.clone()], false)
            .await
            .unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let (store, s1) = (&b.store, start.clone());
        let (deleted, written) = tokio::join!(
            async {
                s1.wait().await;
                store.delete_graph_edge(&s, &works_at.id, false).await
            },
            async {
                start.wait().await;
                store
                    .write_graph_items(&s, &[knows.clone(), alice.clone(), bob.clone()], false)
                    .await
            },
        );
        assert!(deleted.unwrap(), "round {round}");
        written.unwrap();
        let entities: BTreeSet<String> = b
            .list_graph_items(&s, GraphKind::Entity, 100, 0)
            .await
            .unwrap()
            .0
            .into_iter()
            .filter_map(|i| i.entity_key)
            .collect();
        let (edges, _) = b
            .list_graph_items(&s, GraphKind::Edge, 100, 0)
            .await
            .unwrap();
        assert_eq!(ids(&edges), set([knows.id.as_str()]), "round {round}");
        for e in &edges {
            for key in [&e.source_key, &e.target_key] {
                let key = key.clone().unwrap();
                assert!(
                    entities.contains(&key),
                    "round {round}: edge {} points at a deleted entity {key}",
                    e.text
                );
            }
        }
        assert!(
            !entities.contains("org:acme"),
            "round {round}: {entities:?}"
        );
    }
}

both_stores!(delete_graph_edge_of_a_deleted_session_is_false);
async fn delete_graph_edge_of_a_deleted_session_is_false(b: Backend) {
    // "`false` when the session has no such edge": a deleted session has none, even when a
    // new session of the same name (on SQLite possibly under the same id) has that edge.
    let g = b.graph_session("acme", "graph").await;
    b.delete_session("acme", "graph", false).await.unwrap();
    pause().await;
    let reborn = b.graph_session("acme", "graph").await;
    let graph = write_graph(&b, &reborn).await;

    let deleted = b
        .delete_graph_edge(&g, &graph.works_at.id, true)
        .await
        .unwrap();
    assert!(
        !deleted,
        "a stale session handle deleted another session's edge"
    );
    assert_eq!(
        b.graph_kind_ids(&reborn, GraphKind::Edge).await,
        set([graph.works_at.id.as_str(), graph.knows.id.as_str()])
    );
    assert_eq!(b.graph_kind_ids(&reborn, GraphKind::Entity).await.len(), 3);
    assert_eq!(b.graph_purge_counts().await.unwrap().pending, 0);
}

both_stores!(graph_item_ids_of_another_session_are_not_taken_over);
async fn graph_item_ids_of_another_session_are_not_taken_over(b: Backend) {
    // Ids carry the session's scope, so two sessions never share one; should a write name
    // another session's id all the same, that row stays as it is and invisible here.
    let a = b.graph_session("acme", "a").await;
    let other = b.graph_session("acme", "b").await;
    let graph = write_graph(&b, &a).await;
    let intruders = [
        NewGraphItem {
            text: "Mallory".into(),
            ..graph.alice.clone()
        },
        NewGraphItem {
            text: "another chunk".into(),
            ..graph.chunk.clone()
        },
    ];
    b.write_graph_items(&other, &intruders, false)
        .await
        .unwrap();
    let (texts, _) = b
        .list_graph_items(&a, GraphKind::Entity, 10, 0)
        .await
        .unwrap();
    assert!(texts.iter().any(|i| i.text == "Alice"));
    assert!(!texts.iter().any(|i| i.text == "Mallory"));
    assert_eq!(
        b.graph_items_by_id(&a, std::slice::from_ref(&graph.chunk.id))
            .await
            .unwrap()[0]
            .item
            .text,
        graph.chunk.text
    );
    for kind in [GraphKind::Chunk, GraphKind::Entity] {
        assert!(b.graph_kind_ids(&other, kind).await.is_empty(), "{kind:?}");
    }
}

both_stores!(graph_item_ids_of_another_session_are_not_reported_new);
async fn graph_item_ids_of_another_session_are_not_reported_new(b: Backend) {
    // "Returns, for each item, whether it was new": a row that was not written was not new.
    let a = b.graph_session("acme", "a").await;
    let other = b.graph_session("acme", "b").await;
    let graph = write_graph(&b, &a).await;
    let fresh = b
        .write_graph_items(&other, &[graph.alice.clone(), graph.chunk.clone()], false)
        .await
        .unwrap();
    assert_eq!(fresh, [false, false]);
}

// ---- erasure and transfer ----

fn text_selection(text: &str) -> ForgetSelection {
    ForgetSelection {
        fact_ids: Vec::new(),
        text: Some(text.into()),
    }
}

both_stores!(forget_takes_matching_facts_turns_and_history_texts_in_one_go);
async fn forget_takes_matching_facts_turns_and_history_texts_in_one_go(b: Backend) {
    let s = b.session("acme", "alice").await;
    let other = b.session("acme", "bob").await;
    let ids = b
        .add_facts(
            &s,
            &[
                ("Lives in Lisbon", E1),
                ("Team in Tokyo", E2),
                ("Likes tea", E3),
            ],
        )
        .await;
    // A fact once about Lisbon, reworded since: its history still holds the word.
    b.apply_fact_changes(
        &s,
        &[update(&ids[2], "Likes green tea", E3)],
        "ingest",
        false,
    )
    .await
    .unwrap();
    b.add_facts(&other, &[("Lives in Lisbon", E1)]).await;
    let mut turn = payload("alice");
    turn.messages = vec![TurnMessage {
        role: "user".into(),
        content: "I moved to LISBON".into(),
    }];
    b.enqueue_turn("lisbon-turn", "acme", s.id, &turn)
        .await
        .unwrap();
    b.enqueue("quiet-turn", &s).await;

    let preview = b
        .forget(&s, &text_selection("lisbon"), false, true)
        .await
        .unwrap();
    assert_eq!(preview.facts, vec![ids[0].clone()]);
    assert_eq!(preview.turns, vec!["lisbon-turn".to_string()]);
    assert_eq!(
        b.fact_texts(&s).await.len(),
        3,
        "a dry run changed something"
    );

    let selection = ForgetSelection {
        fact_ids: vec![ids[1].clone(), "nope".into()],
        text: Some("lisbon".into()),
    };
    let receipt = b.forget(&s, &selection, false, false).await.unwrap();
    assert_eq!(receipt.facts, vec![ids[0].clone(), ids[1].clone()]);
    assert_eq!(receipt.turns, vec!["lisbon-turn".to_string()]);
    assert_eq!(receipt.not_found, vec!["nope".to_string()]);
    // The ADDs of both facts; nothing else held the text.
    assert_eq!(receipt.history_events_erased, 2);
    assert_eq!(b.fact_texts(&s).await, vec!["Likes green tea".to_string()]);
    assert_eq!(
        b.fact_texts(&other).await,
        vec!["Lives in Lisbon".to_string()]
    );
    assert!(b
        .nearest(&s, &E1, 5, None)
        .await
        .unwrap()
        .iter()
        .all(|n| n.fact_id != ids[0]));
    let terms = vec!["lisbon".to_string()];
    assert!(b
        .keyword_search(&s, &terms, 5, None)
        .await
        .unwrap()
        .is_empty());
    let (history, _) = b.fact_history(&s, None, 50, 0).await.unwrap();
    for event in &history {
        let texts = format!("{:?} {:?}", event.old_text, event.new_text);
        assert!(
            !texts.contains("Lisbon") && !texts.contains("Tokyo"),
            "{event:?}"
        );
    }
    assert_eq!(
        history
            .iter()
            .filter(|e| e.reason.as_deref() == Some("forget"))
            .count(),
        2
    );
    assert_eq!(b.outbox_counts().await.unwrap().pending, 1);
    let receipt = b
        .turn_receipt("acme", "lisbon-turn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.state, TurnState::Dropped, "{receipt:?}");

    // A matching turn under a live lease is being ingested: refused, nothing changed.
    let mut turn = payload("alice");
    turn.messages = vec![TurnMessage {
        role: "user".into(),
        content: "Green tea in the morning".into(),
    }];
    b.enqueue_turn("tea-turn", "acme", s.id, &turn)
        .await
        .unwrap();
    b.claim_outbox(10, LONG_LEASE).await.unwrap();
    let busy = b
        .forget(&s, &text_selection("green tea"), false, false)
        .await;
    assert!(matches!(busy, Err(StoreError::Busy(_))), "{busy:?}");
    assert_eq!(b.fact_texts(&s).await, vec!["Likes green tea".to_string()]);
}

both_stores!(forget_in_a_graph_takes_an_entity_with_its_relationships_and_orphans);
async fn forget_in_a_graph_takes_an_entity_with_its_relationships_and_orphans(b: Backend) {
    let s = b.graph_session("acme", "g").await;
    let graph = write_graph(&b, &s).await;
    // Bob goes, with the one relationship he is in and the texts naming him; Alice and Acme
    // are still joined by theirs.
    let receipt = b
        .forget(&s, &text_selection("BOB"), true, false)
        .await
        .unwrap();
    assert_eq!(receipt.entities, vec![graph.bob.id.clone()]);
    assert_eq!(receipt.facts, vec![graph.knows.id.clone()]);
    assert_eq!(receipt.chunks, vec![graph.chunk.id.clone()]);
    assert_eq!(receipt.summaries, vec![graph.summary.id.clone()]);
    assert_eq!(
        b.graph_kind_ids(&s, GraphKind::Entity).await,
        set([graph.alice.id.as_str(), graph.acme.id.as_str()])
    );
    assert_eq!(
        b.graph_kind_ids(&s, GraphKind::Edge).await,
        set([graph.works_at.id.as_str()])
    );
    // Its history says it was forgotten, and the texts that named Bob are gone.
    let (history, _) = b.fact_history(&s, None, 50, 0).await.unwrap();
    assert!(history
        .iter()
        .any(|e| e.fact_id == graph.knows.id && e.reason.as_deref() == Some("forget")));
    assert!(history
        .iter()
        .all(|e| !format!("{:?}{:?}", e.old_text, e.new_text).contains("bob")));
    // The graph server is told, in the same transaction.
    assert_eq!(b.graph_purge_counts().await.unwrap().pending, 1);
    // Forgetting the last relationship by id leaves no entity behind.
    let by_id = ForgetSelection {
        fact_ids: vec![graph.works_at.id.clone()],
        text: None,
    };
    let receipt = b.forget(&s, &by_id, false, false).await.unwrap();
    assert_eq!(receipt.facts, vec![graph.works_at.id.clone()]);
    assert_eq!(receipt.entities.len(), 2, "{receipt:?}");
    assert!(b.graph_kind_ids(&s, GraphKind::Entity).await.is_empty());
}

both_stores!(an_import_keeps_ids_history_and_refuses_taken_ones);
async fn an_import_keeps_ids_history_and_refuses_taken_ones(b: Backend) {
    let s = b.session("acme", "src").await;
    let ids = b
        .add_facts(&s, &[("Lives in Lisbon", E1), ("Team in Tokyo", E2)])
        .await;
    let facts = b.export_facts(&s, None, 1).await.unwrap();
    assert_eq!(facts.len(), 1);
    let rest = b.export_facts(&s, Some(&facts[0].id), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    let mut exported = facts.clone();
    exported.extend(rest);
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    assert_eq!(
        exported.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        sorted_ids
    );
    assert_eq!(exported[0].embedding.len(), DIMS);
    let (history, _) = b.fact_history(&s, None, 10, 0).await.unwrap();
    let import = SessionImport {
        memory_id: "copy".into(),
        engine: EngineKind::Mem0,
        config: SessionConfig::default(),
        facts: exported.clone(),
        graph_items: Vec::new(),
        history: history
            .iter()
            .map(|e| ExportedHistory {
                fact_id: e.fact_id.clone(),
                event: e.event.clone(),
                old_text: e.old_text.clone(),
                new_text: e.new_text.clone(),
                reason: e.reason.clone(),
                redacted: true,
                created_at: e.created_at,
            })
            .collect(),
    };
    // The ids are the source session's: refused, and nothing written.
    let taken = b.import_session("acme", &import).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert!(b.find_session("acme", "copy").await.unwrap().is_none());
    b.delete_session("acme", "src", false).await.unwrap();
    let copy = b.import_session("globex", &import).await.unwrap();
    assert_eq!(copy.org_id, "globex");
    let (listed, total) = b.list_facts(&copy, None, 10, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        listed
            .iter()
            .map(|f| (f.id.clone(), f.text.clone(), f.created_at))
            .collect::<Vec<_>>(),
        exported
            .iter()
            .map(|f| (f.id.clone(), f.text.clone(), f.created_at))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        b.nearest(&copy, &E2, 1, None).await.unwrap()[0].fact_id,
        exported[1].id
    );
    let (restored, _) = b.fact_history(&copy, None, 10, 0).await.unwrap();
    assert_eq!(restored.len(), history.len());
    assert!(restored.iter().all(|e| e.redacted));
    assert_eq!(b.session_stats(&copy).await.unwrap().fact_count, 2);
    let again = b.import_session("globex", &import).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}
