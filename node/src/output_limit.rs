//! How long and how much a client may leave unread: Redis's `client-output-buffer-limit` for
//! normal clients (a hard limit in bytes; a soft limit in bytes that may be exceeded for a
//! number of seconds) and a write timeout (no byte of a reply read for that long). A
//! connection builds at most one batch of replies before it stops reading requests and
//! writes them, so unread replies never pile up without bound; these limits decide when a
//! client that does not read is closed, so that its memory and its connection slot return.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// The longest a client may stay above the soft limit (a year).
pub const MAX_SOFT_SECS: u64 = 365 * 24 * 3600;

/// Redis's `client-output-buffer-limit` for the `normal` class (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputLimit {
    /// Pending reply bytes that close the client at once.
    pub hard: usize,
    /// Pending reply bytes that close the client after `soft_secs` above them.
    pub soft: usize,
    /// Seconds a client may stay above `soft`.
    pub soft_secs: u64,
}

impl OutputLimit {
    /// Parses Redis's form, `<class> <hard> <soft> <soft-seconds>`, one or more groups
    /// (sizes may have units, `32mb`); one group may leave the class out. Only the `normal`
    /// class has clients here: `replica`/`slave`/`pubsub` groups are checked and ignored,
    /// so redis.conf lines work. Without a `normal` group the limit is none.
    pub fn parse(s: &str) -> Result<OutputLimit, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        if words.len() == 3 {
            return Self::values(&words);
        }
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("expected '<class> <hard> <soft> <soft-seconds>' groups".into());
        }
        let mut normal = OutputLimit::default();
        for group in words.chunks(4) {
            let limit = Self::values(&group[1..])?;
            match group[0].to_ascii_lowercase().as_str() {
                "normal" => normal = limit,
                "replica" | "slave" | "pubsub" => {}
                class => return Err(format!("invalid client class '{class}'")),
            }
        }
        Ok(normal)
    }

    /// `<hard> <soft> <soft-seconds>`.
    fn values(v: &[&str]) -> Result<OutputLimit, String> {
        let [hard, soft, secs] = v else {
            return Err("expected '<hard> <soft> <soft-seconds>'".into());
        };
        Ok(OutputLimit {
            hard: crate::config::parse_size(hard)?,
            soft: crate::config::parse_size(soft)?,
            soft_secs: secs
                .parse()
                .ok()
                .filter(|s| *s <= MAX_SOFT_SECS)
                .ok_or_else(|| format!("invalid seconds '{secs}' (0 to {MAX_SOFT_SECS})"))?,
        })
    }

    /// As CONFIG GET shows it.
    pub fn to_redis(self) -> String {
        format!("normal {} {} {}", self.hard, self.soft, self.soft_secs)
    }

    /// Whether replies of `pending` bytes may be queued for writing at all.
    pub fn over_hard(self, pending: usize) -> bool {
        self.hard > 0 && pending > self.hard
    }

    /// When a client with `pending` unread bytes since `since` must have read them, if the
    /// soft limit applies.
    pub fn soft_deadline(self, pending: usize, since: Instant) -> Option<Instant> {
        (self.soft > 0 && pending > self.soft).then(|| since + Duration::from_secs(self.soft_secs))
    }
}

/// The limit as every connection reads it on each flush: plain atomics, no lock on that
/// path (a reader may see a CONFIG SET half applied for one flush).
#[derive(Debug, Default)]
pub struct SharedLimit {
    hard: AtomicUsize,
    soft: AtomicUsize,
    soft_secs: AtomicU64,
}

impl SharedLimit {
    /// Holding `l`.
    pub fn new(l: OutputLimit) -> SharedLimit {
        let s = SharedLimit::default();
        s.set(l);
        s
    }

    /// The current limit.
    pub fn get(&self) -> OutputLimit {
        OutputLimit {
            hard: self.hard.load(Ordering::Relaxed),
            soft: self.soft.load(Ordering::Relaxed),
            soft_secs: self.soft_secs.load(Ordering::Relaxed),
        }
    }

    /// Replaces the limit.
    pub fn set(&self, l: OutputLimit) {
        self.hard.store(l.hard, Ordering::Relaxed);
        self.soft.store(l.soft, Ordering::Relaxed);
        self.soft_secs.store(l.soft_secs, Ordering::Relaxed);
    }
}

/// How long one write may wait for the client to read: until the earlier of the soft
/// limit's deadline and `write_timeout` from `now` (zero: no timeout), or `None` for no limit.
pub fn write_wait(
    now: Instant,
    soft_deadline: Option<Instant>,
    write_timeout: Duration,
) -> Option<Duration> {
    let by_timeout = (!write_timeout.is_zero()).then_some(write_timeout);
    let by_soft = soft_deadline.map(|d| d.saturating_duration_since(now));
    match (by_timeout, by_soft) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_forms_parse() {
        let l = OutputLimit::parse("normal 32mb 8mb 60").unwrap();
        assert_eq!((l.hard, l.soft, l.soft_secs), (32 << 20, 8 << 20, 60));
        assert_eq!(OutputLimit::parse("0 0 0").unwrap(), OutputLimit::default());
        assert_eq!(
            OutputLimit::parse("NORMAL 1024 0 0").unwrap().to_redis(),
            "normal 1024 0 0"
        );
        // redis.conf's other classes are accepted and have no clients here.
        assert_eq!(
            OutputLimit::parse("replica 256mb 64mb 60").unwrap(),
            OutputLimit::default()
        );
        let all = OutputLimit::parse("normal 1mb 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60");
        assert_eq!(all.unwrap().hard, 1 << 20);
        assert_eq!(OutputLimit::parse("32mb 8mb 60").unwrap().soft, 8 << 20);
        assert!(
            OutputLimit::parse("bogus 1 2 3")
                .unwrap_err()
                .contains("client class")
        );
        assert!(OutputLimit::parse("normal 0 1 18446744073709551615").is_err());
        assert!(OutputLimit::parse("normal 1 2").is_err());
        assert!(OutputLimit::parse("normal lots 0 0").is_err());
        assert!(OutputLimit::parse("normal 0 0 soon").is_err());
    }

    #[test]
    fn the_shared_limit_reads_what_was_set() {
        let l = OutputLimit::parse("normal 100 10 5").unwrap();
        let s = SharedLimit::new(OutputLimit::default());
        assert_eq!(s.get(), OutputLimit::default());
        s.set(l);
        assert_eq!(s.get(), l);
    }

    #[test]
    fn hard_and_soft_limits() {
        let l = OutputLimit::parse("normal 100 10 5").unwrap();
        assert!(!l.over_hard(100) && l.over_hard(101));
        assert!(!OutputLimit::default().over_hard(usize::MAX));
        let t = Instant::now();
        assert_eq!(l.soft_deadline(10, t), None);
        assert_eq!(l.soft_deadline(11, t), Some(t + Duration::from_secs(5)));
        assert_eq!(OutputLimit::default().soft_deadline(usize::MAX, t), None);
    }

    #[test]
    fn a_write_waits_for_the_nearer_limit() {
        let t = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(write_wait(t, None, Duration::ZERO), None);
        assert_eq!(write_wait(t, None, s(60)), Some(s(60)));
        assert_eq!(write_wait(t, Some(t + s(5)), s(60)), Some(s(5)));
        assert_eq!(write_wait(t, Some(t + s(90)), s(60)), Some(s(60)));
        assert_eq!(
            write_wait(t + s(9), Some(t + s(5)), Duration::ZERO),
            Some(Duration::ZERO)
        );
    }
}
