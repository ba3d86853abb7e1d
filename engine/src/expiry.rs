//! `Expiry`: a key's deadline, or none, in one word.
//!
//! Every entry of the keyspace's maps holds one; an `Option<u64>` takes two words.

/// A deadline in Unix ms, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiry(u64);

impl Expiry {
    /// No deadline. No client reaches it: a deadline is a Unix time in ms plus at most
    /// `i64::MAX` ms, far below `u64::MAX`.
    pub(crate) const NONE: Expiry = Expiry(u64::MAX);

    /// The deadline `at` (Unix ms).
    pub(crate) fn at(at: u64) -> Expiry {
        Expiry(at.min(u64::MAX - 1))
    }

    /// The deadline, if any.
    pub(crate) fn get(self) -> Option<u64> {
        (self != Expiry::NONE).then_some(self.0)
    }

    /// True while the key exists at `now_ms`: it has no deadline, or a later one.
    pub(crate) fn live(self, now_ms: u64) -> bool {
        self.0 > now_ms
    }
}

impl Default for Expiry {
    fn default() -> Expiry {
        Expiry::NONE
    }
}

impl From<Option<u64>> for Expiry {
    fn from(at: Option<u64>) -> Expiry {
        at.map_or(Expiry::NONE, Expiry::at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_read_back_and_none_never_expires() {
        for at in [0, 1, 1_700_000_000_000, i64::MAX as u64, u64::MAX - 1] {
            assert_eq!(Expiry::at(at).get(), Some(at));
            assert_eq!(Expiry::from(Some(at)), Expiry::at(at));
        }
        assert_eq!(Expiry::NONE.get(), None);
        assert_eq!(Expiry::from(None), Expiry::NONE);
        assert_eq!(Expiry::default(), Expiry::NONE);
        assert!(Expiry::NONE.live(u64::MAX - 1));
        // The one value that would read as none is kept as the last real deadline.
        assert_eq!(Expiry::at(u64::MAX).get(), Some(u64::MAX - 1));
    }

    #[test]
    fn a_key_lives_until_its_deadline() {
        let e = Expiry::at(1_000);
        assert!(e.live(999));
        assert!(!e.live(1_000));
        assert!(!e.live(1_001));
    }
}
