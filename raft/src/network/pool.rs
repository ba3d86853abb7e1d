//! Idle bus connections kept per peer for reuse, and the check that one the peer closed (or
//! wrote to) is not reused.
//!
//! Owns only idle connections; a connection in use belongs to its client and comes back
//! here only after a clean exchange.

use std::sync::Arc;

use tokio::io::{BufReader, BufWriter};

use super::stream::{BusRead, BusWrite};

/// A bus connection past its handshake (plain TCP or TLS).
pub(super) type Conn = (BufReader<BusRead>, BufWriter<BusWrite>);

/// Idle connections by peer (openraft makes a new client for every heartbeat round and vote,
/// and a new append stream for every round of replication work).
#[derive(Debug, Clone, Default)]
pub(super) struct Pool(Arc<parking_lot::Mutex<Idle>>);

/// Idle connections by (node id, bus address).
type Idle = std::collections::HashMap<(u64, String), Vec<Conn>>;

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 4;

impl Pool {
    /// An idle connection to the peer that is still open (one the peer closed, because it
    /// restarted or gave up on it, is dropped here rather than failing a request).
    pub(super) fn take(&self, target: u64, addr: &str) -> Option<Conn> {
        let mut pool = self.0.lock();
        let idle = pool.get_mut(&(target, addr.to_string()))?;
        while let Some(mut c) = idle.pop() {
            if open_and_quiet(&mut c) {
                return Some(c);
            }
        }
        None
    }

    pub(super) fn put(&self, target: u64, addr: String, conn: Conn) {
        let mut pool = self.0.lock();
        let idle = pool.entry((target, addr)).or_default();
        if idle.len() < IDLE_PER_PEER {
            idle.push(conn);
        }
    }
}

/// True when nothing is waiting to be read on an idle connection and the peer has not closed
/// it (a peek that would block); anything else means it cannot carry a new request.
pub(super) fn open_and_quiet(c: &mut Conn) -> bool {
    c.0.buffer().is_empty() && c.0.get_mut().is_quiet()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::{
        io::AsyncWriteExt,
        net::{TcpListener, TcpStream},
    };

    use super::*;

    async fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (r, w) = crate::network::stream::plain(client.unwrap());
        ((BufReader::new(r), BufWriter::new(w)), server.unwrap().0)
    }

    #[tokio::test]
    async fn pooled_connections_the_peer_closed_or_wrote_to_are_not_reused() {
        let pool = Pool::default();
        let (open, _keep) = pair().await;
        let (closed, server) = pair().await;
        drop(server);
        let (written, mut server) = pair().await;
        server.write_all(b"x").await.unwrap();
        // Let the FIN and the byte arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        for c in [open, closed, written] {
            pool.put(7, "peer".into(), c);
        }
        // Taken last in, first out: the written and the closed one are dropped.
        let mut got = pool.take(7, "peer").expect("the open connection");
        assert!(open_and_quiet(&mut got));
        assert!(pool.take(7, "peer").is_none());
        assert!(pool.take(8, "peer").is_none());
    }
}
