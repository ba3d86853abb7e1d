//! The bus client: [`Network`] makes a [`Peer`] per openraft client; a peer connects
//! (preamble offering its highest bus protocol version, Hello, the server's answer),
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
        BUS_VERSION, BUS_VERSIONS, BusReply, BusRequest, preamble, read_frame, read_preamble,
        unspoken, write_frame,
    },
    pool::{Conn, Pool},
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
        match peer
            .call(&BusRequest::Propose(cmd), Duration::from_secs(10))
            .await
        {
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
        let (target, addr) = (self.target, &self.addr);
        let resp = tokio::time::timeout(ttl, async {
            // Our highest version; the server answers the one we both speak on this
            // connection (the Hello is the same in every version, so it goes at once).
            w.write_all(&preamble(BUS_VERSION)).await?;
            write_frame(&mut w, &hello).await?;
            let spoken = read_preamble(&mut r).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    // What a build before bus versions does with a preamble.
                    io::Error::other(format!(
                        "node {target} at {addr} closed the connection at the handshake (a \
                         build without bus protocol version {BUS_VERSION}?)"
                    ))
                } else {
                    e
                }
            })?;
            // Any version we speak is spoken (versions 1 and 2 carry the same frames); any
            // other is a refusal: a server whose lowest version is above our highest answers
            // its highest.
            if !BUS_VERSIONS.contains(&spoken) {
                return Err(io::Error::other(unspoken(
                    format_args!("node {target} at {addr}"),
                    spoken,
                )));
            }
            debug!(node = target, %addr, version = spoken, "cluster bus connection opened");
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
    use openraft::RaftNetworkFactory;
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::network::frame::{PREAMBLE, preamble};

    #[tokio::test]
    async fn a_server_answering_an_earlier_version_we_speak_is_spoken_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (mut r, mut w) = sock.into_split();
            let mut theirs = [0u8; PREAMBLE];
            r.read_exact(&mut theirs).await.unwrap();
            assert_eq!(theirs, preamble(BUS_VERSION));
            assert!(matches!(
                read_frame::<BusRequest>(&mut r).await.unwrap(),
                BusRequest::Hello { to: 7, .. }
            ));
            w.write_all(&preamble(1)).await.unwrap();
            write_frame(&mut w, &BusReply::Welcome).await.unwrap();
            let BusRequest::Vote(v) = read_frame::<BusRequest>(&mut r).await.unwrap() else {
                panic!("not a vote")
            };
            let granted = VoteResponse::new(v.vote, None, true);
            write_frame(&mut w, &BusReply::Vote(Ok(granted)))
                .await
                .unwrap();
        });
        let node = crate::ShardNode {
            raft_addr: addr,
            client_addr: String::new(),
        };
        let mut peer = Network::new("alpha", "data").new_client(7, &node).await;
        let vote = openraft::impls::Vote::new(1, 1);
        let resp = peer
            .vote(
                VoteRequest::new(vote, None),
                RPCOption::new(Duration::from_secs(2)),
            )
            .await
            .unwrap();
        assert!(resp.vote_granted);
    }

    /// A server whose lowest version is above ours answers its highest (here 9).
    #[tokio::test]
    async fn a_peer_of_an_unknown_bus_version_is_refused_naming_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut theirs = [0u8; PREAMBLE];
            sock.read_exact(&mut theirs).await.unwrap();
            assert_eq!(theirs, preamble(BUS_VERSION));
            sock.write_all(&preamble(9)).await.unwrap();
            // Held open: the client must give up on the version alone.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let node = crate::ShardNode {
            raft_addr: addr.clone(),
            client_addr: String::new(),
        };
        let mut peer = Network::new("alpha", "data").new_client(7, &node).await;
        let err = peer
            .vote(
                VoteRequest::new(openraft::impls::Vote::new(1, 1), None),
                RPCOption::new(Duration::from_secs(2)),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "node 7 at {addr} speaks bus protocol version 9; this build speaks versions \
                 1 to 2"
            )),
            "{err}"
        );
    }
}
