//! The local embedding model (all-MiniLM-L6-v2 on candle): one short query, the unit of
//! retrieval, and a batch of 32 facts, the unit of ingestion; beside tokenizing alone (the
//! floor under any forward pass) and a query-cache hit (what a repeated query costs).
//!
//! bash scripts/install-model.sh && cargo bench --bench embedding

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memgate::embed::local::{LocalModel, QueryCache};

fn model_dir() -> PathBuf {
    std::env::var_os("MEMGATE_EMBEDDINGS__MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/memgate-model/all-minilm-l6-v2")
        })
}

fn facts() -> Vec<String> {
    let subjects = ["My sister", "Our team lead", "The user", "My partner"];
    let doings = [
        "moved to Lisbon last spring",
        "prefers summaries under 200 words",
        "is allergic to peanuts and shellfish",
        "runs the Berlin half marathon every September",
        "adopted a beagle named Max in 2021",
        "works on the Q3 APAC analysis with the finance team",
        "drinks two cups of green tea before noon",
        "is learning Spanish with a tutor on Tuesdays",
    ];
    subjects
        .iter()
        .flat_map(|s| doings.iter().map(move |d| format!("{s} {d}.")))
        .collect()
}

fn embedding(c: &mut Criterion) {
    let model = LocalModel::load(&model_dir()).expect("run `bash scripts/install-model.sh`");
    let query = vec!["Where did my sister move to last year?".to_string()];
    let batch = facts();
    assert_eq!(batch.len(), 32);

    let mut group = c.benchmark_group("embedding");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tokenize one query (floor)", |b| {
        b.iter(|| model.tokenize(black_box(&query)).unwrap())
    });
    group.bench_function("one query (11 tokens)", |b| {
        b.iter(|| model.embed(black_box(&query)).unwrap())
    });
    let cache = QueryCache::new(4096);
    let (vectors, _) = model.embed(&query).unwrap();
    cache.insert(&query[0], Arc::new(vectors[0].clone()));
    group.bench_function("one query, cached", |b| {
        b.iter(|| cache.get(black_box(&query[0])).unwrap())
    });
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("batch of 32 facts", |b| {
        b.iter(|| model.embed(black_box(&batch)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = embedding
}
criterion_main!(benches);
