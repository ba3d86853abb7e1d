//! The node-to-node transport (the cluster bus): length-prefixed bincode frames over TCP on
//! `--cluster-port`.
//!
//! Every connection starts with a `Hello` naming the cluster id, the Raft group (a node
//! runs its shard's group and the metadata group) and the node it expects to reach; a node
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

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use openraft::{
    RaftNetworkFactory,
    alias::{SnapshotOf, VoteOf},
    error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable},
    network::{RPCOption, v2::RaftNetworkV2},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
        VoteRequest, VoteResponse,
    },
};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{TcpListener, TcpStream},
};
use tracing::{debug, warn};

use crate::{
    snapshot::{Meta, SnapshotFile},
    types::TypeConfig,
};

type C = TypeConfig;

/// The Raft handle type of a shard.
pub type ShardRaft = openraft::Raft<C, crate::state_machine::StateMachine>;

/// Largest frame accepted (one AppendEntries holding a large model).
const MAX_FRAME: usize = 1 << 31;
/// Largest first frame (`Hello`), and the longest wait for it: an unknown peer gets no
/// large buffer and no lasting task.
const MAX_HELLO: usize = 64 * 1024;
const HELLO_WAIT: Duration = Duration::from_secs(10);
/// TCP keepalive on bus connections: a peer whose host vanished (a half-open connection,
/// idle in a pool or waiting for the next request) is found dead within about a minute,
/// so no task waits on it forever.
const KEEPALIVE: socket2::TcpKeepalive = socket2::TcpKeepalive::new()
    .with_time(Duration::from_secs(30))
    .with_interval(Duration::from_secs(5));
/// Snapshot chunk size.
const CHUNK: usize = 1 << 20;
/// Least time given to one request (a follower's fsync under load can take a while).
const MIN_TTL: Duration = Duration::from_secs(3);
/// Longest wait for the next append result while requests are in flight on a stream.
const STREAM_IDLE: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BusRequest {
    Hello {
        cluster: String,
        group: String,
        to: u64,
    },
    /// A write forwarded to the group's leader by another member.
    Propose(crate::Cmd),
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    SnapBegin {
        vote: VoteOf<C>,
        meta: Meta,
    },
    SnapChunk(Bytes),
    SnapEnd,
    /// The rest of the connection is a pipelined stream of appends.
    StreamBegin,
    StreamEnd,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum BusReply {
    Welcome,
    Refused(String),
    Append(Result<AppendEntriesResponse<C>, String>),
    Vote(Result<VoteResponse<C>, String>),
    Snap(Result<SnapshotResponse<C>, String>),
    Stream(Result<StreamAppendResult<C>, String>),
    StreamEnd,
    Propose(Result<crate::ApplyResult, String>),
}

pub(crate) async fn write_frame<T: Serialize>(w: &mut (impl AsyncWriteExt + Unpin), v: &T) -> io::Result<()> {
    let b = bincode::serialize(v).map_err(io::Error::other)?;
    w.write_all(&(b.len() as u32).to_le_bytes()).await?;
    w.write_all(&b).await?;
    w.flush().await
}

async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> io::Result<T> {
    read_frame_max(r, MAX_FRAME).await
}

async fn read_frame_max<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
    max: usize,
) -> io::Result<T> {
    let len = r.read_u32_le().await? as usize;
    if len > max {
        return Err(io::Error::other(format!("frame of {len} bytes refused")));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).await?;
    bincode::deserialize(&b).map_err(io::Error::other)
}

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
            if let Err(e) = serve_conn(sock, slot).await
                && e.kind() != io::ErrorKind::UnexpectedEof
            {
                debug!(%peer, error = %e, "cluster bus connection closed");
            }
        });
    }
}

/// Bus socket options: no Nagle delay, keepalive probes.
fn tune(sock: &TcpStream) {
    let _ = sock.set_nodelay(true);
    let _ = socket2::SockRef::from(sock).set_tcp_keepalive(&KEEPALIVE);
}

async fn serve_conn(sock: TcpStream, slot: TargetSlot) -> io::Result<()> {
    tune(&sock);
    let (r, w) = sock.into_split();
    let (mut r, mut w) = (BufReader::new(r), BufWriter::new(w));
    let hello = tokio::time::timeout(HELLO_WAIT, read_frame_max(&mut r, MAX_HELLO))
        .await
        .map_err(|_| io::Error::other("no hello in time"))??;
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
            BusRequest::Hello { .. } | BusRequest::SnapChunk(_) | BusRequest::SnapEnd | BusRequest::StreamEnd => {
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

/// Aborts a task when dropped.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

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

type Conn = (
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    BufWriter<tokio::net::tcp::OwnedWriteHalf>,
);

/// Idle connections by peer (openraft makes a new client for every heartbeat round and vote,
/// and a new append stream for every round of replication work).
#[derive(Debug, Clone, Default)]
struct Pool(Arc<parking_lot::Mutex<Idle>>);

/// Idle connections by (node id, bus address).
type Idle = std::collections::HashMap<(u64, String), Vec<Conn>>;

/// Idle connections kept per peer.
const IDLE_PER_PEER: usize = 4;

impl Pool {
    /// An idle connection to the peer that is still open (one the peer closed, because it
    /// restarted or gave up on it, is dropped here rather than failing a request).
    fn take(&self, target: u64, addr: &str) -> Option<Conn> {
        let mut pool = self.0.lock();
        let idle = pool.get_mut(&(target, addr.to_string()))?;
        while let Some(mut c) = idle.pop() {
            if open_and_quiet(&mut c) {
                return Some(c);
            }
        }
        None
    }

    fn put(&self, target: u64, addr: String, conn: Conn) {
        let mut pool = self.0.lock();
        let idle = pool.entry((target, addr)).or_default();
        if idle.len() < IDLE_PER_PEER {
            idle.push(conn);
        }
    }
}

/// True when nothing is waiting to be read on an idle connection and the peer has not closed
/// it (a peek that would block); anything else means it cannot carry a new request.
fn open_and_quiet(c: &mut Conn) -> bool {
    if !c.0.buffer().is_empty() {
        return false;
    }
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut byte);
    c.0.get_mut().poll_peek(&mut cx, &mut buf).is_pending()
}

/// The reading side of an append stream, and where its connection goes back when the stream
/// ends cleanly.
struct StreamRx {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: AbortOnDrop<Option<BufWriter<tokio::net::tcp::OwnedWriteHalf>>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    done: bool,
    pool: Pool,
    target: u64,
    addr: String,
}

/// Makes clients for peers.
#[derive(Debug, Clone)]
pub struct Network {
    cluster: Arc<str>,
    group: Arc<str>,
    pool: Pool,
}

impl Network {
    /// Clients that introduce themselves as members of `group` in `cluster`.
    pub fn new(cluster: &str, group: &str) -> Self {
        Network {
            cluster: cluster.into(),
            group: group.into(),
            pool: Pool::default(),
        }
    }

    /// Forwards a write to the group's leader `target` at bus address `addr` and returns
    /// its result once the leader applied it.
    pub async fn propose(
        &self,
        target: u64,
        addr: &str,
        cmd: crate::Cmd,
    ) -> Result<crate::ApplyResult, String> {
        let mut peer = self.peer(target, addr);
        match peer.call(&BusRequest::Propose(cmd), Duration::from_secs(10)).await {
            Ok(BusReply::Propose(r)) => r,
            Ok(_) => {
                peer.conn = None;
                Err("bad response".into())
            }
            Err(CallError::Unreachable(e) | CallError::Network(e)) => Err(e.to_string()),
        }
    }

    fn peer(&self, target: u64, addr: &str) -> Peer {
        Peer {
            cluster: self.cluster.clone(),
            group: self.group.clone(),
            target,
            addr: addr.to_string(),
            conn: None,
            pool: self.pool.clone(),
        }
    }
}

/// A connection to one peer, taken from the pool or opened on first use, reopened after an
/// error, and given back to the pool when the client is dropped.
#[derive(Debug)]
pub struct Peer {
    cluster: Arc<str>,
    group: Arc<str>,
    target: u64,
    addr: String,
    conn: Option<Conn>,
    pool: Pool,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool
                .put(self.target, std::mem::take(&mut self.addr), c);
        }
    }
}

enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl CallError {
    fn rpc(self) -> RPCError<C> {
        match self {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn streaming(self) -> StreamingError<C> {
        match self {
            CallError::Unreachable(e) => StreamingError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => StreamingError::Network(NetworkError::new(&e)),
        }
    }
}

impl Peer {
    async fn connect(&mut self, ttl: Duration) -> Result<(), CallError> {
        if self.conn.is_none() {
            self.conn = self.pool.take(self.target, &self.addr);
        }
        if self.conn.is_some() {
            return Ok(());
        }
        let sock = tokio::time::timeout(ttl, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| CallError::Unreachable(io::Error::other("connect timed out")))?
            .map_err(CallError::Unreachable)?;
        tune(&sock);
        let (r, w) = sock.into_split();
        let (mut r, mut w) = (BufReader::new(r), BufWriter::with_capacity(1 << 16, w));
        let hello = BusRequest::Hello {
            cluster: self.cluster.to_string(),
            group: self.group.to_string(),
            to: self.target,
        };
        let resp = tokio::time::timeout(ttl, async {
            write_frame(&mut w, &hello).await?;
            read_frame::<BusReply>(&mut r).await
        })
        .await
        .map_err(|_| CallError::Unreachable(io::Error::other("handshake timed out")))?
        .map_err(CallError::Unreachable)?;
        match resp {
            BusReply::Welcome => {
                self.conn = Some((r, w));
                Ok(())
            }
            BusReply::Refused(why) => Err(CallError::Unreachable(io::Error::other(format!(
                "node {} at {} refused us: {why}",
                self.target, self.addr
            )))),
            _ => Err(CallError::Unreachable(io::Error::other("bad handshake"))),
        }
    }

    async fn call(&mut self, req: &BusRequest, ttl: Duration) -> Result<BusReply, CallError> {
        self.connect(ttl).await?;
        // Taken out while in use: if this future is dropped mid-request (openraft times
        // out some calls itself), the half-used connection is closed, never reused with an
        // answer still in flight.
        let (mut r, mut w) = self.conn.take().expect("connected");
        let res = tokio::time::timeout(ttl, async {
            write_frame(&mut w, req).await?;
            read_frame::<BusReply>(&mut r).await
        })
        .await;
        match res {
            Ok(Ok(resp)) => {
                self.conn = Some((r, w));
                Ok(resp)
            }
            Ok(Err(e)) => Err(CallError::Network(e)),
            Err(_) => Err(CallError::Network(io::Error::other("request timed out"))),
        }
    }

    async fn send_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SnapshotFile>,
    ) -> Result<SnapshotResponse<C>, CallError> {
        let ttl = Duration::from_secs(30);
        self.connect(ttl).await?;
        let mut f = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(CallError::Network)?;
        let (mut r, mut w) = self.conn.take().expect("connected");
        let (r, w) = (&mut r, &mut w);
        let sent = async {
            write_frame(
                w,
                &BusRequest::SnapBegin {
                    vote,
                    meta: snapshot.meta.clone(),
                },
            )
            .await?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                tokio::time::timeout(
                    ttl,
                    write_frame(w, &BusRequest::SnapChunk(Bytes::copy_from_slice(&buf[..n]))),
                )
                .await
                .map_err(|_| io::Error::other("snapshot chunk timed out"))??;
            }
            write_frame(w, &BusRequest::SnapEnd).await?;
            // Installing (loading models) can take a while on the receiver.
            tokio::time::timeout(Duration::from_secs(600), read_frame::<BusReply>(r))
                .await
                .map_err(|_| io::Error::other("snapshot install timed out"))?
        }
        .await;
        match sent {
            Ok(BusReply::Snap(Ok(r))) => Ok(r),
            Ok(BusReply::Snap(Err(e))) => {
                // The receiver may have stopped reading mid-snapshot: not reused.
                self.conn = None;
                Err(CallError::Network(io::Error::other(e)))
            }
            Ok(_) => {
                self.conn = None;
                Err(CallError::Network(io::Error::other(
                    "bad snapshot response",
                )))
            }
            Err(e) => {
                self.conn = None;
                Err(CallError::Network(e))
            }
        }
    }
}

/// An error the peer reported, or an answer that makes no sense.
fn remote(e: impl Into<String>) -> RPCError<C> {
    RPCError::Network(NetworkError::new(&io::Error::other(e.into())))
}

fn ttl(option: &RPCOption) -> Duration {
    option.soft_ttl().max(MIN_TTL)
}

impl RaftNetworkFactory<C> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &crate::ShardNode) -> Peer {
        self.peer(target, &node.raft_addr)
    }
}

impl RaftNetworkV2<C> for Peer {
    type SnapshotData = SnapshotFile;

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> openraft::base::BoxFuture<
        's,
        Result<
            openraft::base::BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>,
            RPCError<C>,
        >,
    >
    where
        S: futures_util::Stream<Item = AppendEntriesRequest<C>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            self.connect(ttl(&option)).await.map_err(CallError::rpc)?;
            // The stream owns the connection; a stream that ends cleanly puts it back in the
            // pool for the next one.
            let (r, mut w) = self.conn.take().expect("connected");
            let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let sent = in_flight.clone();
            let writer = tokio::spawn(async move {
                let mut input = input;
                let res = async {
                    write_frame(&mut w, &BusRequest::StreamBegin).await?;
                    while let Some(req) = input.next().await {
                        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        write_frame(&mut w, &BusRequest::Append(req)).await?;
                    }
                    write_frame(&mut w, &BusRequest::StreamEnd).await
                }
                .await;
                match res {
                    Ok(()) => Some(w),
                    Err(e) => {
                        debug!(error = %e, "append stream writer stopped");
                        None
                    }
                }
            });
            let state = StreamRx {
                r,
                writer: AbortOnDrop(Some(writer)),
                in_flight,
                done: false,
                pool: self.pool.clone(),
                target: self.target,
                addr: self.addr.clone(),
            };
            let results = futures_util::stream::unfold(state, |mut s| async move {
                if s.done {
                    return None;
                }
                // Wait for data without consuming it (cancel-safe); only time out while a
                // request is waiting for its answer, since an idle stream is normal.
                loop {
                    // A request sent during a wait gets a whole wait of its own.
                    let waiting = s.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0;
                    match tokio::time::timeout(STREAM_IDLE, s.r.fill_buf()).await {
                        Ok(_) => break,
                        Err(_) if !waiting => {}
                        Err(_) => {
                            let e = io::Error::other("no append response in time");
                            s.done = true;
                            return Some((Err(RPCError::Network(NetworkError::new(&e))), s));
                        }
                    }
                }
                let e = match read_frame::<BusReply>(&mut s.r).await {
                    Ok(BusReply::Stream(Ok(res))) => {
                        s.in_flight
                            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        s.done = res.is_err();
                        return Some((Ok(res), s));
                    }
                    Ok(BusReply::StreamEnd) => {
                        if let Some(w) = s.writer.join(STREAM_IDLE).await.flatten() {
                            s.pool.put(s.target, s.addr, (s.r, w));
                        }
                        return None;
                    }
                    Ok(BusReply::Stream(Err(e))) => io::Error::other(e),
                    Ok(_) => io::Error::other("bad stream response"),
                    Err(e) => e,
                };
                s.done = true;
                Some((Err(RPCError::Network(NetworkError::new(&e))), s))
            });
            let boxed: openraft::base::BoxStream<'s, _> = Box::pin(results);
            Ok(boxed)
        })
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        match self.call(&BusRequest::Append(rpc), ttl(&option)).await {
            Ok(BusReply::Append(Ok(r))) => Ok(r),
            Ok(BusReply::Append(Err(e))) => Err(remote(e)),
            Ok(_) => {
                self.conn = None;
                Err(remote("bad response"))
            }
            Err(e) => Err(e.rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self.call(&BusRequest::Vote(rpc), ttl(&option)).await {
            Ok(BusReply::Vote(Ok(r))) => Ok(r),
            Ok(BusReply::Vote(Err(e))) => Err(remote(e)),
            Ok(_) => {
                self.conn = None;
                Err(remote("bad response"))
            }
            Err(e) => Err(e.rpc()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SnapshotFile>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        tokio::select! {
            r = self.send_snapshot(vote, snapshot) => r.map_err(CallError::streaming),
            closed = cancel => {
                self.conn = None;
                Err(StreamingError::Closed(closed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (r, w) = client.unwrap().into_split();
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
