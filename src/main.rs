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

/// jemalloc, for Rust and for C alike (the bundled SQLite calls `malloc` too), returning freed
/// pages soon (below). Why: on glibc's malloc, resident memory grew under load while the live heap
/// did not. `scripts/soak.sh --streams 200 --requests 10000`, RSS MiB after 1k / 9k / 10k
/// requests / outbox drained / 30 s idle: glibc 47.0 / 62.7 / 65.3 / 69.0 / 69.0, while
/// heaptrack counted a live heap of about 35 MiB under load and 12 MiB once drained. The rest
/// was freed memory kept by glibc's per-thread arenas (15 threads: Pingora's, the background
/// runtime's, one per SQLite connection), where buffers are allocated on one thread and freed
/// on another. Same soak, other allocators: MALLOC_ARENA_MAX=2 46.1 / 53.4 / 53.5 / 55.7 /
/// 55.7; glibc with malloc_trim every second 45.5 / 62.1 / 62.1 / 47.6 / 45.5; mimalloc
/// 84.4 → 106.8; jemalloc for Rust only 45.5 → 58.7 idle (SQLite stays on glibc); jemalloc for
/// both with its 10 s decay 50.4 / 73.9 / 78.7 / 49.2 / 48.6; with the decay at 0 (this)
/// 44.0 / 51.4 / 43.0 / 41.0 / 40.9, the flattest. The price is CPU: purging on every free
/// cost that soak 44-48 s of CPU against glibc's 34-36 s; `MALLOC_CONF=background_thread:true,
/// dirty_decay_ms:100` (the environment overrides this) costs about glibc's CPU and ended
/// 10-25% above the 1k figure.
///
/// The decay at 0 also returned a request's buffers to the kernel as each request ended: an
/// `madvise` per request on the proxy's thread, with the TLB shootdown it takes, then page
/// faults to get the pages back. A pass-through GET took 79 µs of CPU with it and 57 µs
/// without (CPU per request of a `wrk -c1` run, loopback). So freed pages now wait 100 ms
/// and are returned by jemalloc's own background thread, off the request path. The soak
/// (same command as above): 55.3 / 60.9 / 46.2 / 43.9 / 43.1 MiB, and its 10,000 turns ran
/// in 3.6 s instead of 4.7 s; a 1 s decay ended the load 28% above its 1k figure.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc at its first allocation (a NUL-terminated `const char *`).
#[cfg(not(target_env = "msvc"))]
#[export_name = "malloc_conf"]
static MALLOC_CONF: &[u8; 59] = b"background_thread:true,dirty_decay_ms:100,muzzy_decay_ms:0\0";

/// The embedding threads allocate and free megabytes of activations per forward pass; with
/// the process-wide decay at 0 each free returned those pages to the kernel, and the memory
/// path spent a quarter of its time in page faults and purges (`scripts/loadtest.sh 10 1`,
/// 1,000 facts: memory p50 14.1 ms with decay 0 everywhere, 10.4 ms with a 1 s decay for the
/// whole process). So they get an arena of their own that keeps freed pages for 10 s, and
/// the rest of the process keeps its flat resident memory.
#[cfg(not(target_env = "msvc"))]
fn embedding_threads_keep_their_pages() {
    use std::sync::OnceLock;
    static ARENA: OnceLock<Option<u32>> = OnceLock::new();
    let arena = *ARENA.get_or_init(|| {
        // SAFETY: jemalloc's documented mallctl names, with the types they take.
        unsafe {
            let arena: u32 = tikv_jemalloc_ctl::raw::read(b"arenas.create\0").ok()?;
            for decay in ["dirty_decay_ms", "muzzy_decay_ms"] {
                let name = format!("arena.{arena}.{decay}\0");
                tikv_jemalloc_ctl::raw::write(name.as_bytes(), 10_000isize).ok()?;
            }
            Some(arena)
        }
    });
    if let Some(arena) = arena {
        // SAFETY: as above; the arena exists for the life of the process.
        let bound = unsafe { tikv_jemalloc_ctl::raw::write(b"thread.arena\0", arena) };
        if let Err(e) = bound {
            tracing::warn!(error = %e, "embedding thread stays on the default arena");
        }
    }
}

fn main() -> ExitCode {
    #[cfg(not(target_env = "msvc"))]
    memgate::embed::local::on_inference_thread_start(embedding_threads_keep_their_pages);
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
            memgate::store::Store::connect(&config.storage, config.embeddings.dimensions()).await?;
        store.migrate().await?;
        store
            .check_embeddings(config.embeddings.model(), config.embeddings.dimensions())
            .await?;
        println!("migrations applied ({} store)", store.backend());
        Ok(())
    })
}
