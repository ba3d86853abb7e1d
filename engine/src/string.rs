//! `Str`: a Redis string value as the keyspace holds it.
//!
//! One allocation holds the reference count, the length and the bytes (`triomphe::ThinArc`),
//! behind an 8-byte pointer. With it every `Value` variant is one pointer, so a `Value` is 16
//! bytes instead of the 40 a 32-byte `Bytes` handle made it, and every entry of the keyspace's
//! maps 24 bytes smaller, whatever its value's type. The bytes are copied in once when the
//! value is stored; a reply takes them as a `Bytes` that shares the allocation (a 16-byte
//! allocation for the handle, no copy of the bytes).

use std::{fmt, ops::Deref};

use bytes::Bytes;
use triomphe::ThinArc;

/// A stored Redis string.
#[derive(Clone)]
pub struct Str(ThinArc<(), u8>);

const _: () = assert!(std::mem::size_of::<Str>() == 8);

impl Str {
    /// A string of a copy of `b`.
    pub fn new(b: &[u8]) -> Str {
        Str(ThinArc::from_header_and_slice((), b))
    }

    /// A zero-filled string of `len` bytes that `fill` writes, in its one allocation.
    pub fn build(len: usize, fill: impl FnOnce(&mut [u8])) -> Str {
        let mut arc = ThinArc::from_header_and_iter((), std::iter::repeat_n(0u8, len));
        arc.with_arc_mut(|a| {
            let new = triomphe::Arc::get_mut(a).expect("a new string has one handle");
            fill(new.slice_mut())
        });
        Str(arc)
    }

    /// The string as a `Bytes` sharing its allocation (no copy).
    pub fn to_bytes(&self) -> Bytes {
        self.clone().into_bytes()
    }

    /// The string as a `Bytes` that takes over this handle (no copy).
    pub fn into_bytes(self) -> Bytes {
        if self.is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(Owner(self))
    }
}

/// A `Str` as the owner of a `Bytes`.
struct Owner(Str);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for Str {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0.slice
    }
}

impl From<&[u8]> for Str {
    fn from(b: &[u8]) -> Str {
        Str::new(b)
    }
}

impl From<&str> for Str {
    fn from(s: &str) -> Str {
        Str::new(s.as_bytes())
    }
}

impl From<Bytes> for Str {
    fn from(b: Bytes) -> Str {
        Str::new(&b)
    }
}

impl From<&Bytes> for Str {
    fn from(b: &Bytes) -> Str {
        Str::new(b)
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq<[u8]> for Str {
    fn eq(&self, other: &[u8]) -> bool {
        self[..] == *other
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self[..] == *other.as_bytes()
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self[..] == *other.as_bytes()
    }
}

impl PartialEq<Bytes> for Str {
    fn eq(&self, other: &Bytes) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_string_holds_what_its_fill_wrote_and_zeros_elsewhere() {
        let s = Str::build(6, |b| b[3..5].copy_from_slice(b"ab"));
        assert_eq!(&s[..], b"\0\0\0ab\0");
        assert_eq!(&Str::build(0, |_| {})[..], b"");
    }

    #[test]
    fn strings_read_back_and_share_their_bytes_with_replies() {
        for len in [0, 1, 7, 8, 64, 1000, 70_000] {
            let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let s = Str::new(&src);
            assert_eq!(&s[..], &src[..]);
            let b = s.to_bytes();
            assert_eq!(b, src);
            if len > 0 {
                assert_eq!(b.as_ptr(), s.as_ptr(), "a reply shares the bytes");
            }
            let c = s.clone();
            drop(s);
            drop(b);
            assert_eq!(&c[..], &src[..]);
            assert_eq!(c, Str::from(Bytes::from(src.clone())));
        }
    }
}
