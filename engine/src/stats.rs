//! AI.INFO run statistics: [`RunStats`], held by each stored model and script, on this node
//! only (every replica counts its own runs).
//!
//! As in RedisAI, a model's or script's statistics are created, zeroed, when it is stored
//! (and when a replica applies or loads it); storing over the key, DEL, FLUSHALL and
//! AI.MODELDEL / AI.SCRIPTDEL drop them with the value they belong to.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Counters of one model or script, and the distributions the metrics endpoint shows (run
/// time, batch size, time waiting in the device queue), which AI.INFO RESETSTAT leaves as
/// they are (Prometheus histograms only grow).
#[derive(Debug)]
pub struct RunStats {
    duration_us: AtomicU64,
    samples: AtomicU64,
    calls: AtomicU64,
    errors: AtomicU64,
    /// Seconds per successful run (a batch counts once).
    pub run_seconds: Histogram,
    /// Samples per successful run: the batch a backend call ran on.
    pub batch_size: Histogram,
    /// Seconds each request waited in its device queue before its run started.
    pub queue_wait_seconds: Histogram,
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats {
            duration_us: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            // 50 µs to about 13 s.
            run_seconds: Histogram::new(exponential_buckets(50e-6, 2.0, 19)),
            // 1 to 4096.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 10 µs to about 10 s.
            queue_wait_seconds: Histogram::new(exponential_buckets(10e-6, 2.0, 21)),
        }
    }
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
        self.run_seconds.observe(duration_us as f64 / 1e6);
        self.batch_size.observe(samples as f64);
        self.duration_us.fetch_add(duration_us, Ordering::Relaxed);
        self.samples.fetch_add(samples, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one failed run.
    pub fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one request waited for its run to start.
    pub fn record_wait(&self, waited: Duration) {
        self.queue_wait_seconds.observe(waited.as_secs_f64());
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
