//! The listeners: accept plain and TLS connections under the connection limit and protected
//! mode, run background tasks (the expiry sweeper) and shut everything down on request.
//!
//! Lifecycle: [`Server::run`] returns once the shutdown future resolves, every connection
//! task has been told to stop, and they have finished (or the grace period ran out).

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use shardai_engine::{Applied, Mutation};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::{conn, state::Shared};

/// How often keys with a deadline are swept.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);

/// The bound listeners (plain and TLS) and the state their connections share.
pub struct Server {
    listener: Option<TcpListener>,
    tls: Option<(TcpListener, TlsAcceptor)>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// Longest a TLS client may take to finish its handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts on `l`, or never when there is no listener.
async fn accept(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

impl Server {
    /// A server accepting plain connections on `listener` (none with `--port 0`).
    pub fn new(listener: Option<TcpListener>, shared: Arc<Shared>) -> Self {
        Server {
            listener,
            tls: None,
            shared,
        }
    }

    /// Also accepts TLS connections on `listener`.
    pub fn with_tls(mut self, listener: TcpListener, acceptor: TlsAcceptor) -> Self {
        self.tls = Some((listener, acceptor));
        self
    }

    /// The error a new connection from `addr` gets instead of service, if any: over the
    /// connection limit, or from another host in protected mode.
    fn refusal(&self, addr: SocketAddr) -> Option<Vec<u8>> {
        let shared = &self.shared;
        let max = shared.runtime.maxclients.load(Ordering::Relaxed);
        if shared.clients.lock().len() >= max {
            debug!(%addr, max, "connection refused: maxclients reached");
            return Some(conn::max_clients_reply());
        }
        if shared.runtime.protected_mode.load(Ordering::Relaxed)
            && !addr.ip().to_canonical().is_loopback()
            && !shared.config.bind.is_loopback()
            && shared.acl.default_is_open()
        {
            debug!(%addr, "connection refused: protected mode");
            return Some(conn::denied_reply());
        }
        None
    }

    /// The default node's data log, if this is one.
    pub fn standalone(&self) -> Option<Arc<shardai_raft::ShardGroup>> {
        self.shared.standalone.clone()
    }

    /// Serves until `shutdown` resolves, then drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let sweeper = tokio::spawn(expire_loop(self.shared.clone(), stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            let (accepted, tls) = tokio::select! {
                _ = &mut shutdown => break,
                _ = self.shared.shutdown.notified() => break,
                a = accept(self.listener.as_ref()) => (a, None),
                a = accept(self.tls.as_ref().map(|t| &t.0)) => {
                    (a, self.tls.as_ref().map(|t| t.1.clone()))
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            };
            let (sock, addr) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = sock.set_nodelay(true);
            let shared = self.shared.clone();
            let refusal = self.refusal(addr);
            if refusal.is_some() {
                shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
            }
            let stop = stop_rx.clone();
            conns.spawn(async move {
                let laddr = sock.local_addr().unwrap_or(addr);
                let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
                let at = Peer { addr, laddr, fd };
                match tls {
                    None => start(sock, at, false, refusal, shared, stop).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(sock)).await {
                            Ok(Ok(s)) => start(s, at, true, refusal, shared, stop).await,
                            Ok(Err(e)) => debug!(%addr, error = %e, "TLS handshake failed"),
                            Err(_) => debug!(%addr, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        info!(
            connections = conns.len(),
            "shutting down: closing connections"
        );
        let _ = stop_tx.send(true);
        let grace = Duration::from_secs(self.shared.config.shutdown_timeout);
        let drained =
            tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                left = conns.len(),
                "connections did not finish in time; aborting them"
            );
            conns.abort_all();
        }
        let _ = sweeper.await;
    }
}

/// Where a connection comes from and arrives at, and its socket.
struct Peer {
    addr: SocketAddr,
    laddr: SocketAddr,
    fd: i32,
}

/// Serves an accepted (and, for TLS, handshaken) connection, or writes its refusal.
async fn start<S>(
    mut sock: S,
    Peer { addr, laddr, fd }: Peer,
    tls: bool,
    refusal: Option<Vec<u8>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if let Some(reply) = refusal {
        let _ = sock.write_all(&reply).await;
        let _ = sock.shutdown().await;
        return;
    }
    let info = shared.register(addr, laddr, fd);
    debug!(id = info.id, %addr, tls, "connection accepted");
    conn::serve(sock, tls, shared, info, stop).await;
}

/// Removes expired keys through the proposer, so that replicas expire them too.
async fn expire_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // Only when a deadline has passed: an entry every tick would be fsync'd on every
        // replica for nothing.
        if !shared.store().expiry_due(shardai_engine::now_ms()) {
            continue;
        }
        if let Ok(Applied::Int(n)) = shared.proposer.propose(Mutation::ExpireDue).await {
            shared.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
