//! AI.INFO run statistics: [`RunStats`], held by each stored model and script, on this node
//! only (every replica counts its own runs).
//!
//! As in RedisAI, a model's or script's statistics are created, zeroed, when it is stored
//! (and when a replica applies or loads it); storing over the key, DEL, FLUSHALL and
//! AI.MODELDEL / AI.SCRIPTDEL drop them with the value they belong to.

use std::sync::atomic::{AtomicU64, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = RunStats::default();
        s.record(120, 4);
        s.record(80, 1);
        s.record_error();
        assert_eq!(
            s.snapshot(),
            StatsSnapshot {
                duration_us: 200,
                samples: 5,
                calls: 3,
                errors: 1
            }
        );
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
