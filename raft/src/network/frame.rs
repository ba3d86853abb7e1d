//! Bus framing: the connection preamble (magic and bus protocol version), then frames
//! `[len u32 LE][bincode]` of a [`BusRequest`] or a [`BusReply`], and the frame-size limits.
//!
//! Owns the wire encoding only; it must not know what a message means (that is the
//! server's and the client's).
//!
//! # Format
//!
//! Version 2 and later: the client opens with a preamble, [`BUS_MAGIC`] then the highest
//! version it speaks as a u32 LE. The server answers with a preamble naming the version
//! both speak on this connection, the lower of the client's and its own highest
//! ([`agree`]), and from there on both speak that version. A client whose highest version
//! is below the server's lowest is refused: the server answers with a preamble naming its
//! own highest version, and nothing else (never the cluster id), and closes. A client
//! answered a version it does not speak gives up, naming that version. So a build that adds
//! version N+1 while still speaking N talks to builds of version N, and a cluster can be
//! upgraded one node at a time.
//!
//! Version 3 (the first that authenticates; see `security`): the client sends its preamble
//! alone and waits. The server answers its preamble and a [`Handshake::Challenge`] (its
//! nonce); the client answers [`Handshake::ClientProof`] (its nonce and its proof); the
//! server answers [`Handshake::ServerProof`] or, when the proof does not hold,
//! [`Handshake::Refused`] (nothing else: the peer learns no cluster id, node id or group)
//! and closes; then the client sends its Hello, answered Welcome or Refused as before. A
//! bus given a secret or TLS certificates speaks version 3 only: it refuses version 1 and 2
//! peers, which cannot prove anything, and a version 2 server never answers a lone
//! preamble, so a version 3 client does not reach it.
//!
//! Version 2: the client sends its Hello right after its preamble (before the answer);
//! the server answers preamble, then Welcome or Refused.
//!
//! Version 1 (builds before versions existed): no preamble, the connection starts with the
//! Hello frame; a server tells one from the other by the first 4 bytes (`shar` read as a
//! frame length is far above [`MAX_HELLO`]), and answers without a preamble. Versions 1 and
//! 2 carry the same frames, and version 3 the same frames after its proofs.
//!
//! A version 2 client sends its Hello before it learns the version, so the Hello frame is
//! the same in every version. [`BusRequest`], [`BusReply`] and [`Handshake`] are bincode,
//! positional: variants are only appended at the end, and changing a field (or one of
//! openraft's RPC types inside) means a new bus version.

use std::io;

use bytes::Bytes;
use openraft::{
    alias::VoteOf,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
        VoteRequest, VoteResponse,
    },
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    C,
    security::{MAC, NONCE},
};
use crate::snapshot::Meta;

/// Largest frame accepted (one AppendEntries holding a large model).
pub(crate) const MAX_FRAME: usize = 1 << 31;
/// Most entry bytes one AppendEntries frame carries when it holds more than one entry: a
/// batch of large entries is sent over several frames (one entry alone may be up to
/// `MAX_ENTRY_BYTES`, half of [`MAX_FRAME`]).
pub(crate) const APPEND_BUDGET: u64 = 256 << 20;

/// Keeps the first entries of `req` that fit `budget` bytes (at least one); true when some
/// were left for a later request.
pub(crate) fn trim_append(req: &mut AppendEntriesRequest<C>, budget: u64) -> bool {
    let mut total = 0u64;
    let keep = req
        .entries
        .iter()
        .position(|e| {
            total += bincode::serialized_size(e).unwrap_or(u64::MAX);
            total > budget
        })
        .unwrap_or(req.entries.len())
        .max(1);
    if keep >= req.entries.len() {
        return false;
    }
    req.entries.truncate(keep);
    true
}
/// Largest first frame (`Hello`), and the longest wait for it: an unknown peer gets no
/// large buffer and no lasting task.
pub(crate) const MAX_HELLO: usize = 64 * 1024;

/// What a version 2 (and later) connection starts with, in both directions.
pub(crate) const BUS_MAGIC: &[u8; 12] = b"shardai-bus\n";
/// The highest bus protocol version this build speaks: what its clients offer.
pub(crate) const BUS_VERSION: u32 = 3;
/// The first version whose connections prove the cluster secret.
pub(crate) const PROOF_VERSION: u32 = 3;
/// Bytes of a preamble.
pub(crate) const PREAMBLE: usize = BUS_MAGIC.len() + 4;

/// The preamble of `version`.
pub(crate) fn preamble(version: u32) -> [u8; PREAMBLE] {
    let mut p = [0u8; PREAMBLE];
    p[..BUS_MAGIC.len()].copy_from_slice(BUS_MAGIC);
    p[BUS_MAGIC.len()..].copy_from_slice(&version.to_le_bytes());
    p
}

/// The version a server whose lowest version is `lowest` speaks with a client whose
/// highest version is `theirs`: the lower of `theirs` and [`BUS_VERSION`], or `None`
/// (refused) when that is below `lowest`.
pub(crate) fn agree(theirs: u32, lowest: u32) -> Option<u32> {
    Some(theirs.min(BUS_VERSION)).filter(|v| (lowest..=BUS_VERSION).contains(v))
}

/// Whether a client whose lowest version is `lowest` speaks the version `v` a server
/// answered.
pub(crate) fn speaks(v: u32, lowest: u32) -> bool {
    (lowest..=BUS_VERSION).contains(&v)
}

/// "`who` speaks bus protocol version `v`; this build speaks versions 1 to 3" (or "version
/// 3 only" where the bus is secured).
pub(crate) fn unspoken(who: impl std::fmt::Display, v: u32, lowest: u32) -> String {
    if lowest >= BUS_VERSION {
        format!(
            "{who} speaks bus protocol version {v}; this build speaks version {BUS_VERSION} \
             only on an authenticated bus (earlier versions cannot authenticate)"
        )
    } else {
        format!(
            "{who} speaks bus protocol version {v}; this build speaks versions {lowest} to \
             {BUS_VERSION}"
        )
    }
}

/// How a connection opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// With a preamble naming this version.
    Versioned(u32),
    /// Without one (version 1): these were the first frame's length bytes.
    Legacy(u32),
}

/// Reads how a connection opens: a preamble, or (version 1) the first frame's length.
pub(crate) async fn read_opening(r: &mut (impl AsyncReadExt + Unpin)) -> io::Result<Opening> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head).await?;
    if head != BUS_MAGIC[..4] {
        return Ok(Opening::Legacy(u32::from_le_bytes(head)));
    }
    let mut rest = [0u8; PREAMBLE - 4];
    r.read_exact(&mut rest).await?;
    if rest[..BUS_MAGIC.len() - 4] != BUS_MAGIC[4..] {
        return Err(io::Error::other("not a shardai cluster bus preamble"));
    }
    let v = rest[BUS_MAGIC.len() - 4..].try_into().expect("4 bytes");
    Ok(Opening::Versioned(u32::from_le_bytes(v)))
}

/// Reads a peer's preamble: its bus protocol version.
pub(crate) async fn read_preamble(r: &mut (impl AsyncReadExt + Unpin)) -> io::Result<u32> {
    match read_opening(r).await? {
        Opening::Versioned(v) => Ok(v),
        Opening::Legacy(_) => Err(io::Error::other("no cluster bus preamble")),
    }
}

/// The frames of a version 3 connection's proofs, between the preambles and the Hello
/// (see `security` for what a proof is). On the wire (bincode encodes the variant's index):
/// variants are only ever appended, and a changed field is a new bus version.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Handshake {
    /// The server's nonce, right after its preamble.
    Challenge([u8; NONCE]),
    /// The client's nonce and its proof.
    ClientProof {
        nonce: [u8; NONCE],
        proof: [u8; MAC],
    },
    /// The server's proof, once the client's held.
    ServerProof([u8; MAC]),
    /// The client's proof did not hold: nothing more is said, and the server closes.
    Refused,
}

/// A message to a node's bus server. On the wire (bincode encodes the variant's index):
/// variants are only ever appended, and a changed field is a new bus version.
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

/// The bus server's answer. On the wire (bincode encodes the variant's index): variants are
/// only ever appended, and a changed field is a new bus version.
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

/// Writes `v` as one frame and flushes.
pub(crate) async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    v: &T,
) -> io::Result<()> {
    let big = bincode::serialized_size(v).is_ok_and(|n| n > BIG_FRAME as u64);
    let b = off_worker(big, || bincode::serialize(v)).map_err(io::Error::other)?;
    if b.len() > MAX_FRAME {
        // Its length would not fit the frame header, and no peer would take it.
        return Err(io::Error::other(format!(
            "a bus frame of {} bytes is over the {MAX_FRAME}-byte limit",
            b.len()
        )));
    }
    w.write_all(&(b.len() as u32).to_le_bytes()).await?;
    w.write_all(&b).await?;
    w.flush().await
}

/// Reads one frame of at most [`MAX_FRAME`] bytes.
pub(crate) async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> io::Result<T> {
    read_frame_max(r, MAX_FRAME).await
}

/// Reads one frame of at most `max` bytes.
pub(crate) async fn read_frame_max<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
    max: usize,
) -> io::Result<T> {
    let len = r.read_u32_le().await?;
    read_body(r, len, max).await
}

/// Reads a frame's body of `len` bytes (its length already read), at most `max`.
pub(crate) async fn read_body<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
    len: u32,
    max: usize,
) -> io::Result<T> {
    let len = len as usize;
    if len > max {
        return Err(io::Error::other(format!("frame of {len} bytes refused")));
    }
    // Grown as bytes arrive: a length the peer only claims must not allocate up front.
    let mut b = Vec::with_capacity(len.min(READ_AHEAD));
    r.take(len as u64).read_to_end(&mut b).await?;
    if b.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed inside a frame",
        ));
    }
    off_worker(len > BIG_FRAME, || bincode::deserialize(&b)).map_err(io::Error::other)
}

/// Frames above this many bytes (a large model in a log entry) are encoded and decoded with
/// the async worker handed over to the runtime's other tasks, so heartbeats and votes on
/// the same node are not held up behind them.
const BIG_FRAME: usize = 4 << 20;

/// Runs `f`, for `big` work on a multi-threaded runtime's worker as blocking work
/// (`block_in_place`).
fn off_worker<R>(big: bool, f: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if big && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Most of a frame's declared length allocated before its bytes arrive.
const READ_AHEAD: usize = 1 << 20;

/// Fuzz entry point: `data` read as a bus server reads a connection (its opening, then
/// frames of every message type: handshakes, requests, replies).
pub(crate) fn fuzz_frames(data: &[u8]) {
    use std::{future::Future, pin::pin, task::Context};
    // A slice never makes a read wait: one poll runs each read to its end.
    fn now<T>(f: impl Future<Output = io::Result<T>>) -> Option<T> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match pin!(f).poll(&mut cx) {
            std::task::Poll::Ready(r) => r.ok(),
            std::task::Poll::Pending => None,
        }
    }
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let mut r = data;
    if pick & 1 == 0 {
        match now(read_opening(&mut r)) {
            Some(Opening::Legacy(len)) => {
                let _ = now(read_body::<BusRequest>(&mut r, len, MAX_HELLO));
            }
            Some(Opening::Versioned(v)) => {
                let _ = agree(v, 1);
            }
            None => return,
        }
    }
    loop {
        let more = match (pick >> 1) & 3 {
            0 => now(read_frame::<BusRequest>(&mut r)).is_some(),
            1 => now(read_frame::<BusReply>(&mut r)).is_some(),
            _ => now(read_frame::<Handshake>(&mut r)).is_some(),
        };
        if !more {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_spoken_is_the_lower_highest_of_both_sides() {
        assert_eq!(agree(3, 1), Some(3));
        // A later client still speaking ours.
        assert_eq!(agree(4, 1), Some(3));
        assert_eq!(agree(9, 1), Some(3));
        assert_eq!(agree(u32::MAX, 3), Some(3));
        assert_eq!(agree(2, 1), Some(2));
        assert_eq!(agree(1, 1), Some(1));
        // Below our lowest.
        assert_eq!(agree(0, 1), None);
        assert_eq!(agree(2, 3), None);
        assert!(speaks(3, 3) && speaks(2, 1) && !speaks(2, 3) && !speaks(4, 1));
    }

    #[test]
    fn a_batch_of_large_entries_goes_over_several_frames() {
        use openraft::{alias::EntryOf, entry::RaftEntry, impls::Vote, testing::log_id};

        use crate::types::{Cmd, Op};
        let entry = |i, bytes: usize| {
            let op = Op::MSet(vec![(
                Bytes::from_static(b"k"),
                Bytes::from(vec![1u8; bytes]),
            )]);
            let cmd = Cmd {
                at_ms: 0,
                origin: 1,
                seq: i,
                op,
            };
            EntryOf::<C>::new_normal(log_id::<C>(1, 1, i), cmd)
        };
        let req = |sizes: &[usize]| AppendEntriesRequest::<C> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, b)| entry(i as u64, *b))
                .collect(),
            leader_commit: None,
        };
        let kept = |sizes: &[usize], budget| {
            let mut r = req(sizes);
            let trimmed = trim_append(&mut r, budget);
            assert_eq!(trimmed, r.entries.len() < sizes.len());
            r.entries.len()
        };
        assert_eq!(kept(&[100, 100, 100], 10_000), 3);
        assert_eq!(kept(&[4000, 4000, 4000], 10_000), 2);
        // One entry is always sent, whatever its size.
        assert_eq!(kept(&[50_000, 10], 10_000), 1);
        assert_eq!(kept(&[], 10_000), 0);
    }
}
