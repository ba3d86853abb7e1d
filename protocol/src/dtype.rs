//! Tensor data types as RedisAI names them on the wire.
//!
//! Shared by the command parser (AI.TENSORSET) and the engine's `Tensor`, which is why it
//! lives here rather than in `engine`.

/// A tensor element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    Float,
    /// 64-bit IEEE float.
    Double,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// One byte per element, 0 or 1.
    Bool,
    /// NUL-terminated byte strings of any length.
    String,
}

impl DType {
    /// Every type, in the order RedisAI documents them.
    pub const ALL: [DType; 10] = [
        DType::Float,
        DType::Double,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Bool,
        DType::String,
    ];

    /// Parses a type name, case-insensitively as RedisAI does.
    pub fn parse(name: &[u8]) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The name RedisAI replies with (`dtype` in AI.TENSORGET META).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float => "FLOAT",
            DType::Double => "DOUBLE",
            DType::Int8 => "INT8",
            DType::Int16 => "INT16",
            DType::Int32 => "INT32",
            DType::Int64 => "INT64",
            DType::Uint8 => "UINT8",
            DType::Uint16 => "UINT16",
            DType::Bool => "BOOL",
            DType::String => "STRING",
        }
    }

    /// Bytes per element, or `None` for STRING (variable length).
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
            DType::Int16 | DType::Uint16 => 2,
            DType::Float | DType::Int32 => 4,
            DType::Double | DType::Int64 => 8,
            DType::String => return None,
        })
    }

    /// True for FLOAT and DOUBLE.
    pub fn is_float(self) -> bool {
        matches!(self, DType::Float | DType::Double)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for d in DType::ALL {
            assert_eq!(DType::parse(d.name().as_bytes()), Some(d));
            assert_eq!(DType::parse(d.name().to_lowercase().as_bytes()), Some(d));
        }
        assert_eq!(DType::parse(b"FLOAT32"), None);
        assert_eq!(DType::parse(b""), None);
    }
}
