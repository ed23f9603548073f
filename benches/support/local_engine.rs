//! The mem0 engine as the benches run it: on the store at `url` (migrated), with the local
//! embedding model and extraction off, so that no call leaves the process.

use memgate::config::{Config, EmbeddingProvider};
use memgate::embed::Embedder;
use memgate::llm::LlmClient;
use memgate::memory::facts::FactsEngine;
use memgate::redaction::Redactor;
use memgate::store::Store;
use memgate::usage::UsageSink;

pub struct LocalEngine {
    pub store: Store,
    pub engine: FactsEngine,
    pub embedder: Embedder,
    /// The server's default redaction, which every turn goes through before ingestion.
    pub redactor: Redactor,
}

pub async fn start(url: &str) -> LocalEngine {
    let mut config = Config::default();
    config.storage.url = url.parse().expect("store url");
    config.embeddings.provider = EmbeddingProvider::Local;
    config.extraction.enabled = false;
    let store = Store::connect(&config.storage, config.embeddings.dimensions())
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    store
        .check_embeddings(config.embeddings.model(), config.embeddings.dimensions())
        .await
        .expect("embeddings");
    let (usage, writer) = UsageSink::new(store.clone());
    writer.spawn();
    let llm = LlmClient::new(&config, usage.clone()).expect("client");
    let embedder = Embedder::start(&config.embeddings, &llm, usage)
        .await
        .expect("local model: run `bash scripts/install-model.sh`");
    let engine = FactsEngine::new(
        store.clone(),
        llm,
        embedder.clone(),
        config.extraction.clone(),
        &config.memory,
    );
    LocalEngine {
        store,
        engine,
        embedder,
        redactor: Redactor::new(&config.memory.redaction).expect("redaction"),
    }
}
