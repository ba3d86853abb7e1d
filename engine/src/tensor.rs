//! `Tensor`: a dtype, a shape and contiguous little-endian bytes, behind one pointer.
//!
//! Building a tensor checks what RedisAI checks (BLOB length against shape and type, VALUES
//! against each dtype's range, BOOL elements 0 or 1, STRING elements without NUL), with
//! RedisAI's error texts.
//!
//! A tensor is a `triomphe::ThinArc`: one allocation holds the reference count, a 24-byte
//! header (dtype, up to three dimensions packed into 32 bits each, and a pointer to what
//! does not fit) and, for up to [`INLINE_MAX`] bytes, the bytes themselves. A 64-byte tensor
//! is one 112-byte heap chunk, where an `Arc<Tensor>` holding the dtype, the shape and a
//! `Bytes` took a 96-byte chunk and its bytes an 80-byte one. Larger bytes stay a
//! reference-counted `Bytes` beside the header: a BLOB that arrived from the socket is stored
//! as it is and written back to clients without being copied. A clone is a counter increment.

use std::fmt;

use bytes::Bytes;
use triomphe::ThinArc;

pub use crate::shape::Dims;
use crate::{
    shape::{self, PACKED},
    small,
};
use shardai_protocol::{DType, Error, command::TensorData, frame::parse_i64};

/// Blobs smaller than this are copied into a buffer of their own when stored, so that a
/// small tensor does not keep a whole socket read buffer alive (and the connection can
/// reuse that buffer). Larger ones arrive in a buffer of their own and are kept as they are.
pub const COMPACT_BELOW: usize = 64 * 1024;

/// The most bytes a tensor keeps in its own allocation.
pub const INLINE_MAX: usize = small::INLINE_MAX;

/// An immutable tensor; a clone shares it.
#[derive(Clone)]
pub struct Tensor(ThinArc<Head, u8>);

const _: () = assert!(std::mem::size_of::<Tensor>() == 8);

/// What a tensor's allocation holds before its bytes.
struct Head {
    dtype: DType,
    /// The number of dimensions in `dims`; [`SPILLED`] when they are in `more`.
    rank: u8,
    dims: [u32; PACKED],
    more: Option<Box<More>>,
}

// With the count and the slice's length, 40 bytes before the bytes: a 64-byte tensor asks
// the allocator for 104 bytes.
const _: () = assert!(std::mem::size_of::<Head>() == 24);

/// `Head::rank` of a shape kept in [`More::dims`].
const SPILLED: u8 = u8::MAX;

/// What does not fit a tensor's header.
#[derive(Default)]
struct More {
    /// The dimensions, when they do not pack.
    dims: Option<Box<[usize]>>,
    /// The bytes, when there are more than [`INLINE_MAX`] of them.
    blob: Option<Bytes>,
}

/// A tensor's elements, for replies.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// FLOAT and DOUBLE elements.
    Floats(Vec<f64>),
    /// Integer and BOOL elements.
    Ints(Vec<i64>),
    /// STRING elements, without their NUL terminators.
    Strings(Vec<Bytes>),
}

impl Tensor {
    /// A tensor of checked parts.
    fn new(dtype: DType, shape: &[usize], data: Data<'_>) -> Tensor {
        let mut more = More::default();
        let (rank, dims) = shape::pack(shape).unwrap_or_else(|| {
            more.dims = Some(shape.into());
            (SPILLED, [0; PACKED])
        });
        let bytes = data.bytes();
        if bytes.len() > INLINE_MAX {
            more.blob = Some(match &data {
                Data::Slice(b) => Bytes::copy_from_slice(b),
                Data::Received(b) => small::compact(b.clone()),
                Data::Own(b) => b.clone(),
            });
        }
        let inline = if more.blob.is_some() { &[][..] } else { bytes };
        let more = (more.dims.is_some() || more.blob.is_some()).then(|| Box::new(more));
        let head = Head {
            dtype,
            rank,
            dims,
            more,
        };
        Tensor(ThinArc::from_header_and_slice(head, inline))
    }

    /// The same tensor in an allocation made by the calling thread, when its bytes are
    /// inline (at most [`INLINE_MAX`]); a clone otherwise. The keyspace stores this copy of
    /// a tensor a connection's thread built: there it sits between the short-lived
    /// allocations of the requests around it, and when they are freed their holes stay
    /// beside it for as long as it is stored.
    pub fn relocated(&self) -> Tensor {
        match self.head().more.as_deref() {
            Some(More { blob: Some(_), .. }) => self.clone(),
            _ => Tensor::new(self.dtype(), &self.shape(), Data::Slice(self.data())),
        }
    }

    /// Whether `a` and `b` are handles to the same tensor (not only equal ones).
    pub fn ptr_eq(a: &Tensor, b: &Tensor) -> bool {
        std::ptr::eq(a.head(), b.head())
    }

    fn head(&self) -> &Head {
        &self.0.header.header
    }

    /// Builds a tensor from AI.TENSORSET's parsed data. `max_bytes` bounds zero-filled
    /// tensors, whose size no client payload limits.
    pub fn build(
        dtype: DType,
        shape: Vec<usize>,
        data: TensorData,
        max_bytes: usize,
    ) -> Result<Tensor, Error> {
        match data {
            TensorData::Zeros => Tensor::zeros(dtype, shape, max_bytes),
            TensorData::Blob(b) => Tensor::from_blob(dtype, shape, b),
            TensorData::Values(v) => Tensor::from_values(dtype, shape, &v),
        }
    }

    /// Number of elements (the product of the shape; 1 for a scalar).
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True when the tensor has no elements (never for a client's tensor, whose dimensions
    /// are at least 1; a backend's output may have a dimension of 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.head().dtype
    }

    /// The dimensions.
    pub fn shape(&self) -> Dims<'_> {
        let h = self.head();
        match h.more.as_deref() {
            Some(More { dims: Some(d), .. }) => Dims::from(&d[..]),
            _ => Dims::unpack(h.rank, h.dims),
        }
    }

    /// The raw bytes.
    pub fn data(&self) -> &[u8] {
        match self.head().more.as_deref() {
            Some(More { blob: Some(b), .. }) => b,
            _ => &self.0.slice,
        }
    }

    /// The raw bytes as a `Bytes` that shares them (no copy of the bytes; a small tensor's
    /// handle is one small allocation).
    pub fn blob(&self) -> Bytes {
        match self.head().more.as_deref() {
            Some(More { blob: Some(b), .. }) => b.clone(),
            _ if self.0.slice.is_empty() => Bytes::new(),
            _ => Bytes::from_owner(Owner(self.clone())),
        }
    }

    /// Bytes held by the tensor's data.
    pub fn byte_size(&self) -> usize {
        self.data().len()
    }

    fn element_count(shape: &[usize]) -> Result<usize, Error> {
        shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or(Error::TensorTooLarge)
    }

    /// A zero-filled tensor (empty strings for STRING).
    pub fn zeros(dtype: DType, shape: Vec<usize>, max_bytes: usize) -> Result<Tensor, Error> {
        let n = Tensor::element_count(&shape)?;
        let bytes = n
            .checked_mul(dtype.size().unwrap_or(1))
            .ok_or(Error::TensorTooLarge)?;
        if bytes > max_bytes {
            return Err(Error::TensorTooLarge);
        }
        if bytes <= INLINE_MAX {
            return Ok(Tensor::new(
                dtype,
                &shape,
                Data::Slice(&[0u8; INLINE_MAX][..bytes]),
            ));
        }
        Ok(Tensor::new(
            dtype,
            &shape,
            Data::Own(Bytes::from(vec![0u8; bytes])),
        ))
    }

    /// A tensor from a little-endian BLOB (NUL-terminated elements for STRING).
    pub fn from_blob(dtype: DType, shape: Vec<usize>, blob: Bytes) -> Result<Tensor, Error> {
        let n = Tensor::element_count(&shape)?;
        match dtype.size() {
            Some(size) => {
                if n.checked_mul(size) != Some(blob.len()) {
                    return Err(Error::DataLengthMismatch);
                }
                if dtype == DType::Bool && blob.iter().any(|&b| b > 1) {
                    return Err(Error::BoolValue);
                }
            }
            None => {
                let count = blob.iter().filter(|&&b| b == 0).count();
                if count != n || blob.last() != Some(&0) {
                    return Err(Error::StringBlobCount);
                }
            }
        }
        Ok(Tensor::new(dtype, &shape, Data::Received(blob)))
    }

    /// A tensor from VALUES arguments, whose count the parser has checked.
    pub fn from_values(dtype: DType, shape: Vec<usize>, values: &[Bytes]) -> Result<Tensor, Error> {
        let n = Tensor::element_count(&shape)?;
        if values.len() != n {
            return Err(Error::WrongValueCount);
        }
        let mut out = Vec::with_capacity(n * dtype.size().unwrap_or(8));
        for v in values {
            encode_value(dtype, v, &mut out)?;
        }
        Ok(Tensor::new(dtype, &shape, Data::Own(Bytes::from(out))))
    }

    /// The elements, decoded for a VALUES reply.
    pub fn values(&self) -> Values {
        let d = self.data();
        fn ints<const N: usize>(d: &[u8], f: impl Fn([u8; N]) -> i64) -> Values {
            Values::Ints(
                d.chunks_exact(N)
                    .map(|c| f(c.try_into().unwrap_or([0; N])))
                    .collect(),
            )
        }
        match self.dtype() {
            DType::Float => Values::Floats(
                d.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64)
                    .collect(),
            ),
            DType::Double => Values::Floats(
                d.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            ),
            DType::Int8 => ints::<1>(d, |b| i8::from_le_bytes(b) as i64),
            DType::Int16 => ints::<2>(d, |b| i16::from_le_bytes(b) as i64),
            DType::Int32 => ints::<4>(d, |b| i32::from_le_bytes(b) as i64),
            DType::Int64 => ints::<8>(d, i64::from_le_bytes),
            DType::Uint8 | DType::Bool => ints::<1>(d, |b| b[0] as i64),
            DType::Uint16 => ints::<2>(d, |b| u16::from_le_bytes(b) as i64),
            DType::String => {
                if d.iter().all(|&b| b == 0) {
                    // Zero-filled: every element is the empty string.
                    return Values::Strings(vec![Bytes::new(); self.len()]);
                }
                let mut out = Vec::with_capacity(self.len());
                let all = self.blob();
                let mut start = 0;
                for (i, &b) in d.iter().enumerate() {
                    if b == 0 {
                        out.push(all.slice(start..i));
                        start = i + 1;
                    }
                }
                Values::Strings(out)
            }
        }
    }
}

/// A tensor's bytes as [`Tensor::new`] takes them.
enum Data<'a> {
    /// Bytes to copy.
    Slice(&'a [u8]),
    /// Bytes a client sent: copied when small (see [`small::compact`]), so that they do not
    /// keep a socket read buffer alive.
    Received(Bytes),
    /// Bytes of their own, kept as they are when they do not go inline.
    Own(Bytes),
}

impl Data<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Data::Slice(b) => b,
            Data::Received(b) | Data::Own(b) => b,
        }
    }
}

/// A small tensor as the owner of a `Bytes` of its bytes.
struct Owner(Tensor);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0.0.slice
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.dtype() == other.dtype()
            && self.shape() == other.shape()
            && self.data() == other.data()
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("bytes", &self.byte_size())
            .finish()
    }
}

/// Appends one VALUES argument to `out` in `dtype`'s little-endian layout.
fn encode_value(dtype: DType, v: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let int = |lo: i64, hi: i64| parse_i64(v).filter(|x| (lo..=hi).contains(x));
    match dtype {
        DType::Float | DType::Double => {
            let x = parse_double(v).ok_or(Error::InvalidValue)?;
            if dtype == DType::Float {
                let f = x as f32;
                if f.is_infinite() && x.is_finite() {
                    return Err(Error::InvalidValue);
                }
                out.extend_from_slice(&f.to_le_bytes());
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        DType::Int8 => {
            out.push(int(i8::MIN.into(), i8::MAX.into()).ok_or(Error::InvalidValue)? as i8 as u8)
        }
        DType::Int16 => out.extend_from_slice(
            &(int(i16::MIN.into(), i16::MAX.into()).ok_or(Error::InvalidValue)? as i16)
                .to_le_bytes(),
        ),
        DType::Int32 => out.extend_from_slice(
            &(int(i32::MIN.into(), i32::MAX.into()).ok_or(Error::InvalidValue)? as i32)
                .to_le_bytes(),
        ),
        DType::Int64 => out.extend_from_slice(
            &int(i64::MIN, i64::MAX)
                .ok_or(Error::InvalidValue)?
                .to_le_bytes(),
        ),
        DType::Uint8 => out.push(int(0, u8::MAX.into()).ok_or(Error::InvalidValue)? as u8),
        DType::Uint16 => out.extend_from_slice(
            &(int(0, u16::MAX.into()).ok_or(Error::InvalidValue)? as u16).to_le_bytes(),
        ),
        // RedisAI answers VALUES out of 0/1 with the generic text (BLOB bytes get BoolValue).
        DType::Bool => out.push(int(0, 1).ok_or(Error::InvalidValue)? as u8),
        DType::String => {
            let s = v.strip_suffix(&[0]).unwrap_or(v);
            if s.contains(&0) {
                return Err(Error::StringNul);
            }
            out.extend_from_slice(s);
            out.push(0);
        }
    }
    Ok(())
}

/// Parses a double as Redis's `string2d` does: no surrounding spaces, `inf` allowed, NaN not.
pub fn parse_double(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() || s.len() > 5000 || s.starts_with(char::is_whitespace) {
        return None;
    }
    let x: f64 = s.parse().ok()?;
    // strtod reports overflow (ERANGE) where Rust rounds to infinity: only a spelled-out
    // infinity may be infinite.
    let spelled_inf = s
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    (!x.is_nan() && (x.is_finite() || spelled_inf)).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(d: DType, shape: &[usize], v: &[&str]) -> Result<Tensor, Error> {
        let v: Vec<Bytes> = v
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        Tensor::from_values(d, shape.to_vec(), &v)
    }

    #[test]
    fn spec_example_float_blob_matches() {
        let t = vals(DType::Float, &[2, 2], &["1", "2", "3", "4"]).unwrap();
        assert_eq!(
            &t.blob()[..],
            b"\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@"
        );
        assert_eq!(t.values(), Values::Floats(vec![1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn every_dtype_round_trips_blob_and_values() {
        let cases: &[(DType, &[&str])] = &[
            (DType::Float, &["-1.5", "3.25"]),
            (DType::Double, &["1e300", "-0.125"]),
            (DType::Int8, &["-128", "127"]),
            (DType::Int16, &["-32768", "32767"]),
            (DType::Int32, &["-2147483648", "2147483647"]),
            (
                DType::Int64,
                &["-9223372036854775808", "9223372036854775807"],
            ),
            (DType::Uint8, &["0", "255"]),
            (DType::Uint16, &["0", "65535"]),
            (DType::Bool, &["0", "1"]),
        ];
        for (d, v) in cases {
            let t = vals(*d, &[2], v).unwrap();
            assert_eq!(t.byte_size(), 2 * d.size().unwrap(), "{d:?}");
            let again = Tensor::from_blob(*d, vec![2], t.blob().clone()).unwrap();
            assert_eq!(again.values(), t.values(), "{d:?}");
            let shown: Vec<String> = match t.values() {
                Values::Floats(f) => f.iter().map(|x| x.to_string()).collect(),
                Values::Ints(i) => i.iter().map(|x| x.to_string()).collect(),
                Values::Strings(_) => unreachable!(),
            };
            let want: Vec<String> = v
                .iter()
                .map(|s| s.parse::<f64>().unwrap().to_string())
                .collect();
            if d.is_float() {
                assert_eq!(shown, want, "{d:?}");
            } else {
                assert_eq!(
                    shown,
                    v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    "{d:?}"
                );
            }
        }
    }

    #[test]
    fn range_checks_per_dtype() {
        let bad: &[(DType, &str)] = &[
            (DType::Int8, "128"),
            (DType::Int8, "-129"),
            (DType::Int16, "32768"),
            (DType::Int32, "2147483648"),
            (DType::Int64, "9223372036854775808"),
            (DType::Uint8, "256"),
            (DType::Uint8, "-1"),
            (DType::Uint16, "65536"),
            (DType::Int32, "1.5"),
            (DType::Int32, "abc"),
            (DType::Float, "1e300"),
            (DType::Float, "nan"),
            (DType::Double, "1e400"),
            (DType::Double, "x"),
            (DType::Double, " 1"),
        ];
        for (d, v) in bad {
            assert_eq!(
                vals(*d, &[1], &[v]).unwrap_err(),
                Error::InvalidValue,
                "{d:?} {v}"
            );
        }
        assert_eq!(
            vals(DType::Bool, &[1], &["2"]).unwrap_err(),
            Error::InvalidValue
        );
        assert_eq!(
            vals(DType::Bool, &[1], &["x"]).unwrap_err(),
            Error::InvalidValue
        );
        assert!(vals(DType::Float, &[1], &["inf"]).is_ok());
        assert!(vals(DType::Double, &[1], &["-inf"]).is_ok());
    }

    #[test]
    fn blob_length_and_bool_checks() {
        let b = |s: &'static [u8]| Bytes::from_static(s);
        assert_eq!(
            Tensor::from_blob(DType::Float, vec![2], b(b"123")).unwrap_err(),
            Error::DataLengthMismatch
        );
        assert_eq!(
            Tensor::from_blob(DType::Int16, vec![2, 2], b(b"1234567")).unwrap_err(),
            Error::DataLengthMismatch
        );
        assert_eq!(
            Tensor::from_blob(DType::Bool, vec![2], b(b"\x01\x02")).unwrap_err(),
            Error::BoolValue
        );
        assert!(Tensor::from_blob(DType::Uint8, vec![3], b(b"abc")).is_ok());
    }

    #[test]
    fn strings() {
        let t = vals(DType::String, &[3], &["ab", "", "c\0"]).unwrap();
        assert_eq!(&t.blob()[..], b"ab\0\0c\0");
        assert_eq!(
            t.values(),
            Values::Strings(vec![
                Bytes::from_static(b"ab"),
                Bytes::new(),
                Bytes::from_static(b"c")
            ])
        );
        assert_eq!(
            vals(DType::String, &[1], &["a\0b"]).unwrap_err(),
            Error::StringNul
        );
        let blob =
            |s: &'static [u8]| Tensor::from_blob(DType::String, vec![2], Bytes::from_static(s));
        assert!(blob(b"x\0y\0").is_ok());
        assert_eq!(blob(b"x\0y").unwrap_err(), Error::StringBlobCount);
        assert_eq!(blob(b"x\0").unwrap_err(), Error::StringBlobCount);
        let z = Tensor::zeros(DType::String, vec![2], 100).unwrap();
        assert_eq!(
            z.values(),
            Values::Strings(vec![Bytes::new(), Bytes::new()])
        );
    }

    #[test]
    fn zeros_are_bounded() {
        let t = Tensor::zeros(DType::Double, vec![2, 3], 1 << 20).unwrap();
        assert_eq!(t.values(), Values::Floats(vec![0.0; 6]));
        assert_eq!(
            Tensor::zeros(DType::Double, vec![1 << 20, 1 << 20], 1 << 30).unwrap_err(),
            Error::TensorTooLarge
        );
    }

    #[test]
    fn small_tensors_hold_their_bytes_and_lend_them_without_a_copy() {
        for len in [0, 1, 8, 64, INLINE_MAX, INLINE_MAX + 1, 4096] {
            let src: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let t = Tensor::from_blob(DType::Uint8, vec![len], Bytes::from(src.clone())).unwrap();
            assert_eq!((t.data(), t.byte_size()), (&src[..], len), "len {len}");
            let blob = t.blob();
            assert_eq!(blob, src, "len {len}");
            if len > 0 {
                assert_eq!(blob.as_ptr(), t.data().as_ptr(), "a reply shares the bytes");
            }
            let copy = t.clone();
            assert!(Tensor::ptr_eq(&t, &copy));
            drop(t);
            assert_eq!(blob, src, "the bytes outlive the tensor, len {len}");
            assert_eq!(copy.data(), &src[..]);
        }
    }

    #[test]
    fn shapes_that_do_not_pack_read_back_as_given() {
        let scalar = Tensor::zeros(DType::Float, vec![], 64).unwrap();
        assert_eq!(
            (scalar.shape().len(), scalar.len(), scalar.byte_size()),
            (0, 1, 4)
        );
        for shape in [
            vec![3],
            vec![1, 1, 3],
            vec![1, 1, 1, 3],
            vec![3, 1, 1, 1, 1, 1],
        ] {
            let t = Tensor::zeros(DType::Float, shape.clone(), 1 << 20).unwrap();
            assert_eq!(&t.shape()[..], &shape[..]);
            assert_eq!((t.len(), t.byte_size()), (3, 12), "{shape:?}");
        }
        let wide = vec![0, u32::MAX as usize + 1];
        let t = Tensor::from_blob(DType::Uint8, wide.clone(), Bytes::new()).unwrap();
        assert_eq!((&t.shape()[..], t.byte_size()), (&wide[..], 0));
        let big = Tensor::zeros(DType::Double, vec![1, 1, 2, 40], 1 << 20).unwrap();
        assert_eq!(
            (&big.shape()[..], big.byte_size()),
            (&[1, 1, 2, 40][..], 640)
        );
        assert_eq!(big.values(), Values::Floats(vec![0.0; 80]));
    }

    #[test]
    fn a_tensor_with_inline_bytes_is_relocated_a_large_one_shared() {
        let small = vals(DType::Int16, &[2, 1], &["1", "2"]).unwrap();
        let copy = small.relocated();
        assert_eq!(copy, small);
        assert_eq!(copy.shape()[..], [2, 1]);
        assert!(!Tensor::ptr_eq(&copy, &small));
        let large = Tensor::from_blob(DType::Uint8, vec![300], Bytes::from(vec![7; 300])).unwrap();
        assert!(Tensor::ptr_eq(&large.relocated(), &large));
        let unpacked = Tensor::zeros(DType::Uint8, vec![1, 1, 1, 2], 1024).unwrap();
        let moved = unpacked.relocated();
        assert!(!Tensor::ptr_eq(&moved, &unpacked));
        assert_eq!(moved, unpacked);
        assert_eq!(moved.shape()[..], [1, 1, 1, 2]);
    }

    #[test]
    fn equal_tensors_are_equal_but_not_the_same() {
        let a = vals(DType::Int16, &[2], &["1", "2"]).unwrap();
        let b = vals(DType::Int16, &[2], &["1", "2"]).unwrap();
        assert_eq!(a, b);
        assert!(!Tensor::ptr_eq(&a, &b));
        assert_ne!(a, vals(DType::Int16, &[2, 1], &["1", "2"]).unwrap());
        assert_ne!(a, vals(DType::Uint16, &[2], &["1", "2"]).unwrap());
        assert_ne!(a, vals(DType::Int16, &[2], &["1", "3"]).unwrap());
    }

    #[test]
    fn large_blobs_are_not_copied() {
        let blob = Bytes::from(vec![1u8; 1 << 20]);
        let t = Tensor::from_blob(DType::Uint8, vec![1 << 20], blob.clone()).unwrap();
        assert_eq!(t.blob().as_ptr(), blob.as_ptr());
    }
}
