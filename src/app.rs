//! Everything a request handler, the admin API and the worker share, built once at start.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::embed::Embedder;
use crate::graph_server::BoltGraph;
use crate::journal::TurnJournal;
use crate::llm::LlmClient;
use crate::memory::engine::{EmbeddingModel, Engines};
use crate::memory::facts::FactsEngine;
use crate::memory::graph::GraphEngine;
use crate::memory::session_cache::SessionCache;
use crate::metrics::Metrics;
use crate::redaction::Redactor;
use crate::shutdown::Drain;
use crate::store::OutboxStore;
use crate::store::Store;
use crate::usage::{UsageSink, UsageWriter};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] crate::error::StoreError),
    #[error("internal client: {0}")]
    Client(String),
    #[error("local embeddings: {0}")]
    Embeddings(String),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("redaction: {0}")]
    Redaction(String),
}

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub auth: Authenticator,
    pub engine: Engines,
    pub metrics: Metrics,
    pub usage: UsageSink,
    /// Wakes the ingest worker as soon as a turn is in the outbox.
    pub outbox_ready: Notify,
    /// What a SIGTERM waits for: requests in flight and outbox rows being ingested.
    pub drain: Drain,
    /// Finished turns the store could not take, until it can.
    pub journal: TurnJournal,
    /// When a finished turn's outbox write last failed (ms), so that the turns right after
    /// go to the journal without waiting on the store.
    pub outbox_failed_at_ms: AtomicI64,
    /// Sessions as the proxy last looked them up, for at most `memory.session_cache_ttl_ms`.
    pub sessions: SessionCache,
    /// What every turn loses before it is kept or sent to a model.
    pub redactor: Redactor,
}

impl AppState {
    /// Connects the store (migrating it if configured) and builds the shared state. The usage
    /// writer is returned to be spawned on the runtime that will own it.
    pub async fn init(config: Config) -> Result<(Arc<Self>, UsageWriter), StartError> {
        let auth = Authenticator::from_config(&config.auth, &config.upstream)?;
        let store = Store::connect(&config.storage, config.embeddings.dimensions()).await?;
        if config.storage.migrate_on_start {
            store.migrate().await?;
        }
        store
            .check_embeddings(config.embeddings.model(), config.embeddings.dimensions())
            .await?;
        let freed = store.release_stale_leases().await?;
        if freed > 0 {
            tracing::warn!(
                turns = freed,
                "turns claimed by a process that did not finish them are queued again"
            );
        }
        let journal =
            TurnJournal::open(&config.worker.journal_path, config.worker.journal_max_bytes)?;
        if journal.pending() > 0 {
            tracing::warn!(turns = journal.pending(), path = %config.worker.journal_path.display(), "turns waiting in the journal from an earlier run; replaying them");
        }
        let (usage, usage_writer) = UsageSink::new(store.clone());
        let llm = LlmClient::new(&config, usage.clone()).map_err(StartError::Client)?;
        let embedder = Embedder::start(&config.embeddings, &llm, usage.clone())
            .await
            .map_err(StartError::Embeddings)?;
        let bolt = match &config.graph.url {
            Some(url) => Some(
                BoltGraph::new(url, &config.graph)
                    .await
                    .map_err(|e| StartError::Client(format!("graph: {e}")))?,
            ),
            None => None,
        };
        let engine = Engines {
            facts: FactsEngine::new(
                store.clone(),
                llm.clone(),
                embedder.clone(),
                config.extraction.clone(),
                &config.memory,
            ),
            graph: GraphEngine::new(store.clone(), llm, embedder.clone(), bolt),
            store: store.clone(),
            embedder,
            embedding_model: EmbeddingModel {
                name: config.embeddings.model().to_string(),
                dimensions: config.embeddings.dimensions(),
            },
        };
        let redactor = Redactor::new(&config.memory.redaction).map_err(StartError::Redaction)?;
        let sessions = SessionCache::new(Duration::from_millis(config.memory.session_cache_ttl_ms));
        Ok((
            Arc::new(Self {
                config,
                store,
                auth,
                engine,
                metrics: Metrics::default(),
                usage,
                outbox_ready: Notify::new(),
                drain: Drain::default(),
                journal,
                outbox_failed_at_ms: AtomicI64::new(i64::MIN),
                sessions,
                redactor,
            }),
            usage_writer,
        ))
    }
}
