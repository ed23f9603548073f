//! Ingestion cost as a session grows, on each store: the p50 of an ingest while the session
//! holds about 100 facts beside the p50 at about 10,000.
//!
//! Two figures per size. `store` is what ingestion asks of the store for one new fact — the
//! dedup lookup of its nearest facts and the write — with vectors computed up front, so that
//! growth is not hidden behind the model. `ingest` is the whole of `FactsEngine::ingest` for
//! a one-sentence turn (extraction off, the local model embedding it), as the worker runs it.
//!
//! ```sh
//! bash scripts/install-model.sh
//! cargo bench --bench ingest                                  # the embedded store
//! INGEST_STORE=postgres://postgres@127.0.0.1/empty cargo bench --bench ingest
//! ```

#[path = "support/local_engine.rs"]
mod local_engine;

use local_engine::LocalEngine;

use std::time::{Duration, Instant};

use memgate::domain::usage::{CallScope, Purpose};
use memgate::domain::{now_ms, EngineKind, FactChange, Session, SessionConfig, TurnMessage};
use memgate::store::{FactStore, SessionStore};

const SMALL: usize = 100;
const LARGE: usize = 10_000;
/// Ingests timed at each size.
const SAMPLES: usize = 100;

/// Distinct facts, several words of each their own, so that dedup keeps them all.
fn facts(n: usize) -> Vec<String> {
    let people = [
        "Amara", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
        "Keiko", "Lars", "Mei", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
    ];
    let doings = [
        "booked a table at",
        "borrowed a ladder from",
        "ran a 10k past",
        "painted a mural near",
        "lost an umbrella at",
        "proposed a merger with",
        "filmed a documentary about",
        "sold a bicycle outside",
        "fixed the printer at",
        "planted tulips behind",
    ];
    let places = [
        "the harbour",
        "the old library",
        "the cathedral",
        "the night market",
        "the tram depot",
        "the botanical garden",
        "the ice rink",
        "the bakery",
        "the observatory",
        "the vineyard",
    ];
    let months = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    (0..n)
        .map(|i| {
            let p = people[i % people.len()];
            let d = doings[(i / people.len()) % doings.len()];
            let w = places[(i / (people.len() * doings.len())) % places.len()];
            let m = months[(i / 2000) % months.len()];
            format!("{p} {d} {w} in {m} {}, ticket {i}.", 1990 + i % 37)
        })
        .collect()
}

fn p50(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

impl LocalEngine {
    async fn session(&self, name: &str) -> Session {
        self.store
            .create_session("bench", name, EngineKind::Mem0, &SessionConfig::default())
            .await
            .expect("session")
    }

    /// The session as ingestion sees it: reloaded, so its stored-fact count is current.
    async fn reload(&self, session: &Session) -> Session {
        self.store
            .find_session(&session.org_id, &session.memory_id)
            .await
            .expect("find")
            .expect("session exists")
    }

    /// What ingestion asks of the store for one fact: its neighbours (dedup), then the write.
    async fn store_one(&self, session: &Session, text: &str, embedding: &[f32]) -> Duration {
        let started = Instant::now();
        let fresh_since = session.config.fresh_since(now_ms());
        let near = self
            .store
            .nearest(session, embedding, 5, fresh_since)
            .await
            .expect("nearest");
        std::hint::black_box(near);
        let change = FactChange::Add {
            text: text.to_string(),
            embedding: embedding.to_vec(),
        };
        self.store
            .apply_fact_changes(session, &[change], "bench", false)
            .await
            .expect("write");
        started.elapsed()
    }

    /// The times of the turns that added a fact (a merged one writes nothing, which would
    /// flatter the larger session), and how many did.
    async fn ingest_turns(&self, session: &Session, texts: &[String]) -> (Vec<Duration>, usize) {
        let mut taken = Vec::with_capacity(texts.len());
        let mut added = 0;
        for text in texts {
            let session = self.reload(session).await;
            let message = TurnMessage {
                role: "user".into(),
                content: text.clone(),
            };
            // Redaction is measured on its own (benches/redaction.rs).
            let turn = self
                .redactor
                .redact_turn(self.redactor.rules(None), vec![message])
                .await;
            let started = Instant::now();
            let events = self.engine.ingest(&session, &turn).await.expect("ingest");
            let elapsed = started.elapsed();
            assert_eq!(events.len(), 1, "{text}: {events:?}");
            if events[0].event == "ADD" {
                taken.push(elapsed);
                added += 1;
            }
        }
        (taken, added)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("INGEST_STORE")
        .unwrap_or_else(|_| format!("sqlite://{}", scratch.path().join("ingest.db").display()));
    let bench = local_engine::start(&url).await;
    let all = facts(LARGE + 2 * SAMPLES);
    let started = Instant::now();
    let session = bench.session("growing").await;
    let vectors = bench
        .embedder
        .embed(
            CallScope::of(&session),
            Purpose::FactEmbedding,
            &all[..LARGE],
        )
        .await
        .expect("embed");
    eprintln!(
        "embedded {} facts up front in {:.1} s",
        LARGE,
        started.elapsed().as_secs_f64()
    );
    let turns_small = &all[LARGE..LARGE + SAMPLES];
    let turns_large = &all[LARGE + SAMPLES..];

    let mut store_small = Vec::new();
    let mut store_large = Vec::new();
    let mut ingest_small = (Vec::new(), 0);
    for (i, (text, vector)) in all[..LARGE].iter().zip(&vectors).enumerate() {
        // Reloaded now and then, as the worker reads the session row once per turn.
        let current = if i % 500 == 0 || !(SMALL..LARGE - SAMPLES).contains(&i) {
            bench.reload(&session).await
        } else {
            session.clone()
        };
        let taken = bench.store_one(&current, text, vector).await;
        if i < SMALL {
            store_small.push(taken);
        } else if i >= LARGE - SAMPLES {
            store_large.push(taken);
        }
        if i + 1 == SMALL {
            ingest_small = bench.ingest_turns(&session, turns_small).await;
        }
    }
    let ingest_large = bench.ingest_turns(&session, turns_large).await;

    let (s100, s10k) = (p50(store_small), p50(store_large));
    let (added_small, added_large) = (ingest_small.1, ingest_large.1);
    let (i100, i10k) = (p50(ingest_small.0), p50(ingest_large.0));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "store {}: p50 over {SAMPLES} ingests",
        url.split(':').next().unwrap_or_default()
    );
    println!("| | ~{SMALL} facts | ~{LARGE} facts | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| store (dedup lookup + write) | {:.3} ms | {:.3} ms | {:.2} |",
        ms(s100),
        ms(s10k),
        ms(s10k) / ms(s100)
    );
    println!(
        "| ingest (FactsEngine::ingest, one new sentence) | {:.3} ms | {:.3} ms | {:.2} |",
        ms(i100),
        ms(i10k),
        ms(i10k) / ms(i100)
    );
    println!(
        "(ingest p50 over the turns that added a fact: {added_small} of {SAMPLES} at ~{SMALL}, {added_large} of {SAMPLES} at ~{LARGE}; the rest merged into a near-identical stored fact)"
    );
}
