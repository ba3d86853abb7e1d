//! Opening the log: reads `meta` and `committed`, scans every segment's records, cuts a torn
//! tail (a crash mid-write), removes segments started just before a crash, and refuses to
//! start on anything else that does not read back (corruption, a gap, an intact record that
//! does not decode).
//!
//! A bad record at the end of the last segment is told apart as etcd's WAL does: segments are
//! allocated (zeros) ahead of their records, so a write that did not reach the disk leaves
//! whole sectors of its record reading as zeros, or the file ends inside it. A bad record with
//! neither (every sector of it holds data, or its checksum holds once one bit of its length
//! is flipped back) was written whole and then damaged: that is corruption of data this node
//! may have acknowledged, and the start is refused, naming the file, the byte and the entry.
//!
//! Runs once, before the store is shared; must never cut or remove data that is not a torn
//! tail.

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{self, OpenOptions},
    io,
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
};

use parking_lot::Mutex;
use tracing::{error, info, warn};

use super::{
    Inner, Loc, LogStore, State,
    meta::{Meta, read_framed},
    other,
    segment::{
        HEADER, SEGMENT_HEADER, Seg, create_seg, decode_entry, drop_cache, parse_record,
        segment_format, write_header,
    },
    sync::{SyncFlags, sync_dir, sync_loop},
};

impl LogStore {
    /// Opens (or creates) the log in `dir`, checking every record.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        // New folders' names must be durable before anything in them is (a vote saved in a
        // folder that a crash then loses would allow a second vote in its term).
        let new: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .collect();
        fs::create_dir_all(dir)?;
        for d in new {
            match d.parent() {
                Some(p) if !p.as_os_str().is_empty() => sync_dir(p)?,
                _ => sync_dir(Path::new("."))?,
            }
        }
        let meta: Meta = match read_framed(&dir.join("meta"))? {
            Some(b) => bincode::deserialize(&b).map_err(other)?,
            None => Meta::default(),
        };
        let committed = match read_framed(&dir.join("committed")) {
            Ok(Some(b)) => bincode::deserialize(&b).ok().flatten(),
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "the Raft log's commit hint is ignored");
                None
            }
        };
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let first = name
                    .strip_prefix("log-")?
                    .strip_suffix(".seg")?
                    .parse()
                    .ok()?;
                Some((first, e.path()))
            })
            .collect();
        names.sort();
        let purged = meta.last_purged.as_ref().map(|l| l.index);
        let mut st = State {
            segs: BTreeMap::new(),
            first: purged.map_or(0, |p| p + 1),
            locs: VecDeque::new(),
            bytes: 0,
            cache: BTreeMap::new(),
            cache_bytes: 0,
            applied: None,
            meta,
            committed,
        };
        // Each segment's records, and where they end: clean (the rest reads as zeros) or not.
        let mut scanned = Vec::with_capacity(names.len());
        for (first, path) in names {
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            drop_cache(&file);
            let bytes = fs::read(&path)?;
            let (off, tail, locs) = scan_segment(&bytes, &path, first)?;
            scanned.push((
                first,
                path,
                file,
                off as u64,
                bytes.len() as u64,
                tail,
                locs,
            ));
        }
        // A crash can tear the tail of the segment being written, and a segment rolled just
        // before the crash can be empty after it: those are cut or removed. Anything else
        // that does not read back is corruption.
        let torn_ok_from = scanned.iter().rposition(|s| !s.6.is_empty()).unwrap_or(0);
        for (i, (first, path, file, off, size, tail, locs)) in scanned.into_iter().enumerate() {
            let clean = tail.is_none();
            if i > torn_ok_from {
                if tail == Some(Tail::Damaged) {
                    return Err(damaged(&path, off, None));
                }
                info!(
                    file = %path.display(),
                    "removing a Raft log segment that holds no intact record (a crash just \
                     after it was started)"
                );
                fs::remove_file(&path)?;
                sync_dir(dir)?;
                continue;
            }
            if !clean {
                if i < torn_ok_from {
                    return Err(other(format!(
                        "log {} is corrupt at byte {off} (not at its end): refusing to start; \
                         restore this node from a replica (wipe its folder and add it again)",
                        path.display()
                    )));
                }
                if tail == Some(Tail::Damaged) {
                    return Err(damaged(&path, off, locs.last().map(|l| l.log_id.index)));
                }
                error!(
                    file = %path.display(),
                    offset = off,
                    "torn record at the end of the Raft log (a crash during a write): cutting \
                     it off; they never reached the disk (never acknowledged, unless \
                     appendfsync is everysec or no and the machine lost power)"
                );
                // Cut, then allocate again: the tail must read as zeros.
                file.set_len(off)?;
                file.sync_all()?;
            }
            let (mut off, mut size) = (off, size);
            if locs.is_empty() && off < SEGMENT_HEADER as u64 {
                // No record and no whole header (a version 1 segment, or a crash while the
                // file was being created): it starts again as this build's version.
                file.set_len(0)?;
                off = write_header(&file)?;
                size = off;
            }
            for loc in locs {
                let idx = loc.log_id.index;
                if purged.is_some_and(|p| idx <= p) {
                    continue;
                }
                if purged.is_none() && st.locs.is_empty() {
                    st.first = idx;
                }
                let expect = st.first + st.locs.len() as u64;
                if idx != expect {
                    return Err(other(format!(
                        "log {} holds entry {idx} where {expect} was expected: the log \
                         has a gap",
                        path.display()
                    )));
                }
                st.bytes += loc.len as u64;
                st.locs.push_back(loc);
            }
            st.segs.insert(
                first,
                Seg {
                    file: Arc::new(file),
                    len: off,
                    allocated: if clean { size } else { off },
                },
            );
        }
        // The committed hint can be ahead of the log: a leader's commit follows its followers'
        // acknowledgements, and a kill can tear the leader's own last write. Everything this
        // node still holds up to the hint is committed; what it lost comes back from the leader.
        if let (Some(c), Some(last)) = (st.committed, st.last_log_id())
            && c.index > last.index
        {
            warn!(
                committed = c.index,
                last = last.index,
                "the committed index is ahead of this node's log (torn tail); in a cluster \
                 the missing entries come back from the leader"
            );
            st.committed = Some(last);
        }
        if st.segs.is_empty() {
            let first = st.first;
            st.segs.insert(first, create_seg(dir, first)?);
        }
        info!(
            dir = %dir.display(),
            entries = st.locs.len(),
            first = st.first,
            purged = ?st.meta.last_purged.as_ref().map(|l| l.index),
            "Raft log opened"
        );
        let (tx, rx) = mpsc::channel();
        let sync_dir_path = dir.to_path_buf();
        let flags = Arc::new(SyncFlags::default());
        let thread_flags = flags.clone();
        std::thread::Builder::new()
            .name("shardai-fsync".into())
            .spawn(move || sync_loop(rx, &sync_dir_path, &thread_flags))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                st: Mutex::new(st),
                sync: Mutex::new(tx),
                flags,
                committed_file: Mutex::new(None),
            }),
        })
    }
}

/// Reads a segment's records (the file at `path`, whose first entry is `first`): where they
/// stop, what follows them (None: zeros, the allocated space) and where each one lies.
pub(super) fn scan_segment(
    bytes: &[u8],
    path: &Path,
    first: u64,
) -> io::Result<(usize, Option<Tail>, Vec<Loc>)> {
    // A version this build does not read refuses the start (nothing is cut).
    let (_, start) = segment_format(bytes, path)?;
    let mut off = start;
    let mut locs = Vec::new();
    while off < bytes.len() {
        let Some((payload, next)) = parse_record(bytes, off) else {
            break;
        };
        // A record whose checksum holds was written whole: if it does not decode, it is not
        // a torn write (another version's format, or a bug) and nothing here may be cut or
        // removed because of it.
        let entry = decode_entry(payload).map_err(|e| {
            other(format!(
                "log {} holds an intact record at byte {off} that does not decode ({e}): was \
                 it written by another version of shardai? Refusing to start",
                path.display()
            ))
        })?;
        locs.push(Loc {
            seg: first,
            off: off as u64,
            len: (next - off) as u32,
            log_id: entry.log_id,
        });
        off = next;
    }
    // Where the records stop short of zeros: a torn write, or damage.
    let tail = (!bytes[off..].iter().all(|b| *b == 0)).then(|| tail_at(bytes, off));
    Ok((off, tail, locs))
}

/// Fuzz entry point: `data` read as a segment file, as is and after this build's header.
pub(crate) fn fuzz_segment(data: &[u8]) {
    let check = |bytes: &[u8]| {
        if let Ok((off, _, locs)) = scan_segment(bytes, Path::new("fuzz.seg"), 0) {
            assert!(off <= bytes.len());
            assert!(
                locs.windows(2)
                    .all(|w| w[0].off + w[0].len as u64 == w[1].off)
            );
        }
    };
    check(data);
    let mut b = super::segment::segment_header().to_vec();
    b.extend_from_slice(data);
    check(&b);
}

/// What a record that does not read back at the end of a segment is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tail {
    /// A write a crash interrupted: never acknowledged, cut.
    Torn,
    /// Written whole, then damaged: refuse to start.
    Damaged,
}

/// The unit a disk writes atomically: a write that did not reach the disk leaves whole
/// sectors as they were (zeros, in allocated space).
const SECTOR: usize = 512;

/// Classifies the bad record at `off` in a segment's bytes `b`.
pub(super) fn tail_at(b: &[u8], off: usize) -> Tail {
    let Some(h) = b.get(off..off + HEADER) else {
        return Tail::Torn; // the file ends inside the header
    };
    let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
    let body = &b[off + HEADER..];
    // A flipped bit in the length leaves the payload and its checksum whole.
    for bit in 0..32 {
        let l = len ^ (1 << bit);
        if l > 0 && body.get(..l).is_some_and(|p| crc32fast::hash(p) == crc) {
            return Tail::Damaged;
        }
    }
    let end = off + HEADER + len;
    if end > b.len() {
        return Tail::Torn; // the file ends inside the record
    }
    let zero = |r: std::ops::Range<usize>| b[r].iter().all(|x| *x == 0);
    // The record's first stretch (up to the next sector) holds its length, never zero in a
    // record written whole: if it reads as zeros the sector did not reach the disk (the
    // sector's earlier bytes belong to records made durable before).
    let first_end = ((off / SECTOR + 1) * SECTOR).min(end);
    if first_end - off >= 4 && zero(off..first_end) {
        return Tail::Torn;
    }
    // Any later sector it covers must read as zeros whole (also past the record's end, where
    // later records of the same write were): a record's own bytes may end in zeros.
    let mut s = first_end;
    while s < end {
        if zero(s..(s + SECTOR).min(b.len())) {
            return Tail::Torn;
        }
        s += SECTOR;
    }
    Tail::Damaged
}

fn damaged(path: &Path, off: u64, after: Option<u64>) -> io::Error {
    let after = after.map_or(String::new(), |i| format!(" (the record after entry {i})"));
    other(format!(
        "log {} is corrupt at byte {off}{after}: the record was written whole and then \
         damaged (not a torn write), so entries this node acknowledged may be lost; refusing \
         to start; restore this node from a replica (wipe its folder and add it again)",
        path.display()
    ))
}
