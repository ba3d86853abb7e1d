//! The `shardai` binary: parses the configuration, sets up logging and the runtime, and runs
//! the server until SIGTERM or SIGINT.

use std::{process::ExitCode, sync::Arc};

use shardai_engine::{LocalApplier, Store};
use shardai_node::{config::Config, server::Server, state::Shared};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardai: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all().thread_name("shardai-io");
    if config.io_threads > 0 {
        rt.worker_threads(config.io_threads);
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.dir)
        .map_err(|e| format!("cannot create data folder {}: {e}", config.dir.display()))?;
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let store = Arc::new(Store::new());
    let proposer = Arc::new(LocalApplier::new(store));
    let shared = Arc::new(Shared::new(config.clone(), proposer));
    info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "shardai listening on {local} (data folder {}; data is kept in memory until Raft \
         persistence lands)",
        config.dir.display()
    );
    Server::new(listener, shared).run(shutdown_signal()).await;
    info!("shardai stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers; stop shardai with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
