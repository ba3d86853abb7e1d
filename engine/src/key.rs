//! `Key`: a key as the keyspace's maps hold it.
//!
//! Keys of up to [`INLINE_MAX`] bytes (most keys: `user:1000`, `tensor:17:out`) are kept
//! inside the map's slot, so they cost no allocation; longer ones are a shared handle. A
//! `Key` is as large as the `Bytes` handle a slot held before, so an inline key saves its
//! whole heap chunk (32 bytes) and a slot stays the same size.

use std::{
    borrow::Borrow,
    fmt,
    hash::{Hash, Hasher},
    ops::Deref,
};

use bytes::Bytes;

use crate::small;

/// The longest key kept inline.
pub const INLINE_MAX: usize = 23;

/// A stored key.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `buf`.
    Inline { len: u8, buf: [u8; INLINE_MAX] },
    /// A longer key.
    Heap(Bytes),
}

const _: () = assert!(std::mem::size_of::<Key>() == std::mem::size_of::<Bytes>());

impl Key {
    /// A key of `k`'s bytes. A short key is copied inline; a longer one is kept as
    /// [`small::compact`] keeps a value (copied out of a socket read buffer when small).
    pub fn new(k: Bytes) -> Key {
        if k.len() <= INLINE_MAX {
            Key::copy(&k)
        } else {
            Key(Repr::Heap(small::compact(k)))
        }
    }

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
            Key(Repr::Heap(small::copy(k)))
        }
    }

    /// The key as a `Bytes` (a copy for an inline key, a handle otherwise).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { .. } => Bytes::copy_from_slice(self),
            Repr::Heap(b) => b.clone(),
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
        k.to_bytes()
    }
}

impl From<Bytes> for Key {
    fn from(k: Bytes) -> Key {
        Key::new(k)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::tensor::COMPACT_BELOW;

    #[test]
    fn keys_of_every_length_read_back_and_are_found_by_their_bytes() {
        let mut map = HashMap::new();
        for len in 0..=INLINE_MAX + 10 {
            let k: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let key = Key::new(Bytes::from(k.clone()));
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
    fn a_long_key_is_copied_out_of_its_buffer_below_the_compaction_size() {
        let buf = Bytes::from(vec![b'x'; 4096]);
        let Repr::Heap(b) = Key::new(buf.slice(0..100)).0 else {
            panic!("a 100-byte key is not inline");
        };
        assert_ne!(b.as_ptr(), buf.as_ptr());
        let big = Bytes::from(vec![b'y'; COMPACT_BELOW]);
        let Repr::Heap(b) = Key::new(big.clone()).0 else {
            panic!("a large key is not inline");
        };
        assert_eq!(b.as_ptr(), big.as_ptr());
    }
}
