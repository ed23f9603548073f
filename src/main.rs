use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memgate::config::Config;

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
    if let Err(e) = memgate::telemetry::init(&config.log, &config.telemetry) {
        eprintln!("memgate: {e}");
        return ExitCode::from(2);
    }
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
