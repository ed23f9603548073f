//! Privacy on write: what a turn loses before it is kept anywhere or sent to a model.
//!
//! Every way a turn enters memgate goes through a [`Redactor`]: the proxy before it writes a
//! finished turn to the outbox or the journal (and before it embeds the query it retrieves
//! with), the management API's `add` and `import`, and the ingest worker again before it
//! extracts and embeds, with the session's current settings (a journaled turn whose session
//! was unknown was redacted by the server's settings only). Redacting twice changes nothing:
//! no detector matches a placeholder.
//!
//! The answer the client receives is never redacted: it is the client's own.

mod detect;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use detect::{CustomPattern, Detector, Redaction, RuleId, Rules};

use crate::config::RedactionConfig;
use crate::domain::redaction::{compile_pattern, CustomRedaction, SessionRedaction};
use crate::domain::TurnMessage;

/// Texts up to this size are redacted on the calling thread; larger ones on the blocking
/// pool, so that a long turn does not hold up a proxy thread. Below it the work costs less
/// than handing it over (see `benches/redaction.rs`).
const INLINE_MAX_BYTES: usize = 4 * 1024;

/// Compiled rule sets kept for sessions with settings of their own; a config is small and
/// sessions share few distinct ones, so the cache is simply emptied when full.
const MAX_CACHED_RULE_SETS: usize = 512;

/// The metric label of custom rules, whatever their label: labels come from session configs,
/// and a label per time series would let sessions grow the metrics without bound.
const CUSTOM_METRIC_LABEL: &str = "custom";

#[derive(Debug)]
pub struct Redactor {
    server: RedactionConfig,
    server_rules: Arc<Rules>,
    by_session: Mutex<HashMap<SessionRedaction, Arc<Rules>>>,
    /// Matches replaced, by built-in detector (in `Detector::ALL` order), then custom.
    replaced: [AtomicU64; Detector::ALL.len() + 1],
}

/// A turn after redaction, and whether anything in it was replaced. Only a [`Redactor`] makes
/// one, and the engines ingest nothing else: a turn cannot reach extraction, embedding or the
/// store without having been through the detectors.
#[derive(Clone, Debug)]
pub struct RedactedTurn {
    messages: Vec<TurnMessage>,
    redacted: bool,
}

impl RedactedTurn {
    pub fn messages(&self) -> &[TurnMessage] {
        &self.messages
    }

    /// Whether anything was replaced.
    pub fn redacted(&self) -> bool {
        self.redacted
    }

    pub fn into_messages(self) -> Vec<TurnMessage> {
        self.messages
    }

    /// Marked redacted also when an earlier pass (the proxy's, before the outbox) was.
    pub fn with_earlier_redaction(mut self, earlier: bool) -> Self {
        self.redacted |= earlier;
        self
    }
}

impl Redactor {
    /// The server's settings, compiled. They were checked when the config was loaded.
    pub fn new(server: &RedactionConfig) -> Result<Self, String> {
        let mut custom = Vec::with_capacity(server.custom.len());
        for rule in &server.custom {
            let regex = compile_pattern(&rule.pattern)
                .map_err(|e| format!("memory.redaction.custom `{}`: {e}", rule.label))?;
            custom.push(CustomPattern {
                label: rule.label.clone(),
                regex,
            });
        }
        let detectors: Vec<Detector> = Detector::ALL
            .into_iter()
            .filter(|d| server.enabled(d.name()))
            .collect();
        Ok(Self {
            server: server.clone(),
            server_rules: Arc::new(Rules::new(&detectors, custom)),
            by_session: Mutex::new(HashMap::new()),
            replaced: Default::default(),
        })
    }

    /// The rules for a session with these settings (`None`: the server's).
    pub fn rules(&self, session: Option<&SessionRedaction>) -> Arc<Rules> {
        let Some(session) = session else {
            return self.server_rules.clone();
        };
        let mut cache = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rules) = cache.get(session) {
            return rules.clone();
        }
        if cache.len() >= MAX_CACHED_RULE_SETS {
            cache.clear();
        }
        let rules = Arc::new(self.compile(session));
        cache.insert(session.clone(), rules.clone());
        rules
    }

    fn compile(&self, session: &SessionRedaction) -> Rules {
        let detectors: Vec<Detector> = Detector::ALL
            .into_iter()
            .filter(|d| {
                session
                    .choice(d.name())
                    .unwrap_or_else(|| self.server.enabled(d.name()))
            })
            .collect();
        let custom = self
            .server
            .custom
            .iter()
            .chain(&session.custom)
            .filter_map(compiled)
            .collect();
        Rules::new(&detectors, custom)
    }

    /// `text` with every match replaced (counted), or `None` when nothing matched. On the
    /// calling thread: for the short texts of an import, off the proxy.
    pub fn redact_text(&self, rules: &Rules, text: &str) -> Option<String> {
        let redaction = rules.redact(text)?;
        self.count(&redaction);
        Some(redaction.text)
    }

    /// A search query as it may be embedded: redacted as the facts it is compared with
    /// were. A long one is redacted on the blocking pool.
    pub async fn redact_query<'q>(&self, rules: Arc<Rules>, query: &'q str) -> Cow<'q, str> {
        if rules.is_empty() {
            return Cow::Borrowed(query);
        }
        if query.len() <= INLINE_MAX_BYTES {
            return self
                .redact_text(&rules, query)
                .map_or(Cow::Borrowed(query), Cow::Owned);
        }
        let message = TurnMessage {
            role: "user".into(),
            content: query.to_string(),
        };
        let turn = self.redact_turn(rules, vec![message]).await;
        if !turn.redacted {
            return Cow::Borrowed(query);
        }
        Cow::Owned(turn.messages.into_iter().map(|m| m.content).collect())
    }

    /// The turn with every match replaced in every message. A long turn is redacted on the
    /// blocking pool, not on the caller's (proxy) thread.
    pub async fn redact_turn(&self, rules: Arc<Rules>, messages: Vec<TurnMessage>) -> RedactedTurn {
        if rules.is_empty() {
            return RedactedTurn {
                messages,
                redacted: false,
            };
        }
        let size: usize = messages.iter().map(|m| m.content.len()).sum();
        if size <= INLINE_MAX_BYTES {
            return self.redact_messages(&rules, messages);
        }
        // Kept for the case the pool cannot run the job (the runtime is shutting down):
        // the turn is then redacted here, as nothing may leave unredacted.
        let fallback = messages.clone();
        let work_rules = rules.clone();
        let job = tokio::task::spawn_blocking(move || redact_in_place(&work_rules, messages));
        match job.await {
            Ok((messages, redactions)) => {
                for redaction in &redactions {
                    self.count(redaction);
                }
                RedactedTurn {
                    redacted: !redactions.is_empty(),
                    messages,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "redaction could not run on the blocking pool");
                self.redact_messages(&rules, fallback)
            }
        }
    }

    fn redact_messages(&self, rules: &Rules, messages: Vec<TurnMessage>) -> RedactedTurn {
        let (messages, redactions) = redact_in_place(rules, messages);
        for redaction in &redactions {
            self.count(redaction);
        }
        RedactedTurn {
            redacted: !redactions.is_empty(),
            messages,
        }
    }

    fn count(&self, redaction: &Redaction) {
        for (rule, n) in &redaction.counts {
            let slot = match rule {
                RuleId::Builtin(detector) => *detector as usize,
                RuleId::Custom(_) => Detector::ALL.len(),
            };
            self.replaced[slot].fetch_add(u64::from(*n), Ordering::Relaxed);
        }
    }

    /// Matches replaced so far, by detector (`custom` for every custom rule).
    pub fn replaced(&self) -> Vec<(&'static str, u64)> {
        Detector::ALL
            .iter()
            .map(|d| d.name())
            .chain([CUSTOM_METRIC_LABEL])
            .zip(&self.replaced)
            .map(|(name, n)| (name, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// The counters in the Prometheus text format.
    pub fn write_metrics(&self, out: &mut String) {
        let name = "memgate_redactions_total";
        let _ = writeln!(out, "# HELP {name} Matches replaced by a placeholder before a turn was kept or sent to a model, by detector.");
        let _ = writeln!(out, "# TYPE {name} counter");
        for (detector, n) in self.replaced() {
            let _ = writeln!(out, "{name}{{detector=\"{detector}\"}} {n}");
        }
    }
}

fn compiled(rule: &CustomRedaction) -> Option<CustomPattern> {
    match compile_pattern(&rule.pattern) {
        Ok(regex) => Some(CustomPattern {
            label: rule.label.clone(),
            regex,
        }),
        // Configs are checked when written; one that no longer compiles (a stricter limit in
        // a newer version) loses that rule rather than the whole session's redaction.
        Err(e) => {
            tracing::warn!(label = %rule.label, error = %e, "custom redaction rule skipped");
            None
        }
    }
}

/// Each message redacted; the redactions that replaced something.
fn redact_in_place(
    rules: &Rules,
    mut messages: Vec<TurnMessage>,
) -> (Vec<TurnMessage>, Vec<Redaction>) {
    let mut redactions = Vec::new();
    for message in &mut messages {
        if let Some(mut redaction) = rules.redact(&message.content) {
            message.content = std::mem::take(&mut redaction.text);
            redactions.push(redaction);
        }
    }
    (messages, redactions)
}
