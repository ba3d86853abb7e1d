//! The bus server: accepts connections, agrees on each one's bus protocol version (its
//! preamble) and checks its Hello (cluster, group, node id)
//! and answers its requests with the local replica's Raft (appends, votes, snapshots, append
//! streams, forwarded writes).
//!
//! Owns the accepting side only; it must not open connections to peers, and it refuses a
//! connection before reading any Raft message from it.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use futures_util::StreamExt;
use openraft::{
    alias::VoteOf,
    raft::{AppendEntriesRequest, SnapshotResponse},
};
use parking_lot::RwLock;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, warn};

use super::{
    AbortOnDrop, C, STREAM_IDLE, ShardRaft,
    frame::{
        BUS_VERSION, BusReply, BusRequest, MAX_HELLO, Opening, agree, preamble, read_body,
        read_frame, read_frame_max, read_opening, unspoken, write_frame,
    },
    pool::Conn,
    tune,
};
use crate::snapshot::{Meta, SnapshotFile};

const HELLO_WAIT: Duration = Duration::from_secs(10);

/// What the bus server needs of the local shard replica, once it has joined a cluster.
#[derive(Clone)]
pub struct Target {
    /// The cluster's id.
    pub cluster: String,
    /// This node's id.
    pub me: u64,
    /// Its Raft.
    pub raft: ShardRaft,
    /// Where received snapshots are written.
    pub snap_dir: PathBuf,
}

/// The local replicas as the bus server sees them, by group name (empty until the node
/// joins a cluster).
pub type TargetSlot = Arc<RwLock<std::collections::BTreeMap<String, Target>>>;

/// Serves the cluster bus on `listener` until the process ends.
pub async fn serve(listener: TcpListener, slot: TargetSlot) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cluster bus accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = slot.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(sock, peer, slot).await
                && e.kind() != io::ErrorKind::UnexpectedEof
            {
                debug!(%peer, error = %e, "cluster bus connection closed");
            }
        });
    }
}

async fn serve_conn(sock: TcpStream, peer: SocketAddr, slot: TargetSlot) -> io::Result<()> {
    tune(&sock);
    let (r, w) = sock.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let hello = tokio::time::timeout(HELLO_WAIT, async {
        let opening = read_opening(&mut r).await?;
        let version = match opening {
            // The client offers its highest version; we answer the one both speak.
            Opening::Versioned(theirs) => match agree(theirs) {
                Some(v) => {
                    w.write_all(&preamble(v)).await?;
                    v
                }
                None => {
                    // Our highest, so that the peer can say which version it met, and
                    // nothing else.
                    w.write_all(&preamble(BUS_VERSION)).await?;
                    w.flush().await?;
                    return Ok(Err(theirs));
                }
            },
            Opening::Legacy(_) => 1,
        };
        let hello: BusRequest = match opening {
            Opening::Versioned(_) => read_frame_max(&mut r, MAX_HELLO).await?,
            Opening::Legacy(len) => read_body(&mut r, len, MAX_HELLO).await?,
        };
        Ok::<_, io::Error>(Ok((version, hello)))
    })
    .await
    .map_err(|_| io::Error::other("no hello in time"))??;
    // Versions 1 and 2 carry the same frames: nothing below depends on `version` yet.
    let (version, hello) = match hello {
        Ok(hello) => hello,
        Err(theirs) => {
            warn!(
                "refused a cluster bus connection: {}",
                unspoken(format_args!("the peer at {peer}"), theirs)
            );
            return Ok(());
        }
    };
    debug!(%peer, version, "cluster bus connection opened");
    let BusRequest::Hello { cluster, group, to } = hello else {
        return Err(io::Error::other("no hello"));
    };
    let (target, joined) = {
        let targets = slot.read();
        (targets.get(&group).cloned(), !targets.is_empty())
    };
    let refuse = match &target {
        None if !joined => Some("this node has not joined a cluster".to_string()),
        None => Some(format!("this node runs no Raft group {group:?}")),
        Some(t) if t.cluster != cluster => Some(format!(
            "this node belongs to cluster {}, not {cluster}",
            t.cluster
        )),
        Some(t) if t.me != to => Some(format!("this is node {}, not node {to}", t.me)),
        Some(_) => None,
    };
    if let Some(why) = refuse {
        warn!(reason = %why, "refused a cluster bus connection");
        write_frame(&mut w, &BusReply::Refused(why)).await?;
        return Ok(());
    }
    let t = target.expect("checked above");
    write_frame(&mut w, &BusReply::Welcome).await?;
    loop {
        let req: BusRequest = read_frame(&mut r).await?;
        let resp = match req {
            BusRequest::Append(a) => {
                BusReply::Append(t.raft.append_entries(a).await.map_err(|e| e.to_string()))
            }
            BusRequest::Vote(v) => BusReply::Vote(t.raft.vote(v).await.map_err(|e| e.to_string())),
            BusRequest::SnapBegin { vote, meta } => {
                BusReply::Snap(receive_snapshot(&t, &mut r, vote, meta).await)
            }
            BusRequest::StreamBegin => match serve_stream(&t, r, w).await? {
                Some(conn) => {
                    (r, w) = conn;
                    continue;
                }
                None => return Ok(()),
            },
            BusRequest::Propose(cmd) => BusReply::Propose(match t.raft.client_write(cmd).await {
                Ok(w) => Ok(w.response().clone()),
                Err(e) => Err(e.to_string()),
            }),
            BusRequest::Hello { .. }
            | BusRequest::SnapChunk(_)
            | BusRequest::SnapEnd
            | BusRequest::StreamEnd => {
                return Err(io::Error::other("unexpected message"));
            }
        };
        write_frame(&mut w, &resp).await?;
    }
}

/// Pipelined appends: requests are read and handed to openraft as they arrive, results go
/// back in order as openraft produces them, so several batches are in flight and the
/// follower's fsyncs cover several of them at once. A stream that ends cleanly gives the
/// connection back for the next request (openraft starts a new stream whenever the leader
/// has new replication work, many times a second).
async fn serve_stream(
    t: &Target,
    mut r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut w: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
) -> io::Result<Option<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<AppendEntriesRequest<C>>(64);
    let reader = tokio::spawn(async move {
        loop {
            match read_frame::<BusRequest>(&mut r).await {
                Ok(BusRequest::Append(a)) => {
                    if tx.send(a).await.is_err() {
                        return None;
                    }
                }
                Ok(BusRequest::StreamEnd) => return Some(r),
                _ => return None,
            }
        }
    });
    let reader = AbortOnDrop(Some(reader));
    let input =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) });
    let out = t.raft.stream_append(input);
    let mut out = std::pin::pin!(out);
    while let Some(item) = out.next().await {
        write_frame(&mut w, &BusReply::Stream(item.map_err(|e| e.to_string()))).await?;
    }
    write_frame(&mut w, &BusReply::StreamEnd).await?;
    Ok(reader.join(STREAM_IDLE).await.flatten().map(|r| (r, w)))
}

async fn receive_snapshot(
    t: &Target,
    r: &mut (impl AsyncReadExt + Unpin),
    vote: VoteOf<C>,
    meta: Meta,
) -> Result<SnapshotResponse<C>, String> {
    let path = t.snap_dir.join(format!(
        "recv-{}-{}.tmp",
        std::process::id(),
        shardai_engine::now_ms()
    ));
    let res = async {
        let mut f = tokio::fs::File::create(&path).await?;
        let mut bytes = 0u64;
        loop {
            match read_frame::<BusRequest>(r).await? {
                BusRequest::SnapChunk(c) => {
                    bytes += c.len() as u64;
                    f.write_all(&c).await?;
                }
                BusRequest::SnapEnd => break,
                _ => return Err(io::Error::other("unexpected message in a snapshot")),
            }
        }
        f.sync_all().await?;
        debug!(bytes, "snapshot received");
        Ok::<_, io::Error>(())
    }
    .await;
    if let Err(e) = res {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.to_string());
    }
    let snap = openraft::storage::Snapshot {
        meta,
        snapshot: SnapshotFile { path: path.clone() },
    };
    let out = t.raft.install_full_snapshot(vote, snap).await;
    let _ = tokio::fs::remove_file(&path).await;
    out.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::network::frame::preamble;

    fn hello() -> BusRequest {
        BusRequest::Hello {
            cluster: "alpha".into(),
            group: "data".into(),
            to: 7,
        }
    }

    /// A connection to a bus server of no cluster.
    async fn connect() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, TargetSlot::default()));
        TcpStream::connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn a_peer_of_a_later_bus_version_is_answered_ours_and_served() {
        let mut sock = connect().await;
        sock.write_all(&preamble(9)).await.unwrap();
        write_frame(&mut sock, &hello()).await.unwrap();
        let mut theirs = [0u8; crate::network::frame::PREAMBLE];
        sock.read_exact(&mut theirs).await.unwrap();
        assert_eq!(theirs, preamble(2));
        // Its Hello was read and answered (this server has joined no cluster).
        match read_frame::<BusReply>(&mut sock).await.unwrap() {
            BusReply::Refused(why) => assert_eq!(why, "this node has not joined a cluster"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_peer_of_our_own_or_an_earlier_bus_version_is_answered_its_own() {
        for v in [2, 1] {
            let mut sock = connect().await;
            sock.write_all(&preamble(v)).await.unwrap();
            write_frame(&mut sock, &hello()).await.unwrap();
            let mut theirs = [0u8; crate::network::frame::PREAMBLE];
            sock.read_exact(&mut theirs).await.unwrap();
            assert_eq!(theirs, preamble(v));
            assert!(matches!(
                read_frame::<BusReply>(&mut sock).await.unwrap(),
                BusReply::Refused(_)
            ));
        }
    }

    #[tokio::test]
    async fn a_peer_below_our_lowest_bus_version_gets_only_our_preamble() {
        let mut sock = connect().await;
        sock.write_all(&preamble(0)).await.unwrap();
        write_frame(&mut sock, &hello()).await.unwrap();
        // Our highest version, then the connection closes: no Hello is read, nothing else
        // is said.
        let mut got = Vec::new();
        sock.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, preamble(BUS_VERSION));
    }
}
