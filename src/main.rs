use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memgate::config::{Config, LogFormat};

/// memgate: long-term memory for an OpenAI-compatible LLM gateway.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (TOML); default config/memgate.toml when it exists.
    #[arg(long, global = true, env = "MEMGATE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and admin listeners (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Load and validate the configuration, print it (secrets hidden) and exit.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("memgate: {e}");
            return ExitCode::from(2);
        }
    };
    init_logs(config.log.format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => memgate::server::run(config),
        Command::Migrate => migrate(config),
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEMGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

fn migrate(config: Config) -> Result<(), memgate::app::StartError> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| memgate::app::StartError::Client(e.to_string()))?;
    runtime.block_on(async {
        let store =
            memgate::store::Store::connect(&config.storage, config.embeddings.dimensions).await?;
        store.migrate().await?;
        store
            .check_embeddings(&config.embeddings.model, config.embeddings.dimensions)
            .await?;
        println!("migrations applied ({} store)", store.backend());
        Ok(())
    })
}
