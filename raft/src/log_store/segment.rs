//! Segment files and their records: the record framing (`[len u32][crc32 u32][payload]`),
//! segment names, creation and allocation ahead of the writes, and reading one entry back.
//!
//! Owns the bytes of one file; knows nothing of the log's state (which entries are held,
//! what is durable) and never fsyncs except to make a new file's name durable.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::FileExt,
    path::Path,
    sync::Arc,
};

use super::{Entry, Loc, other, sync::sync_dir};

/// Bytes of one record header.
pub(super) const HEADER: usize = 8;
/// A segment's file is allocated this far ahead of its records.
pub(super) const PREALLOC_BYTES: u64 = 8 << 20;

#[derive(Debug)]
pub(super) struct Seg {
    pub(super) file: Arc<File>,
    /// End of the records.
    pub(super) len: u64,
    /// Bytes allocated for the file (its size); past `len` they read as zeros.
    pub(super) allocated: u64,
}

impl Seg {
    /// Makes room for `more` bytes after the records: allocates the next stretch of the file
    /// when they would not fit in what is allocated.
    pub(super) fn reserve(&mut self, more: u64) -> io::Result<()> {
        let need = self.len + more;
        if need <= self.allocated {
            return Ok(());
        }
        let to = need.max(self.allocated + PREALLOC_BYTES);
        if allocate(&self.file, self.allocated, to)? {
            self.allocated = to;
        } else {
            // No fallocate here (the file system lacks it): writes extend the file.
            self.allocated = u64::MAX;
        }
        Ok(())
    }
}

/// Allocates `from..to` of `file` (extending its size to `to`); false where the file system
/// cannot.
#[allow(unsafe_code)]
pub(super) fn allocate(file: &File, from: u64, to: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: fallocate on an open descriptor with in-range offsets; no memory is passed.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            0,
            from as libc::off_t,
            (to - from) as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(e),
    }
}

pub(super) fn crc_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub(super) fn seg_name(first: u64) -> String {
    format!("log-{first:020}.seg")
}

/// The record at `off`: its payload and the offset after it, or None if torn, corrupt or
/// absent (no record is empty: a zero length is allocated space).
pub(super) fn parse_record(b: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let h = b.get(off..off + HEADER)?;
    let len = u32::from_le_bytes(h[..4].try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    let crc = u32::from_le_bytes(h[4..].try_into().ok()?);
    let payload = b.get(off + HEADER..off + HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, off + HEADER + len))
}

/// The entry recorded at `loc`, checked to be the one `loc` names.
pub(super) fn read_entry(file: &File, loc: &Loc) -> io::Result<Entry> {
    let mut buf = vec![0u8; loc.len as usize];
    file.read_exact_at(&mut buf, loc.off)?;
    let index = loc.log_id.index;
    let (payload, _) =
        parse_record(&buf, 0).ok_or_else(|| other(format!("log entry {index} is corrupt")))?;
    let e: Entry = bincode::deserialize(payload).map_err(other)?;
    if e.log_id != loc.log_id {
        return Err(other(format!(
            "log entry {index} is not where the index says"
        )));
    }
    Ok(e)
}

/// Creates the empty segment whose first entry is `first` (its space is allocated by the
/// first append).
pub(super) fn create_seg(dir: &Path, first: u64) -> io::Result<Seg> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(seg_name(first)))?;
    sync_dir(dir)?;
    Ok(Seg {
        file: Arc::new(f),
        len: 0,
        allocated: 0,
    })
}
