//! Logs and traces. Logs go to stderr (text or JSON); spans are also exported over OTLP/HTTP
//! when `telemetry.otlp_endpoint` is set. A request's trace continues into the ingestion of
//! its turn: the outbox row carries the W3C `traceparent` of the request's span, and the
//! worker's `ingest` span takes it as its parent, so one trace shows the request and the
//! memory it produced, even when another replica ingests it minutes later. Requests memgate
//! sends on, upstream and internal, carry the `traceparent` of the span they belong to.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, OtlpProtocol, TelemetryConfig};

const TRACEPARENT: &str = "traceparent";
const TRACES_PATH: &str = "/v1/traces";
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Log filter: `MEMGATE_LOG` (default `info`); the same
/// filter decides which spans are exported.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("MEMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let traces = if telemetry.otlp_endpoint.is_empty() {
        None
    } else {
        let provider = tracer_provider(telemetry)?;
        let tracer = provider.tracer("memgate");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .with(filter)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

fn tracer_provider(telemetry: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    let base = telemetry.otlp_endpoint.trim_end_matches('/');
    let endpoint = if base.ends_with(TRACES_PATH) {
        base.to_string()
    } else {
        format!("{base}{TRACES_PATH}")
    };
    let protocol = match telemetry.otlp_protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let headers: HashMap<String, String> = telemetry
        .otlp_headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_string()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(endpoint)
        .with_headers(headers)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: cannot build the OTLP exporter: {e}"))?;
    Ok(SdkTracerProvider::builder()
        // Spans are batched on the SDK's own thread; the proxy never waits on the collector.
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            telemetry.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(telemetry.service_name.clone())
                .build(),
        )
        .build())
}

/// Exports the spans still buffered. Called once the listeners have drained, before exit.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("memgate: flushing traces: {e}");
        }
    }
}

/// Whether spans are exported; without it there is no trace context worth carrying.
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// Makes `span` continue the trace of a W3C `traceparent` (from a client or an outbox row).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| exporting()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    // An invalid traceparent yields an empty context, and the span starts its own trace.
    let _ = span.set_parent(context);
}

/// The current span's `traceparent`, for a request memgate sends on (upstream or internal),
/// so the gateway's spans join the trace.
pub fn current_traceparent() -> Option<http::HeaderValue> {
    traceparent_of(&tracing::Span::current()).and_then(|v| http::HeaderValue::from_str(&v).ok())
}

/// The W3C `traceparent` of `span`, to be stored with work that outlives it.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !exporting() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}
