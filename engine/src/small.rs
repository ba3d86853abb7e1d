//! Copies of small buffers that the keyspace keeps: hash fields and values and list items
//! (and, through [`compact`], tensor data too large to sit in the tensor's allocation).
//!
//! A copy made with `Bytes::copy_from_slice` is one allocation until its first clone (the
//! log record, a snapshot or a reply takes one), which adds a second, shared header of its
//! own: a 64-byte blob then costs heap chunks of 80 + 32 bytes. [`copy`] puts the reference
//! count and the bytes in one allocation, rounded up to a multiple of 16 bytes, so that
//! clones are a counter increment and the value costs one chunk (80 bytes for a 64-byte
//! blob). Buffers longer than [`INLINE_MAX`] are copied as before: one header more is small
//! beside them.

use bytes::Bytes;

use crate::tensor::COMPACT_BELOW;

/// The longest buffer [`copy`] keeps with its reference count in one allocation.
pub const INLINE_MAX: usize = 256;

/// `b` as the keyspace keeps it: a copy below [`COMPACT_BELOW`], so that a small buffer
/// does not keep a large socket read buffer alive; a larger one as it is (it arrived in a
/// buffer of its own).
pub fn compact(b: Bytes) -> Bytes {
    if b.len() < COMPACT_BELOW { copy(&b) } else { b }
}

/// A copy of `b` in a buffer of its own (see the module's text).
pub fn copy(b: &[u8]) -> Bytes {
    fn inline<const N: usize>(b: &[u8]) -> Bytes {
        let mut buf = [0u8; N];
        buf[..b.len()].copy_from_slice(b);
        Bytes::from_owner(buf).slice(..b.len())
    }
    match b.len().div_ceil(16) {
        0 => Bytes::new(),
        1 => inline::<16>(b),
        2 => inline::<32>(b),
        3 => inline::<48>(b),
        4 => inline::<64>(b),
        5 => inline::<80>(b),
        6 => inline::<96>(b),
        7 => inline::<112>(b),
        8 => inline::<128>(b),
        9 => inline::<144>(b),
        10 => inline::<160>(b),
        11 => inline::<176>(b),
        12 => inline::<192>(b),
        13 => inline::<208>(b),
        14 => inline::<224>(b),
        15 => inline::<240>(b),
        16 => inline::<256>(b),
        _ => Bytes::copy_from_slice(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_hold_the_bytes_at_every_size_and_survive_their_clones() {
        for len in 0..=INLINE_MAX + 40 {
            let src: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let b = copy(&src);
            assert_eq!(&b[..], &src[..], "len {len}");
            let c = b.clone();
            drop(b);
            assert_eq!(&c[..], &src[..], "clone, len {len}");
            assert_eq!(c.slice(len / 2..), src[len / 2..], "slice, len {len}");
            assert_eq!(Vec::from(c), src, "into a vector, len {len}");
        }
    }

    #[test]
    fn compaction_copies_below_its_size_and_keeps_larger_buffers() {
        let buf = Bytes::from(vec![1u8; COMPACT_BELOW + 10]);
        let small = compact(buf.slice(0..100));
        assert_ne!(small.as_ptr(), buf.as_ptr());
        assert_eq!(small, buf.slice(0..100));
        let big = compact(buf.slice(0..COMPACT_BELOW));
        assert_eq!(big.as_ptr(), buf.as_ptr());
    }

    #[test]
    fn a_copy_does_not_share_the_source_buffer() {
        let big = Bytes::from(vec![5u8; 4096]);
        let b = copy(&big[10..20]);
        assert_ne!(b.as_ptr(), big[10..20].as_ptr());
        drop(big);
        assert_eq!(&b[..], &[5u8; 10]);
    }
}
