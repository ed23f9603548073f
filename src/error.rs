//! Errors by domain: the store, the internal model calls, the graph server and the engines
//! that combine them. None of them knows HTTP; `http_error.rs` turns them into answers.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("memory session `{0}` was deleted")]
    SessionGone(String),
    #[error("embeddings changed: {0}")]
    EmbeddingsChanged(String),
    /// The write would race with work in progress (a turn being ingested right now).
    #[error("{0}")]
    Busy(String),
}

impl StoreError {
    /// The write named a session that no longer exists (deleted since it was looked up): a
    /// fact about the request, not a failing store.
    pub fn is_session_gone(&self) -> bool {
        match self {
            StoreError::SessionGone(_) => true,
            StoreError::Database(sqlx::Error::Database(db)) => db.is_foreign_key_violation(),
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("upstream request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The same, over Pingora's client (query embeddings).
    #[error("upstream request failed: {0}")]
    Connection(String),
    #[error("upstream answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("upstream answer is not what was asked for: {0}")]
    Decode(String),
    #[error("{0}")]
    Local(String),
}

/// The graph server (Bolt) failing; the relational store's errors stay [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("graph server: {0}")]
    Server(String),
    #[error("graph server did not answer within {0} ms")]
    Timeout(u64),
    #[error("graph server answer: {0}")]
    Decode(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Graph(GraphError),
}

impl From<GraphError> for MemoryError {
    fn from(e: GraphError) -> Self {
        match e {
            GraphError::Store(s) => MemoryError::Store(s),
            other => MemoryError::Graph(other),
        }
    }
}
