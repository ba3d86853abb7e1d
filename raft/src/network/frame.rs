//! Bus framing: each message is `[len u32 LE][bincode]` of a [`BusRequest`] or a
//! [`BusReply`], and the frame-size limits.
//!
//! Owns the wire encoding only; it must not know what a message means (that is the
//! server's and the client's).

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

pub(crate) async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    v: &T,
) -> io::Result<()> {
    let b = bincode::serialize(v).map_err(io::Error::other)?;
    w.write_all(&(b.len() as u32).to_le_bytes()).await?;
    w.write_all(&b).await?;
    w.flush().await
}

pub(crate) async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> io::Result<T> {
    read_frame_max(r, MAX_FRAME).await
}

pub(crate) async fn read_frame_max<T: for<'de> Deserialize<'de>>(
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
