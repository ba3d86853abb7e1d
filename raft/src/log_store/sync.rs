//! The group-commit thread: drains queued flushes, fsyncs each touched file once per batch
//! and completes the batch's callbacks in order; barriers (vote, truncate, purge, a segment
//! roll) wait for everything queued before them. Also the durable-write helpers
//! ([`write_atomic`], [`sync_dir`]).
//!
//! Owns no log state: it is handed files and bytes. After an fsync error it fails every
//! later request (a failed fsync may have dropped dirty pages, so no later one proves
//! anything).

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
};

use openraft::storage::IOFlushed;
use tokio::sync::oneshot;
use tracing::error;

use super::{C, other};

pub(super) enum SyncReq {
    Flush(Arc<File>, IOFlushed<C>),
    Barrier {
        files: Vec<Arc<File>>,
        meta: Option<(PathBuf, Vec<u8>)>,
        done: oneshot::Sender<io::Result<()>>,
    },
}

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

/// The group-commit loop: one fsync per touched file per batch, callbacks in order.
pub(super) fn sync_loop(
    rx: mpsc::Receiver<SyncReq>,
    dir: &Path,
    fail: &std::sync::atomic::AtomicBool,
) {
    let sync = |f: &File| {
        if fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        f.sync_data()
    };
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
            if batch.len() >= 4096 {
                break;
            }
        }
        let mut dirty: Vec<Arc<File>> = Vec::new();
        let mut waiting: Vec<IOFlushed<C>> = Vec::new();
        let flush = |dirty: &mut Vec<Arc<File>>,
                     waiting: &mut Vec<IOFlushed<C>>,
                     failed: &mut Option<String>| {
            if failed.is_none() {
                for f in dirty.iter() {
                    if let Err(e) = sync(f) {
                        error!(error = %e, "fsync of the Raft log failed: this node stops \
                               acknowledging writes");
                        *failed = Some(e.to_string());
                        break;
                    }
                }
            }
            dirty.clear();
            for cb in waiting.drain(..) {
                cb.io_completed(match failed {
                    None => Ok(()),
                    Some(e) => Err(other(format!("an earlier fsync failed: {e}"))),
                });
            }
        };
        for req in batch {
            match req {
                SyncReq::Flush(f, cb) => {
                    if !dirty.iter().any(|d| Arc::ptr_eq(d, &f)) {
                        dirty.push(f);
                    }
                    waiting.push(cb);
                }
                SyncReq::Barrier { files, meta, done } => {
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
                        failed.get_or_insert_with(|| e.to_string());
                    }
                    let _ = done.send(r);
                }
            }
        }
        flush(&mut dirty, &mut waiting, &mut failed);
    }
}
