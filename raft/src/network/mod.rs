//! The node-to-node transport (the cluster bus): length-prefixed bincode frames over TCP on
//! `--cluster-port`, inside mutual TLS when certificates are given.
//!
//! Every connection starts with a preamble agreeing on the bus protocol version (see
//! `frame`), both sides' proofs of knowing the cluster secret (see `security`; a peer that
//! fails is told only that it was refused), and a `Hello` naming the cluster id, the Raft group (a node runs its shard's
//! group and the metadata group) and the node it expects to reach; a node
//! of another cluster, one that is not the named node, or one without that group refuses it
//! before any Raft message is read. After that a connection carries one request and its response
//! at a time (openraft runs one replication stream per peer, each with its own client).
//! A snapshot goes as a header, then file chunks, then an end mark: both sides hold one
//! chunk in memory, whatever the snapshot's size.
//!
//! Connections are kept per peer and reused (openraft opens a client per heartbeat round and
//! an append stream per round of replication work); one is reused only when its last exchange
//! ended cleanly, and is checked for having been closed by the peer before that. TCP keepalive
//! finds a vanished peer's connections, so no task waits on them for ever.
//!
//! # Layout
//!
//! - `frame`: message types and framing.
//! - `server`: [`serve`], the accepting side.
//! - `client`: [`Network`] and [`Peer`], the connecting side.
//! - `pool`: idle connections per peer.
//! - `security`: [`BusSecurity`], the cluster secret and its proofs.
//! - `tls`: mutual TLS ([`TlsFiles`]).
//! - `stream`: a connection's halves, plain or TLS.

mod client;
pub(crate) mod frame;
mod pool;
pub(crate) mod security;
mod server;
mod stream;
mod tls;

use std::time::Duration;

use tokio::net::TcpStream;

pub use self::{
    client::{Network, Peer},
    security::BusSecurity,
    server::{Target, TargetSlot, serve},
    tls::TlsFiles,
};
use crate::types::TypeConfig;

type C = TypeConfig;

/// The Raft handle type of a shard.
pub type ShardRaft = openraft::Raft<C, crate::state_machine::StateMachine>;

/// TCP keepalive on bus connections: a peer whose host vanished (a half-open connection,
/// idle in a pool or waiting for the next request) is found dead within about a minute,
/// so no task waits on it forever.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(30))
    .with_interval(Duration::from_secs(5));
/// Longest wait for the next append result while requests are in flight on a stream.
pub(crate) const STREAM_IDLE: Duration = Duration::from_secs(10);

/// Bus socket options: no Nagle delay, keepalive probes.
pub(crate) fn tune(sock: &TcpStream) {
    let _ = sock.set_nodelay(true);
    let _ = socket2::SockRef::from(sock).set_tcp_keepalive(&KEEPALIVE);
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    /// The task's result, if it finished within `limit` (else, or if this future is dropped,
    /// the task is aborted).
    async fn join(mut self, limit: Duration) -> Option<T> {
        let handle = self.0.as_mut()?;
        let out = tokio::time::timeout(limit, handle).await.ok()?.ok()?;
        self.0 = None;
        Some(out)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}
