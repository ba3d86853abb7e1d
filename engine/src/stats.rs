//! AI.INFO run statistics: per key, on this node only (every replica counts its own runs).
//!
//! As in RedisAI, an entry is created when a model is stored, survives storing another
//! model under the same key, and is removed when the model is deleted.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use parking_lot::Mutex;

/// Counters of one model or script.
#[derive(Debug, Default)]
pub struct RunStats {
    duration_us: AtomicU64,
    samples: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot of [`RunStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// Total run time in microseconds.
    pub duration_us: u64,
    /// Total samples (batch sizes summed over calls).
    pub samples: u64,
    /// Runs.
    pub calls: u64,
    /// Runs that failed.
    pub errors: u64,
}

impl RunStats {
    /// Records one successful run.
    pub fn record(&self, duration_us: u64, samples: u64) {
        self.duration_us.fetch_add(duration_us, Ordering::Relaxed);
        self.samples.fetch_add(samples, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one failed run.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            duration_us: self.duration_us.load(Ordering::Relaxed),
            samples: self.samples.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// AI.INFO RESETSTAT.
    pub fn reset(&self) {
        for c in [&self.duration_us, &self.samples, &self.calls, &self.errors] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The statistics of every model and script on this node, by key.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    entries: Mutex<HashMap<Bytes, Arc<RunStats>>>,
}

impl StatsRegistry {
    /// The entry for `key`, created empty if missing (a model was stored).
    pub fn entry(&self, key: &Bytes) -> Arc<RunStats> {
        self.entries.lock().entry(key.clone()).or_default().clone()
    }

    /// The entry for `key`, if a model or script was stored there.
    pub fn get(&self, key: &[u8]) -> Option<Arc<RunStats>> {
        self.entries.lock().get(key).cloned()
    }

    /// Drops the entry (the model was deleted).
    pub fn remove(&self, key: &[u8]) {
        self.entries.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let r = StatsRegistry::default();
        let k = Bytes::from_static(b"m");
        assert!(r.get(b"m").is_none());
        let s = r.entry(&k);
        s.record(120, 4);
        s.record(80, 1);
        s.record_error();
        let again = r.entry(&k);
        assert_eq!(
            again.snapshot(),
            StatsSnapshot {
                duration_us: 200,
                samples: 5,
                calls: 3,
                errors: 1
            },
            "storing again keeps the counters"
        );
        again.reset();
        assert_eq!(r.get(b"m").unwrap().snapshot(), StatsSnapshot::default());
        r.remove(b"m");
        assert!(r.get(b"m").is_none());
    }
}
