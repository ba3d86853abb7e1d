//! The string commands beside SET: SETNX, SETEX, PSETEX and GETSET (SETs with a fixed
//! option), GETDEL, GETRANGE, SETRANGE, APPEND, STRLEN, MSETNX and INCRBYFLOAT, with Redis
//! 7's order of checks and error texts.

use super::{
    Command, Cursor,
    strings::{Expiry, SetArgs, SetCond, parse_mset},
};
use crate::error::Error;

/// Parses a float as Redis's INCRBYFLOAT does: no spaces, no NaN (infinity is taken, and
/// refused once added).
pub fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| !f.is_nan())
}

/// `SETNX key value`
pub(crate) fn setnx(c: &mut Cursor) -> Result<Command, Error> {
    let mut a = SetArgs::plain(c.next_bytes()?, c.next_bytes()?);
    a.cond = Some(SetCond::Nx);
    a.int_reply = true;
    Ok(Command::Set(a))
}

/// `SETEX key seconds value` and `PSETEX key milliseconds value`
pub(crate) fn setex(c: &mut Cursor) -> Result<Command, Error> {
    let name = c.name();
    let key = c.next_bytes()?;
    let n = c.next_int()?;
    let value = c.next_bytes()?;
    let ms = if name == "setex" {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    let ms = ms.filter(|_| n > 0).ok_or(Error::InvalidExpire(name))?;
    let mut a = SetArgs::plain(key, value);
    a.expiry = Some(Expiry::InMillis(ms));
    a.name = name;
    Ok(Command::Set(a))
}

/// `GETSET key value`
pub(crate) fn getset(c: &mut Cursor) -> Result<Command, Error> {
    let mut a = SetArgs::plain(c.next_bytes()?, c.next_bytes()?);
    a.get = true;
    Ok(Command::Set(a))
}

/// `GETDEL key`
pub(crate) fn getdel(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::GetDel(c.next_bytes()?))
}

/// `GETRANGE key start end`
pub(crate) fn getrange(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::GetRange {
        key: c.next_bytes()?,
        start: c.next_int()?,
        end: c.next_int()?,
    })
}

/// `SETRANGE key offset value`
pub(crate) fn setrange(c: &mut Cursor) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    let offset = c.next_int()?;
    if offset < 0 {
        return Err(Error::Verbatim("ERR offset is out of range".into()));
    }
    Ok(Command::WriteRange {
        key,
        offset: Some(offset as u64),
        value: c.next_bytes()?,
    })
}

/// `APPEND key value`
pub(crate) fn append(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::WriteRange {
        key: c.next_bytes()?,
        offset: None,
        value: c.next_bytes()?,
    })
}

/// `STRLEN key`
pub(crate) fn strlen(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::StrLen(c.next_bytes()?))
}

/// `MSETNX key value [key value ...]`
pub(crate) fn msetnx(c: &mut Cursor) -> Result<Command, Error> {
    match parse_mset(c, "msetnx")? {
        Command::MSet(pairs) => Ok(Command::MSetNx(pairs)),
        other => Ok(other),
    }
}

/// `INCRBYFLOAT key increment`
pub(crate) fn incrbyfloat(c: &mut Cursor) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    let delta = parse_float(&c.next_bytes()?).ok_or(Error::NotFloat)?;
    Ok(Command::IncrByFloat { key, delta })
}

/// An INCRBYFLOAT result as Redis writes it: fixed notation, no trailing zeros.
pub fn format_float(f: f64) -> String {
    // Rust's shortest round-trip form never uses an exponent for `Display`.
    let s = f.to_string();
    if s == "-0" { "0".into() } else { s }
}

/// A GETRANGE's byte range of a `len`-byte string, as Redis computes it (empty: `None`).
pub fn byte_range(len: usize, start: i64, end: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = len as i64;
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    if start > end || len == 0 {
        return None;
    }
    Some((start as usize, end as usize + 1))
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn sets_with_a_fixed_option() {
        let Command::Set(a) = parse("SETNX k v").unwrap() else {
            panic!()
        };
        assert!(a.int_reply && a.cond == Some(SetCond::Nx));
        let Command::Set(a) = parse("SETEX k 2 v").unwrap() else {
            panic!()
        };
        assert_eq!(a.expiry, Some(Expiry::InMillis(2000)));
        let Command::Set(a) = parse("PSETEX k 2 v").unwrap() else {
            panic!()
        };
        assert_eq!(a.expiry, Some(Expiry::InMillis(2)));
        let Command::Set(a) = parse("GETSET k v").unwrap() else {
            panic!()
        };
        assert!(a.get && a.expiry.is_none());
        let text = |s: &str| parse(s).unwrap_err().wire_text();
        assert_eq!(
            text("SETEX k 0 v"),
            "ERR invalid expire time in 'setex' command"
        );
        assert_eq!(
            text("PSETEX k -1 v"),
            "ERR invalid expire time in 'psetex' command"
        );
        assert_eq!(
            text("SETEX k x v"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            text("SETEX k 9223372036854775807 v"),
            "ERR invalid expire time in 'setex' command"
        );
    }

    #[test]
    fn ranges_offsets_and_floats() {
        let text = |s: &str| parse(s).unwrap_err().wire_text();
        assert_eq!(text("SETRANGE k -1 v"), "ERR offset is out of range");
        assert_eq!(
            text("GETRANGE k a 1"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(text("INCRBYFLOAT k abc"), "ERR value is not a valid float");
        assert_eq!(text("INCRBYFLOAT k nan"), "ERR value is not a valid float");
        assert_eq!(
            text("MSETNX a 1 b"),
            "ERR wrong number of arguments for 'msetnx' command"
        );
        assert_eq!(parse_float(b" 1"), None);
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(1e20), "100000000000000000000");
        assert_eq!(format_float(3.0), "3");
        assert_eq!(byte_range(5, 0, -1), Some((0, 5)));
        assert_eq!(byte_range(5, -3, -2), Some((2, 4)));
        assert_eq!(byte_range(5, 3, 100), Some((3, 5)));
        assert_eq!(byte_range(5, 4, 2), None);
        assert_eq!(byte_range(5, -1, -3), None);
        assert_eq!(byte_range(0, 0, -1), None);
        assert_eq!(byte_range(5, -100, 1), Some((0, 2)));
    }
}
