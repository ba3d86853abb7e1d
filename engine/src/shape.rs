//! `Shape`: a tensor's dimensions, kept inside the tensor when there are few of them.
//!
//! Most stored tensors have one to three dimensions. Keeping those inline spares each tensor
//! a heap allocation of its own (a 32-byte heap chunk at least, 48 for a vector grown while
//! parsing) without making the tensor larger than its heap chunk already is; more
//! dimensions go to a boxed slice of exactly their length.

use std::{fmt, ops::Deref};

/// Dimensions kept inline.
const INLINE: usize = 3;

/// A tensor's dimensions.
#[derive(Clone)]
pub(crate) enum Shape {
    /// Up to [`INLINE`] dimensions, the first `len` of `dims`.
    Inline { len: u8, dims: [usize; INLINE] },
    /// More dimensions.
    Heap(Box<[usize]>),
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Shape {
        if v.len() <= INLINE {
            let mut dims = [0; INLINE];
            dims[..v.len()].copy_from_slice(&v);
            Shape::Inline {
                len: v.len() as u8,
                dims,
            }
        } else {
            Shape::Heap(v.into_boxed_slice())
        }
    }
}

impl Deref for Shape {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        match self {
            Shape::Inline { len, dims } => &dims[..*len as usize],
            Shape::Heap(b) => b,
        }
    }
}

impl PartialEq for Shape {
    fn eq(&self, other: &Shape) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self[..].fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_every_rank_read_back_as_given() {
        for rank in 0..=6 {
            let dims: Vec<usize> = (1..=rank).map(|d| d * 10 + 1).collect();
            let s = Shape::from(dims.clone());
            assert_eq!(&s[..], &dims[..]);
            assert_eq!(matches!(s, Shape::Inline { .. }), rank <= INLINE);
            assert_eq!(s.clone(), s);
            assert_eq!(format!("{s:?}"), format!("{dims:?}"));
        }
        assert_ne!(Shape::from(vec![1, 2]), Shape::from(vec![1, 2, 0]));
    }

    #[test]
    fn a_shape_is_no_larger_than_four_words() {
        assert_eq!(std::mem::size_of::<Shape>(), 32);
    }
}
