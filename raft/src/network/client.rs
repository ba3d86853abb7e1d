//! The bus client: [`Network`] makes a [`Peer`] per openraft client; a peer connects
//! (TLS when configured, a preamble offering its highest bus protocol version, the proofs
//! of version 3, Hello, the server's answer),
//! sends requests, snapshots and append streams, and gives its connection back to the pool
//! after a clean exchange.
//!
//! Owns the connecting side only; it never serves a request.

use std::{io, sync::Arc, time::Duration};

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
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::TcpStream,
};
use tracing::debug;

use super::{
    AbortOnDrop, C, STREAM_IDLE,
    frame::{
        APPEND_BUDGET, BUS_VERSION, BusReply, BusRequest, Handshake, MAX_HELLO, PROOF_VERSION,
        preamble, read_frame, read_frame_max, read_preamble, speaks, trim_append, unspoken,
        write_frame,
    },
    pool::{Conn, Pool},
    security::{BusSecurity, Side, nonce},
    stream::{self, BusRead, BusWrite},
    tune,
};
use crate::snapshot::SnapshotFile;

/// Snapshot chunk size.
const CHUNK: usize = 1 << 20;
/// Least time given to one request (a follower's fsync under load can take a while).
const MIN_TTL: Duration = Duration::from_secs(3);

/// The reading side of an append stream, and where its connection goes back when the stream
/// ends cleanly.
struct StreamRx {
    r: BufReader<BusRead>,
    writer: AbortOnDrop<Option<BufWriter<BusWrite>>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The writer is sending a frame: its answer cannot be due yet (a large entry takes
    /// seconds to send on a slow link).
    writing: Arc<std::sync::atomic::AtomicBool>,
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
    security: BusSecurity,
    pool: Pool,
    append_budget: u64,
}

impl Network {
    /// Clients that introduce themselves as members of `group` in `cluster`, authenticating
    /// as `security` says.
    pub fn new(cluster: &str, group: &str, security: BusSecurity) -> Self {
        Network {
            cluster: cluster.into(),
            group: group.into(),
            security,
            pool: Pool::default(),
            append_budget: APPEND_BUDGET,
        }
    }

    /// Sends batches of entries over several frames once they pass `bytes` (one entry is
    /// always sent whole).
    pub fn with_append_budget(mut self, bytes: u64) -> Self {
        self.append_budget = bytes.clamp(1, APPEND_BUDGET);
        self
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
        // As long as the leader waits for its commit (with its default limit), and a second
        // more.
        let limit =
            crate::group::commit_limit(Duration::from_secs(11), crate::group::entry_bytes(&cmd));
        match peer.call(&BusRequest::Propose(cmd), limit).await {
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
            security: self.security.clone(),
            target,
            addr: addr.to_string(),
            conn: None,
            pool: self.pool.clone(),
            append_budget: self.append_budget,
        }
    }
}

/// A connection to one peer, taken from the pool or opened on first use, reopened after an
/// error, and given back to the pool when the client is dropped.
#[derive(Debug)]
pub struct Peer {
    cluster: Arc<str>,
    group: Arc<str>,
    security: BusSecurity,
    target: u64,
    addr: String,
    conn: Option<Conn>,
    pool: Pool,
    append_budget: u64,
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
        let (target, addr) = (self.target, self.addr.as_str());
        let sec = &self.security;
        let hello = BusRequest::Hello {
            cluster: self.cluster.to_string(),
            group: self.group.to_string(),
            to: target,
        };
        let opened = tokio::time::timeout(ttl, async {
            let (r, w) = match sec.tls() {
                Some(tls) => stream::tls(tls.connect(addr, sock).await.map_err(|e| {
                    io::Error::other(format!("TLS handshake with node {target} at {addr}: {e}"))
                })?),
                None => stream::plain(sock),
            };
            let (mut r, mut w) = (BufReader::new(r), BufWriter::with_capacity(1 << 16, w));
            let lowest = sec.lowest_version();
            // Our highest version, alone: the server answers the one we both speak on
            // this connection, and from version 3 on the Hello waits for its proof.
            w.write_all(&preamble(BUS_VERSION)).await?;
            w.flush().await?;
            let spoken = read_preamble(&mut r).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    // What a build before bus versions does with a preamble.
                    io::Error::other(format!(
                        "node {target} at {addr} closed the connection at the handshake (a \
                         build without bus protocol version {BUS_VERSION}, or a bus that \
                         wants TLS?)"
                    ))
                } else {
                    e
                }
            })?;
            // Any version we speak is spoken; any other is a refusal: a server whose lowest
            // version is above our highest answers its highest.
            if !speaks(spoken, lowest) {
                return Err(io::Error::other(unspoken(
                    format_args!("node {target} at {addr}"),
                    spoken,
                    lowest,
                )));
            }
            if spoken >= PROOF_VERSION {
                prove(&mut r, &mut w, sec, spoken, target, addr).await?;
            }
            debug!(node = target, %addr, version = spoken, "cluster bus connection opened");
            write_frame(&mut w, &hello).await?;
            let resp = read_frame::<BusReply>(&mut r).await?;
            Ok::<_, io::Error>((r, w, resp))
        })
        .await
        .map_err(|_| {
            CallError::Unreachable(io::Error::other(format!(
                "handshake with node {target} at {addr} timed out (a node of bus protocol \
                 version 2 does not answer version {BUS_VERSION})"
            )))
        })?
        .map_err(CallError::Unreachable)?;
        let (r, w, resp) = opened;
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
        let total = f.metadata().await.map(|m| m.len()).ok();
        let (mut r, mut w) = self.conn.take().expect("connected");
        let (r, w) = (&mut r, &mut w);
        let mut progress = crate::progress::Progress::new(
            format!("sending a snapshot to node {}", self.target),
            total,
        );
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
            let mut done = 0u64;
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                done += n as u64;
                progress.at(done);
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

/// Version 3's proofs, client side: the server's challenge, our nonce and proof, then its
/// proof, which must hold before anything about the cluster is sent.
async fn prove(
    r: &mut BufReader<BusRead>,
    w: &mut BufWriter<BusWrite>,
    sec: &BusSecurity,
    version: u32,
    target: u64,
    addr: &str,
) -> io::Result<()> {
    let Handshake::Challenge(server) = read_frame_max::<Handshake>(r, MAX_HELLO).await? else {
        return Err(io::Error::other("bad handshake: no challenge"));
    };
    let ours = nonce()?;
    let proof = sec.prove(Side::Client, version, &server, &ours);
    write_frame(w, &Handshake::ClientProof { nonce: ours, proof }).await?;
    match read_frame_max::<Handshake>(r, MAX_HELLO).await {
        Ok(Handshake::ServerProof(p)) if sec.holds(Side::Server, version, &server, &ours, &p) => {
            Ok(())
        }
        Ok(Handshake::ServerProof(_)) => Err(io::Error::other(format!(
            "node {target} at {addr} did not prove it knows the cluster secret"
        ))),
        Ok(Handshake::Refused) => Err(io::Error::other(format!(
            "node {target} at {addr} refused us: refused (it holds another cluster secret)"
        ))),
        Ok(_) => Err(io::Error::other("bad handshake")),
        Err(e) => Err(e),
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
            let writing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let busy = writing.clone();
            let budget = self.append_budget;
            let writer = tokio::spawn(async move {
                let mut input = input;
                let res = async {
                    write_frame(&mut w, &BusRequest::StreamBegin).await?;
                    while let Some(mut req) = input.next().await {
                        let trimmed = trim_append(&mut req, budget);
                        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        busy.store(true, std::sync::atomic::Ordering::SeqCst);
                        let wrote = write_frame(&mut w, &BusRequest::Append(req)).await;
                        busy.store(false, std::sync::atomic::Ordering::SeqCst);
                        wrote?;
                        if trimmed {
                            // Large entries: the stream ends at what was sent, and openraft
                            // sends the rest from the acknowledged entry in the next one.
                            break;
                        }
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
                writing,
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
                        Err(_)
                            if !waiting || s.writing.load(std::sync::atomic::Ordering::SeqCst) => {}
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
        mut rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        // Large entries go over several requests: the first ones answer a partial success.
        let sent =
            trim_append(&mut rpc, self.append_budget).then(|| rpc.entries.last().map(|e| e.log_id));
        match self.call(&BusRequest::Append(rpc), ttl(&option)).await {
            Ok(BusReply::Append(Ok(AppendEntriesResponse::Success))) if let Some(last) = sent => {
                Ok(AppendEntriesResponse::PartialSuccess(last))
            }
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
    use openraft::RaftNetworkFactory;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::network::frame::{PREAMBLE, preamble};

    /// A vote sent by a client of `sec` to the bus address of a fake server.
    async fn vote(addr: &str, sec: BusSecurity) -> Result<VoteResponse<C>, String> {
        let node = crate::ShardNode {
            raft_addr: addr.to_string(),
            client_addr: String::new(),
        };
        let mut peer = Network::new("alpha", "data", sec)
            .new_client(7, &node)
            .await;
        peer.vote(
            VoteRequest::new(openraft::impls::Vote::new(1, 1), None),
            RPCOption::new(Duration::from_secs(2)),
        )
        .await
        .map_err(|e| e.to_string())
    }

    async fn listen() -> (tokio::net::TcpListener, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        (listener, addr)
    }

    #[tokio::test]
    async fn an_open_client_speaks_an_earlier_version_it_is_answered() {
        let (listener, addr) = listen().await;
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = sock.into_split();
            let mut theirs = [0u8; PREAMBLE];
            r.read_exact(&mut theirs).await.unwrap();
            assert_eq!(theirs, preamble(BUS_VERSION));
            w.write_all(&preamble(2)).await.unwrap();
            assert!(matches!(
                read_frame::<BusRequest>(&mut r).await.unwrap(),
                BusRequest::Hello { to: 7, .. }
            ));
            write_frame(&mut w, &BusReply::Welcome).await.unwrap();
            let BusRequest::Vote(v) = read_frame::<BusRequest>(&mut r).await.unwrap() else {
                panic!("not a vote")
            };
            let granted = VoteResponse::new(v.vote, None, true);
            write_frame(&mut w, &BusReply::Vote(Ok(granted)))
                .await
                .unwrap();
        });
        assert!(vote(&addr, BusSecurity::open()).await.unwrap().vote_granted);
    }

    /// A server whose lowest version is above ours answers its highest (here 9); a secured
    /// client does not speak 2 either.
    #[tokio::test]
    async fn a_server_of_a_version_we_do_not_speak_is_refused_naming_it() {
        let secured = BusSecurity::new(Some(b"sesame"), None).unwrap();
        for (sec, answer, want) in [
            (
                BusSecurity::open(),
                9,
                "speaks bus protocol version 9; this build speaks versions 1 to 3",
            ),
            (
                secured,
                2,
                "speaks bus protocol version 2; this build speaks version 3 only on an \
                 authenticated bus",
            ),
        ] {
            let (listener, addr) = listen().await;
            tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut theirs = [0u8; PREAMBLE];
                sock.read_exact(&mut theirs).await.unwrap();
                assert_eq!(theirs, preamble(BUS_VERSION));
                sock.write_all(&preamble(answer)).await.unwrap();
                // Held open: the client must give up on the version alone.
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
            let err = vote(&addr, sec).await.unwrap_err();
            assert!(err.contains(&format!("node 7 at {addr} {want}")), "{err}");
        }
    }

    /// A server that cannot prove the secret learns nothing: the client's Hello (cluster,
    /// group, node id) is never sent to it.
    #[tokio::test]
    async fn a_server_without_the_secret_is_not_told_the_hello() {
        let (listener, addr) = listen().await;
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut theirs = [0u8; PREAMBLE];
            sock.read_exact(&mut theirs).await.unwrap();
            sock.write_all(&preamble(3)).await.unwrap();
            write_frame(&mut sock, &Handshake::Challenge([5; 32]))
                .await
                .unwrap();
            let proof: Handshake = read_frame(&mut sock).await.unwrap();
            assert!(matches!(proof, Handshake::ClientProof { .. }));
            write_frame(&mut sock, &Handshake::ServerProof([0; 32]))
                .await
                .unwrap();
            let mut rest = Vec::new();
            sock.read_to_end(&mut rest).await.unwrap();
            rest
        });
        let sec = BusSecurity::new(Some(b"sesame"), None).unwrap();
        let err = vote(&addr, sec).await.unwrap_err();
        assert!(
            err.contains("did not prove it knows the cluster secret"),
            "{err}"
        );
        assert!(server.await.unwrap().is_empty());
    }
}
