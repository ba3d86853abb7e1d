//! The group-commit thread: drains queued flushes, fsyncs each touched file once per batch
//! and completes the batch's callbacks in order; barriers (vote, truncate, purge, a segment
//! roll) wait for everything queued before them. Also the fsync policy ([`Fsync`], Redis's
//! `appendfsync`) and the durable-write helpers ([`write_atomic`], [`sync_dir`]).
//!
//! Owns no log state: it is handed files and bytes. After an fsync error it fails every
//! later request (a failed fsync may have dropped dirty pages, so no later one proves
//! anything).
//!
//! Under a lazy policy an append with nothing queued before it is acknowledged by the
//! appender itself ([`SyncFlags::ack_written`]), which saves two thread hand-offs per write:
//! its file joins [`SyncFlags::written`], which this thread fsyncs on its next tick under
//! [`Fsync::EverySec`], and at the next barrier or at exit under either policy.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use openraft::storage::IOFlushed;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::error;

use super::{C, other};

pub(super) enum SyncReq {
    /// An append's file and callback, and when the append started.
    Flush(Arc<File>, IOFlushed<C>, Instant),
    Barrier {
        files: Vec<Arc<File>>,
        meta: Option<(PathBuf, Vec<u8>)>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

/// When an appended entry counts as durable (Redis's `appendfsync`).
///
/// A Raft group of several members must use [`Fsync::Always`]: a member that acknowledged
/// an entry it then lost in a crash could help elect a leader without it. The others are
/// for a group of one, where the only loss is this node's own recent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Fsync'd before it is acknowledged: nothing acknowledged is lost, even by a power
    /// failure.
    #[default]
    Always,
    /// Written to the file (the kernel's cache) before it is acknowledged and fsync'd within
    /// a second: a crash of the process loses nothing; a power failure or kernel crash loses
    /// at most the last second or so.
    EverySec,
    /// Written to the file before it is acknowledged, fsync'd only by what must be durable
    /// anyway (a segment closing, a vote, a snapshot's purge, shutdown): a crash of the
    /// process loses nothing; a power failure loses what the kernel had not written back yet
    /// (on Linux, up to about 30 seconds).
    No,
}

impl Fsync {
    /// Redis's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        }
    }

    /// Parses Redis's name (any case).
    pub fn parse(s: &str) -> Option<Fsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::EverySec),
            "no" => Some(Fsync::No),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Fsync {
        match v {
            1 => Fsync::EverySec,
            2 => Fsync::No,
            _ => Fsync::Always,
        }
    }
}

/// What the appender and the sync thread share: the policy, the failure state and the
/// acknowledgements in flight.
#[derive(Debug, Default)]
pub(super) struct SyncFlags {
    /// Test hook: makes every later fsync fail, as a full or failing disk does.
    pub fail: AtomicBool,
    /// The [`Fsync`] policy, as `Fsync as u8`.
    pub policy: AtomicU8,
    /// Set once a write or fsync failed: nothing is acknowledged any more (under everysec
    /// this can happen between writes, before any append sees it).
    pub failed: AtomicBool,
    /// Append and fsync latency (and the group's other measurements).
    pub stats: Arc<crate::stats::GroupStats>,
    /// Requests sent to the sync thread and not finished yet: an append may acknowledge
    /// itself only when none is, so that acknowledgements stay in order.
    pub queued: AtomicUsize,
    /// Files written by appends acknowledged without the sync thread, not fsync'd yet.
    pub written: Mutex<Vec<Arc<File>>>,
}

impl SyncFlags {
    pub(super) fn policy(&self) -> Fsync {
        Fsync::from_u8(self.policy.load(Ordering::Relaxed))
    }

    pub(super) fn set_policy(&self, p: Fsync) {
        self.policy.store(p as u8, Ordering::Relaxed);
    }

    /// Acknowledges an append of `file` at once, when the policy lets it be fsync'd later,
    /// nothing is queued before it and nothing has failed; otherwise hands `callback` back
    /// for the sync thread. Called only by the log's one appender.
    pub(super) fn ack_written(
        &self,
        file: &Arc<File>,
        callback: IOFlushed<C>,
        started: Instant,
    ) -> Option<IOFlushed<C>> {
        if self.policy() == Fsync::Always
            || self.queued.load(Ordering::Acquire) != 0
            || self.failed.load(Ordering::SeqCst)
        {
            return Some(callback);
        }
        {
            let mut written = self.written.lock();
            if !written.iter().any(|f| Arc::ptr_eq(f, file)) {
                written.push(file.clone());
            }
        }
        // A background fsync that failed meanwhile: the sync thread answers the error.
        if self.failed.load(Ordering::SeqCst) {
            return Some(callback);
        }
        self.stats
            .append_seconds
            .observe(started.elapsed().as_secs_f64());
        callback.io_completed(Ok(()));
        None
    }

    /// Moves the files of self-acknowledged appends into `lazy`.
    fn take_written(&self, lazy: &mut Vec<Arc<File>>) {
        for f in self.written.lock().drain(..) {
            if !lazy.iter().any(|d| Arc::ptr_eq(d, &f)) {
                lazy.push(f);
            }
        }
    }
}

/// How often [`Fsync::EverySec`] fsyncs.
const EVERY_SEC: Duration = Duration::from_secs(1);

/// Fsyncs a directory, so that a created, renamed or removed name is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` durably: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The group-commit loop: one fsync per touched file per batch, callbacks in order. Under
/// a lazy policy ([`Fsync::EverySec`], [`Fsync::No`]) appends are acknowledged once
/// written and their files fsync'd later (every second, or at the next barrier).
pub(super) fn sync_loop(rx: mpsc::Receiver<SyncReq>, dir: &Path, flags: &SyncFlags) {
    let sync = |f: &File| {
        if flags.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let started = Instant::now();
        let r = f.sync_data();
        flags
            .stats
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        r
    };
    let mut failed: Option<String> = None;
    // Files written since their last fsync, their appends already acknowledged.
    let mut lazy: Vec<Arc<File>> = Vec::new();
    let mut last_lazy_sync = Instant::now();
    let fail_with = |e: &io::Error, failed: &mut Option<String>| {
        flags.failed.store(true, Ordering::SeqCst);
        error!(error = %e, "fsync of the Raft log failed: this node stops acknowledging \
               writes");
        failed.get_or_insert_with(|| e.to_string());
    };
    loop {
        // Appends may acknowledge themselves (`SyncFlags::ack_written`) while this thread
        // waits, so it wakes every second rather than only for requests.
        let first = {
            let wait = EVERY_SEC.saturating_sub(last_lazy_sync.elapsed());
            match rx.recv_timeout(wait) {
                Ok(r) => r,
                Err(timeout) => {
                    flags.take_written(&mut lazy);
                    // Every second (everysec), or at exit: fsync what was acknowledged.
                    let exiting = timeout == mpsc::RecvTimeoutError::Disconnected;
                    // Also after a switch to always: what was acknowledged before it.
                    if exiting || (flags.policy() != Fsync::No && !lazy.is_empty()) {
                        if failed.is_none()
                            && let Err(e) = lazy.iter().try_for_each(|f| sync(f))
                        {
                            fail_with(&e, &mut failed);
                        }
                        lazy.clear();
                    }
                    last_lazy_sync = Instant::now();
                    if exiting {
                        return;
                    }
                    continue;
                }
            }
        };
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let policy = flags.policy();
        let mut dirty: Vec<Arc<File>> = Vec::new();
        let mut waiting: Vec<(IOFlushed<C>, Instant)> = Vec::new();
        let flush = |dirty: &mut Vec<Arc<File>>,
                     waiting: &mut Vec<(IOFlushed<C>, Instant)>,
                     failed: &mut Option<String>| {
            if failed.is_none()
                && let Err(e) = dirty.iter().try_for_each(|f| sync(f))
            {
                fail_with(&e, failed);
            }
            dirty.clear();
            for (cb, started) in waiting.drain(..) {
                flags
                    .stats
                    .append_seconds
                    .observe(started.elapsed().as_secs_f64());
                cb.io_completed(match failed {
                    None => Ok(()),
                    Some(e) => Err(other(format!("an earlier fsync failed: {e}"))),
                });
                flags.queued.fetch_sub(1, Ordering::Release);
            }
        };
        for req in batch {
            match req {
                SyncReq::Flush(f, cb, started) if policy != Fsync::Always => {
                    if !lazy.iter().any(|d| Arc::ptr_eq(d, &f)) {
                        lazy.push(f);
                    }
                    flags
                        .stats
                        .append_seconds
                        .observe(started.elapsed().as_secs_f64());
                    cb.io_completed(match &failed {
                        None => Ok(()),
                        Some(e) => Err(other(format!("an earlier fsync failed: {e}"))),
                    });
                    flags.queued.fetch_sub(1, Ordering::Release);
                }
                SyncReq::Flush(f, cb, started) => {
                    if !dirty.iter().any(|d| Arc::ptr_eq(d, &f)) {
                        dirty.push(f);
                    }
                    waiting.push((cb, started));
                }
                SyncReq::Barrier { files, meta, done } => {
                    // Everything before a barrier is durable once it completes, whatever the
                    // policy.
                    flags.take_written(&mut lazy);
                    dirty.append(&mut lazy);
                    last_lazy_sync = Instant::now();
                    flush(&mut dirty, &mut waiting, &mut failed);
                    let r = match &failed {
                        Some(e) => Err(other(format!("an earlier fsync failed: {e}"))),
                        None => (|| {
                            for f in &files {
                                sync(f)?;
                            }
                            if let Some((path, bytes)) = &meta {
                                write_atomic(path, bytes)?;
                            }
                            sync_dir(dir)
                        })(),
                    };
                    if let Err(e) = &r {
                        error!(error = %e, "writing the Raft log failed: this node stops \
                               acknowledging writes");
                        flags.failed.store(true, Ordering::SeqCst);
                        failed.get_or_insert_with(|| e.to_string());
                    }
                    // Before the answer: an append right after the barrier need not wait
                    // for this thread (a barrier has no callback to keep in order).
                    flags.queued.fetch_sub(1, Ordering::Release);
                    let _ = done.send(r);
                }
            }
        }
        flush(&mut dirty, &mut waiting, &mut failed);
        flags.take_written(&mut lazy);
        if policy == Fsync::EverySec && last_lazy_sync.elapsed() >= EVERY_SEC && !lazy.is_empty() {
            if failed.is_none()
                && let Err(e) = lazy.iter().try_for_each(|f| sync(f))
            {
                fail_with(&e, &mut failed);
            }
            lazy.clear();
            last_lazy_sync = Instant::now();
        }
    }
}
