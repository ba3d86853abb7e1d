//! The durable Raft log and vote: segment files in `<dir>/raft/`, fsync'd by one group-commit
//! thread before openraft is told an append is durable.
//!
//! Files: `log-<first index>.seg` segments, a versioned header then records
//! `[len u32][crc32 u32][bincode entry]`, rolled at [`SEGMENT_BYTES`]; `meta` (vote and last
//! purged id, replaced atomically by write-fsync-rename); `committed` (a hint, rewritten in
//! place without fsync: a lost update only means re-applying a few committed entries at
//! start-up). Each starts with its format version (see `segment` and `meta`; files written
//! before versions existed read as version 1); one of a version this build does not know
//! refuses the start, naming it.
//!
//! Writes are written to the file at once (so the log reader sees them when `append`
//! returns) and queued to the sync thread, which drains its queue, fsyncs each touched file
//! once per batch and only then completes the batch's callbacks, in order: concurrent
//! clients share one fsync. Vote, truncate and purge wait for the queue to drain before their
//! own fsync, so no write becomes durable before an earlier one. After an fsync error every
//! later request fails: the node stops acknowledging instead of acknowledging unsynced data.
//! A group of one member may relax this ([`Fsync::EverySec`], [`Fsync::No`], Redis's
//! `appendfsync`): appends are then acknowledged once written and fsync'd later; one with
//! nothing queued before it acknowledges itself, without a round trip through the thread.
//!
//! Segments are allocated ahead of the writes (`PREALLOC_BYTES` at a time, `fallocate`), so
//! an fsync of an append rarely has to commit a new file size or new blocks: on ext4 that
//! halves the cost of the fsync a write waits for. The allocated tail reads as zeros, and a
//! zero record header marks the end of a segment's records.
//!
//! At open, a torn record at the end of the last segment (a crash mid-write: sectors of it read
//! as zeros, or the file ends inside it) is reported and cut off; a record written whole and
//! then damaged (a flipped bit), or a bad record anywhere else, refuses to start.

//! # Layout
//!
//! - [`mod@self`]: the store's state and the openraft traits (`RaftLogReader`,
//!   `RaftLogStorage`).
//! - `open`: start-up (scan, torn-tail cut, refusals).
//! - `segment`: segment files, record framing, allocation.
//! - `meta`: the `meta` and `committed` files.
//! - `sync`: the group-commit fsync thread and the durable-write helpers.

mod meta;
mod open;
mod segment;
mod sync;

pub(crate) use self::open::fuzz_segment;

use std::{
    collections::{BTreeMap, VecDeque},
    fs::{self, File, OpenOptions},
    io,
    ops::{Bound, RangeBounds},
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use openraft::{
    LogState, RaftLogReader,
    alias::{EntryOf, LogIdOf, VoteOf},
    storage::{IOFlushed, RaftLogStorage},
};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::warn;

use self::{
    meta::Meta,
    segment::{Seg, create_seg, read_entry, seg_name},
    sync::{SyncFlags, SyncReq},
};
pub use self::{
    segment::lock_dir,
    sync::{Fsync, sync_dir, write_atomic},
};
use crate::types::TypeConfig;

type C = TypeConfig;
type Entry = EntryOf<C>;
type LogId = LogIdOf<C>;
type Vote = VoteOf<C>;

/// A segment file is closed and a new one started past this size.
#[cfg(not(test))]
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// 64 KiB in unit tests, so that they roll segments.
#[cfg(test)]
pub const SEGMENT_BYTES: u64 = 64 << 10;
/// Recently appended entries kept decoded in memory (for replication and apply).
const CACHE_BYTES: usize = 64 << 20;
/// What a cached entry holds in memory beyond its record's bytes: the decoded entry, its map
/// slot, its location and its key's handle (which keeps the client's read buffer it points
/// into alive). Measured: a 148-byte record of a 64 B AI.TENSORSET held about 800 bytes.
const CACHED_ENTRY_OVERHEAD: usize = 640;

/// Where one entry lies.
#[derive(Debug, Clone)]
struct Loc {
    seg: u64,
    off: u64,
    len: u32,
    log_id: LogId,
}

#[derive(Debug)]
struct State {
    segs: BTreeMap<u64, Seg>,
    /// Entries `first..first + locs.len()`.
    first: u64,
    locs: VecDeque<Loc>,
    /// Bytes of the records in `locs`.
    bytes: u64,
    cache: BTreeMap<u64, (Entry, usize)>,
    cache_bytes: usize,
    /// When set (a group that replicates to nobody), the applied index: entries below it
    /// leave the cache (see [`LogStore::uncache_applied`]).
    applied: Option<Arc<AtomicU64>>,
    meta: Meta,
    committed: Option<LogId>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    st: Mutex<State>,
    sync: Mutex<mpsc::Sender<SyncReq>>,
    /// The sync thread's policy and test hook.
    flags: Arc<SyncFlags>,
    /// The commit hint file, kept open.
    committed_file: Mutex<Option<File>>,
}

/// The log store (and, cloned, its reader).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    fn send(&self, req: SyncReq) -> io::Result<()> {
        let flags = &self.inner.flags;
        flags
            .queued
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.inner.sync.lock().send(req).map_err(|_| {
            flags
                .queued
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            other("the log's sync thread has stopped")
        })
    }

    /// Waits until everything queued before is durable, then fsyncs `files` and writes
    /// `meta` atomically.
    async fn barrier(&self, files: Vec<Arc<File>>, meta: Option<Vec<u8>>) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        let meta = meta.map(|m| (self.inner.dir.join("meta"), meta::frame(&m)));
        self.send(SyncReq::Barrier { files, meta, done })?;
        rx.await
            .map_err(|_| other("the log's sync thread has stopped"))?
    }

    fn meta_bytes(st: &State) -> io::Result<Vec<u8>> {
        bincode::serialize(&st.meta).map_err(other)
    }

    /// Makes every later fsync fail (tests: a disk that filled up or broke).
    #[doc(hidden)]
    pub fn fail_syncs_for_tests(&self) {
        self.inner
            .flags
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets when an append counts as durable (see [`Fsync`]); takes effect from the next
    /// append.
    pub fn set_fsync(&self, policy: Fsync) {
        self.inner.flags.set_policy(policy);
    }

    /// For a group that replicates to nobody: entries leave the in-memory cache once
    /// `applied` (the state machine's applied index) passes them, rather than when the cache
    /// is full, since no follower will ask for them. Entries are still read back from their
    /// segment should anything ask.
    pub fn uncache_applied(&self, applied: Arc<AtomicU64>) {
        self.inner.st.lock().applied = Some(applied);
    }

    /// The group's measurements, which this log's appends and fsyncs feed.
    pub fn stats(&self) -> Arc<crate::stats::GroupStats> {
        self.inner.flags.stats.clone()
    }

    /// Fsyncs everything appended so far (a clean shutdown under a relaxed policy).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.barrier(Vec::new(), None).await
    }

    /// True once a write or fsync of the log failed (nothing more is acknowledged).
    pub fn failed(&self) -> bool {
        self.inner
            .flags
            .failed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current fsync policy.
    pub fn fsync(&self) -> Fsync {
        self.inner.flags.policy()
    }

    /// Number of entries held (for tests and INFO).
    pub fn len(&self) -> usize {
        self.inner.st.lock().locs.len()
    }

    /// Bytes of the records of the entries after `index` (all held entries if None). Walks
    /// only the entries up to `index` (after a snapshot, those not purged yet).
    pub fn bytes_after(&self, index: Option<u64>) -> u64 {
        let st = self.inner.st.lock();
        let Some(index) = index else {
            return st.bytes;
        };
        let upto: u64 = st
            .locs
            .iter()
            .take_while(|l| l.log_id.index <= index)
            .map(|l| l.len as u64)
            .sum();
        st.bytes - upto
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    fn last_log_id(&self) -> Option<LogId> {
        self.locs.back().map(|l| l.log_id).or(self.meta.last_purged)
    }

    fn next_index(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    fn cache_put(&mut self, idx: u64, e: Entry, record: usize) {
        let size = record + CACHED_ENTRY_OVERHEAD;
        self.cache_bytes += size;
        self.cache.insert(idx, (e, size));
        let applied = self.applied.as_ref().map(|a| a.load(Ordering::Acquire));
        while let Some((&first, _)) = self.cache.first_key_value()
            // Strictly below: the applied index starts at 0 before entry 0 applies.
            && (self.cache_bytes > CACHE_BYTES || applied.is_some_and(|a| first < a))
        {
            if let Some((_, (_, s))) = self.cache.pop_first() {
                self.cache_bytes -= s;
            }
        }
    }

    fn cache_drop(&mut self, keep: impl Fn(u64) -> bool) {
        let mut freed = 0;
        self.cache.retain(|i, (_, s)| {
            let k = keep(*i);
            if !k {
                freed += *s;
            }
            k
        });
        self.cache_bytes -= freed;
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB>(&mut self, range: RB) -> Result<Vec<Entry>, io::Error>
    where
        RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send,
    {
        let mut out = Vec::new();
        let mut missing: Vec<(usize, Loc, Arc<File>)> = Vec::new();
        {
            let st = self.inner.st.lock();
            let start = match range.start_bound() {
                Bound::Included(i) => *i,
                Bound::Excluded(i) => i + 1,
                Bound::Unbounded => st.first,
            }
            .max(st.first);
            let end = match range.end_bound() {
                Bound::Included(i) => i + 1,
                Bound::Excluded(i) => *i,
                Bound::Unbounded => st.next_index(),
            }
            .min(st.next_index());
            for idx in start..end {
                if let Some((e, _)) = st.cache.get(&idx) {
                    out.push(Some(e.clone()));
                } else {
                    let loc = st.locs[(idx - st.first) as usize].clone();
                    let file = st.segs[&loc.seg].file.clone();
                    missing.push((out.len(), loc, file));
                    out.push(None);
                }
            }
        }
        for (at, loc, file) in missing {
            match read_entry(&file, &loc) {
                Ok(e) => out[at] = Some(e),
                // Read outside the lock: a truncation since (a leader that stepped down
                // while replicating) may have cut this entry and everything after it. The
                // read then answers as of after the cut; an entry still held is corrupt.
                Err(e) => {
                    let st = self.inner.st.lock();
                    let held = loc
                        .log_id
                        .index
                        .checked_sub(st.first)
                        .and_then(|i| st.locs.get(i as usize))
                        .is_some_and(|l| l.log_id == loc.log_id && l.off == loc.off);
                    if held {
                        return Err(e);
                    }
                    out.truncate(at);
                    break;
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.st.lock().meta.vote)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        // At most ~32 MiB per call (never fewer than one entry), so one AppendEntries of
        // model-sized entries stays bounded.
        let mut stop = start;
        {
            let st = self.inner.st.lock();
            let mut bytes = 0u64;
            while stop < end && stop < st.next_index() {
                if stop >= st.first {
                    bytes += st.locs[(stop - st.first) as usize].len as u64;
                }
                stop += 1;
                if bytes >= 32 << 20 {
                    break;
                }
            }
        }
        self.try_get_log_entries(start..stop.max(start + 1).min(end))
            .await
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let st = self.inner.st.lock();
        Ok(LogState {
            last_purged_log_id: st.meta.last_purged,
            last_log_id: st.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let meta = {
            let mut st = self.inner.st.lock();
            st.meta.vote = Some(*vote);
            Self::meta_bytes(&st)?
        };
        self.barrier(Vec::new(), Some(meta)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner.st.lock().committed = committed;
        let bytes = meta::frame(&bincode::serialize(&committed).map_err(other)?);
        // A hint: written in place, never fsync'd (see `open` for why that is enough).
        let mut f = self.inner.committed_file.lock();
        if f.is_none() {
            *f = Some(
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(self.inner.dir.join("committed"))?,
            );
        }
        f.as_ref().expect("opened above").write_all_at(&bytes, 0)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.st.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let started = std::time::Instant::now();
        let dir = self.inner.dir.clone();
        let mut buf = Vec::new();
        let mut pending = Vec::new();
        for e in entries {
            // Serialized once, straight into the batch's buffer. An entry too large for a
            // record (leaders refuse such writes: max-entry-size) is an error, never a wrapped
            // length.
            let at = buf.len();
            let len = segment::append_record(&mut buf, &e)
                .map_err(|err| other(format!("log entry {}: {err}", e.log_id.index)))?;
            pending.push((e, at, len));
        }
        let full = {
            let st = self.inner.st.lock();
            st.segs
                .last_key_value()
                .filter(|(_, seg)| seg.len >= SEGMENT_BYTES)
                .map(|(_, seg)| seg.file.clone())
        };
        if let (Some(prev), Some((e, _, _))) = (full, pending.first()) {
            // The closing segment is durable before a byte of the next one is written: a
            // crash in between would otherwise leave a torn segment before an intact one,
            // which start-up refuses as corruption.
            self.barrier(vec![prev], None).await?;
            let first = e.log_id.index;
            let seg = create_seg(&dir, first)?;
            self.inner.st.lock().segs.insert(first, seg);
        }
        let file = {
            let mut st = self.inner.st.lock();
            let Some((cur_first, _)) = st.segs.last_key_value() else {
                return Err(other("no log segment"));
            };
            let cur_first = *cur_first;
            let seg = st.segs.get_mut(&cur_first).expect("current segment");
            seg.reserve(buf.len() as u64)?;
            let base = seg.len;
            seg.file.write_all_at(&buf, base)?;
            seg.len += buf.len() as u64;
            let file = seg.file.clone();
            for (e, off, len) in pending {
                let idx = e.log_id.index;
                if st.locs.is_empty() && st.meta.last_purged.is_none() {
                    // An empty log may start anywhere (openraft starts at 0).
                    st.first = idx;
                }
                if idx != st.next_index() {
                    return Err(other(format!(
                        "append of entry {idx} after {}: not contiguous",
                        st.next_index().saturating_sub(1)
                    )));
                }
                st.bytes += len as u64;
                st.locs.push_back(Loc {
                    seg: cur_first,
                    off: base + off as u64,
                    len: len as u32,
                    log_id: e.log_id,
                });
                st.cache_put(idx, e, len);
            }
            file
        };
        match self.inner.flags.ack_written(&file, callback, started) {
            None => Ok(()),
            Some(callback) => self.send(SyncReq::Flush(file, callback, started)),
        }
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let (file, cut) = {
            let mut st = self.inner.st.lock();
            let from = last.map_or(st.first, |l| l.index + 1).max(st.first);
            if from >= st.next_index() {
                return Ok(());
            }
            warn!(
                from,
                to = st.next_index() - 1,
                "truncating uncommitted Raft log entries"
            );
            let loc = st.locs[(from - st.first) as usize].clone();
            let later: Vec<u64> = st.segs.range(loc.seg + 1..).map(|(k, _)| *k).collect();
            for k in later {
                st.segs.remove(&k);
                fs::remove_file(self.inner.dir.join(seg_name(k)))?;
            }
            let seg = st.segs.get_mut(&loc.seg).expect("segment of a held entry");
            seg.len = loc.off;
            seg.allocated = loc.off;
            let file = seg.file.clone();
            let keep = (from - st.first) as usize;
            st.locs.truncate(keep);
            st.bytes = st.locs.iter().map(|l| l.len as u64).sum();
            st.cache_drop(|i| i < from);
            (file, loc.off)
        };
        // The later segments' removal is durable (the barrier syncs the folder) before the
        // cut: on a crash in between, the log is still one run of entries.
        self.barrier(Vec::new(), None).await?;
        // Cut (the tail must read as zeros again); the next append allocates anew.
        file.set_len(cut)?;
        self.barrier(vec![file], None).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let meta = {
            let mut st = self.inner.st.lock();
            st.meta.last_purged = Some(log_id);
            let upto = log_id.index;
            while st.first <= upto && !st.locs.is_empty() {
                if let Some(l) = st.locs.pop_front() {
                    st.bytes -= l.len as u64;
                }
                st.first += 1;
            }
            if st.locs.is_empty() {
                st.first = st.first.max(upto + 1);
            }
            st.cache_drop(|i| i > upto);
            Self::meta_bytes(&st)?
        };
        self.barrier(Vec::new(), Some(meta)).await?;
        // Whole segments below the first held entry can go (never the current one).
        let st_first = self.inner.st.lock().first;
        let removable: Vec<u64> = {
            let st = self.inner.st.lock();
            let keys: Vec<u64> = st.segs.keys().copied().collect();
            keys.windows(2)
                .filter(|w| w[1] <= st_first)
                .map(|w| w[0])
                .collect()
        };
        for k in removable {
            self.inner.st.lock().segs.remove(&k);
            fs::remove_file(self.inner.dir.join(seg_name(k)))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
use self::segment::{HEADER, PREALLOC_BYTES, parse_record};
