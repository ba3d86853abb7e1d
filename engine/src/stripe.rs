//! `Stripe`: one lock stripe's map from key to [`Entry`], laid out for memory per key.
//!
//! The keys and entries sit side by side in one dense vector (48 bytes each); a hash table
//! of 4-byte positions into it finds them. A hash table of whole slots keeps its slots
//! between 44% and 87.5% full, so that a million keys in 1,024 stripes (977 each, just over
//! a 1,024-slot table's 896) paid for 2,048 slots of 48 bytes each: 103 bytes per key. Here
//! the empty slots are 4 bytes (and a control byte each), and the vector grows by half its
//! length rather than doubling: 977 keys take 1,021 places and 2,048 positions, 61 bytes
//! per key. A lookup reads the position and then the key, one memory access more.
//!
//! A removal moves the last entry into the hole (`swap_remove`) and rewrites its position;
//! iteration order is the vector's, so it changes as keys come and go (as a hash map's
//! does), and is stable while nothing is written.

use std::hash::BuildHasher;

use hashbrown::{HashTable, hash_table};

use crate::{key::Key, store::Entry};

/// Keys are client-chosen, so the positions are found by a seeded hash (foldhash: fast,
/// and randomly seeded per process against collision floods).
type Hasher = foldhash::fast::RandomState;

/// A key's map within one lock stripe (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    /// Positions in `entries`, found by the hash of the key's bytes.
    index: HashTable<u32>,
    entries: Vec<(Key, Entry)>,
    hasher: Hasher,
}

fn hash_of(hasher: &Hasher, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

impl Stripe {
    /// Number of keys held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash_of(&self.hasher, key), |&i| {
                entries[i as usize].0[..] == *key
            })
            .map(|&i| i as usize)
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The entry of `key`, to change in place.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    /// Stores `entry` under `key`; the entry it replaces, if any (the stored key is kept).
    pub(crate) fn insert(&mut self, key: Key, entry: Entry) -> Option<Entry> {
        let Stripe {
            index,
            entries,
            hasher,
        } = self;
        let found = index.entry(
            hash_of(hasher, &key),
            |&i| entries[i as usize].0 == key,
            |&i| hash_of(hasher, &entries[i as usize].0),
        );
        match found {
            hash_table::Entry::Occupied(o) => {
                Some(std::mem::replace(&mut entries[*o.get() as usize].1, entry))
            }
            hash_table::Entry::Vacant(v) => {
                let at = u32::try_from(entries.len()).expect("a stripe holds under 2^32 keys");
                if entries.len() == entries.capacity() {
                    // By half the length: see the module documentation.
                    entries.reserve_exact((entries.len() / 2).max(4));
                }
                entries.push((key, entry));
                v.insert(at);
                None
            }
        }
    }

    /// Removes `key`; its entry, if it was there.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let Stripe {
            index,
            entries,
            hasher,
        } = self;
        let found = index
            .find_entry(hash_of(hasher, key), |&i| entries[i as usize].0[..] == *key)
            .ok()?;
        let at = found.remove().0 as usize;
        Some(self.take_out(at))
    }

    /// Removes the entry at `at`.
    fn remove_at(&mut self, at: usize) -> Entry {
        let hash = hash_of(&self.hasher, &self.entries[at].0);
        self.index
            .find_entry(hash, |&i| i as usize == at)
            .expect("every entry has a position")
            .remove();
        self.take_out(at)
    }

    /// Takes out the entry at `at`, whose position is already gone: the last entry moves
    /// into its place, and its position is rewritten.
    fn take_out(&mut self, at: usize) -> Entry {
        let last = self.entries.len() - 1;
        if at != last {
            let hash = hash_of(&self.hasher, &self.entries[last].0);
            *self
                .index
                .find_mut(hash, |&i| i as usize == last)
                .expect("every entry has a position") = at as u32;
        }
        self.entries.swap_remove(at).1
    }

    /// Every key and its entry.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.entries.iter().map(|(k, e)| (k, e))
    }

    /// Keeps the entries for which `keep` is true, each asked once. The work beyond the
    /// walk is in proportion to the entries removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Key, &mut Entry) -> bool) {
        let mut i = 0;
        while i < self.entries.len() {
            let (k, e) = &mut self.entries[i];
            if keep(k, e) {
                i += 1;
            } else {
                // The entry moved into `i` from the end has not been asked yet.
                self.remove_at(i);
            }
        }
    }

    /// Takes every entry out, leaving the stripe empty with its memory returned.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Key, Entry)> {
        self.index = HashTable::new();
        std::mem::take(&mut self.entries).into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{expiry::Expiry, store::Value, string::Str};

    fn entry(n: u64) -> Entry {
        Entry {
            value: Value::Str(Str::new(&n.to_le_bytes())),
            expire_at: Expiry::NONE,
        }
    }

    fn number(e: &Entry) -> u64 {
        match &e.value {
            Value::Str(s) => u64::from_le_bytes(s[..].try_into().unwrap()),
            v => panic!("{v:?}"),
        }
    }

    fn key(n: u64) -> Key {
        Key::copy(format!("key:{n}").as_bytes())
    }

    /// The stripe against a std `HashMap` over a mixed run of inserts, replacements,
    /// removals (of the last entry, of others, of missing keys) and retains.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut s = Stripe::default();
        let mut m: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 600;
            match x % 10 {
                0..=4 => {
                    let prev = s.insert(key(k), entry(step)).map(|e| number(&e));
                    assert_eq!(prev, m.insert(key(k).to_vec(), step));
                }
                5..=8 => {
                    let prev = s.remove(&key(k)).map(|e| number(&e));
                    assert_eq!(prev, m.remove(&key(k)[..]));
                }
                _ if step % 50 == 9 => {
                    let (before, mut asked) = (s.len(), 0);
                    s.retain(|_, e| {
                        asked += 1;
                        !number(e).is_multiple_of(3)
                    });
                    assert_eq!(asked, before, "each entry is asked once");
                    m.retain(|_, v| !v.is_multiple_of(3));
                }
                _ => {}
            }
            assert_eq!(s.len(), m.len());
            for probe in [k, (k + 1) % 600] {
                assert_eq!(
                    s.get(&key(probe)).map(number),
                    m.get(&key(probe)[..]).copied()
                );
            }
        }
        let mut seen: Vec<(Vec<u8>, u64)> =
            s.iter().map(|(k, e)| (k.to_vec(), number(e))).collect();
        let mut want: Vec<(Vec<u8>, u64)> = m.into_iter().collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn get_mut_changes_in_place_and_drain_empties() {
        let mut s = Stripe::default();
        for n in 0..100 {
            assert!(s.insert(key(n), entry(n)).is_none());
        }
        *s.get_mut(&key(7)).unwrap() = entry(700);
        assert_eq!(s.get(&key(7)).map(number), Some(700));
        assert!(s.get_mut(b"missing").is_none());
        let mut out: Vec<u64> = s.drain().map(|(_, e)| number(&e)).collect();
        out.sort();
        assert_eq!(out.len(), 100);
        assert_eq!(out[7..9], [8, 9]);
        assert_eq!(s.len(), 0);
        assert!(s.get(&key(1)).is_none());
        assert!(s.insert(key(1), entry(1)).is_none());
        assert_eq!(s.get(&key(1)).map(number), Some(1));
    }

    #[test]
    fn grows_by_half_its_length() {
        let mut s = Stripe::default();
        for n in 0..977 {
            s.insert(key(n), entry(n));
        }
        assert_eq!(s.entries.capacity(), 1021);
    }
}
