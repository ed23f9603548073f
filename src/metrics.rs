//! Process counters, rendered in the Prometheus text format on the admin listener.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::OutboxCounts;
use crate::usage::TokenCounters;

macro_rules! counters {
    ($($name:ident: $help:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(pub $name: AtomicU64,)*
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
    retrieval_degraded_total: "Requests sent without context because retrieval failed or ran out of budget.",
    rejected_requests_total: "Requests refused before forwarding (bad input, auth, unknown session, size).",
    upstream_errors_total: "Intercepted requests whose upstream could not be reached or broke mid-answer.",
    turns_enqueued_total: "Turns written to the outbox.",
    turns_enqueue_failed_total: "Turns that could not be written to the outbox.",
    turns_ingested_total: "Outbox turns ingested.",
    ingest_failures_total: "Failed ingestion attempts (each is retried with backoff).",
    turns_dead_lettered_total: "Turns given up on after their last attempt.",
    facts_expired_total: "Facts purged because their session's TTL ran out.",
    auth_unavailable_total: "Requests whose caller could not be resolved because key introspection failed.",
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
        tokens: &TokenCounters,
        usage_dropped: u64,
    ) -> String {
        let mut out = String::new();
        self.write_counters(&mut out);
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
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::inc(&m.context_injected_total);
        let text = m.render(
            Some(OutboxCounts {
                pending: 2,
                done: 1,
                dead: 0,
            }),
            &TokenCounters::default(),
            0,
        );
        assert!(text.contains("memgate_context_injected_total 1\n"));
        assert!(text.contains("memgate_outbox_rows{state=\"pending\"} 2\n"));
        assert!(text
            .contains("memgate_internal_tokens_total{purpose=\"extraction\",type=\"prompt\"} 0\n"));
    }
}
