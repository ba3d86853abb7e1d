//! SAVE and BGSAVE: a snapshot of everything this replica has applied, asked for by a client
//! (Redis's RDB saves; here the snapshot that lets the log before it be cut).
//!
//! openraft ignores a request for a snapshot while it builds one, so the request is repeated
//! until a snapshot covers what was applied when it was asked for.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use openraft::async_runtime::WatchReceiver;
use shardai_protocol::Error;
use tracing::warn;

use super::ShardGroup;

/// How long a save may take before it counts as failed.
const SAVE_LIMIT: Duration = Duration::from_secs(600);
/// How long to wait for a build before asking again.
const ASK_EVERY: Duration = Duration::from_millis(500);

impl ShardGroup {
    /// The index this replica applied up to, and that of its newest snapshot. The applied
    /// index is the state machine's own: openraft's metrics learn it a moment after the
    /// entry's client was answered, and a SAVE right after a write must cover that write.
    fn applied_and_snapshot(&self) -> (u64, u64) {
        let m = self.raft.metrics().borrow_watched().clone();
        let applied = m
            .last_applied
            .map_or(0, |l| l.index)
            .max(self.applied_index.load(Ordering::Acquire));
        (applied, m.snapshot.map_or(0, |l| l.index))
    }

    /// Entries applied since the newest snapshot (INFO's `rdb_changes_since_last_save`).
    pub fn changes_since_snapshot(&self) -> u64 {
        let (applied, snapshot) = self.applied_and_snapshot();
        applied.saturating_sub(snapshot)
    }

    /// True while a snapshot a SAVE or BGSAVE asked for is not written yet.
    pub fn saving(&self) -> bool {
        self.applied_and_snapshot().1 < self.save_target.load(Ordering::Relaxed)
    }

    /// When the newest snapshot was written (LASTSAVE), if one was.
    pub fn last_save(&self) -> Option<std::time::SystemTime> {
        self.current.written_at()
    }

    /// False when the last SAVE or BGSAVE did not complete (INFO's `rdb_last_bgsave_status`).
    pub fn last_save_ok(&self) -> bool {
        !self.save_failed.load(Ordering::Relaxed)
    }

    /// Takes a snapshot of everything applied so far: with `wait` (SAVE), returns once it is
    /// written; without (BGSAVE), at once, the snapshot being built in the background.
    pub async fn save(self: &Arc<Self>, wait: bool) -> Result<(), Error> {
        let (target, snapshot) = self.applied_and_snapshot();
        if target <= snapshot {
            return Ok(());
        }
        self.save_target.fetch_max(target, Ordering::Relaxed);
        let me = self.clone();
        let task = tokio::spawn(async move { me.save_until(target).await });
        if !wait {
            return Ok(());
        }
        task.await
            .unwrap_or_else(|e| Err(Error::Verbatim(format!("ERR the snapshot failed: {e}"))))
    }

    /// Asks for snapshots until one covers index `target`.
    async fn save_until(&self, target: u64) -> Result<(), Error> {
        let started = Instant::now();
        let covered = move |m: &openraft::RaftMetrics<crate::types::TypeConfig>| {
            m.snapshot.is_some_and(|l| l.index >= target)
        };
        while started.elapsed() < SAVE_LIMIT {
            if self.raft.trigger().snapshot().await.is_err() {
                break;
            }
            let waited = self
                .raft
                .wait(Some(ASK_EVERY))
                .metrics(covered, "snapshot")
                .await;
            if waited.is_ok() {
                self.save_failed.store(false, Ordering::Relaxed);
                return Ok(());
            }
        }
        warn!(
            target,
            "a snapshot asked for by SAVE or BGSAVE did not complete"
        );
        self.save_failed.store(true, Ordering::Relaxed);
        // Not saving any more: INFO shows the failure instead.
        let _ = self
            .save_target
            .compare_exchange(target, 0, Ordering::Relaxed, Ordering::Relaxed);
        Err(Error::Verbatim(
            "ERR the snapshot did not complete (see the server log)".into(),
        ))
    }
}
