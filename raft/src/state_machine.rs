//! The state machine: applies committed entries to the engine's `Store`, builds snapshots of
//! it and installs snapshots received from the leader.
//!
//! The store lives in memory; durability comes from the log plus snapshot files in
//! `<dir>/raft/snapshots/` (openraft re-applies committed entries after the newest snapshot
//! at start-up). Model entries are loaded into this node's backends on a blocking thread as
//! they are applied, so every replica can execute every stored model. The node that proposed
//! an entry applies its own in-memory mutation instead (no decode, no second model load).

use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures_util::TryStreamExt;
use openraft::{
    EntryPayload, RaftSnapshotBuilder, StoredMembership,
    alias::{LogIdOf, SnapshotOf, StoredMembershipOf},
    storage::{EntryResponder, RaftStateMachine},
};
use parking_lot::Mutex;
use shardai_engine::{Mutation, Store, backend::Backends};
use tracing::{error, info};

use crate::{
    snapshot::{self, Meta, SnapshotFile},
    types::{ApplyResult, Cmd, TypeConfig},
};

type C = TypeConfig;
type LogId = LogIdOf<C>;

/// Mutations proposed by this node and not yet applied, by sequence number.
#[derive(Debug, Default)]
pub struct Pending {
    map: Mutex<HashMap<u64, Mutation>>,
}

impl Pending {
    /// Remembers `m` under `seq`.
    pub fn put(&self, seq: u64, m: Mutation) {
        self.map.lock().insert(seq, m);
    }

    /// Takes `seq` back.
    pub fn take(&self, seq: u64) -> Option<Mutation> {
        self.map.lock().remove(&seq)
    }
}

/// The newest snapshot on disk.
#[derive(Debug, Default)]
struct Current {
    snap: Option<(Meta, PathBuf)>,
}

impl Current {
    /// Makes `path` the current snapshot and deletes the previous file (a transfer that
    /// has it open keeps reading the unlinked file).
    fn replace(&mut self, meta: Meta, path: PathBuf) {
        if let Some((_, old)) = self.snap.replace((meta, path.clone()))
            && old != path
        {
            let _ = fs::remove_file(old);
        }
    }
}

/// A handle on the newest snapshot, for the snapshot policy.
#[derive(Debug, Clone)]
pub struct CurrentSnapshot(Arc<Mutex<Current>>);

impl CurrentSnapshot {
    /// The newest snapshot's last index and its file's size, if there is one.
    pub fn last(&self) -> Option<(u64, u64)> {
        let (meta, path) = self.0.lock().snap.clone()?;
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let bytes = fs::metadata(&path).map_or(0, |m| m.len());
        Some((index, bytes))
    }

    /// When the newest snapshot's file was written, if there is one.
    pub fn written_at(&self) -> Option<std::time::SystemTime> {
        let (_, path) = self.0.lock().snap.clone()?;
        fs::metadata(&path).and_then(|m| m.modified()).ok()
    }
}

/// The state machine of one shard replica.
#[derive(Debug)]
pub struct StateMachine {
    store: Arc<Store>,
    backends: Arc<Backends>,
    me: u64,
    pending: Arc<Pending>,
    dir: PathBuf,
    last_applied: Option<LogId>,
    /// The index of `last_applied`, set before the entry's client is answered (openraft's
    /// metrics learn it a moment later).
    applied_index: Arc<std::sync::atomic::AtomicU64>,
    membership: StoredMembershipOf<C>,
    current: Arc<Mutex<Current>>,
    stats: Arc<crate::stats::GroupStats>,
}

fn snap_name(meta: &Meta) -> String {
    let (term, index) = meta
        .last_log_id
        .as_ref()
        .map_or((0, 0), |l| (l.leader_id.term, l.index));
    format!("snap-{index:020}-{term:010}.snap")
}

impl StateMachine {
    /// The index this replica applied up to, as the state machine sets it (before the
    /// entry's client is answered).
    pub fn applied_index(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.applied_index.clone()
    }

    /// Snapshots built are counted in `stats` (the group's, shared with its log).
    pub fn with_stats(mut self, stats: Arc<crate::stats::GroupStats>) -> Self {
        self.stats = stats;
        self
    }

    /// A handle on the newest snapshot.
    pub fn current_snapshot(&self) -> CurrentSnapshot {
        CurrentSnapshot(self.current.clone())
    }

    /// A state machine over `store`, keeping snapshots in `dir` (created if missing; the
    /// newest complete snapshot there becomes the current one).
    pub fn open(
        dir: &Path,
        store: Arc<Store>,
        backends: Arc<Backends>,
        me: u64,
        pending: Arc<Pending>,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut found: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        found.sort();
        let mut current = Current::default();
        for path in found.iter().rev() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".snap") {
                // Leftovers of an interrupted build or transfer.
                let _ = fs::remove_file(path);
                continue;
            }
            if current.snap.is_some() {
                let _ = fs::remove_file(path);
                continue;
            }
            match snapshot::read_meta(path) {
                Ok(meta) => current.snap = Some((meta, path.clone())),
                Err(e) => error!(file = %path.display(), error = %e, "unreadable snapshot ignored"),
            }
        }
        Ok(StateMachine {
            store,
            backends,
            me,
            pending,
            dir: dir.to_path_buf(),
            last_applied: None,
            stats: Default::default(),
            applied_index: Default::default(),
            membership: StoredMembership::default(),
            current: Arc::new(Mutex::new(current)),
        })
    }

    async fn apply_cmd(&self, cmd: Cmd) -> ApplyResult {
        let at = cmd.at_ms;
        if cmd.origin == self.me
            && let Some(m) = self.pending.take(cmd.seq)
        {
            // Built by a connection's thread: what the keyspace keeps is copied here, away
            // from that thread's short-lived allocations (a follower's copy is decoded here).
            return self.store.apply(m.relocated(), at).into();
        }
        let m = if cmd.loads_model() {
            let backends = self.backends.clone();
            // A model this node cannot load, or a script it cannot compile, is kept (answering
            // its runs with the error), never skipped: a replica must not silently lack what
            // the others hold.
            let load = move || {
                cmd.mutation(
                    |key, w| w.load_or_keep(&backends, key),
                    |key, s| Ok(s.compile_or_keep(&backends, key)),
                )
            };
            match tokio::task::spawn_blocking(load).await {
                Ok(m) => m,
                Err(e) => return ApplyResult::Err(format!("ERR model loading failed: {e}")),
            }
        } else {
            cmd.mutation(
                |_, _| Err(shardai_protocol::Error::Syntax),
                |_, _| Err(shardai_protocol::Error::Syntax),
            )
        };
        match m {
            Ok(m) => self.store.apply(m, at).into(),
            Err(e) => {
                error!(error = %e.wire_text(), "a committed entry cannot be applied on this node");
                ApplyResult::Err(e.wire_text())
            }
        }
    }
}

/// Builds a snapshot from a copy of the keyspace's handles taken between two applies.
#[derive(Debug)]
pub struct Builder {
    meta: Meta,
    entries: Option<Vec<shardai_engine::store::KeyRecord>>,
    dir: PathBuf,
    current: Arc<Mutex<Current>>,
    stats: Arc<crate::stats::GroupStats>,
}

impl RaftSnapshotBuilder<C> for Builder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, SnapshotFile>, io::Error> {
        let meta = self.meta.clone();
        let entries = self.entries.take().unwrap_or_default();
        let path = self.dir.join(snap_name(&meta));
        let (p, m) = (path.clone(), meta.clone());
        let keys = entries.len();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || snapshot::write(&p, &m, entries))
            .await
            .map_err(io::Error::other)??;
        let took = started.elapsed();
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        self.stats.snapshot_built(bytes, took);
        info!(
            index = ?meta.last_log_id.as_ref().map(|l| l.index),
            keys,
            bytes,
            ms = took.as_millis() as u64,
            file = %path.display(),
            "snapshot built"
        );
        self.current.lock().replace(meta.clone(), path.clone());
        Ok(openraft::storage::Snapshot {
            meta,
            snapshot: SnapshotFile { path },
        })
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembershipOf<C>), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + Send,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let resp = match entry.payload {
                EntryPayload::Blank => ApplyResult::Ok,
                EntryPayload::Normal(cmd) => self.apply_cmd(cmd).await,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    ApplyResult::Ok
                }
            };
            self.last_applied = Some(entry.log_id);
            self.applied_index
                .store(entry.log_id.index, std::sync::atomic::Ordering::Release);
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        Builder {
            meta: Meta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
            },
            entries: Some(self.store.dump()),
            dir: self.dir.clone(),
            current: self.current.clone(),
            stats: self.stats.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let path = self.dir.join(snap_name(meta));
        // Read (and so validate) the received file under its temporary name first: only a
        // snapshot that reads whole gets the name a restart takes as the newest snapshot.
        let (p, backends) = (snapshot.path.clone(), self.backends.clone());
        let (_, entries) = tokio::task::spawn_blocking(move || snapshot::read(&p, &backends))
            .await
            .map_err(io::Error::other)?
            .and_then(|(m, entries)| {
                if m.last_log_id == meta.last_log_id {
                    Ok((m, entries))
                } else {
                    Err(io::Error::other(format!(
                        "the file holds the snapshot at {:?}, not the one at {:?}",
                        m.last_log_id, meta.last_log_id
                    )))
                }
            })
            .inspect_err(|e| {
                error!(file = %snapshot.path.display(), error = %e, "received snapshot refused");
            })?;
        if snapshot.path != path {
            fs::rename(&snapshot.path, &path)?;
            crate::log_store::sync_dir(&self.dir)?;
        }
        let keys = entries.len();
        self.store.replace_all(entries);
        self.last_applied = meta.last_log_id;
        self.applied_index.store(
            meta.last_log_id.map_or(0, |l| l.index),
            std::sync::atomic::Ordering::Release,
        );
        self.membership = meta.last_membership.clone();
        info!(
            index = ?meta.last_log_id.as_ref().map(|l| l.index),
            keys,
            "snapshot installed"
        );
        self.current.lock().replace(meta.clone(), path);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<C, SnapshotFile>>, io::Error> {
        Ok(self
            .current
            .lock()
            .snap
            .clone()
            .map(|(meta, path)| openraft::storage::Snapshot {
                meta,
                snapshot: SnapshotFile { path },
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_snapshot_that_does_not_read_is_not_installed_or_kept() {
        let d = tempfile::tempdir().unwrap();
        let open = || {
            StateMachine::open(
                d.path(),
                Arc::new(Store::new()),
                Arc::new(Backends::new(None)),
                1,
                Arc::default(),
            )
            .unwrap()
        };
        let mut sm = open();
        let received = d.path().join("recv-1-1.tmp");
        fs::write(&received, b"not a snapshot").unwrap();
        let meta = Meta {
            last_log_id: Some(openraft::testing::log_id::<C>(2, 1, 40)),
            last_membership: StoredMembership::default(),
        };
        let err = sm
            .install_snapshot(
                &meta,
                SnapshotFile {
                    path: received.clone(),
                },
            )
            .await;
        assert!(err.is_err());
        assert_eq!(sm.last_applied, None);
        assert!(sm.get_current_snapshot().await.unwrap().is_none());
        // Nothing under a snapshot's name: a restart starts without it.
        assert!(!d.path().join(snap_name(&meta)).exists());
        drop(sm);
        let mut again = open();
        assert!(again.get_current_snapshot().await.unwrap().is_none());
    }
}
