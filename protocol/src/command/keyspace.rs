//! Keyspace commands with options or several keys: SCAN, FLUSHALL/FLUSHDB, RENAME,
//! RENAMENX, COPY and TOUCH.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::{error::Error, frame::parse_i64};

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Where to resume; 0 starts a new iteration.
    pub cursor: u64,
    /// Glob pattern.
    pub pattern: Option<Bytes>,
    /// Work hint: keys to look at per call.
    pub count: usize,
    /// Only keys of this type (as TYPE reports it), lower-cased.
    pub type_name: Option<String>,
}

pub(super) fn parse_scan(c: &mut Cursor) -> Result<Scan, Error> {
    let cur = c.next_bytes()?;
    let cursor = std::str::from_utf8(&cur)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(Error::InvalidCursor)?;
    let mut scan = Scan {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
    };
    while let Some(opt) = c.next_opt() {
        let val = c.next_opt().ok_or(Error::Syntax)?;
        match lower(&opt).as_str() {
            "match" => scan.pattern = Some(val),
            "count" => {
                let n = parse_i64(&val).ok_or(Error::NotInteger)?;
                if n < 1 {
                    return Err(Error::Syntax);
                }
                scan.count = n as usize;
            }
            "type" => scan.type_name = Some(lower(&val)),
            _ => return Err(Error::Syntax),
        }
    }
    Ok(scan)
}

/// `RENAME key newkey` and `RENAMENX key newkey`
pub(crate) fn rename(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Rename {
        nx: c.name() == "renamenx",
        from: c.next_bytes()?,
        to: c.next_bytes()?,
    })
}

/// `COPY source destination [DB destination-db] [REPLACE]`: only database 0 exists.
pub(crate) fn copy(c: &mut Cursor) -> Result<Command, Error> {
    let from = c.next_bytes()?;
    let to = c.next_bytes()?;
    let mut replace = false;
    let mut db = 0;
    while let Some(opt) = c.next_opt() {
        match lower(&opt).as_str() {
            "replace" => replace = true,
            "db" => {
                let n = c.next_opt().ok_or(Error::Syntax)?;
                db = parse_i64(&n)
                    .filter(|n| i32::try_from(*n).is_ok())
                    .ok_or(Error::NotInteger)?;
            }
            _ => return Err(Error::Syntax),
        }
    }
    if db != 0 {
        return Err(Error::DbIndexOutOfRange);
    }
    if from == to {
        return Err(Error::Verbatim(
            "ERR source and destination objects are the same".into(),
        ));
    }
    Ok(Command::Copy { from, to, replace })
}

/// `TOUCH key [key ...]`
pub(crate) fn touch(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Touch(c.rest()))
}

pub(super) fn parse_flush(c: &mut Cursor) -> Result<Command, Error> {
    match c.next_opt() {
        None => Ok(Command::Flush),
        Some(m) if m.eq_ignore_ascii_case(b"ASYNC") || m.eq_ignore_ascii_case(b"SYNC") => {
            Ok(Command::Flush)
        }
        Some(_) => Err(Error::Syntax),
    }
}

// Registry parsers (see `crate::table`).

/// `DBSIZE`
pub(crate) fn dbsize(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::DbSize)
}

/// `FLUSHALL` / `FLUSHDB [ASYNC|SYNC]`
pub(crate) fn flush(c: &mut Cursor) -> Result<Command, Error> {
    parse_flush(c)
}

/// `DEL` / `UNLINK key [key ...]`
pub(crate) fn del(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Del(c.rest()))
}

/// `EXISTS key [key ...]`
pub(crate) fn exists(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Exists(c.rest()))
}

/// `TYPE key`
pub(crate) fn type_of(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Type(c.next_bytes()?))
}

/// `KEYS pattern`
pub(crate) fn keys(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Keys(c.next_bytes()?))
}

/// `SCAN cursor ...`
pub(crate) fn scan(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Scan(parse_scan(c)?))
}

/// `RANDOMKEY`
pub(crate) fn randomkey(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::RandomKey)
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn scan_options() {
        let Command::Scan(s) = parse("SCAN 17 MATCH a* COUNT 100 TYPE AI_TENSOR").unwrap() else {
            panic!()
        };
        assert_eq!(s.cursor, 17);
        assert_eq!(s.count, 100);
        assert_eq!(s.pattern.as_deref(), Some(&b"a*"[..]));
        assert_eq!(s.type_name.as_deref(), Some("ai_tensor"));
        assert_eq!(parse("SCAN x").unwrap_err(), Error::InvalidCursor);
        assert_eq!(parse("SCAN 0 COUNT 0").unwrap_err(), Error::Syntax);
        assert_eq!(parse("SCAN 0 MATCH").unwrap_err(), Error::Syntax);
        assert_eq!(parse("SCAN 0 BOGUS x").unwrap_err(), Error::Syntax);
    }

    #[test]
    fn flush_modes() {
        assert_eq!(parse("FLUSHALL").unwrap(), Command::Flush);
        assert_eq!(parse("FLUSHDB async").unwrap(), Command::Flush);
        assert_eq!(parse("FLUSHALL nope").unwrap_err(), Error::Syntax);
    }
}
