//! Segment files and their records: the segment header and its format version, the record
//! framing (`[len u32][crc32 u32][bincode entry]`), segment names, creation and allocation
//! ahead of the writes, and reading one entry back.
//!
//! # Format
//!
//! Version 2 (written now): a 16-byte header, [`SEGMENT_MAGIC`] then the version as a u32
//! LE, then records. Version 1 (written before versions existed): records from byte 0, no
//! header; a file that does not start with the magic is read as version 1. The magic cannot
//! be mistaken for a version 1 record header: read as one, it would announce a record of
//! 1.9 GB (`shar`) with a checksum that happens to read `dai-`. Records are encoded alike
//! in both versions (the entry is bincode of openraft's `Entry` of [`crate::types::Cmd`]); a
//! version 1 segment that is still the last one keeps receiving records of that shape until
//! it rolls. A file of another version is refused, never cut or removed.
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
use crate::version::refused;

/// What a versioned segment starts with.
pub(super) const SEGMENT_MAGIC: &[u8; 12] = b"shardai-log\n";
/// The segment format this build writes.
pub(super) const SEGMENT_VERSION: u32 = 2;
/// The segment formats this build reads (1: no header).
pub(super) const SEGMENT_VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;
/// Bytes of a versioned segment's header.
pub(super) const SEGMENT_HEADER: usize = SEGMENT_MAGIC.len() + 4;

/// The header of a segment of this build's version.
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..SEGMENT_MAGIC.len()].copy_from_slice(SEGMENT_MAGIC);
    h[SEGMENT_MAGIC.len()..].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// The format version of a segment's bytes and where its records start; a version this build
/// does not read is an error naming it (and `path`).
pub(super) fn segment_format(bytes: &[u8], path: &Path) -> io::Result<(u32, usize)> {
    let Some(rest) = bytes.strip_prefix(SEGMENT_MAGIC.as_slice()) else {
        if parse_record(bytes, 0).is_none() && parse_record(bytes, SEGMENT_HEADER).is_some() {
            // Not a torn version 1 record: intact records behind a damaged header, which
            // must not be cut as a torn tail.
            return Err(other(format!(
                "log segment {} has a damaged header before intact records: refusing to \
                 start; restore this node from a replica (wipe its folder and add it again)",
                path.display()
            )));
        }
        return Ok((1, 0));
    };
    let Some(v) = rest.get(..4) else {
        // Only a crash while the file was being created leaves a part of a header: nothing
        // was ever written after it.
        return Ok((SEGMENT_VERSION, bytes.len()));
    };
    let version = u32::from_le_bytes(v.try_into().expect("4 bytes"));
    if !SEGMENT_VERSIONS.contains(&version) {
        return Err(other(refused(
            format_args!("log segment {}", path.display()),
            version.into(),
            &SEGMENT_VERSIONS,
        )));
    }
    Ok((version, SEGMENT_HEADER))
}

/// Decodes a record's payload (versions 1 and 2 encode entries alike).
pub(super) fn decode_entry(payload: &[u8]) -> bincode::Result<Entry> {
    bincode::deserialize(payload)
}

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
    // SAFETY: `fallocate` takes no pointer, so no memory of ours can be touched; the
    // descriptor belongs to `file`, borrowed (so open) for the whole call; `from <= to` are
    // file offsets (well below `off_t::MAX`), and a bad value only makes the call fail.
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

/// Asks the kernel to drop its clean cached pages of `file`, so that what is read next comes
/// from the disk. After a failed fsync the kernel may keep pages that never reached the disk,
/// marked clean: read from the cache they would pass for durable entries. Dirty pages (written
/// and not yet synced: a crash of the process, not of the disk) are kept and read as they are.
#[allow(unsafe_code)]
pub(super) fn drop_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: `posix_fadvise` takes no pointer, so no memory of ours can be touched; the
    // descriptor belongs to `file`, borrowed (so open) for the whole call; offset and length
    // 0 mean the whole file. It is advice: a failure changes nothing, so its result is unused.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Takes an exclusive lock on `<dir>/LOCK` (created if missing), held while the returned file
/// is open: two processes writing one log would corrupt it. The descriptor is closed on exec,
/// so a process that restarts itself in place takes the lock again.
#[allow(unsafe_code)]
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    // SAFETY: `flock` takes no pointer, so no memory of ours can be touched; the descriptor
    // belongs to `file`, borrowed (so open) for the whole call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            io::Error::other(format!(
                "another shardai process is using the data folder {} (its LOCK file is \
                 locked): give each node its own --dir",
                dir.display()
            ))
        } else {
            io::Error::other(format!("cannot lock {}: {e}", path.display()))
        });
    }
    Ok(file)
}

/// Appends `e`'s record to `buf` (serialized in place, then its header filled in); returns
/// the record's length. The same bytes as [`crc_record`] of its payload.
pub(super) fn append_record<T: serde::Serialize>(buf: &mut Vec<u8>, e: &T) -> io::Result<usize> {
    let start = buf.len();
    // Sized first (bytes fields are length-prefixed: no data is read), so a large entry is
    // written into one allocation.
    if let Ok(size) = bincode::serialized_size(e) {
        buf.reserve(HEADER + size as usize);
    }
    buf.extend_from_slice(&[0; HEADER]);
    if let Err(err) = bincode::serialize_into(&mut *buf, e) {
        buf.truncate(start);
        return Err(io::Error::other(err));
    }
    let len = buf.len() - start - HEADER;
    let Ok(len32) = u32::try_from(len) else {
        buf.truncate(start);
        return Err(io::Error::other(format!("{len} bytes do not fit a record")));
    };
    let crc = crc32fast::hash(&buf[start + HEADER..]);
    buf[start..start + 4].copy_from_slice(&len32.to_le_bytes());
    buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER + len)
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
    let e = decode_entry(payload).map_err(other)?;
    if e.log_id != loc.log_id {
        return Err(other(format!(
            "log entry {index} is not where the index says"
        )));
    }
    Ok(e)
}

/// Creates the empty segment whose first entry is `first`: its header is written and durable
/// (with the file's name) before any record, so a record never lies behind a lost header.
/// Its space is allocated by the first append.
pub(super) fn create_seg(dir: &Path, first: u64) -> io::Result<Seg> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join(seg_name(first)))?;
    let len = write_header(&f)?;
    sync_dir(dir)?;
    Ok(Seg {
        file: Arc::new(f),
        len,
        allocated: len,
    })
}

/// Writes this build's header at the start of a segment that holds no record, durably;
/// returns where records start.
pub(super) fn write_header(f: &File) -> io::Result<u64> {
    f.write_all_at(&segment_header(), 0)?;
    f.sync_data()?;
    Ok(SEGMENT_HEADER as u64)
}
