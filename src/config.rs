//! Configuration: a TOML file, then `MEMGATE_<SECTION>__<KEY>` environment overrides, then
//! `validate()`. Unknown keys are refused with their path, so a typo fails at start, not at the
//! first request that needed the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::redaction::{check_custom_rules, CustomRedaction};
use crate::domain::{EngineKind, Placement, Role};
use crate::secret::Secret;

pub const ENV_PREFIX: &str = "MEMGATE_";
pub const DEFAULT_CONFIG_PATH: &str = "config/memgate.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("config key `{path}`: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub storage: StorageConfig,
    pub memory: MemoryConfig,
    pub embeddings: EmbeddingsConfig,
    pub extraction: ExtractionConfig,
    pub internal: InternalConfig,
    pub graph: GraphConfig,
    pub auth: AuthConfig,
    pub worker: WorkerConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
}

/// Trace export over OTLP/HTTP. Off while `otlp_endpoint` is empty.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Collector base URL, e.g. `http://otel-collector:4318`; spans go to `/v1/traces` under
    /// it (a URL already ending in `/v1/traces` is used as it is).
    pub otlp_endpoint: String,
    pub otlp_protocol: OtlpProtocol,
    /// Sent with every export, e.g. a vendor's API key.
    pub otlp_headers: BTreeMap<String, Secret>,
    pub service_name: String,
    /// Share of new traces recorded. A client's `traceparent` decision is always followed.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            otlp_headers: BTreeMap::new(),
            service_name: "memgate".into(),
            sample_ratio: 1.0,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

/// Log output. The filter is `MEMGATE_LOG` (e.g. `info`, `memgate=debug`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the current spans (request ids).
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: String,
    /// Bodies of intercepted requests are buffered whole (they must be checked before anything
    /// is forwarded), so this bounds the memory one request can take.
    pub max_body_bytes: usize,
    /// Worker threads of the proxy listener; 0 means one per core.
    pub threads: usize,
    /// After SIGTERM, how long requests in flight may take to finish; memgate exits as soon
    /// as none is left. The longest answer stream you expect, plus its outbox write.
    pub shutdown_grace_seconds: u64,
    /// See [`ClientDeadlines`].
    pub request_header_timeout_seconds: u64,
    pub body_read_timeout_seconds: u64,
    pub keepalive_timeout_seconds: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            max_body_bytes: 32 * 1024 * 1024,
            threads: 0,
            shutdown_grace_seconds: 30,
            request_header_timeout_seconds: DEFAULT_HEADER_SECONDS,
            body_read_timeout_seconds: DEFAULT_BODY_READ_SECONDS,
            keepalive_timeout_seconds: DEFAULT_KEEPALIVE_SECONDS,
        }
    }
}

impl ProxyConfig {
    pub fn deadlines(&self) -> ClientDeadlines {
        ClientDeadlines::from_seconds(
            self.request_header_timeout_seconds,
            self.body_read_timeout_seconds,
            self.keepalive_timeout_seconds,
        )
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: String,
    pub max_body_bytes: usize,
    /// The largest export `POST /memory/session/import` reads (it is written in one
    /// transaction, so it is read whole first).
    pub max_import_bytes: usize,
    /// See [`ClientDeadlines`].
    pub request_header_timeout_seconds: u64,
    pub body_read_timeout_seconds: u64,
    pub keepalive_timeout_seconds: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8081".into(),
            max_body_bytes: 4 * 1024 * 1024,
            max_import_bytes: 256 * 1024 * 1024,
            request_header_timeout_seconds: DEFAULT_HEADER_SECONDS,
            body_read_timeout_seconds: DEFAULT_BODY_READ_SECONDS,
            keepalive_timeout_seconds: DEFAULT_KEEPALIVE_SECONDS,
        }
    }
}

impl AdminConfig {
    pub fn deadlines(&self) -> ClientDeadlines {
        ClientDeadlines::from_seconds(
            self.request_header_timeout_seconds,
            self.body_read_timeout_seconds,
            self.keepalive_timeout_seconds,
        )
    }
}

// What a user of nginx or hyper expects: hyper's `header_read_timeout`, nginx's
// `client_body_timeout`, and a minute of keep-alive (nginx: 75 s, most balancers: 60 s).
const DEFAULT_HEADER_SECONDS: u64 = 30;
const DEFAULT_BODY_READ_SECONDS: u64 = 60;
const DEFAULT_KEEPALIVE_SECONDS: u64 = 60;

/// Above an hour a deadline no longer protects anything: a thousand clients could still hold
/// a thousand connections for the whole of it.
const MAX_DEADLINE_SECONDS: u64 = 3600;

/// How long a client may take over each part of its exchange with a listener, so that slow
/// or idle clients cannot hold connections (and their descriptors) for ever. A client that
/// misses one is cut: with a 408 where a response can still be sent, by a close otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientDeadlines {
    /// The whole request header, counted from the accept for a connection's first request and
    /// from the first byte for the next ones.
    pub request_header: Duration,
    /// Each pause in the request body: a body may take as long as it needs while it flows.
    pub body_read: Duration,
    /// From the end of a response to the first byte of the next request.
    pub keepalive: Duration,
}

impl ClientDeadlines {
    fn from_seconds(request_header: u64, body_read: u64, keepalive: u64) -> Self {
        Self {
            request_header: Duration::from_secs(request_header),
            body_read: Duration::from_secs(body_read),
            keepalive: Duration::from_secs(keepalive),
        }
    }
}

/// An `http://` or `https://` URL with a host, parsed once when the config is read. Keeps
/// the text as written, which is what logs and derived URLs use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HttpUrl {
    text: String,
    parsed: reqwest::Url,
}

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn parsed(&self) -> &reqwest::Url {
        &self.parsed
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(&text).map_err(|e| format!("`{text}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "`{text}`: must be an http:// or https:// URL with a host"
            ));
        }
        Ok(Self { text, parsed })
    }
}

impl From<HttpUrl> for String {
    fn from(url: HttpUrl) -> Self {
        url.text
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A source network: CIDR, or a single address (a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network(pub ipnet::IpNet);

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(Network)
            .map_err(|_| format!("`{text}` is not a network (CIDR) or an address"))
    }
}

impl From<Network> for String {
    fn from(network: Network) -> Self {
        network.0.to_string()
    }
}

/// An HTTP header name, checked when the config is read.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderName(pub http::HeaderName);

impl TryFrom<String> for HeaderName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        http::HeaderName::from_bytes(text.as_bytes())
            .map(HeaderName)
            .map_err(|_| format!("`{text}` is not a header name"))
    }
}

impl From<HeaderName> for String {
    fn from(name: HeaderName) -> Self {
        name.0.as_str().to_string()
    }
}

fn header_name(name: &'static str) -> HeaderName {
    HeaderName(http::HeaderName::from_static(name))
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub url: HttpUrl,
    pub connect_timeout_ms: u64,
    /// Longest silence tolerated between two chunks of an upstream answer.
    pub read_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: HttpUrl::try_from("http://127.0.0.1:4000".to_string())
                .expect("the default upstream URL parses"),
            connect_timeout_ms: 5_000,
            read_timeout_ms: 600_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub url: StorageUrl,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    /// Postgres: sessions with at least this many facts are searched through the HNSW index
    /// (iterative scan); smaller ones exactly, by their rows. 0 derives it from the embedding
    /// dimension (see `hnsw_threshold`).
    pub hnsw_min_facts: i64,
    /// Postgres: `hnsw.ef_search` for those searches (recall against latency).
    pub hnsw_ef_search: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: StorageUrl {
                text: "sqlite://data/memgate.db".into(),
                backend: StorageBackend::Sqlite,
            },
            migrate_on_start: true,
            max_connections: 8,
            hnsw_min_facts: 0,
            hnsw_ef_search: 200,
        }
    }
}

/// Exact search costs about 6.5 ns per dimension per session fact and an HNSW walk at
/// ef_search 200 about 10 ms whatever the session's size (benches/pgvector, 1M facts).
/// The switch is placed where exact costs about two walks, because HNSW gives up recall
/// (0.95 at 1k facts) that exact keeps: about 7,800 facts at 384 dimensions, 1,950 at 1536.
const EXACT_SEARCH_BUDGET_DIM_FACTS: i64 = 3_000_000;

/// The relational store a `storage.url` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    /// `sqlite://PATH`: the embedded file.
    Sqlite,
    /// `postgres://…` or `postgresql://…`: Postgres + pgvector.
    Postgres,
}

/// A `storage.url`, with the backend its scheme names, read once with the config.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct StorageUrl {
    text: String,
    backend: StorageBackend,
}

impl StorageUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn backend(&self) -> StorageBackend {
        self.backend
    }
}

impl TryFrom<String> for StorageUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let backend = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StorageBackend::Postgres
        } else if text.starts_with("sqlite:") {
            StorageBackend::Sqlite
        } else {
            return Err(
                "must be sqlite://PATH (embedded) or postgres://… (Postgres + pgvector)".into(),
            );
        };
        Ok(Self { text, backend })
    }
}

impl std::str::FromStr for StorageUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_string())
    }
}

impl From<StorageUrl> for String {
    fn from(url: StorageUrl) -> Self {
        url.text
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl StorageConfig {
    pub fn backend(&self) -> StorageBackend {
        self.url.backend()
    }

    /// The session size from which Postgres searches through HNSW.
    pub fn hnsw_threshold(&self, dimensions: usize) -> i64 {
        if self.hnsw_min_facts > 0 {
            self.hnsw_min_facts
        } else {
            (EXACT_SEARCH_BUDGET_DIM_FACTS / dimensions.max(1) as i64).max(1)
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Facts injected into a request.
    pub top_k: usize,
    /// Time a request may spend on retrieval (embedding included) before it goes upstream
    /// without context.
    pub retrieval_budget_ms: u64,
    /// Create an unknown session on first use (in the caller's org) instead of answering 404.
    pub auto_create_sessions: bool,
    pub default_engine: EngineKind,
    /// Longest fact rendered into the context block; longer ones are cut.
    pub max_fact_chars: usize,
    /// Cosine similarity above which a new fact is a duplicate of a stored one. Near-identity
    /// only: on the quality benchmark's labelled pairs (local model) 0.96 merges 0.7% of
    /// distinct facts, 0.9 merged 23%.
    pub dedup_threshold: f32,
    /// How long the proxy keeps a looked-up session (its id and config) before asking the
    /// store again: the longest a PATCH or DELETE made through another replica goes unseen
    /// here. 0 asks the store on every request.
    pub session_cache_ttl_ms: u64,
    /// Where the context block goes in a request (a session's `placement` overrides it).
    pub placement: Placement,
    /// What is redacted from turns before they are kept or sent to a model (a session's
    /// `redaction` overrides it detector by detector).
    pub redaction: RedactionConfig,
}

/// Which detectors run on every session whose config does not say otherwise. Secrets are on
/// (a key pasted into a chat must not end up in a memory store or an extraction prompt);
/// personal data is off, because many memories are about exactly that and only the operator
/// knows whether they may be kept.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    pub email: bool,
    pub phone: bool,
    pub card: bool,
    pub iban: bool,
    pub ip: bool,
    pub secret: bool,
    /// Rules of the operator's own, `{ label = "employee_id", pattern = "EMP-[0-9]{6}" }`;
    /// they apply to every session, besides the session's own.
    pub custom: Vec<CustomRedaction>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            email: false,
            phone: false,
            card: false,
            iban: false,
            ip: false,
            secret: true,
            custom: Vec::new(),
        }
    }
}

impl RedactionConfig {
    /// Whether a built-in detector is on, by name.
    pub fn enabled(&self, detector: &str) -> bool {
        match detector {
            "email" => self.email,
            "phone" => self.phone,
            "card" => self.card,
            "iban" => self.iban,
            "ip" => self.ip,
            "secret" => self.secret,
            _ => false,
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            top_k: 3,
            retrieval_budget_ms: 250,
            auto_create_sessions: false,
            default_engine: EngineKind::Mem0,
            max_fact_chars: 300,
            dedup_threshold: 0.96,
            session_cache_ttl_ms: 1_000,
            placement: Placement::System,
            redaction: RedactionConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    /// `POST {upstream}/v1/embeddings` under the service-account key (platform spend).
    #[default]
    Gateway,
    /// all-MiniLM-L6-v2 in process (384 dimensions), from `model_dir`: no round trip, no spend.
    Local,
}

/// The local provider's model (sentence-transformers all-MiniLM-L6-v2) and its width.
pub const LOCAL_MODEL: &str = "all-MiniLM-L6-v2";
pub const LOCAL_DIMENSIONS: usize = 384;

const GATEWAY_MODEL: &str = "text-embedding-3-small";
const GATEWAY_DIMENSIONS: usize = 1536;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingsConfig {
    /// The default stays `gateway`: a store keeps the model its vectors came from and refuses
    /// another, so a changed default would stop existing deployments at start.
    pub provider: EmbeddingProvider,
    /// The gateway's model. With the local provider: all-MiniLM-L6-v2 (leave it unset).
    pub model: String,
    /// The gateway model's dimensions. With the local provider: 384 (leave it unset).
    pub dimensions: usize,
    /// The local model's folder; default `~/.cache/memgate-model/all-minilm-l6-v2`, where
    /// `scripts/install-model.sh` puts it.
    pub model_dir: Option<std::path::PathBuf>,
    /// Inference threads of the local model; 0: one per core, at most 4.
    pub threads: usize,
    /// Local jobs (queries, and batches of 32 texts to ingest) waiting at most; a query that
    /// finds the queue full goes upstream without context.
    pub queue: usize,
    /// Query vectors the local provider keeps (least recently used out first); 0 turns the
    /// cache off.
    pub query_cache: usize,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            provider: EmbeddingProvider::Gateway,
            model: GATEWAY_MODEL.into(),
            dimensions: GATEWAY_DIMENSIONS,
            model_dir: None,
            threads: 0,
            queue: 1024,
            query_cache: 4096,
        }
    }
}

impl EmbeddingsConfig {
    /// The model the vectors come from, as the store records it.
    pub fn model(&self) -> &str {
        match self.provider {
            EmbeddingProvider::Gateway => &self.model,
            EmbeddingProvider::Local => LOCAL_MODEL,
        }
    }

    pub fn dimensions(&self) -> usize {
        match self.provider {
            EmbeddingProvider::Gateway => self.dimensions,
            EmbeddingProvider::Local => LOCAL_DIMENSIONS,
        }
    }

    pub fn model_dir(&self) -> std::path::PathBuf {
        self.model_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from("."))
                .join(".cache/memgate-model/all-minilm-l6-v2")
        })
    }

    pub fn threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            n => n,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |path: &str, reason: String| ConfigError::Invalid {
            path: path.into(),
            reason,
        };
        if self.dimensions == 0 || self.dimensions > 16_000 {
            return Err(invalid(
                "embeddings.dimensions",
                "must be between 1 and 16000".into(),
            ));
        }
        if self.provider == EmbeddingProvider::Local {
            let local = LOCAL_MODEL;
            if self.model != GATEWAY_MODEL && self.model != local {
                return Err(invalid(
                    "embeddings.model",
                    format!("the local provider runs {local}; leave embeddings.model unset"),
                ));
            }
            let dims = LOCAL_DIMENSIONS;
            if self.dimensions != GATEWAY_DIMENSIONS && self.dimensions != dims {
                return Err(invalid(
                    "embeddings.dimensions",
                    format!("the local model gives {dims} dimensions; leave embeddings.dimensions unset"),
                ));
            }
            if self.queue == 0 {
                return Err(invalid("embeddings.queue", "must be above 0".into()));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtractionConfig {
    pub model: String,
    /// Off: facts are the user's declarative sentences, no LLM call.
    pub enabled: bool,
    /// On: new facts are reconciled with similar stored ones by an LLM ADD/UPDATE/DELETE/NONE
    /// decision, as Mem0 does. Off: near-duplicates are dropped by cosine similarity.
    pub llm_updates: bool,
    pub max_retries: u32,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        Self {
            model: "gpt-4o-mini".into(),
            enabled: true,
            llm_updates: false,
            max_retries: 2,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InternalConfig {
    /// Service-account key for the embedding and extraction calls memgate makes itself.
    pub api_key: Option<Secret>,
    /// Extra headers on internal calls, e.g. `x-litellm-tags = "memgate,platform"`.
    pub headers: BTreeMap<String, String>,
}

/// The cognee engine's graph server. Without `url` the graph lives in the relational store
/// (SQLite or Postgres tables), so the engine works with no server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// `bolt://host:7687` (Neo4j 5, or any server speaking Bolt 4.x).
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub database: String,
    /// Each graph statement's limit. On the chat path a slower graph falls back to chunks.
    pub timeout_ms: u64,
    pub max_connections: usize,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            url: None,
            user: None,
            password: None,
            database: "neo4j".into(),
            timeout_ms: 2000,
            max_connections: 8,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub keys_file: Option<PathBuf>,
    pub keys: Vec<KeyEntry>,
    pub trusted_header: TrustedHeaderConfig,
    pub introspection: IntrospectionConfig,
}

/// For deployments where an authenticator in front has already resolved the caller: its
/// headers are believed only from the listed networks, and are ignored from anywhere else.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustedHeaderConfig {
    pub enabled: bool,
    pub org_header: HeaderName,
    /// `admin` or `member`; `default_role` when the header is absent.
    pub role_header: HeaderName,
    pub default_role: Role,
    /// Source networks (CIDR, or single addresses) the authenticator connects from.
    pub networks: Vec<Network>,
}

impl Default for TrustedHeaderConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            org_header: header_name("x-authenticated-org"),
            role_header: header_name("x-authenticated-role"),
            default_role: Role::Member,
            networks: Vec::new(),
        }
    }
}

/// Asks the upstream LiteLLM proxy which org or team a key belongs to (`GET /key/info` with
/// the caller's own key), for keys that are not in the static list.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntrospectionConfig {
    pub enabled: bool,
    /// Base URL of the gateway's management API; `upstream.url` when unset.
    pub url: Option<HttpUrl>,
    pub path: String,
    pub timeout_ms: u64,
    /// How long an answer is believed; a revoked key keeps working at most this long.
    pub cache_ttl_seconds: u64,
    /// How long a refused key is remembered as refused.
    pub negative_cache_ttl_seconds: u64,
    pub max_cached_keys: usize,
    /// Fields of the key's `info` tried in order for the org (LiteLLM: `org_id`, `team_id`).
    pub org_fields: Vec<String>,
    /// The key's `info.metadata` entry that makes it an admin when it says `admin`.
    pub role_metadata_key: String,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            path: "/key/info".into(),
            timeout_ms: 2_000,
            cache_ttl_seconds: 300,
            negative_cache_ttl_seconds: 30,
            max_cached_keys: 10_000,
            org_fields: vec!["org_id".into(), "team_id".into()],
            role_metadata_key: "memgate_role".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Plain key: for development only; production configs carry `key_sha256`.
    pub key: Option<Secret>,
    pub key_sha256: Option<String>,
    pub org: String,
    pub role: Role,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub poll_interval_ms: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub concurrency: usize,
    /// How often facts past their session's TTL are purged.
    pub retention_interval_ms: u64,
    /// How long a claimed turn is the claimer's: a replica that dies mid-ingest leaves it to
    /// the others this long after its claim. Keep it well above an ingestion's duration.
    pub lease_ms: u64,
    /// Where finished turns wait when the store cannot take them (see `journal.rs`).
    pub journal_path: PathBuf,
    pub journal_max_bytes: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 1_000,
            max_attempts: 8,
            backoff_base_ms: 500,
            backoff_max_ms: 300_000,
            concurrency: 2,
            retention_interval_ms: 60_000,
            lease_ms: 300_000,
            journal_path: PathBuf::from("data/turn-journal.jsonl"),
            journal_max_bytes: 256 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Reads `path` (a missing default file is fine: defaults apply), applies the environment
    /// and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &vars)
    }

    pub fn load_with_env(
        path: Option<&Path>,
        vars: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let mut table = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                source: Box::new(e),
            })?,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        apply_env(&mut table, vars)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                ConfigError::Invalid {
                    path: e.path().to_string(),
                    reason: e.inner().to_string(),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |path: &str, reason: String| ConfigError::Invalid {
            path: path.into(),
            reason,
        };
        for (path, addr) in [
            ("proxy.listen", &self.proxy.listen),
            ("admin.listen", &self.admin.listen),
        ] {
            addr.parse::<SocketAddr>()
                .map_err(|e| invalid(path, format!("`{addr}` is not host:port ({e})")))?;
        }
        let (p, a) = (&self.proxy, &self.admin);
        for (section, header, body, keepalive) in [
            (
                "proxy",
                p.request_header_timeout_seconds,
                p.body_read_timeout_seconds,
                p.keepalive_timeout_seconds,
            ),
            (
                "admin",
                a.request_header_timeout_seconds,
                a.body_read_timeout_seconds,
                a.keepalive_timeout_seconds,
            ),
        ] {
            for (key, value) in [
                ("request_header_timeout_seconds", header),
                ("body_read_timeout_seconds", body),
                ("keepalive_timeout_seconds", keepalive),
            ] {
                if !(1..=MAX_DEADLINE_SECONDS).contains(&value) {
                    return Err(invalid(
                        &format!("{section}.{key}"),
                        format!(
                            "{value} is not between 1 and {MAX_DEADLINE_SECONDS} seconds \
                             (there is no \"never\": a client could hold its connection for ever)"
                        ),
                    ));
                }
            }
        }
        if self.proxy.max_body_bytes == 0 {
            return Err(invalid("proxy.max_body_bytes", "must be above 0".into()));
        }
        if self.memory.top_k == 0 || self.memory.top_k > 50 {
            return Err(invalid("memory.top_k", "must be between 1 and 50".into()));
        }
        if !(0.0..=1.0).contains(&self.memory.dedup_threshold) {
            return Err(invalid(
                "memory.dedup_threshold",
                "must be between 0 and 1".into(),
            ));
        }
        if let Some(url) = &self.graph.url {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(
                scheme,
                Some("bolt" | "bolt+s" | "bolt+ssc" | "neo4j" | "neo4j+s" | "neo4j+ssc")
            ) {
                return Err(invalid(
                    "graph.url",
                    format!("`{url}` is not a Bolt URL (bolt://host:7687 or neo4j://…)"),
                ));
            }
        }
        if self.graph.timeout_ms == 0 || self.graph.max_connections == 0 {
            return Err(invalid(
                "graph.timeout_ms",
                "graph.timeout_ms and graph.max_connections must be above 0".into(),
            ));
        }
        check_custom_rules(&self.memory.redaction.custom, "memory.redaction.custom")
            .map_err(|e| invalid(&e.param, e.message))?;
        self.embeddings.validate()?;
        let telemetry = &self.telemetry;
        if !telemetry.otlp_endpoint.is_empty() && !telemetry.otlp_endpoint.starts_with("http://") {
            // The exporter's HTTP client is built without TLS; a local collector or agent
            // forwards to a remote backend over TLS.
            return Err(invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// URL (a collector or agent reachable without TLS)".into(),
            ));
        }
        if !(0.0..=1.0).contains(&telemetry.sample_ratio) {
            return Err(invalid(
                "telemetry.sample_ratio",
                "must be between 0 and 1".into(),
            ));
        }
        for (i, key) in self.auth.keys.iter().enumerate() {
            key.validate()
                .map_err(|reason| invalid(&format!("auth.keys[{i}]"), reason))?;
        }
        let trusted = &self.auth.trusted_header;
        if trusted.enabled && trusted.networks.is_empty() {
            return Err(invalid(
                "auth.trusted_header.networks",
                "list the networks the authenticator connects from; an empty list would trust no one".into(),
            ));
        }
        let introspection = &self.auth.introspection;
        if introspection.enabled {
            if !introspection.path.starts_with('/') {
                return Err(invalid(
                    "auth.introspection.path",
                    "must start with `/`".into(),
                ));
            }
            if introspection.org_fields.is_empty() {
                return Err(invalid(
                    "auth.introspection.org_fields",
                    "name at least one field".into(),
                ));
            }
        }
        Ok(())
    }
}

impl KeyEntry {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.key, &self.key_sha256) {
            (Some(_), Some(_)) => Err("give either `key` or `key_sha256`, not both".into()),
            (None, None) => Err("needs `key` or `key_sha256`".into()),
            (None, Some(hash)) if hash.len() != 64 || hex::decode(hash).is_err() => {
                Err("`key_sha256` must be 64 hex digits".into())
            }
            _ if self.org.trim().is_empty() => Err("`org` must not be empty".into()),
            _ => Ok(()),
        }
    }
}

/// Writes `MEMGATE_SECTION__KEY=value` into the table. The value takes the type of the default
/// at that place (so `MEMGATE_MEMORY__TOP_K=5` is a number and `MEMGATE_PROXY__LISTEN` a string);
/// keys without a default are strings, and tables or arrays are given as inline TOML.
fn apply_env(table: &mut toml::Table, vars: &[(String, String)]) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Invalid {
        path: String::new(),
        reason: e.to_string(),
    })?;
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let env_err = |reason: String| ConfigError::Env {
            var: var.clone(),
            reason,
        };
        let default = defaults
            .get(&section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(&key));
        let value = typed_env_value(raw, default).map_err(env_err)?;
        let section_table = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = section_table.as_table_mut() else {
            return Err(ConfigError::Env {
                var: var.clone(),
                reason: format!("`{section}` is not a section"),
            });
        };
        section_table.insert(key, value);
    }
    Ok(())
}

fn typed_env_value(raw: &str, default: Option<&toml::Value>) -> Result<toml::Value, String> {
    use toml::Value;
    let parse_inline = |raw: &str| {
        toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or_else(|| format!("`{raw}` is not a TOML value"))
    };
    Ok(match default {
        None | Some(Value::String(_)) => Value::String(raw.to_string()),
        Some(Value::Integer(_)) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("`{raw}` is not an integer"))?,
        ),
        Some(Value::Float(_)) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("`{raw}` is not a number"))?,
        ),
        Some(Value::Boolean(_)) => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(format!("`{raw}` is not a boolean")),
        }),
        Some(_) => parse_inline(raw)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_design_table() {
        let c = Config::load_with_env(None, &[]).unwrap();
        assert_eq!(c.proxy.listen, "0.0.0.0:8080");
        assert_eq!(c.admin.listen, "0.0.0.0:8081");
        assert_eq!(c.upstream.url.as_str(), "http://127.0.0.1:4000");
        assert_eq!(c.storage.url.as_str(), "sqlite://data/memgate.db");
        assert_eq!(c.embeddings.model, "text-embedding-3-small");
        assert_eq!(c.embeddings.dimensions, 1536);
        assert_eq!(c.extraction.model, "gpt-4o-mini");
        assert_eq!(c.memory.top_k, 3);
        assert_eq!(c.memory.retrieval_budget_ms, 250);
        assert_eq!(c.proxy.max_body_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn env_overrides_take_the_type_of_the_default() {
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEMGATE_PROXY__LISTEN", "127.0.0.1:9000"),
                ("MEMGATE_MEMORY__TOP_K", "5"),
                ("MEMGATE_EXTRACTION__ENABLED", "false"),
                ("MEMGATE_INTERNAL__API_KEY", "sk-internal"),
                ("MEMGATE_MEMORY__DEDUP_THRESHOLD", "0.8"),
                (
                    "MEMGATE_INTERNAL__HEADERS",
                    "{ x-litellm-tags = \"memgate\" }",
                ),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.proxy.listen, "127.0.0.1:9000");
        assert_eq!(c.memory.top_k, 5);
        assert!(!c.extraction.enabled);
        assert_eq!(c.internal.api_key.unwrap().expose(), "sk-internal");
        assert!((c.memory.dedup_threshold - 0.8).abs() < 1e-6);
        assert_eq!(c.internal.headers["x-litellm-tags"], "memgate");
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = Config::load_with_env(None, &env(&[("MEMGATE_PROXY__LISTN", "x")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("proxy"), "{msg}");
        assert!(msg.contains("listn"), "{msg}");
    }

    #[test]
    fn wrong_type_in_env_is_refused() {
        let err = Config::load_with_env(None, &env(&[("MEMGATE_MEMORY__TOP_K", "three")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEMGATE_MEMORY__TOP_K"), "{err}");
    }

    #[test]
    fn typed_values_are_parsed_once_and_refused_with_their_path() {
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEMGATE_STORAGE__URL", "postgres://db/memgate"),
                ("MEMGATE_UPSTREAM__URL", "https://gateway.internal/v1"),
                ("MEMGATE_MEMORY__DEFAULT_ENGINE", "cognee"),
            ]),
        )
        .unwrap();
        assert_eq!(c.storage.backend(), StorageBackend::Postgres);
        assert_eq!(c.storage.url.as_str(), "postgres://db/memgate");
        assert_eq!(c.upstream.url.parsed().host_str(), Some("gateway.internal"));
        assert_eq!(c.upstream.url.as_str(), "https://gateway.internal/v1");
        assert_eq!(c.memory.default_engine, EngineKind::Cognee);
        for (var, value, path) in [
            ("MEMGATE_STORAGE__URL", "mysql://db", "storage.url"),
            ("MEMGATE_UPSTREAM__URL", "ftp://gateway", "upstream.url"),
            ("MEMGATE_UPSTREAM__URL", "not a url", "upstream.url"),
            (
                "MEMGATE_MEMORY__DEFAULT_ENGINE",
                "letta",
                "memory.default_engine",
            ),
        ] {
            let err = Config::load_with_env(None, &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(path), "{var}={value}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memgate.toml");
        for (line, path, reason) in [
            (
                "networks = [\"10.0.0.0/8\", \"ten\"]",
                "auth.trusted_header.networks",
                "`ten` is not a network",
            ),
            (
                "org_header = \"x org\"",
                "auth.trusted_header.org_header",
                "`x org` is not a header name",
            ),
        ] {
            std::fs::write(&file, format!("[auth.trusted_header]\n{line}\n")).unwrap();
            let err = Config::load_with_env(Some(&file), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(path) && err.contains(reason), "{line}: {err}");
        }
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load_with_env(Some(Path::new("/nonexistent/memgate.toml")), &[]);
        assert!(matches!(err, Err(ConfigError::Read { .. })));
    }

    #[test]
    fn key_entries_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[auth.keys]]\nkey_sha256 = \"abc\"\norg = \"acme\"\nrole = \"admin\"\n",
        )
        .unwrap();
        let err = Config::load_with_env(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.keys[0]"), "{err}");
    }

    #[test]
    fn the_shipped_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        Config::load_with_env(Some(&path), &[]).unwrap();
    }

    #[test]
    fn client_deadlines_default_to_what_nginx_users_expect_on_both_listeners() {
        let c = Config::load_with_env(None, &[]).unwrap();
        let expected = ClientDeadlines {
            request_header: Duration::from_secs(30),
            body_read: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
        };
        assert_eq!(c.proxy.deadlines(), expected);
        assert_eq!(c.admin.deadlines(), expected);

        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEMGATE_PROXY__REQUEST_HEADER_TIMEOUT_SECONDS", "5"),
                ("MEMGATE_ADMIN__KEEPALIVE_TIMEOUT_SECONDS", "3600"),
            ]),
        )
        .unwrap();
        assert_eq!(c.proxy.deadlines().request_header, Duration::from_secs(5));
        assert_eq!(c.proxy.deadlines().keepalive, Duration::from_secs(60));
        assert_eq!(c.admin.deadlines().keepalive, Duration::from_secs(3600));
        assert_eq!(c.admin.deadlines().request_header, Duration::from_secs(30));
    }

    #[test]
    fn client_deadlines_refuse_zero_and_absurd_values() {
        for (var, value, path) in [
            (
                "MEMGATE_PROXY__REQUEST_HEADER_TIMEOUT_SECONDS",
                "0",
                "proxy.request_header_timeout_seconds",
            ),
            (
                "MEMGATE_PROXY__BODY_READ_TIMEOUT_SECONDS",
                "86400",
                "proxy.body_read_timeout_seconds",
            ),
            (
                "MEMGATE_PROXY__KEEPALIVE_TIMEOUT_SECONDS",
                "0",
                "proxy.keepalive_timeout_seconds",
            ),
            (
                "MEMGATE_ADMIN__REQUEST_HEADER_TIMEOUT_SECONDS",
                "3601",
                "admin.request_header_timeout_seconds",
            ),
            (
                "MEMGATE_ADMIN__BODY_READ_TIMEOUT_SECONDS",
                "-1",
                "admin.body_read_timeout_seconds",
            ),
            (
                "MEMGATE_ADMIN__KEEPALIVE_TIMEOUT_SECONDS",
                "0",
                "admin.keepalive_timeout_seconds",
            ),
        ] {
            let err = Config::load_with_env(None, &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(path), "{var}={value}: {err}");
        }
        let err = Config::load_with_env(
            None,
            &env(&[("MEMGATE_ADMIN__KEEPALIVE_TIMEOUT_SECONDS", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("between 1 and 3600 seconds"), "{err}");
    }

    #[test]
    fn hnsw_threshold_follows_the_dimension_unless_set() {
        let auto = StorageConfig::default();
        assert_eq!(auto.hnsw_threshold(1536), 1953);
        assert_eq!(auto.hnsw_threshold(384), 7812);
        assert!(auto.hnsw_threshold(8) > 100_000);
        let fixed = StorageConfig {
            hnsw_min_facts: 500,
            ..StorageConfig::default()
        };
        assert_eq!(fixed.hnsw_threshold(384), 500);
    }

    #[test]
    fn telemetry_is_off_by_default_and_checked_when_on() {
        let c = Config::load_with_env(None, &[]).unwrap();
        assert!(c.telemetry.otlp_endpoint.is_empty());
        let c = Config::load_with_env(
            None,
            &env(&[
                ("MEMGATE_TELEMETRY__OTLP_ENDPOINT", "http://collector:4318"),
                ("MEMGATE_TELEMETRY__OTLP_PROTOCOL", "http/json"),
                (
                    "MEMGATE_TELEMETRY__OTLP_HEADERS",
                    "{ authorization = \"Bearer t\" }",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.telemetry.otlp_protocol, OtlpProtocol::HttpJson);
        assert_eq!(
            c.telemetry.otlp_headers["authorization"].expose(),
            "Bearer t"
        );
        assert!(!format!("{c:?}").contains("Bearer t"));
        for (var, value, path) in [
            (
                "MEMGATE_TELEMETRY__OTLP_ENDPOINT",
                "https://vendor",
                "telemetry.otlp_endpoint",
            ),
            (
                "MEMGATE_TELEMETRY__SAMPLE_RATIO",
                "1.5",
                "telemetry.sample_ratio",
            ),
            ("MEMGATE_TELEMETRY__OTLP_PROTOCOL", "grpc", "telemetry"),
        ] {
            let err = Config::load_with_env(None, &env(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(path), "{var}: {err}");
        }
    }
}
