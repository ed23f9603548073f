//! Where vectors come from: the gateway's embeddings endpoint, or all-MiniLM-L6-v2 in process
//! (`embeddings.provider`). The engines call [`Embedder::embed`] and never know which.

pub mod bert;
pub mod local;

use std::sync::Arc;

use crate::config::{EmbeddingProvider, EmbeddingsConfig};
use crate::domain::usage::{CallScope, Provider, Purpose, UsageEvent};
use crate::error::LlmError;
use crate::llm::LlmClient;
use crate::usage::UsageSink;
use local::{InferencePool, LocalModel, QueryCache};

#[derive(Clone)]
pub enum Embedder {
    Gateway(Box<LlmClient>),
    Local(Arc<LocalEmbedder>),
}

/// The local model's pool and query cache, and the sink its work is accounted to.
pub struct LocalEmbedder {
    pool: InferencePool,
    queries: QueryCache,
    usage: UsageSink,
}

impl Embedder {
    /// The configured provider; loading the local model reads and checks ~90 MB, so it runs
    /// on a blocking thread.
    pub async fn start(
        config: &EmbeddingsConfig,
        llm: &LlmClient,
        usage: UsageSink,
    ) -> Result<Self, String> {
        match config.provider {
            EmbeddingProvider::Gateway => Ok(Self::Gateway(Box::new(llm.clone()))),
            EmbeddingProvider::Local => {
                let dir = config.model_dir();
                let model = tokio::task::spawn_blocking(move || LocalModel::load(&dir))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let pool = InferencePool::start(model, config.threads(), config.queue)
                    .map_err(|e| format!("cannot start the embedding threads: {e}"))?;
                Ok(Self::Local(Arc::new(LocalEmbedder {
                    pool,
                    queries: QueryCache::new(config.query_cache),
                    usage,
                })))
            }
        }
    }

    /// One vector per text, in order.
    pub async fn embed(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        match self {
            Self::Gateway(llm) => llm.embed(scope, purpose, texts).await,
            Self::Local(local) => local.embed(scope, purpose, texts).await,
        }
    }
}

impl LocalEmbedder {
    async fn embed(
        &self,
        scope: CallScope<'_>,
        purpose: Purpose,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let query = purpose == Purpose::QueryEmbedding;
        if let ([text], true) = (texts, query) {
            if let Some(hit) = self.queries.get(text) {
                return Ok(vec![hit.as_ref().clone()]);
            }
        }
        // Bulk work goes in jobs of one forward pass each, so a query never waits behind more
        // than one batch per thread.
        let local_error = |e: local::InferenceError| LlmError::Local(e.to_string());
        let answers = texts
            .chunks(local::BATCH)
            .map(|chunk| self.pool.submit(chunk.to_vec(), query))
            .collect::<Result<Vec<_>, _>>()
            .map_err(local_error)?;
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0;
        for answer in answers {
            let (part, part_tokens) = answer.wait().await.map_err(local_error)?;
            vectors.extend(part);
            tokens += part_tokens;
        }
        if query {
            if let ([text], [vector]) = (texts, vectors.as_slice()) {
                self.queries.insert(text, Arc::new(vector.clone()));
            }
        }
        self.usage.record(UsageEvent::new(
            scope,
            purpose,
            Provider::Local,
            local::MODEL_NAME,
            tokens,
            0,
        ));
        Ok(vectors)
    }
}
