//! Bus framing: the connection preamble (magic and bus protocol version), then frames
//! `[len u32 LE][bincode]` of a [`BusRequest`] or a [`BusReply`], and the frame-size limits.
//!
//! Owns the wire encoding only; it must not know what a message means (that is the
//! server's and the client's).
//!
//! # Format
//!
//! Version 2 and later: the client opens with a preamble, [`BUS_MAGIC`] then the highest
//! version it speaks as a u32 LE, then its Hello frame. The server answers with a preamble
//! naming the version both speak on this connection, the lower of the client's and its own
//! highest ([`agree`]), then Welcome or Refused, and from there on both speak that version.
//! A client whose highest version is below the server's lowest is refused: the server
//! answers with a preamble naming its own highest version, and nothing else (never the
//! cluster id), and closes before reading the Hello. A client answered a version it does not
//! speak gives up, naming that version. So a build that adds version N+1 while still
//! speaking N talks to builds of version N in both directions, and a cluster can be upgraded
//! one node at a time.
//!
//! Version 1 (builds before versions existed): no preamble, the connection starts with the
//! Hello frame; a server tells one from the other by the first 4 bytes (`shar` read as a
//! frame length is far above [`MAX_HELLO`]), and answers without a preamble. Versions 1 and
//! 2 carry the same frames.
//!
//! The client sends its Hello before it learns the version, so the Hello frame is the same
//! in every version; a version that has to change it must make its clients wait for the
//! server's preamble first. [`BusRequest`] and [`BusReply`] are bincode, positional:
//! variants are only appended at the end, and changing a field (or one of openraft's RPC
//! types inside) means a new bus version.

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

use super::C;
use crate::snapshot::Meta;

/// Largest frame accepted (one AppendEntries holding a large model).
pub(crate) const MAX_FRAME: usize = 1 << 31;
/// Largest first frame (`Hello`), and the longest wait for it: an unknown peer gets no
/// large buffer and no lasting task.
pub(crate) const MAX_HELLO: usize = 64 * 1024;

/// What a version 2 (and later) connection starts with, in both directions.
pub(crate) const BUS_MAGIC: &[u8; 12] = b"shardai-bus\n";
/// The highest bus protocol version this build speaks: what its clients offer.
pub(crate) const BUS_VERSION: u32 = 2;
/// The versions this build speaks (1: no preamble).
pub(crate) const BUS_VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;
/// Bytes of a preamble.
pub(crate) const PREAMBLE: usize = BUS_MAGIC.len() + 4;

/// The preamble of `version`.
pub(crate) fn preamble(version: u32) -> [u8; PREAMBLE] {
    let mut p = [0u8; PREAMBLE];
    p[..BUS_MAGIC.len()].copy_from_slice(BUS_MAGIC);
    p[BUS_MAGIC.len()..].copy_from_slice(&version.to_le_bytes());
    p
}

/// The version a server speaks with a client whose highest version is `theirs`: the lower
/// of `theirs` and [`BUS_VERSION`], or `None` (refused) when that is below the lowest of
/// [`BUS_VERSIONS`].
pub(crate) fn agree(theirs: u32) -> Option<u32> {
    Some(theirs.min(BUS_VERSION)).filter(|v| BUS_VERSIONS.contains(v))
}

/// "`who` speaks bus protocol version `v`; this build speaks versions 1 to 2".
pub(crate) fn unspoken(who: impl std::fmt::Display, v: u32) -> String {
    format!(
        "{who} speaks bus protocol version {v}; this build speaks versions {} to {}",
        BUS_VERSIONS.start(),
        BUS_VERSIONS.end()
    )
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
    let b = bincode::serialize(v).map_err(io::Error::other)?;
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
    let mut b = vec![0u8; len];
    r.read_exact(&mut b).await?;
    bincode::deserialize(&b).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_spoken_is_the_lower_highest_of_both_sides() {
        assert_eq!(agree(2), Some(2));
        // A later client still speaking ours.
        assert_eq!(agree(3), Some(2));
        assert_eq!(agree(9), Some(2));
        assert_eq!(agree(u32::MAX), Some(2));
        assert_eq!(agree(1), Some(1));
        // Below our lowest.
        assert_eq!(agree(0), None);
    }
}
