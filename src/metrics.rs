//! Process counters, rendered in the Prometheus text format on the admin listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::graph::{Fallback, GraphPurgeCounts};
use crate::domain::outbox::OutboxCounts;
use crate::usage::TokenCounters;

/// Upper bounds (seconds) of the latency buckets: from the sub-millisecond pass-through to
/// minute-long streamed answers.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

/// A Prometheus histogram with fixed buckets, updated lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// How a proxied request ended, for the latency histogram's labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    #[default]
    Passthrough,
    PassthroughError,
    ChatNoMemory,
    ChatInjected,
    ChatEmpty,
    ChatOff,
    ChatDegraded,
    ChatRejected,
    ChatUpstreamError,
}

impl Outcome {
    const ALL: [Outcome; 9] = [
        Outcome::Passthrough,
        Outcome::PassthroughError,
        Outcome::ChatNoMemory,
        Outcome::ChatInjected,
        Outcome::ChatEmpty,
        Outcome::ChatOff,
        Outcome::ChatDegraded,
        Outcome::ChatRejected,
        Outcome::ChatUpstreamError,
    ];

    /// (route, outcome) labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Outcome::Passthrough => ("passthrough", "ok"),
            Outcome::PassthroughError => ("passthrough", "error"),
            Outcome::ChatNoMemory => ("chat_completions", "no_memory"),
            Outcome::ChatInjected => ("chat_completions", "injected"),
            Outcome::ChatEmpty => ("chat_completions", "empty"),
            Outcome::ChatOff => ("chat_completions", "off"),
            Outcome::ChatDegraded => ("chat_completions", "degraded"),
            Outcome::ChatRejected => ("chat_completions", "rejected"),
            Outcome::ChatUpstreamError => ("chat_completions", "upstream_error"),
        }
    }
}

/// Latency histograms, beside the counters.
#[derive(Debug, Default)]
pub struct Latencies {
    requests: [Histogram; Outcome::ALL.len()],
    /// Session lookup, query embedding and search of a memory request.
    pub retrieval: Histogram,
    ingest_ok: Histogram,
    ingest_failed: Histogram,
}

impl Latencies {
    pub fn request(&self, outcome: Outcome, elapsed: Duration) {
        self.requests[outcome as usize].observe(elapsed);
    }

    pub fn ingest(&self, ok: bool, elapsed: Duration) {
        if ok {
            &self.ingest_ok
        } else {
            &self.ingest_failed
        }
        .observe(elapsed);
    }

    fn write(&self, out: &mut String) {
        let name = "memgate_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from request to last byte of the answer, by route and outcome."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        for outcome in Outcome::ALL {
            let (route, label) = outcome.labels();
            self.requests[outcome as usize].write(
                out,
                name,
                &format!("route=\"{route}\",outcome=\"{label}\""),
            );
        }
        let name = "memgate_retrieval_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Retrieval time of memory requests (session lookup, query embedding, search).");
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.retrieval.write(out, name, "");
        let name = "memgate_ingest_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to ingest one turn (extraction, embedding, store), by outcome."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.ingest_ok.write(out, name, "outcome=\"ok\"");
        self.ingest_failed.write(out, name, "outcome=\"error\"");
    }
}

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
            pub latency: Latencies,
        }

        impl Metrics {
            fn write_counters(&self, out: &mut String) {
                $(
                    let _ = writeln!(out, "# HELP memgate_{} {}", stringify!($name), $help);
                    let _ = writeln!(out, "# TYPE memgate_{} counter", stringify!($name));
                    let _ = writeln!(out, "memgate_{} {}", stringify!($name), self.$name.load(Ordering::Relaxed));
                )*
            }
        }
    };
}

counters! {
    chat_requests_total: "Chat-completion requests intercepted.",
    memory_requests_total: "Chat-completion requests that asked for memory.",
    context_injected_total: "Requests that went upstream with a context block.",
    facts_injected_total: "Facts injected into context blocks.",
    retrieval_degraded_total: "Requests sent without context because retrieval failed or ran out of budget.",
    rejected_requests_total: "Requests refused before forwarding (bad input, auth, unknown session, size).",
    upstream_errors_total: "Intercepted requests whose upstream could not be reached or broke mid-answer.",
    turns_enqueued_total: "Turns written to the outbox.",
    turns_enqueue_failed_total: "Turns that could not be written to the outbox (each then goes to the journal).",
    turns_journaled_total: "Turns written to the local journal because the store could not take them.",
    turns_replayed_total: "Journaled turns written to the outbox once the store was back.",
    journal_turns_dropped_total: "Journaled turns dropped at replay because their session does not exist (never created, or deleted meanwhile).",
    turns_session_gone_total: "Finished turns dropped because their session was deleted while the answer was served.",
    turns_lost_total: "Turns neither the outbox nor the journal could take (journal full or unwritable).",
    turns_ingested_total: "Outbox turns ingested.",
    ingest_failures_total: "Failed ingestion attempts (each is retried with backoff).",
    turns_dead_lettered_total: "Turns given up on after their last attempt.",
    facts_expired_total: "Facts purged because their session's TTL ran out.",
    auth_unavailable_total: "Requests whose caller could not be resolved because key introspection failed.",
    graph_searches_graph_total: "Cognee GRAPH_COMPLETION searches answered from the graph.",
    graph_searches_fallback_unavailable_total: "Cognee GRAPH_COMPLETION searches answered from chunks because the graph server failed.",
    graph_searches_fallback_no_match_total: "Cognee GRAPH_COMPLETION searches answered from chunks because the graph had nothing for the query.",
    graph_answers_failed_total: "Cognee GRAPH_COMPLETION searches returned without an answer because the answering model failed or broke the answer contract.",
    graph_purges_done_total: "Deletions carried out on the graph server.",
    graph_purge_failures_total: "Failed attempts at a graph-server deletion (each is retried until it succeeds).",
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn render(
        &self,
        outbox: Option<OutboxCounts>,
        graph_purges: Option<GraphPurgeCounts>,
        journal: (u64, u64),
        tokens: &TokenCounters,
        usage_dropped: u64,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP memgate_journal_turns Finished turns waiting in the local journal for the store to come back.");
        let _ = writeln!(out, "# TYPE memgate_journal_turns gauge");
        let _ = writeln!(out, "memgate_journal_turns {}", journal.0);
        let _ = writeln!(
            out,
            "# HELP memgate_journal_bytes Size of the local turn journal."
        );
        let _ = writeln!(out, "# TYPE memgate_journal_bytes gauge");
        let _ = writeln!(out, "memgate_journal_bytes {}", journal.1);
        self.write_counters(&mut out);
        self.latency.write(&mut out);
        let _ = writeln!(out, "# HELP memgate_internal_tokens_total Tokens of memgate's own calls to the gateway (platform spend), by purpose and type.");
        let _ = writeln!(out, "# TYPE memgate_internal_tokens_total counter");
        for (purpose, prompt, completion) in tokens.snapshot() {
            let _ = writeln!(
                out,
                "memgate_internal_tokens_total{{purpose=\"{purpose}\",type=\"prompt\"}} {prompt}"
            );
            let _ = writeln!(out, "memgate_internal_tokens_total{{purpose=\"{purpose}\",type=\"completion\"}} {completion}");
        }
        let _ = writeln!(out, "# HELP memgate_usage_events_dropped_total Platform-spend events dropped because the writer fell behind.");
        let _ = writeln!(out, "# TYPE memgate_usage_events_dropped_total counter");
        let _ = writeln!(out, "memgate_usage_events_dropped_total {usage_dropped}");
        if let Some(o) = outbox {
            let _ = writeln!(out, "# HELP memgate_outbox_rows Outbox rows by state.");
            let _ = writeln!(out, "# TYPE memgate_outbox_rows gauge");
            for (state, n) in [("pending", o.pending), ("done", o.done), ("dead", o.dead)] {
                let _ = writeln!(out, "memgate_outbox_rows{{state=\"{state}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP memgate_outbox_oldest_pending_age_seconds Age of the oldest turn waiting for ingestion (0 when none).");
            let _ = writeln!(
                out,
                "# TYPE memgate_outbox_oldest_pending_age_seconds gauge"
            );
            let age = o.oldest_pending_ms.map_or(0.0, |t| {
                (crate::domain::now_ms() - t).max(0) as f64 / 1000.0
            });
            let _ = writeln!(out, "memgate_outbox_oldest_pending_age_seconds {age}");
        }
        if let Some(p) = graph_purges {
            let _ = writeln!(out, "# HELP memgate_graph_purges_pending Deletions the graph server still owes (the data is already invisible).");
            let _ = writeln!(out, "# TYPE memgate_graph_purges_pending gauge");
            let _ = writeln!(out, "memgate_graph_purges_pending {}", p.pending);
            let _ = writeln!(out, "# HELP memgate_graph_purges_oldest_age_seconds Age of the oldest pending graph deletion (0 when none).");
            let _ = writeln!(out, "# TYPE memgate_graph_purges_oldest_age_seconds gauge");
            let age = p.oldest_ms.map_or(0.0, |t| {
                (crate::domain::now_ms() - t).max(0) as f64 / 1000.0
            });
            let _ = writeln!(out, "memgate_graph_purges_oldest_age_seconds {age}");
        }
        out
    }
}

impl Metrics {
    /// Counts which path answered a GRAPH_COMPLETION search.
    pub fn graph_search(&self, fallback: Option<Fallback>) {
        let counter = match fallback {
            None => &self.graph_searches_graph_total,
            Some(Fallback::GraphUnavailable) => &self.graph_searches_fallback_unavailable_total,
            Some(Fallback::NoGraphMatch) => &self.graph_searches_fallback_no_match_total,
        };
        Metrics::inc(counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.context_injected_total);
        m.latency
            .request(Outcome::ChatInjected, Duration::from_micros(700));
        m.latency
            .request(Outcome::ChatInjected, Duration::from_millis(20));
        let text = m.render(
            Some(OutboxCounts {
                pending: 2,
                done: 1,
                dead: 0,
                oldest_pending_ms: None,
            }),
            Some(GraphPurgeCounts {
                pending: 3,
                oldest_ms: None,
            }),
            (0, 0),
            &TokenCounters::default(),
            0,
        );
        assert!(text.contains("memgate_context_injected_total 1\n"));
        assert!(text.contains("memgate_outbox_rows{state=\"pending\"} 2\n"));
        assert!(text.contains("memgate_graph_purges_pending 3\n"));
        let series = "memgate_request_duration_seconds_bucket{route=\"chat_completions\",outcome=\"injected\"";
        assert!(
            text.contains(&format!("{series},le=\"0.0005\"}} 0\n")),
            "{text}"
        );
        assert!(text.contains(&format!("{series},le=\"0.001\"}} 1\n")));
        assert!(text.contains(&format!("{series},le=\"0.025\"}} 2\n")));
        assert!(text.contains(&format!("{series},le=\"+Inf\"}} 2\n")));
        assert!(text.contains(
            "memgate_request_duration_seconds_count{route=\"chat_completions\",outcome=\"injected\"} 2\n"
        ));
        assert!(text
            .contains("memgate_internal_tokens_total{purpose=\"extraction\",type=\"prompt\"} 0\n"));
    }
}
