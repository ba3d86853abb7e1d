//! SAVE and BGSAVE: a snapshot of everything this replica has applied, asked for by a client
//! (Redis's RDB saves; here the snapshot that lets the log before it be cut).

use std::{sync::atomic::Ordering, time::Duration};

use openraft::async_runtime::WatchReceiver;
use shardai_protocol::Error;

use super::ShardGroup;

impl ShardGroup {
    /// The index this replica applied up to, and that of its newest snapshot.
    fn applied_and_snapshot(&self) -> (u64, u64) {
        let m = self.raft.metrics().borrow_watched().clone();
        (
            m.last_applied.map_or(0, |l| l.index),
            m.snapshot.map_or(0, |l| l.index),
        )
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

    /// Asks for a snapshot of everything applied so far; with `wait` (SAVE), returns once it
    /// is written, at most after `timeout`; without (BGSAVE), at once. Nothing to do when the
    /// newest snapshot already covers everything applied.
    pub async fn save(&self, wait: Option<Duration>) -> Result<(), Error> {
        let (target, snapshot) = self.applied_and_snapshot();
        if target <= snapshot {
            return Ok(());
        }
        self.save_target.fetch_max(target, Ordering::Relaxed);
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| Error::Verbatim(format!("ERR the snapshot could not be started: {e}")))?;
        let Some(timeout) = wait else {
            return Ok(());
        };
        self.raft
            .wait(Some(timeout))
            .metrics(
                move |m| m.snapshot.is_some_and(|l| l.index >= target),
                "snapshot for SAVE",
            )
            .await
            .map(|_| ())
            .map_err(|e| Error::Verbatim(format!("ERR the snapshot did not complete: {e}")))
    }
}
