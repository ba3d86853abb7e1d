//! `Key`: a key as the keyspace's maps hold it.
//!
//! Keys of up to [`INLINE_MAX`] bytes (most keys: `user:1000`, `tensor:17:out`) are kept
//! inside the map's entry, so they cost no allocation; a longer one is a copy behind one
//! pointer (a [`Str`]: its reference count, length and bytes in one allocation). A `Key` is
//! 24 bytes, three words: an entry of a stripe's map is 48 bytes with its value and
//! deadline.

use std::{
    borrow::Borrow,
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
};

use bytes::Bytes;

use crate::string::Str;

/// The longest key kept inline.
pub const INLINE_MAX: usize = 22;

/// A stored key.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `buf`.
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    /// A longer key.
    Heap(Str),
}

const _: () = assert!(std::mem::size_of::<Key>() == 24);

impl Key {
    /// A key of a copy of `k`.
    pub fn copy(k: &[u8]) -> Key {
        if k.len() <= INLINE_MAX {
            let mut buf = [0; INLINE_MAX];
            buf[..k.len()].copy_from_slice(k);
            Key(Repr::Inline {
                len: k.len() as u8,
                buf,
            })
        } else {
            Key(Repr::Heap(Str::new(k)))
        }
    }

    /// The key as a `Bytes` (a copy for an inline key, sharing the bytes otherwise).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self),
            Repr::Heap(s) => s.to_bytes(),
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Heap(b) => b,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Hashes and compares as its bytes, as `Borrow<[u8]>` requires.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self[..].hash(state)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Key {}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

impl From<Key> for Bytes {
    fn from(k: Key) -> Bytes {
        match k.0 {
            Repr::Heap(s) => s.into_bytes(),
            Repr::Inline { .. } => Bytes::copy_from_slice(&k),
        }
    }
}

impl From<Bytes> for Key {
    fn from(k: Bytes) -> Key {
        Key::copy(&k)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_of_every_length_read_back_and_are_found_by_their_bytes() {
        let mut map = HashMap::new();
        for len in 0..=INLINE_MAX + 10 {
            let k: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let key = Key::copy(&k);
            assert_eq!(&key[..], &k[..]);
            assert_eq!(matches!(key.0, Repr::Inline { .. }), len <= INLINE_MAX);
            assert_eq!(key.to_bytes(), k);
            assert_eq!(Key::copy(&k), key);
            map.insert(key, len);
        }
        for len in 0..=INLINE_MAX + 10 {
            let k: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(map.get(&k[..]), Some(&len));
        }
    }

    #[test]
    fn a_long_key_is_a_copy_that_its_replies_share() {
        let buf = Bytes::from(vec![b'x'; 4096]);
        for len in [INLINE_MAX + 1, 100, 4096] {
            let key = Key::copy(&buf[..len]);
            let Repr::Heap(s) = &key.0 else {
                panic!("a {len}-byte key is not inline");
            };
            assert_ne!(
                s.as_ptr(),
                buf.as_ptr(),
                "a key does not keep its request's buffer"
            );
            assert_eq!(key.to_bytes().as_ptr(), s.as_ptr());
            assert_eq!(Bytes::from(key.clone()).as_ptr(), s.as_ptr());
            assert_eq!(&key.clone()[..], &buf[..len]);
        }
    }
}
