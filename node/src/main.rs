//! The `shardai` binary: parses the configuration, sets up logging and the runtime, and runs
//! the server until SIGTERM or SIGINT.

use std::{process::ExitCode, sync::Arc, time::Duration};

use shardai_engine::Store;
use shardai_node::{
    acl::Acl,
    cluster::Cluster,
    config::{Config, LogFormat},
    server::Server,
    state::{Engine, Shared},
};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("cluster") {
        return ExitCode::from(shardai_node::admin::main(args[1..].to_vec()) as u8);
    }
    if args.get(1).map(String::as_str) == Some("cert") {
        return ExitCode::from(shardai_node::cert::main(args[1..].to_vec()) as u8);
    }
    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shardai: {e}");
            return ExitCode::from(2);
        }
    };
    // openraft's own info lines are internal state dumps: only its warnings unless asked.
    let spec = if config.log.contains("openraft") {
        config.log.clone()
    } else {
        format!("{},openraft=warn", config.log)
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // One object per line: timestamp, level, message and the fields at the top level.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }

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
    let tls = tls_listener(&config).await?;
    let listener = if config.port == 0 {
        if tls.is_none() {
            return Err("--port 0 needs --tls-port: there would be no port to serve".into());
        }
        None
    } else {
        let addr = std::net::SocketAddr::new(config.bind, config.port);
        Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        )
    };
    let mut ports: Vec<String> = Vec::new();
    if let Some(l) = &listener {
        ports.push(l.local_addr().map_err(|e| e.to_string())?.to_string());
    }
    if let Some((l, _)) = &tls {
        ports.push(format!(
            "{} (TLS)",
            l.local_addr().map_err(|e| e.to_string())?
        ));
    }
    let local = ports.join(" and ");
    let metrics = metrics_listener(&config).await?;
    // Held until the process ends (or restarts itself in place).
    let _lock = shardai_raft::log_store::lock_dir(&config.dir).map_err(|e| e.to_string())?;
    let store = Arc::new(Store::new());
    let acl = Arc::new(Acl::new(
        config.requirepass.as_ref().map(|p| p.expose().to_string()),
        config.aclfile.clone(),
    )?);
    if acl.default_is_open() && !config.bind.is_loopback() {
        if config.protected_mode {
            warn!(
                "no password is set for the default user and --bind is not a loopback address: \
                 protected mode answers clients from other hosts with DENIED (set \
                 --requirepass or an --aclfile, or --protected-mode no)"
            );
        } else {
            warn!(
                "no password is set for the default user, --bind {} is reachable from other \
                 hosts and protected mode is off: anyone who can reach the port can run every \
                 command",
                config.bind
            );
        }
    }
    let shared = if config.cluster_enabled {
        let cluster = Cluster::new(&config, store)?;
        let bus_addr = std::net::SocketAddr::new(config.bind, cluster.bus_port());
        let bus = tokio::net::TcpListener::bind(bus_addr)
            .await
            .map_err(|e| format!("cannot listen on the cluster bus {bus_addr}: {e}"))?;
        let shared = Arc::new(Shared::new(
            config.clone(),
            cluster.clone(),
            Some(cluster.clone()),
            acl.clone(),
        ));
        cluster.set_backends(shared.engine.backends.clone());
        let _ = shared.engine.objects.set(cluster.objects().clone());
        tokio::spawn(shardai_node::dispatch::ai_config::follow_cluster_settings(
            Arc::downgrade(&shared),
        ));
        cluster.set_acl(acl);
        tokio::spawn(shardai_raft::network::serve(
            bus,
            cluster.target_slot(),
            cluster.bus_security(),
        ));
        info!(
            version = env!("CARGO_PKG_VERSION"),
            pid = std::process::id(),
            "shardai listening on {local}, cluster bus on {bus_addr} ({}; data folder {})",
            if cluster.bus_security().is_tls() {
                "mutual TLS"
            } else {
                "authenticated, not encrypted"
            },
            config.dir.display()
        );
        cluster.resume().await?;
        shared
    } else {
        let engine = Engine::for_config(&config);
        let group =
            shardai_node::standalone::start(&config, store, engine.backends.clone()).await?;
        info!(
            version = env!("CARGO_PKG_VERSION"),
            pid = std::process::id(),
            "shardai listening on {local} (single node; data folder {}, appendfsync {})",
            config.dir.display(),
            config.fsync().name()
        );
        let shared = Shared::with_engine(config.clone(), engine, group.clone(), None, acl);
        Arc::new(shared.with_standalone(group))
    };
    tokio::spawn(shardai_node::recover::watch(shared.clone()));
    // Held until the server stops: the metrics port closes with it.
    let (_metrics_stop, stopped) = tokio::sync::watch::channel(false);
    if let Some(l) = metrics {
        let at = l.local_addr().map_err(|e| e.to_string())?;
        info!("metrics on http://{at}/metrics, health on /livez and /readyz");
        tokio::spawn(shardai_node::ops::http::serve(l, shared.clone(), stopped));
    }
    let mut server = Server::new(listener, shared);
    if let Some((l, acceptor)) = tls {
        server = server.with_tls(l, acceptor);
    }
    let standalone = server.standalone();
    server.run(shutdown_signal()).await;
    if let Some(group) = standalone {
        // The group's own thread outlives this runtime: stop its Raft (no more applies or
        // snapshots) before the data folder's lock goes.
        match tokio::time::timeout(Duration::from_secs(10), group.raft.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "stopping the data log's Raft failed"),
            Err(_) => warn!("the data log's Raft did not stop within 10 s"),
        }
        // What a relaxed appendfsync acknowledged is made durable before the process ends.
        if let Err(e) = group.sync_log().await {
            error!(error = %e, "the last fsync of the data log failed");
        }
    }
    info!("shardai stopped");
    Ok(())
}

/// The operators' HTTP listener, when --metrics-port is given.
async fn metrics_listener(config: &Config) -> Result<Option<tokio::net::TcpListener>, String> {
    let Some(port) = config.metrics_port else {
        return Ok(None);
    };
    let addr = std::net::SocketAddr::new(config.metrics_bind.unwrap_or(config.bind), port);
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (--metrics-port): {e}"))?;
    Ok(Some(l))
}

/// The TLS listener and its acceptor, when --tls-port is given.
async fn tls_listener(
    config: &Config,
) -> Result<Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>, String> {
    let Some(port) = config.tls_port.filter(|p| *p != 0) else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err("--tls-port needs --tls-cert-file and --tls-key-file".into());
    };
    let acceptor = shardai_node::tls::acceptor(
        cert,
        key,
        config.tls_ca_cert_file.as_deref(),
        config.tls_auth_clients,
    )?;
    let addr = std::net::SocketAddr::new(config.bind, port);
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (TLS): {e}"))?;
    Ok(Some((l, acceptor)))
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
