//! memgate: a sidecar reverse proxy that gives an OpenAI-compatible LLM gateway long-term
//! memory. See README.md for what it does and DESIGN notes in the module docs for how.

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod deadlines;
pub mod domain;
pub mod embed;
pub mod error;
pub mod graph_server;
pub mod http_error;
pub mod journal;
pub mod llm;
pub mod memory;
pub mod metrics;
pub mod proxy;
pub mod redaction;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod upstream;
pub mod usage;
pub mod vector;
pub mod worker;
