//! What a Raft group measures about itself for the metrics endpoint: log append and fsync
//! latency, snapshots built, and leader changes seen. Recorded where the work happens (the
//! sync thread, the snapshot builder, a task following the group's metrics); read by the
//! node at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// One group's measurements.
#[derive(Debug)]
pub struct GroupStats {
    /// Seconds from a log append's start to its entries being durable (or, under a lazy
    /// `appendfsync`, written).
    pub append_seconds: Histogram,
    /// Seconds per fsync of a log file.
    pub fsync_seconds: Histogram,
    /// Snapshots built.
    pub snapshots: AtomicU64,
    /// The newest built snapshot's size, bytes.
    pub snapshot_bytes: AtomicU64,
    /// How long the newest snapshot took to write, microseconds.
    pub snapshot_micros: AtomicU64,
    /// Times the group's known leader changed to another node (not to none).
    pub leader_changes: AtomicU64,
}

impl Default for GroupStats {
    fn default() -> Self {
        GroupStats {
            // 10 µs to about 10 s.
            append_seconds: Histogram::new(exponential_buckets(10e-6, 2.0, 21)),
            fsync_seconds: Histogram::new(exponential_buckets(10e-6, 2.0, 21)),
            snapshots: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            snapshot_micros: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
        }
    }
}

impl GroupStats {
    /// Records a snapshot of `bytes` written in `took`.
    pub fn snapshot_built(&self, bytes: u64, took: std::time::Duration) {
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.snapshot_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Whether a move from leader `before` to `after` counts as a leader change: a new leader
/// known, other than the last one known (a spell with no leader between two terms of the
/// same node is no change).
pub fn is_leader_change(last_known: Option<u64>, after: Option<u64>) -> bool {
    matches!(after, Some(a) if last_known.is_some_and(|b| b != a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_changes_count_new_leaders_only() {
        assert!(!is_leader_change(None, Some(1)));
        assert!(!is_leader_change(Some(1), None));
        assert!(!is_leader_change(Some(1), Some(1)));
        assert!(is_leader_change(Some(1), Some(2)));
    }
}
