//! The bus server: accepts connections (TLS first when configured), agrees on each one's
//! bus protocol version (its preamble), checks the peer's proof of the cluster secret
//! (version 3; a peer whose proof fails hears only `Refused`, never the cluster id, a node
//! id or a group), then its Hello (cluster, group, node id)
//! and answers its requests with the local replica's Raft (appends, votes, snapshots, append
//! streams, forwarded writes).
//!
//! Owns the accepting side only; it must not open connections to peers, and it refuses a
//! connection before reading any Raft message from it.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use futures_util::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::{
    alias::VoteOf,
    raft::{AppendEntriesRequest, SnapshotResponse},
};
use parking_lot::RwLock;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, info, warn};

use super::{
    AbortOnDrop, C, STREAM_IDLE, ShardRaft,
    frame::{
        BUS_VERSION, BusReply, BusRequest, Handshake, MAX_HELLO, Opening, PROOF_VERSION, agree,
        preamble, read_body, read_frame, read_frame_max, read_opening, unspoken, write_frame,
    },
    pool::Conn,
    security::{BusSecurity, Side, nonce},
    stream::{self, BusRead, BusWrite},
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

/// Serves the cluster bus on `listener` until the process ends; peers authenticate as
/// `security` says.
pub async fn serve(listener: TcpListener, slot: TargetSlot, security: BusSecurity) {
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
        let security = security.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(sock, peer, slot, security).await
                && e.kind() != io::ErrorKind::UnexpectedEof
            {
                debug!(%peer, error = %e, "cluster bus connection closed");
            }
        });
    }
}

/// A connection past its opening: its halves, the version spoken and the peer's Hello.
type Opened = (Conn, u32, BusRequest);

/// TLS (when configured), the version, the proofs (version 3) and the Hello. `None`: the
/// peer was refused (and told no more than the version, or that it was refused), and the
/// reason logged here.
async fn open(sock: TcpStream, peer: SocketAddr, sec: &BusSecurity) -> io::Result<Option<Opened>> {
    let (r, w) = match sec.tls() {
        Some(tls) => match tls.accept(sock).await {
            Ok(s) => stream::tls(s),
            Err(e) => {
                warn!(%peer, error = %e, "refused a cluster bus connection: TLS handshake failed");
                return Ok(None);
            }
        },
        None => stream::plain(sock),
    };
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let lowest = sec.lowest_version();
    let opening = read_opening(&mut r).await?;
    let version = match opening {
        // The client offers its highest version; we answer the one both speak.
        Opening::Versioned(theirs) => match agree(theirs, lowest) {
            Some(v) => {
                w.write_all(&preamble(v)).await?;
                v
            }
            None => {
                // Our highest, so that the peer can say which version it met, and nothing
                // else.
                w.write_all(&preamble(BUS_VERSION)).await?;
                w.flush().await?;
                warn!(
                    "refused a cluster bus connection: {}",
                    unspoken(format_args!("the peer at {peer}"), theirs, lowest)
                );
                return Ok(None);
            }
        },
        Opening::Legacy(_) if lowest > 1 => {
            warn!(
                "refused a cluster bus connection: the peer at {peer} sent no bus preamble (a \
                 build before bus protocol version 2, which cannot authenticate)"
            );
            return Ok(None);
        }
        Opening::Legacy(_) => 1,
    };
    if version >= PROOF_VERSION {
        // Our nonce; the client proves first, and hears our proof only once its held.
        let ours = nonce()?;
        write_frame(&mut w, &Handshake::Challenge(ours)).await?;
        let Handshake::ClientProof {
            nonce: theirs,
            proof,
        } = read_frame_max::<Handshake>(&mut r, MAX_HELLO).await?
        else {
            return Err(io::Error::other("no proof"));
        };
        if !sec.holds(Side::Client, version, &ours, &theirs, &proof) {
            warn!(
                %peer,
                "refused a cluster bus connection: the peer did not prove it knows the \
                 cluster secret"
            );
            write_frame(&mut w, &Handshake::Refused).await?;
            return Ok(None);
        }
        let mine = sec.prove(Side::Server, version, &ours, &theirs);
        write_frame(&mut w, &Handshake::ServerProof(mine)).await?;
    }
    let hello: BusRequest = match opening {
        Opening::Versioned(_) => read_frame_max(&mut r, MAX_HELLO).await?,
        Opening::Legacy(len) => read_body(&mut r, len, MAX_HELLO).await?,
    };
    Ok(Some(((r, w), version, hello)))
}

async fn serve_conn(
    sock: TcpStream,
    peer: SocketAddr,
    slot: TargetSlot,
    sec: BusSecurity,
) -> io::Result<()> {
    tune(&sock);
    let opened = tokio::time::timeout(HELLO_WAIT, open(sock, peer, &sec))
        .await
        .map_err(|_| io::Error::other("no hello in time"))??;
    // Versions 1 to 3 carry the same frames after the opening: nothing below depends on
    // `version` yet.
    let Some(((mut r, mut w), version, hello)) = opened else {
        return Ok(());
    };
    debug!(%peer, version, "cluster bus connection opened");
    let BusRequest::Hello { cluster, group, to } = hello else {
        return Err(io::Error::other("no hello"));
    };
    let (target, joined) = {
        let targets = slot.read();
        (targets.get(&group).cloned(), !targets.is_empty())
    };
    // Told in full: the peer proved the secret (or this bus is open).
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
        warn!(%peer, reason = %why, "refused a cluster bus connection");
        write_frame(&mut w, &BusReply::Refused(why)).await?;
        return Ok(());
    }
    let t = target.expect("checked above");
    write_frame(&mut w, &BusReply::Welcome).await?;
    loop {
        let req: BusRequest = read_frame(&mut r).await?;
        // A group stopped on a storage error answers nothing more: each call into it would
        // only log openraft's "failed to send" error (many a second, with a live leader).
        let stopped = (t.raft.metrics().borrow_watched().running_state.as_ref())
            .err()
            .map(|e| e.to_string());
        if let Some(e) = stopped {
            let why = format!("node {}'s Raft group has stopped: {e}", t.me);
            let resp = match req {
                BusRequest::Append(_) => BusReply::Append(Err(why)),
                BusRequest::Vote(_) => BusReply::Vote(Err(why)),
                BusRequest::Propose(_) => BusReply::Propose(Err(why)),
                BusRequest::StreamBegin => {
                    // The leader's stream reader reports the reason; the connection ends.
                    write_frame(&mut w, &BusReply::Stream(Err(why))).await?;
                    return Ok(());
                }
                _ => return Ok(()),
            };
            write_frame(&mut w, &resp).await?;
            continue;
        }
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
    mut r: BufReader<BusRead>,
    mut w: BufWriter<BusWrite>,
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
        let mut progress = crate::progress::Progress::new("receiving a snapshot", None);
        loop {
            match read_frame::<BusRequest>(r).await? {
                BusRequest::SnapChunk(c) => {
                    bytes += c.len() as u64;
                    progress.at(bytes);
                    f.write_all(&c).await?;
                }
                BusRequest::SnapEnd => break,
                _ => return Err(io::Error::other("unexpected message in a snapshot")),
            }
        }
        f.sync_all().await?;
        info!(bytes, "snapshot received");
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
    use crate::network::{
        frame::{PREAMBLE, preamble},
        security::NONCE,
    };

    fn hello() -> BusRequest {
        BusRequest::Hello {
            cluster: "alpha".into(),
            group: "data".into(),
            to: 7,
        }
    }

    fn secret(s: &[u8]) -> BusSecurity {
        BusSecurity::new(Some(s), None).unwrap()
    }

    /// A connection to a bus server of no cluster, secured as `sec` says.
    async fn connect(sec: BusSecurity) -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, TargetSlot::default(), sec));
        TcpStream::connect(addr).await.unwrap()
    }

    /// Reads the server's preamble and challenge, and sends a proof made with `ours`.
    async fn prove(sock: &mut TcpStream, ours: &BusSecurity, version: u32) -> [u8; NONCE] {
        let mut theirs = [0u8; PREAMBLE];
        sock.read_exact(&mut theirs).await.unwrap();
        assert_eq!(theirs, preamble(version));
        let Handshake::Challenge(server) = read_frame(sock).await.unwrap() else {
            panic!("no challenge")
        };
        let client = nonce().unwrap();
        let proof = ours.prove(Side::Client, version, &server, &client);
        write_frame(
            sock,
            &Handshake::ClientProof {
                nonce: client,
                proof,
            },
        )
        .await
        .unwrap();
        match read_frame::<Handshake>(sock).await.unwrap() {
            Handshake::ServerProof(p) => {
                assert!(ours.holds(Side::Server, version, &server, &client, &p));
            }
            other => panic!("{other:?}"),
        }
        client
    }

    #[tokio::test]
    async fn a_peer_of_a_newer_bus_version_is_answered_ours_proved_and_served() {
        for sec in [BusSecurity::open(), secret(b"sesame")] {
            let mut sock = connect(sec.clone()).await;
            // A version 3 client (or newer) sends its preamble alone.
            sock.write_all(&preamble(9)).await.unwrap();
            prove(&mut sock, &sec, 3).await;
            write_frame(&mut sock, &hello()).await.unwrap();
            // Its Hello was read and answered (this server has joined no cluster).
            match read_frame::<BusReply>(&mut sock).await.unwrap() {
                BusReply::Refused(why) => assert_eq!(why, "this node has not joined a cluster"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn an_open_bus_answers_version_2_and_1_peers_their_own() {
        for v in [2, 1] {
            let mut sock = connect(BusSecurity::open()).await;
            sock.write_all(&preamble(v)).await.unwrap();
            write_frame(&mut sock, &hello()).await.unwrap();
            let mut theirs = [0u8; PREAMBLE];
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
        // Below 1 on an open bus; below 3 (2, which cannot authenticate) on a secured one.
        for (sec, v) in [(BusSecurity::open(), 0), (secret(b"sesame"), 2)] {
            let mut sock = connect(sec).await;
            sock.write_all(&preamble(v)).await.unwrap();
            write_frame(&mut sock, &hello()).await.unwrap();
            // Our highest version, then the connection closes: no Hello is read, nothing
            // else is said.
            let mut got = Vec::new();
            sock.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, preamble(BUS_VERSION));
        }
    }

    #[tokio::test]
    async fn a_secured_bus_closes_on_a_version_1_peer_without_a_word() {
        let mut sock = connect(secret(b"sesame")).await;
        write_frame(&mut sock, &hello()).await.unwrap();
        let mut got = Vec::new();
        sock.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty(), "{got:?}");
    }

    #[tokio::test]
    async fn a_wrong_or_missing_secret_hears_only_refused() {
        for wrong in [secret(b"sesamf"), BusSecurity::open()] {
            let mut sock = connect(secret(b"sesame")).await;
            sock.write_all(&preamble(BUS_VERSION)).await.unwrap();
            let mut theirs = [0u8; PREAMBLE];
            sock.read_exact(&mut theirs).await.unwrap();
            let Handshake::Challenge(server) = read_frame(&mut sock).await.unwrap() else {
                panic!("no challenge")
            };
            let client = nonce().unwrap();
            let proof = wrong.prove(Side::Client, 3, &server, &client);
            write_frame(
                &mut sock,
                &Handshake::ClientProof {
                    nonce: client,
                    proof,
                },
            )
            .await
            .unwrap();
            // Refused, then closed.
            let mut rest = Vec::new();
            let _ = sock.read_to_end(&mut rest).await;
            let mut r = &rest[..];
            assert_eq!(
                read_frame::<Handshake>(&mut r).await.unwrap(),
                Handshake::Refused
            );
            assert!(r.is_empty(), "{rest:?}");
        }
    }

    #[tokio::test]
    async fn a_replayed_proof_is_refused() {
        let sec = secret(b"sesame");
        // A proof recorded for another connection's challenge.
        let recorded = sec.prove(Side::Client, 3, &[1; NONCE], &[2; NONCE]);
        let mut sock = connect(sec).await;
        sock.write_all(&preamble(BUS_VERSION)).await.unwrap();
        let mut theirs = [0u8; PREAMBLE];
        sock.read_exact(&mut theirs).await.unwrap();
        let _: Handshake = read_frame(&mut sock).await.unwrap();
        write_frame(
            &mut sock,
            &Handshake::ClientProof {
                nonce: [2; NONCE],
                proof: recorded,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            read_frame::<Handshake>(&mut sock).await.unwrap(),
            Handshake::Refused
        );
    }
}
