//! The listener: accepts connections under the connection limit, runs background tasks
//! (the expiry sweeper) and shuts everything down on request.
//!
//! Lifecycle: [`Server::run`] returns once the shutdown future resolves, every connection
//! task has been told to stop, and they have finished (or the grace period ran out).

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use shardai_engine::{Applied, Mutation};
use tokio::{io::AsyncWriteExt, net::TcpListener, sync::watch, task::JoinSet};
use tracing::{debug, info, warn};

use crate::{conn, state::Shared};

/// How often keys with a deadline are swept.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);

/// A bound listener and the state its connections share.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// A server accepting on `listener`.
    pub fn new(listener: TcpListener, shared: Arc<Shared>) -> Self {
        Server { listener, shared }
    }

    /// Serves until `shutdown` resolves, then drains connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut conns = JoinSet::new();
        let sweeper = tokio::spawn(expire_loop(self.shared.clone(), stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (mut sock, addr) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let shared = &self.shared;
                    let max = shared.runtime.maxclients.load(Ordering::Relaxed);
                    if shared.clients.lock().len() >= max {
                        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        debug!(%addr, max, "connection refused: maxclients reached");
                        let reply = conn::max_clients_reply();
                        tokio::spawn(async move {
                            let _ = sock.write_all(&reply).await;
                        });
                        continue;
                    }
                    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let laddr = sock.local_addr().unwrap_or(addr);
                    let info = shared.register(addr, laddr);
                    debug!(id = info.id, %addr, "connection accepted");
                    conns.spawn(conn::serve(sock, shared.clone(), info, stop_rx.clone()));
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
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

/// Removes expired keys through the proposer, so that replicas expire them too.
async fn expire_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if shared.store().volatile_len() == 0 {
            continue;
        }
        if let Ok(Applied::Int(n)) = shared.proposer.propose(Mutation::ExpireDue).await {
            shared.stats.expired.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}
