//! The log's small files beside the segments: `meta` (the vote and the last purged log id,
//! replaced atomically) and `committed` (the commit hint), each one crc-framed record.
//!
//! Owns their encoding only: when they are written and synced is the sync thread's and the
//! store's business.

use std::{fs, io, path::Path};

use serde::{Deserialize, Serialize};

use super::{LogId, Vote, other, segment::parse_record};

/// The vote and the last purged log id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) vote: Option<Vote>,
    pub(super) last_purged: Option<LogId>,
}

/// Reads and checks a crc-framed file written by [`super::write_atomic`] with
/// [`super::segment::crc_record`].
pub(super) fn read_framed(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let b = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match parse_record(&b, 0) {
        Some((payload, _)) => Ok(Some(payload.to_vec())),
        None => Err(other(format!("{} is corrupt", path.display()))),
    }
}
