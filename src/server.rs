//! Starting memgate: the background runtime (admin API, ingest worker, usage writer) and the
//! Pingora proxy service, which owns the main thread until the process exits.

use std::sync::Arc;

use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::server::RunArgs;
use pingora::services::listening::Service;

use crate::app::{AppState, StartError};
use crate::config::Config;
use crate::proxy::deadlines::DeadlineApp;
use crate::proxy::MemgateProxy;
use crate::shutdown::DrainOnTerm;
use crate::upstream::Upstream;

/// After the grace period, how long Pingora's runtimes get to stop before they are dropped.
const SHUTDOWN_TIMEOUT_SECONDS: u64 = 5;

pub fn run(config: Config) -> Result<(), StartError> {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("memgate-bg")
        .enable_all()
        .build()
        .map_err(|e| StartError::Client(format!("cannot start the background runtime: {e}")))?;
    let upstream = Arc::new(Upstream::from_config(&config.upstream).map_err(StartError::Client)?);
    let proxy_listen = config.proxy.listen.clone();
    let threads = match config.proxy.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let state = background.block_on(async {
        let (state, usage_writer) = AppState::init(config).await?;
        let admin_listener = tokio::net::TcpListener::bind(&state.config.admin.listen)
            .await
            .map_err(|e| {
                StartError::Client(format!(
                    "cannot listen on {}: {e}",
                    state.config.admin.listen
                ))
            })?;
        usage_writer.spawn();
        crate::worker::spawn(state.clone());
        tokio::spawn(crate::admin::serve(state.clone(), admin_listener));
        Ok::<_, StartError>(state)
    })?;
    tracing::info!(
        proxy = %proxy_listen,
        admin = %state.config.admin.listen,
        upstream = %state.config.upstream.url,
        storage = %state.config.storage.url,
        "memgate starting"
    );

    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(state.config.proxy.shutdown_grace_seconds),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECONDS),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let drain = state.drain.clone();
    let deadlines = state.config.proxy.deadlines();
    let proxy =
        pingora::proxy::http_proxy(&server.configuration, MemgateProxy::new(state, upstream));
    let mut service = Service::new("memgate proxy".into(), DeadlineApp::new(proxy, deadlines));
    service.add_tcp(&proxy_listen);
    server.add_service(service);
    // The background runtime must outlive the proxy: the process exits from here without
    // dropping it, as Pingora's own run_forever does, once the spans are flushed.
    let _background = background;
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnTerm { drain }),
    });
    crate::telemetry::shutdown();
    std::process::exit(0)
}
