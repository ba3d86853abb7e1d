//! Snapshot files: the whole keyspace of a shard at one log position, written and read as a
//! stream of crc-framed records so that neither side holds more than one record in memory
//! beyond the keyspace itself.
//!
//! Format: the magic line `shardai-snapshot-v<N>\n`, which names its format version (1, the
//! only one so far: a file of another version is refused, naming it), then records
//! `[len u32][crc32 u32][bincode]`: first the `SnapshotMeta`, then one `Some(Item)` per key,
//! then `None` as the end mark (a file without it is incomplete and refused). `Item` and
//! `ItemValue` are bincode, positional: their variants are only appended, and changing a
//! field means a new version.
//!
//! A snapshot of a large keyspace is written paced: each step of [`PACE`] bytes is handed to
//! the disk as it is written and the writer waits for the one before, so the file never piles
//! up as hundreds of MB of dirty pages whose final flush would stall the Raft log's fsyncs
//! behind it (they did: 100-180 ms p99 write latency during snapshots of 16 KiB tensors).

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Read, Seek, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use openraft::alias::SnapshotMetaOf;
use serde::{Deserialize, Serialize};
use shardai_engine::{
    Value,
    backend::Backends,
    collections::{Hash, List},
    key::Key,
    store::KeyRecord,
};

use crate::{
    log_store::sync_dir,
    types::{TypeConfig, WireModel, WireScript, WireTensor},
    version::refused,
};

/// Snapshot metadata (last included log id and membership).
pub type Meta = SnapshotMetaOf<TypeConfig>;

/// The first line of a snapshot, up to its version number.
const MAGIC: &[u8] = b"shardai-snapshot-v";
/// The format this build writes.
const VERSION: u32 = 1;
/// The formats this build reads.
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;

/// A snapshot on disk: the `SnapshotData` openraft hands around.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
}

/// A key's value in a snapshot. On disk (bincode encodes the variant's index): variants are
/// only ever appended, and a changed field is a new format version.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ItemValue {
    Str(Bytes),
    Tensor(WireTensor),
    Model(WireModel),
    Script(WireScript),
    Hash(Vec<(Bytes, Bytes)>),
    List(Vec<Bytes>),
}

/// One key of a snapshot. On disk: a changed field is a new format version.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) key: Bytes,
    pub(crate) expire_at: Option<u64>,
    pub(crate) value: ItemValue,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn put<T: Serialize>(w: &mut impl Write, v: &T) -> io::Result<()> {
    let payload = bincode::serialize(v).map_err(other)?;
    // Every record came through a log entry (at most MAX_ENTRY_BYTES): refuse, never wrap.
    let len = u32::try_from(payload.len())
        .map_err(|_| other(format!("a snapshot record of {} bytes", payload.len())))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&crc32fast::hash(&payload).to_le_bytes())?;
    w.write_all(&payload)
}

/// Most of a record's declared length allocated before its bytes are read.
const READ_AHEAD: usize = 1 << 20;

fn get<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<T> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
    // Grown as bytes arrive: a damaged length must not allocate gigabytes up front.
    let mut payload = Vec::with_capacity(len.min(READ_AHEAD));
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the snapshot ends inside a record",
        ));
    }
    if crc32fast::hash(&payload) != crc {
        return Err(other("snapshot record checksum mismatch"));
    }
    bincode::deserialize(&payload).map_err(other)
}

/// Bytes written between two steps of pacing. While a snapshot is written, each fsync of the
/// log waits for the snapshot data handed to the disk before it (on ext4 a log fsync commits
/// the journal, which first writes out the other files' data it covers), so at most two steps
/// are in flight. With 256 KiB, 50 clients' 16 KiB writes went on at 4,400-10,500 a second
/// instead of 760-3,300 while a 450 MB snapshot was written (docs/performance.md).
const PACE: u64 = 256 << 10;

/// A file written in paced steps: every [`PACE`] bytes, writeback of the new step starts and
/// the writer waits until the step before is on disk.
struct Paced {
    file: File,
    written: u64,
    /// Start of the step being written.
    started: u64,
    /// Start of the step before it (handed to the disk, maybe not written yet).
    prev: u64,
}

impl Paced {
    fn step(&mut self) -> io::Result<()> {
        if self.written - self.started >= PACE {
            if self.started > self.prev {
                sync_range(&self.file, self.prev, self.started - self.prev, true)?;
            }
            sync_range(&self.file, self.started, self.written - self.started, false)?;
            self.prev = self.started;
            self.started = self.written;
        }
        Ok(())
    }
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // At most one step at a time, even for one large value.
        let n = self.file.write(&buf[..buf.len().min(PACE as usize)])?;
        self.written += n as u64;
        self.step()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Starts writeback of `off..off + len` of `file` (and with `wait`, waits for it): Linux's
/// `sync_file_range`, a hint that does not make anything durable by itself.
#[allow(unsafe_code)]
fn sync_range(file: &File, off: u64, len: u64, wait: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = if wait {
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER
    } else {
        libc::SYNC_FILE_RANGE_WRITE
    };
    // SAFETY: `sync_file_range` takes no pointer, so no memory of ours can be touched; the
    // descriptor belongs to `file`, borrowed (so open) for the whole call; a bad offset,
    // length or flag only makes the call fail (handled below).
    let r = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            flags,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // A file system without it: the final fsync does all the work.
        Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok(()),
        _ => Err(e),
    }
}

/// Writes `entries` as the snapshot `meta` to `path` durably (temp file, fsync, rename).
/// Blocking: call it on a blocking thread.
pub fn write<K: Into<Bytes>>(
    path: &Path,
    meta: &Meta,
    entries: Vec<(K, Value, Option<u64>)>,
) -> io::Result<()> {
    let tmp = path.with_extension("part");
    let f = Paced {
        file: File::create(&tmp)?,
        written: 0,
        started: 0,
        prev: 0,
    };
    let mut w = BufWriter::with_capacity(1 << 20, f);
    w.write_all(MAGIC)?;
    w.write_all(format!("{VERSION}\n").as_bytes())?;
    put(&mut w, meta)?;
    for (key, value, expire_at) in entries {
        let value = match value {
            Value::Str(b) => ItemValue::Str(b.into_bytes()),
            Value::Tensor(t) => ItemValue::Tensor(WireTensor::of(&t)),
            Value::Model(m) => ItemValue::Model(WireModel::of(&m)),
            Value::Script(s) => ItemValue::Script(WireScript::of(&s)),
            Value::Hash(h) => {
                ItemValue::Hash(h.iter().map(|(f, v)| (f.clone(), v.clone())).collect())
            }
            Value::List(l) => ItemValue::List(l.iter().cloned().collect()),
        };
        put(
            &mut w,
            &Some(Item {
                key: key.into(),
                expire_at,
                value,
            }),
        )?;
    }
    put(&mut w, &None::<Item>)?;
    let f = w.into_inner().map_err(|e| e.into_error())?.file;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<Meta> {
    open(path)?.1
}

/// Opens a snapshot file, checks its magic line and version and reads its metadata.
fn open(path: &Path) -> io::Result<(BufReader<File>, io::Result<Meta>)> {
    let r = BufReader::with_capacity(1 << 20, File::open(path)?);
    start(r, path)
}

/// Checks the magic line and version at the start of `r` (the snapshot at `path`) and reads
/// its metadata.
fn start<R: BufRead>(mut r: R, path: &Path) -> io::Result<(R, io::Result<Meta>)> {
    let mut line = Vec::new();
    r.by_ref().take(32).read_until(b'\n', &mut line)?;
    let version = line
        .strip_prefix(MAGIC)
        .and_then(|v| v.strip_suffix(b"\n"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| other(format!("{} is not a shardai snapshot", path.display())))?;
    if !u32::try_from(version).is_ok_and(|v| VERSIONS.contains(&v)) {
        return Err(other(refused(
            format_args!("snapshot {}", path.display()),
            version,
            &VERSIONS,
        )));
    }
    let meta = get(&mut r);
    Ok((r, meta))
}

/// Fuzz entry point: a snapshot's bytes read as `read` reads a file, models not loaded;
/// every key read is rebuilt as the store would hold it.
pub(crate) fn fuzz_read(data: &[u8]) {
    let Ok((mut r, Ok(_meta))) = start(data, Path::new("fuzz.snap")) else {
        return;
    };
    while let Ok(Some(item)) = get::<Option<Item>>(&mut r) {
        if let ItemValue::Tensor(t) = item.value {
            let _ = t.tensor();
        }
    }
}

/// Reads a whole snapshot, loading its models into `backends`. Blocking (file reads and
/// backend calls): call it on a blocking thread.
pub fn read(path: &Path, backends: &Arc<Backends>) -> io::Result<(Meta, Vec<KeyRecord>)> {
    let (mut r, meta) = open(path)?;
    let meta = meta?;
    let total = r.get_ref().metadata().map(|m| m.len()).ok();
    let mut progress =
        crate::progress::Progress::new(format!("loading snapshot {}", path.display()), total);
    let mut out = Vec::new();
    while let Some(item) = get::<Option<Item>>(&mut r)? {
        if progress.due() {
            progress.at(r.stream_position().unwrap_or(0));
        }
        let value = match item.value {
            ItemValue::Str(b) => Value::Str(b.into()),
            ItemValue::Tensor(t) => Value::Tensor(t.tensor().map_err(other)?),
            // Kept even where its backend cannot load it here (its runs answer the error).
            ItemValue::Model(m) => Value::Model(Arc::new(
                m.load_or_keep(backends, &item.key).map_err(other)?,
            )),
            ItemValue::Script(s) => Value::Script(Arc::new(s.compile_or_keep(backends, &item.key))),
            ItemValue::Hash(pairs) => Value::Hash(Arc::new(Hash::from_pairs(pairs))),
            ItemValue::List(items) => Value::List(Arc::new(List::from_items(items))),
        };
        out.push((Key::copy(&item.key), value, item.expire_at));
    }
    Ok((meta, out))
}

/// A snapshot's items as stored, models not loaded (for the golden-bytes tests).
#[cfg(test)]
pub(crate) fn read_items(path: &Path) -> io::Result<(Meta, Vec<Item>)> {
    let (mut r, meta) = open(path)?;
    let meta = meta?;
    let mut out = Vec::new();
    while let Some(item) = get::<Option<Item>>(&mut r)? {
        out.push(item);
    }
    Ok((meta, out))
}

#[cfg(test)]
mod tests {
    use openraft::StoredMembership;
    use shardai_protocol::DType;

    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_cut_one_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.snap");
        let meta = Meta {
            last_log_id: Some(openraft::testing::log_id::<TypeConfig>(2, 1, 9)),
            last_membership: StoredMembership::default(),
        };
        let t =
            shardai_engine::Tensor::from_blob(DType::Uint8, vec![3], Bytes::from_static(b"abc"))
                .unwrap();
        let entries = vec![
            (Bytes::from_static(b"s"), Value::Str("v".into()), Some(99)),
            (Bytes::from_static(b"t"), Value::Tensor(t), None),
        ];
        write(&path, &meta, entries).unwrap();
        assert_eq!(read_meta(&path).unwrap(), meta);
        let backends = Arc::new(Backends::new(None));
        let (m, items) = read(&path, &backends).unwrap();
        assert_eq!(m, meta);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].2, Some(99));
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        assert!(read(&path, &backends).is_err());
    }

    #[test]
    fn a_snapshot_larger_than_several_pacing_steps_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("big.snap");
        let meta = Meta::default();
        let value = Bytes::from(vec![7u8; 1 << 20]);
        let entries: Vec<(Bytes, Value, Option<u64>)> = (0..(3 * PACE).div_ceil(1 << 20) + 3)
            .map(|i| {
                (
                    Bytes::from(format!("k{i}")),
                    Value::Str((&value).into()),
                    None,
                )
            })
            .collect();
        let n = entries.len();
        write(&path, &meta, entries).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > 3 * PACE);
        let (_, items) = read(&path, &Arc::new(Backends::new(None))).unwrap();
        assert_eq!(items.len(), n);
        assert!(
            items
                .iter()
                .all(|(_, v, _)| matches!(v, Value::Str(b) if *b == value))
        );
    }
}
