//! Finished turns that could not be written to the outbox because the store was down. Each
//! is appended to a local journal file (one JSON line, synced to disk before the request's
//! task ends) and written to the outbox once the store answers again; the outbox is
//! idempotent on the turn's key, so a replay cut short by a crash writes nothing twice.
//!
//! Turns go to the file at once rather than into a memory buffer first: a process killed
//! during a store outage would lose whatever a buffer held, and the outage is when writes
//! are rare enough for a sync each. What stays in memory is bounded: a count, and the file's
//! size, capped by `worker.journal_max_bytes` (a turn over the cap is refused and counted).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::outbox::{TurnOutcome, TurnPayload};
use crate::domain::EngineKind;
use crate::redaction::Redactor;
use crate::store::Store;
use crate::store::{OutboxStore, SessionStore};

/// A turn whose answer the client has in full (or is about to): it must be stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishedTurn {
    pub idempotency_key: String,
    pub org_id: String,
    /// `None` when the session could not be looked up while the request was served (the
    /// store failed or was slow): it is resolved by (`org_id`, `payload.memory_id`) at replay.
    pub session_id: Option<i64>,
    /// With an unresolved session, the request did not say `store_memory`: the session's own
    /// `store_memory` decides once it is known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unless_session_declines: bool,
    pub payload: TurnPayload,
}

/// What a replay did with the turns it took from the journal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Written to the outbox.
    pub written: usize,
    /// Dropped because their session does not exist: never created, or deleted meanwhile.
    pub dropped: usize,
    /// Not stored because their session turned out to have `store_memory` off.
    pub declined: usize,
}

impl Replayed {
    fn taken(&self) -> usize {
        self.written + self.dropped + self.declined
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("turn journal {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("turn journal {0} is full ({1} bytes)")]
    Full(String, u64),
}

#[derive(Debug)]
pub struct TurnJournal {
    path: PathBuf,
    max_bytes: u64,
    /// Serialises appends and replays, which rewrite the file.
    file_lock: Mutex<()>,
    pending: AtomicU64,
    bytes: AtomicU64,
}

impl TurnJournal {
    /// Opens the journal at `path`, counting what an earlier process left in it. The file
    /// is created on the first append, so a read-only deployment that never needs it works.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, JournalError> {
        let journal = Self {
            path: path.to_path_buf(),
            max_bytes,
            file_lock: Mutex::new(()),
            pending: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let (entries, bytes) = journal.read_entries()?;
        journal
            .pending
            .store(entries.len() as u64, Ordering::Relaxed);
        journal.bytes.store(bytes, Ordering::Relaxed);
        Ok(journal)
    }

    /// Turns waiting in the journal.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends a turn and syncs it to disk.
    pub async fn append(&self, entry: &FinishedTurn) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| self.io(e.into()))?;
        line.push(b'\n');
        let _guard = self.file_lock.lock().await;
        let size = self.bytes() + line.len() as u64;
        if size > self.max_bytes {
            return Err(JournalError::Full(
                self.path.display().to_string(),
                self.max_bytes,
            ));
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .map_err(|e| self.io(std::io::Error::other(e)))?
        .map_err(|e| self.io(e))?;
        self.bytes.store(size, Ordering::Relaxed);
        self.pending.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes journaled turns to the outbox, oldest first, until the store fails; keeps the
    /// rest. A turn whose session was unknown is resolved here; `auto_create` is the engine
    /// sessions are created with on first use, when they are.
    ///
    /// A turn whose session was unknown was redacted by the server's settings only; it is
    /// redacted by its session's before it is written to the outbox.
    pub async fn replay(
        &self,
        store: &Store,
        auto_create: Option<EngineKind>,
        redactor: &Redactor,
    ) -> Result<Replayed, JournalError> {
        let _guard = self.file_lock.lock().await;
        let (entries, _) = self.read_entries()?;
        let mut replayed = Replayed::default();
        for entry in &entries {
            let reason = match replay_one(store, auto_create, redactor, entry).await {
                Ok(Fate::Written) => {
                    replayed.written += 1;
                    continue;
                }
                Ok(Fate::NoSession) => {
                    tracing::warn!(org = %entry.org_id, memory_id = %entry.payload.memory_id, request_id = entry.payload.request_id.as_deref().unwrap_or("-"), "journaled turn dropped: its session does not exist");
                    replayed.dropped += 1;
                    "the session does not exist"
                }
                Ok(Fate::Declined) => {
                    replayed.declined += 1;
                    "the session's store_memory setting is off"
                }
                Err(e) => {
                    tracing::debug!(error = %e, "store still unavailable; journal kept");
                    break;
                }
            };
            let outcome = TurnOutcome::Dropped {
                reason: reason.to_string(),
            };
            let settled = store
                .settle_turn(
                    &entry.idempotency_key,
                    &entry.org_id,
                    &entry.payload.memory_id,
                    &outcome,
                )
                .await;
            if let Err(e) = settled {
                tracing::warn!(error = %e, "cannot keep a dropped turn's receipt");
            }
        }
        if replayed.taken() > 0 {
            self.rewrite(&entries[replayed.taken()..])?;
        }
        Ok(replayed)
    }

    /// The `memory_id` of the org's turn `turn_id` when it is waiting in the journal.
    pub async fn find(&self, org_id: &str, turn_id: &str) -> Result<Option<String>, JournalError> {
        if self.pending() == 0 {
            return Ok(None);
        }
        let _guard = self.file_lock.lock().await;
        let (entries, _) = self.read_entries()?;
        Ok(entries
            .into_iter()
            .find(|e| e.org_id == org_id && e.idempotency_key == turn_id)
            .map(|e| e.payload.memory_id))
    }

    /// Turns of `org_id` waiting in the journal.
    pub async fn pending_for(&self, org_id: &str) -> Result<u64, JournalError> {
        if self.pending() == 0 {
            return Ok(0);
        }
        let _guard = self.file_lock.lock().await;
        let (entries, _) = self.read_entries()?;
        Ok(entries.iter().filter(|e| e.org_id == org_id).count() as u64)
    }

    fn read_entries(&self) -> Result<(Vec<FinishedTurn>, u64), JournalError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(self.io(e)),
        };
        let mut entries = Vec::new();
        let mut bytes = 0;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| self.io(e))?;
            bytes += line.len() as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            // A line cut by a crash mid-write is the one turn that was never acknowledged.
            match serde_json::from_str(&line) {
                Ok(entry) => entries.push(entry),
                Err(e) => tracing::warn!(error = %e, "skipping a torn turn journal line"),
            }
        }
        Ok((entries, bytes))
    }

    /// Removes the org's journaled turns of session `memory_id` that `matches` (an erasure):
    /// their idempotency keys. With `dry_run` nothing is removed.
    pub async fn forget(
        &self,
        org_id: &str,
        memory_id: &str,
        matches: impl Fn(&FinishedTurn) -> bool,
        dry_run: bool,
    ) -> Result<Vec<String>, JournalError> {
        if self.pending() == 0 {
            return Ok(Vec::new());
        }
        let _guard = self.file_lock.lock().await;
        let (entries, _) = self.read_entries()?;
        let (gone, kept): (Vec<FinishedTurn>, Vec<FinishedTurn>) = entries
            .into_iter()
            .partition(|e| e.org_id == org_id && e.payload.memory_id == memory_id && matches(e));
        if !gone.is_empty() && !dry_run {
            self.rewrite(&kept)?;
        }
        Ok(gone.into_iter().map(|e| e.idempotency_key).collect())
    }

    /// Replaces the file with `rest`, atomically (a temporary file renamed over it).
    fn rewrite(&self, rest: &[FinishedTurn]) -> Result<(), JournalError> {
        let mut bytes = 0;
        if rest.is_empty() {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(e)),
            }
        } else {
            let temporary = self.path.with_extension("jsonl.tmp");
            let mut file = std::fs::File::create(&temporary).map_err(|e| self.io(e))?;
            for entry in rest {
                let mut line = serde_json::to_vec(entry).map_err(|e| self.io(e.into()))?;
                line.push(b'\n');
                bytes += line.len() as u64;
                file.write_all(&line).map_err(|e| self.io(e))?;
            }
            file.sync_data().map_err(|e| self.io(e))?;
            std::fs::rename(&temporary, &self.path).map_err(|e| self.io(e))?;
        }
        self.pending.store(rest.len() as u64, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    }
}

enum Fate {
    Written,
    NoSession,
    Declined,
}

async fn replay_one(
    store: &Store,
    auto_create: Option<EngineKind>,
    redactor: &Redactor,
    entry: &FinishedTurn,
) -> Result<Fate, crate::error::StoreError> {
    let memory_id = &entry.payload.memory_id;
    let mut payload = std::borrow::Cow::Borrowed(&entry.payload);
    let session_id = match entry.session_id {
        Some(id) => id,
        None => {
            let session = match auto_create {
                Some(engine) => Some(
                    store
                        .find_or_create_session(&entry.org_id, memory_id, engine)
                        .await?,
                ),
                None => store.find_session(&entry.org_id, memory_id).await?,
            };
            let Some(session) = session else {
                return Ok(Fate::NoSession);
            };
            if entry.unless_session_declines && !session.config.store_memory {
                return Ok(Fate::Declined);
            }
            if let Some(own) = &session.config.redaction {
                let rules = redactor.rules(Some(own));
                let turn = redactor
                    .redact_turn(rules, entry.payload.messages.clone())
                    .await;
                let payload = payload.to_mut();
                payload.redacted |= turn.redacted();
                payload.messages = turn.into_messages();
            }
            session.id
        }
    };
    match store
        .enqueue_turn(&entry.idempotency_key, &entry.org_id, session_id, &payload)
        .await
    {
        Ok(()) => Ok(Fate::Written),
        // Deleted since the turn was served: it has nowhere to go.
        Err(e) if e.is_session_gone() => Ok(Fate::NoSession),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> FinishedTurn {
        FinishedTurn {
            idempotency_key: key.into(),
            org_id: "acme".into(),
            session_id: Some(1),
            unless_session_declines: false,
            payload: TurnPayload {
                memory_id: "m".into(),
                messages: Vec::new(),
                request_id: None,
                traceparent: None,
                redacted: false,
            },
        }
    }

    #[tokio::test]
    async fn appends_survive_a_reopen_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/turns.jsonl");
        let journal = TurnJournal::open(&path, 1 << 20).unwrap();
        assert_eq!(journal.pending(), 0);
        journal.append(&entry("a")).await.unwrap();
        journal.append(&entry("b")).await.unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"idempotency_key\": \"c\", \"org")
            .unwrap();
        let reopened = TurnJournal::open(&path, 1 << 20).unwrap();
        assert_eq!(reopened.pending(), 2);
        let (entries, _) = reopened.read_entries().unwrap();
        assert_eq!(entries, [entry("a"), entry("b")]);
        reopened.rewrite(&entries[1..]).unwrap();
        assert_eq!(TurnJournal::open(&path, 1 << 20).unwrap().pending(), 1);
        reopened.rewrite(&[]).unwrap();
        assert!(!path.exists());
    }

    /// Lines written before sessions could be unresolved still read as they were meant.
    #[test]
    fn journal_lines_of_earlier_versions_still_read() {
        let old = r#"{"idempotency_key":"a","org_id":"acme","session_id":5,"payload":{"memory_id":"m","messages":[]}}"#;
        let turn: FinishedTurn = serde_json::from_str(old).unwrap();
        assert_eq!(turn.session_id, Some(5));
        assert!(!turn.unless_session_declines);
        let unresolved = FinishedTurn {
            session_id: None,
            unless_session_declines: true,
            ..entry("b")
        };
        let line = serde_json::to_string(&unresolved).unwrap();
        assert_eq!(
            serde_json::from_str::<FinishedTurn>(&line).unwrap(),
            unresolved
        );
    }

    #[tokio::test]
    async fn a_full_journal_refuses_turns() {
        let dir = tempfile::tempdir().unwrap();
        let journal = TurnJournal::open(&dir.path().join("t.jsonl"), 150).unwrap();
        journal.append(&entry("a")).await.unwrap();
        assert!(matches!(
            journal.append(&entry("b")).await,
            Err(JournalError::Full(..))
        ));
        assert_eq!(journal.pending(), 1);
    }
}
