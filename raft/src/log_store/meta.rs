//! The log's small files beside the segments: `meta` (the vote and the last purged log id,
//! replaced atomically) and `committed` (the commit hint), each one crc-framed record.
//!
//! # Format
//!
//! Version 2 (written now): [`META_MAGIC`], the version as a u32 LE, then one record
//! `[len u32][crc32 u32][bincode]` of [`Meta`] (in `meta`) or `Option<LogId>` (in
//! `committed`). Version 1 (before versions existed): the record alone; a file that does
//! not start with the magic is read as version 1 (a version 1 record of these few bytes
//! cannot start with it: it would announce 1.9 GB). A `meta` of another version refuses
//! the start; a `committed` hint of another version is ignored (logged), as a lost hint
//! only means re-applying committed entries.
//!
//! Owns their encoding only: when they are written and synced is the sync thread's and the
//! store's business.

use std::{fs, io, path::Path};

use serde::{Deserialize, Serialize};

use super::{
    LogId, Vote, other,
    segment::{crc_record, parse_record},
};
use crate::version::refused;

/// What a versioned `meta` or `committed` file starts with.
pub(super) const META_MAGIC: &[u8; 12] = b"shardai-meta";
/// The format this build writes.
pub(super) const META_VERSION: u32 = 2;
/// The formats this build reads (1: no header).
pub(super) const META_VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;

/// The bytes of a `meta` or `committed` file holding `payload`, in this build's format.
pub(super) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_MAGIC.len() + 4 + 8 + payload.len());
    out.extend_from_slice(META_MAGIC);
    out.extend_from_slice(&META_VERSION.to_le_bytes());
    out.extend_from_slice(&crc_record(payload));
    out
}

/// The vote and the last purged log id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) vote: Option<Vote>,
    pub(super) last_purged: Option<LogId>,
}

/// Reads and checks a `meta` or `committed` file written with [`frame`] (or by a build
/// before versions, without the header): its payload, None if there is no file, an error if
/// it is corrupt or of a version this build does not read.
pub(super) fn read_framed(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let b = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let record = match b.strip_prefix(META_MAGIC.as_slice()) {
        None => &b[..],
        Some(rest) => {
            let v = rest
                .get(..4)
                .ok_or_else(|| other(format!("{} is corrupt", path.display())))?;
            let version = u32::from_le_bytes(v.try_into().expect("4 bytes"));
            if !META_VERSIONS.contains(&version) {
                return Err(other(refused(
                    format_args!("Raft log file {}", path.display()),
                    version.into(),
                    &META_VERSIONS,
                )));
            }
            &rest[4..]
        }
    };
    match parse_record(record, 0) {
        Some((payload, _)) => Ok(Some(payload.to_vec())),
        None => Err(other(format!("{} is corrupt", path.display()))),
    }
}
