//! Platform spend: token usage of internal calls, per org. Recording never blocks the caller:
//! events go through a bounded channel to a writer that stores them in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::usage::{Purpose, UsageEvent};
use crate::store::Store;
use crate::store::UsageStore;

#[derive(Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageEvent>,
    dropped: Arc<AtomicU64>,
    tokens: Arc<TokenCounters>,
}

/// Tokens of internal calls by purpose, prompt and completion, since start (for metrics).
#[derive(Debug, Default)]
pub struct TokenCounters {
    prompt: [AtomicU64; Purpose::ALL.len()],
    completion: [AtomicU64; Purpose::ALL.len()],
}

impl TokenCounters {
    fn add(&self, e: &UsageEvent) {
        let i = e.purpose as usize;
        self.prompt[i].fetch_add(e.prompt_tokens.max(0) as u64, Ordering::Relaxed);
        self.completion[i].fetch_add(e.completion_tokens.max(0) as u64, Ordering::Relaxed);
    }

    /// (purpose, prompt tokens, completion tokens) for each purpose.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        Purpose::ALL
            .iter()
            .map(|p| {
                let i = *p as usize;
                (
                    p.as_str(),
                    self.prompt[i].load(Ordering::Relaxed),
                    self.completion[i].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

const CHANNEL_CAPACITY: usize = 10_000;
const BATCH: usize = 256;
/// How long a write waits for more events after the first: spend shows up this much later.
const LINGER: std::time::Duration = std::time::Duration::from_millis(100);

impl UsageSink {
    /// The sink, and the writer that must be spawned to drain it.
    pub fn new(store: Store) -> (Self, UsageWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Self {
                tx,
                dropped: dropped.clone(),
                tokens: Arc::default(),
            },
            UsageWriter { rx, store },
        )
    }

    pub fn record(&self, event: UsageEvent) {
        self.tokens.add(&event);
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn tokens(&self) -> &TokenCounters {
        &self.tokens
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub struct UsageWriter {
    rx: mpsc::Receiver<UsageEvent>,
    store: Store,
}

impl UsageWriter {
    /// Runs until every sink is dropped, writing what is left before it returns.
    pub fn spawn(mut self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while self.rx.recv_many(&mut batch, BATCH).await > 0 {
                // Events come one per request; writing each alone costs the store a
                // transaction per request (and, on SQLite, every reader its page cache). The
                // writer sleeps instead of waiting on the channel, so only the first event of
                // a batch wakes it: a wake-up per event is a cross-thread signal on the
                // proxy's hot path.
                tokio::time::sleep(LINGER).await;
                loop {
                    while batch.len() < BATCH {
                        match self.rx.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    let full = batch.len() == BATCH;
                    if let Err(e) = self.store.record_usage(&batch).await {
                        tracing::error!(error = %e, lost = batch.len(), "cannot record platform spend");
                    }
                    batch.clear();
                    if !full {
                        break;
                    }
                }
            }
        })
    }
}
