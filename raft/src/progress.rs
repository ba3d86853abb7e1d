//! Progress lines for long work (a snapshot sent, received or loaded): at most one a
//! second, with the bytes done, the total and the percentage when the total is known, and
//! the rate so far.

use std::time::{Duration, Instant};

use tracing::info;

/// How often a line is logged at most.
const EVERY: Duration = Duration::from_secs(1);

/// One piece of long work being logged.
#[derive(Debug)]
pub struct Progress {
    what: String,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Starts logging `what` (`total` bytes, when known).
    pub fn new(what: impl Into<String>, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            what: what.into(),
            total,
            started: now,
            last: now,
        }
    }

    /// Logs `done` bytes if a second has passed since the last line (or the start).
    pub fn at(&mut self, done: u64) {
        let now = Instant::now();
        if now.duration_since(self.last) < EVERY {
            return;
        }
        self.last = now;
        info!("{}", line(&self.what, done, self.total, now - self.started));
    }

    /// Whether the next [`Progress::at`] would log (so a caller can skip finding `done`).
    pub fn due(&self) -> bool {
        self.last.elapsed() >= EVERY
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `what: 12.0 of 48.0 MB (25%), 6.0 MB/s`, or without the total when it is unknown.
pub fn line(what: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = mb(done) / elapsed.as_secs_f64().max(1e-3);
    match total.filter(|t| *t > 0) {
        Some(t) => format!(
            "{what}: {:.1} of {:.1} MB ({}%), {rate:.1} MB/s",
            mb(done),
            mb(t),
            (done.min(t) * 100 / t)
        ),
        None => format!("{what}: {:.1} MB so far, {rate:.1} MB/s", mb(done)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_how_far_and_how_fast() {
        let s = Duration::from_secs(2);
        assert_eq!(
            line("sending snapshot", 12 << 20, Some(48 << 20), s),
            "sending snapshot: 12.0 of 48.0 MB (25%), 6.0 MB/s"
        );
        assert_eq!(
            line("receiving snapshot", 3 << 20, None, s),
            "receiving snapshot: 3.0 MB so far, 1.5 MB/s"
        );
    }

    #[test]
    fn at_most_one_line_a_second() {
        let mut p = Progress::new("x", None);
        assert!(!p.due());
        p.at(1);
        p.last -= EVERY;
        assert!(p.due());
    }
}
