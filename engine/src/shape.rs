//! A tensor's dimensions: packed into the tensor's header when there are few and small
//! ones, and [`Dims`], the form in which a tensor lends them.
//!
//! Most stored tensors have one to three dimensions, each far below 2³². Those are kept as
//! 32-bit numbers beside the dtype, 16 bytes in all, so that a small tensor's header, count
//! and bytes share one heap chunk (see `tensor.rs`). Other shapes are kept on the heap at
//! their full width.

use std::{fmt, ops::Deref};

/// Dimensions kept packed.
pub(crate) const PACKED: usize = 3;

/// `dims` packed into 32-bit numbers, when there are at most [`PACKED`] of them and each
/// fits.
pub(crate) fn pack(dims: &[usize]) -> Option<(u8, [u32; PACKED])> {
    if dims.len() > PACKED {
        return None;
    }
    let mut out = [0u32; PACKED];
    for (o, &d) in out.iter_mut().zip(dims) {
        *o = u32::try_from(d).ok()?;
    }
    Some((dims.len() as u8, out))
}

/// A tensor's dimensions, as it lends them (read through `Deref` to `[usize]`).
#[derive(Clone, Copy)]
pub struct Dims<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    /// Up to [`PACKED`] dimensions.
    Inline {
        /// How many of `dims` there are (at most [`PACKED`]).
        len: u8,
        /// The dimensions, then zeros.
        dims: [usize; PACKED],
    },
    /// Dimensions kept on the heap.
    Slice(&'a [usize]),
}

impl Dims<'_> {
    /// The dimensions packed by [`pack`].
    pub(crate) fn unpack(len: u8, packed: [u32; PACKED]) -> Dims<'static> {
        debug_assert!(len as usize <= PACKED);
        Dims(Repr::Inline {
            len,
            dims: packed.map(|d| d as usize),
        })
    }
}

impl<'a> From<&'a [usize]> for Dims<'a> {
    fn from(dims: &'a [usize]) -> Dims<'a> {
        Dims(Repr::Slice(dims))
    }
}

impl Deref for Dims<'_> {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        match &self.0 {
            Repr::Inline { len, dims } => &dims[..*len as usize],
            Repr::Slice(s) => s,
        }
    }
}

impl PartialEq for Dims<'_> {
    fn eq(&self, other: &Dims<'_>) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self[..].fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_small_dimensions_pack_and_read_back_as_given() {
        for rank in 0..=PACKED {
            let dims: Vec<usize> = (1..=rank).map(|d| d * 10 + 1).collect();
            let (len, packed) = pack(&dims).unwrap();
            assert_eq!(&Dims::unpack(len, packed)[..], &dims[..]);
            assert_eq!(
                format!("{:?}", Dims::unpack(len, packed)),
                format!("{dims:?}")
            );
        }
        assert_eq!(
            &Dims::unpack(1, pack(&[u32::MAX as usize]).unwrap().1)[..1],
            &[u32::MAX as usize]
        );
    }

    #[test]
    fn many_or_large_dimensions_do_not_pack() {
        assert!(pack(&[1, 2, 3, 4]).is_none());
        assert!(pack(&[1, u32::MAX as usize + 1]).is_none());
        let d = [1usize, 2, 3, 4];
        assert_eq!(&Dims::from(&d[..])[..], &d[..]);
        assert_ne!(Dims::from(&d[..2]), Dims::unpack(3, [1, 2, 0]));
    }
}
