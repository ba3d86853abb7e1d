//! AI.TENSORSET and AI.TENSORGET arguments, checked in RedisAI's order with its texts.

use bytes::Bytes;

use super::{Command, Cursor};
use crate::{dtype::DType, error::Error, frame::parse_i64};

/// The most dimensions a tensor has (NumPy's limit was 32 for years; frameworks stay
/// far below it).
pub const MAX_TENSOR_RANK: usize = 32;

/// Where a new tensor's elements come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorData {
    /// Neither BLOB nor VALUES: zero-filled (empty strings for STRING).
    Zeros,
    /// `BLOB data`: little-endian elements (NUL-terminated strings for STRING).
    Blob(Bytes),
    /// `VALUES v ...`: one argument per element, count already checked against the shape.
    Values(Vec<Bytes>),
}

/// `AI.TENSORSET key type [shape ...] [BLOB data | VALUES v ...]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSet {
    /// The key.
    pub key: Bytes,
    /// Element type.
    pub dtype: DType,
    /// Dimensions, each at least 1; empty for a scalar.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: TensorData,
}

/// Parses the arguments after the command name, as RedisAI's `ParseTensorSetArgs` does: the
/// type first, then dimensions until BLOB or VALUES.
pub(super) fn parse_tensorset(c: &mut Cursor) -> Result<TensorSet, Error> {
    let key = c.next_bytes()?;
    let dtype = DType::parse(&c.next_bytes()?).ok_or(Error::InvalidDataType)?;
    let mut shape = Vec::new();
    let mut len: usize = 1;
    let mut data = TensorData::Zeros;
    while let Some(arg) = c.next_opt() {
        if arg.eq_ignore_ascii_case(b"BLOB") {
            if c.remaining() != 1 {
                return Err(Error::BlobArity);
            }
            data = TensorData::Blob(c.next_bytes()?);
            break;
        }
        if arg.eq_ignore_ascii_case(b"VALUES") {
            if c.remaining() != len {
                return Err(Error::WrongValueCount);
            }
            data = TensorData::Values(c.rest());
            break;
        }
        let dim = parse_i64(&arg)
            .filter(|d| *d > 0)
            .ok_or(Error::InvalidShape)?;
        let dim = usize::try_from(dim).map_err(|_| Error::InvalidShape)?;
        if shape.len() == MAX_TENSOR_RANK {
            return Err(Error::RankTooLarge(MAX_TENSOR_RANK));
        }
        len = len.checked_mul(dim).ok_or(Error::TensorTooLarge)?;
        shape.push(dim);
    }
    Ok(TensorSet {
        key,
        dtype,
        shape,
        data,
    })
}

/// Which parts of a tensor AI.TENSORGET returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorFormat {
    /// `dtype` and `shape`.
    pub meta: bool,
    /// The raw little-endian bytes.
    pub blob: bool,
    /// The elements as numbers (or strings).
    pub values: bool,
}

/// `AI.TENSORGET key [META] [BLOB | VALUES]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorGet {
    /// The key.
    pub key: Bytes,
    /// What to return.
    pub format: TensorFormat,
}

pub(super) fn parse_tensorget(c: &mut Cursor) -> Result<TensorGet, Error> {
    if c.remaining() > 3 {
        return Err(c.arity_error());
    }
    let key = c.next_bytes()?;
    let mut f = TensorFormat {
        meta: false,
        blob: false,
        values: false,
    };
    if c.remaining() == 0 {
        f.meta = true;
        f.blob = true;
    }
    while let Some(w) = c.next_opt() {
        if w.eq_ignore_ascii_case(b"META") {
            f.meta = true;
        } else if w.eq_ignore_ascii_case(b"BLOB") {
            f.blob = true;
        } else if w.eq_ignore_ascii_case(b"VALUES") {
            f.values = true;
        } else {
            return Err(Error::UnsupportedFormat);
        }
    }
    if f.blob && f.values {
        return Err(Error::BlobAndValues);
    }
    Ok(TensorGet { key, format: f })
}

// Registry parsers (see `crate::table`).

/// `AI.TENSORSET ...`
pub(crate) fn tensorset(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::TensorSet(parse_tensorset(c)?))
}

/// `AI.TENSORGET ...`
pub(crate) fn tensorget(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::TensorGet(parse_tensorget(c)?))
}

#[cfg(test)]
mod tests {
    use super::super::{Command, tests::parse};
    use super::*;

    fn set(s: &str) -> Result<TensorSet, Error> {
        match parse(s)? {
            Command::TensorSet(t) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    fn get(s: &str) -> Result<TensorFormat, Error> {
        match parse(s)? {
            Command::TensorGet(t) => Ok(t.format),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tensorset_forms() {
        let t = set("AI.TENSORSET mytensor FLOAT 2 2 VALUES 1 2 3 4").unwrap();
        assert_eq!(t.dtype, DType::Float);
        assert_eq!(t.shape, [2, 2]);
        assert!(matches!(t.data, TensorData::Values(ref v) if v.len() == 4));
        let t = set("AI.TENSORSET t uint8 3 blob abc").unwrap();
        assert_eq!(t.data, TensorData::Blob(Bytes::from_static(b"abc")));
        let t = set("AI.TENSORSET t INT32 2 3").unwrap();
        assert_eq!(
            (t.shape.as_slice(), t.data),
            (&[2, 3][..], TensorData::Zeros)
        );
        let t = set("AI.TENSORSET t DOUBLE VALUES 7").unwrap();
        assert!(
            t.shape.is_empty(),
            "no dimensions is a scalar, as in RedisAI"
        );
    }

    #[test]
    fn a_tensor_has_at_most_32_dimensions() {
        let ones = |n: usize| vec!["1"; n].join(" ");
        assert_eq!(
            set(&format!("AI.TENSORSET t INT8 {}", ones(32)))
                .unwrap()
                .shape
                .len(),
            32
        );
        assert_eq!(
            set(&format!("AI.TENSORSET t INT8 {}", ones(33)))
                .unwrap_err()
                .to_string(),
            "ERR tensor has more than 32 dimensions"
        );
    }

    #[test]
    fn tensorset_errors_in_redisai_order() {
        let cases = [
            (
                "AI.TENSORSET t FLOAT32 2 VALUES 1 2",
                "ERR invalid data type",
            ),
            (
                "AI.TENSORSET t FLOAT 0 VALUES",
                "ERR invalid or negative value found in tensor shape",
            ),
            (
                "AI.TENSORSET t FLOAT -2 VALUES 1 2",
                "ERR invalid or negative value found in tensor shape",
            ),
            (
                "AI.TENSORSET t FLOAT x",
                "ERR invalid or negative value found in tensor shape",
            ),
            (
                "AI.TENSORSET t FLOAT 2 BLOBX ab",
                "ERR invalid or negative value found in tensor shape",
            ),
            (
                "AI.TENSORSET t FLOAT 2 VALUES 1",
                "ERR wrong number of values was given in 'AI.TENSORSET' command",
            ),
            (
                "AI.TENSORSET t FLOAT 2 VALUES 1 2 3",
                "ERR wrong number of values was given in 'AI.TENSORSET' command",
            ),
            (
                "AI.TENSORSET t FLOAT 2 BLOB",
                "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
            ),
            (
                "AI.TENSORSET t FLOAT 2 BLOB a b",
                "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
            ),
            (
                "AI.TENSORSET t FLOAT 4294967296 4294967296 4294967296",
                "ERR tensor is too large",
            ),
            (
                "ai.tensorset t",
                "ERR wrong number of arguments for 'ai.tensorset' command",
            ),
        ];
        for (cmd, text) in cases {
            assert_eq!(set(cmd).unwrap_err().wire_text(), text, "{cmd}");
        }
    }

    #[test]
    fn tensorget_formats() {
        let f = |meta, blob, values| TensorFormat { meta, blob, values };
        assert_eq!(get("AI.TENSORGET t").unwrap(), f(true, true, false));
        assert_eq!(get("AI.TENSORGET t META").unwrap(), f(true, false, false));
        assert_eq!(get("AI.TENSORGET t values").unwrap(), f(false, false, true));
        assert_eq!(
            get("AI.TENSORGET t META BLOB").unwrap(),
            f(true, true, false)
        );
        assert_eq!(
            get("AI.TENSORGET t VALUES META").unwrap(),
            f(true, false, true)
        );
        assert_eq!(
            get("AI.TENSORGET t BLOB VALUES").unwrap_err(),
            Error::BlobAndValues
        );
        assert_eq!(
            get("AI.TENSORGET t JSON").unwrap_err(),
            Error::UnsupportedFormat
        );
        assert_eq!(
            get("AI.TENSORGET t META BLOB META VALUES")
                .unwrap_err()
                .wire_text(),
            "ERR wrong number of arguments for 'AI.TENSORGET' command"
        );
    }
}
