//! How stale the READONLY follower reads were. They promise a value someone wrote, not the
//! latest one: a follower serves what it has applied. A follower read is stale when the
//! value it returned had already been overwritten by an acknowledged write that began after
//! that value's write had ended and ended before the read began (so every client could
//! know the newer value); its staleness is how long before the read began that first such
//! write ended (a lower bound on how far behind the follower was).

use std::collections::HashMap;

use crate::history::{Kind, Op, Outcome};

/// The follower reads of a run, and how stale the stale ones were.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Staleness {
    /// Follower reads that returned (a value, or no key).
    pub(crate) reads: usize,
    /// Each stale read's staleness, in microseconds.
    pub(crate) lags_us: Vec<u64>,
}

impl Staleness {
    /// Adds another run's reads.
    pub(crate) fn merge(&mut self, other: &Staleness) {
        self.reads += other.reads;
        self.lags_us.extend(&other.lags_us);
    }

    /// Share of reads that were stale, the largest staleness and the 99th percentile of
    /// the stale reads' staleness, in milliseconds.
    pub(crate) fn stats(&self) -> (f64, f64, f64) {
        let mut l = self.lags_us.clone();
        l.sort_unstable();
        let ms = |us: u64| us as f64 / 1e3;
        let p99 = l
            .get((l.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .map_or(0.0, ms);
        (
            l.len() as f64 / self.reads.max(1) as f64,
            l.last().copied().map_or(0.0, ms),
            p99,
        )
    }
}

/// The staleness of the follower reads in `ops`.
pub(crate) fn staleness(ops: &[Op]) -> Staleness {
    let mut writes: HashMap<&str, Vec<&Op>> = HashMap::new();
    for o in ops.iter().filter(|o| o.kind == Kind::Write) {
        writes.entry(&o.key).or_default().push(o);
    }
    let mut res = Staleness::default();
    for r in ops
        .iter()
        .filter(|o| o.follower && o.kind == Kind::Read && o.outcome == Outcome::Ok)
    {
        res.reads += 1;
        let ws = writes
            .get(&r.key[..])
            .map(Vec::as_slice)
            .unwrap_or_default();
        // When the value read was certainly written (no key: before every write).
        let since = match r.value {
            None => None,
            Some(v) => match ws
                .iter()
                .find(|w| w.value == Some(v) && w.outcome == Outcome::Ok)
            {
                Some(w) => Some(w.complete_us),
                // A value of a write of unknown outcome: when it took effect is unknown.
                None => continue,
            },
        };
        let overwritten = ws
            .iter()
            .filter(|w| w.outcome == Outcome::Ok)
            .filter(|w| since.is_none_or(|t| w.invoke_us > t) && w.complete_us < r.invoke_us)
            .map(|w| w.complete_us)
            .min();
        if let Some(t) = overwritten {
            res.lags_us.push(r.invoke_us - t);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, value: Option<i64>, at: (u64, u64), outcome: Outcome, follower: bool) -> Op {
        Op {
            follower,
            ..Op::test(kind, "k", value, at, outcome)
        }
    }

    #[test]
    fn reads_of_overwritten_values_are_stale_by_the_time_since_the_overwrite() {
        let w = |v, at| op(Kind::Write, Some(v), at, Outcome::Ok, false);
        let fr = |v, at| op(Kind::Read, v, at, Outcome::Ok, true);
        let ops = [
            w(1, (0, 10)),
            w(2, (20, 30)),
            // Up to date: 2 is the latest acknowledged value.
            fr(Some(2), (40, 41)),
            // 1 was overwritten by the write that ended at 30: stale by 70 µs.
            fr(Some(1), (100, 101)),
            // No key at 2000: stale since the first write ended (10): 1990 µs.
            fr(None, (2000, 2001)),
            // Concurrent with the overwrite: not stale.
            op(Kind::Write, Some(3), (200, 300), Outcome::Ok, false),
            fr(Some(2), (250, 260)),
            // A value of a write of unknown outcome: not judged.
            op(Kind::Write, Some(4), (400, 500), Outcome::Info, false),
            fr(Some(4), (600, 601)),
            // Failed reads and leader reads do not count.
            op(Kind::Read, Some(1), (700, 701), Outcome::Fail, true),
            op(Kind::Read, Some(1), (700, 701), Outcome::Ok, false),
        ];
        let s = staleness(&ops);
        assert_eq!(s.reads, 5);
        assert_eq!(s.lags_us, vec![70, 1990]);
        let (share, max, p99) = s.stats();
        assert!((share - 0.4).abs() < 1e-9);
        assert!((max - 1.99).abs() < 1e-9 && (p99 - 1.99).abs() < 1e-9);
    }
}
