//! Hash and list commands: HSET/HMSET, HGET, HMGET, HGETALL, HDEL, HLEN, HEXISTS, HKEYS,
//! HVALS; LPUSH/RPUSH and their X forms, LPOP/RPOP, LRANGE, LLEN, LINDEX.

use super::{Command, Cursor};
use crate::error::Error;

/// `HSET key field value [field value ...]` and `HMSET ...` (which answers OK).
pub(crate) fn hset(c: &mut Cursor) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    if c.remaining() == 0 || !c.remaining().is_multiple_of(2) {
        return Err(c.arity_error());
    }
    let pairs = c
        .rest()
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    Ok(Command::HSet {
        key,
        pairs,
        ok_reply: c.name() == "hmset",
    })
}

/// `HGET key field`
pub(crate) fn hget(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::HGet {
        key: c.next_bytes()?,
        field: c.next_bytes()?,
    })
}

/// `HEXISTS key field`
pub(crate) fn hexists(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::HExists {
        key: c.next_bytes()?,
        field: c.next_bytes()?,
    })
}

/// `HMGET key field [field ...]`
pub(crate) fn hmget(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::HMGet {
        key: c.next_bytes()?,
        fields: c.rest(),
    })
}

/// `HDEL key field [field ...]`
pub(crate) fn hdel(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::HDel {
        key: c.next_bytes()?,
        fields: c.rest(),
    })
}

/// What a whole-hash read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPart {
    /// HGETALL: fields and values.
    All,
    /// HKEYS.
    Keys,
    /// HVALS.
    Values,
    /// HLEN: the number of fields.
    Len,
}

/// `HGETALL key`, `HKEYS key`, `HVALS key`, `HLEN key`
pub(crate) fn hread(c: &mut Cursor) -> Result<Command, Error> {
    let part = match c.name() {
        "hgetall" => HashPart::All,
        "hkeys" => HashPart::Keys,
        "hvals" => HashPart::Values,
        _ => HashPart::Len,
    };
    Ok(Command::HRead {
        key: c.next_bytes()?,
        part,
    })
}

/// `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX key element [element ...]`
pub(crate) fn push(c: &mut Cursor) -> Result<Command, Error> {
    let name = c.name();
    Ok(Command::Push {
        key: c.next_bytes()?,
        left: name.starts_with('l'),
        values: c.rest(),
        existing_only: name.ends_with('x'),
    })
}

/// `LPOP key [count]`, `RPOP key [count]`
pub(crate) fn pop(c: &mut Cursor) -> Result<Command, Error> {
    let left = c.name() == "lpop";
    let key = c.next_bytes()?;
    let count = match c.next_opt() {
        None => None,
        Some(n) => {
            let n = crate::frame::parse_i64(&n)
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Error::Verbatim("ERR value is out of range, must be positive".into())
                })?;
            Some(usize::try_from(n).unwrap_or(usize::MAX))
        }
    };
    Ok(Command::Pop { key, left, count })
}

/// `LRANGE key start stop`
pub(crate) fn lrange(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::LRange {
        key: c.next_bytes()?,
        start: c.next_int()?,
        stop: c.next_int()?,
    })
}

/// `LLEN key`
pub(crate) fn llen(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::LLen(c.next_bytes()?))
}

/// `LINDEX key index`
pub(crate) fn lindex(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::LIndex {
        key: c.next_bytes()?,
        index: c.next_int()?,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::tests::parse;
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn hash_commands() {
        assert_eq!(
            parse("HSET h a 1 b 2").unwrap(),
            Command::HSet {
                key: b("h"),
                pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
                ok_reply: false,
            }
        );
        assert!(matches!(
            parse("hmset h a 1").unwrap(),
            Command::HSet { ok_reply: true, .. }
        ));
        assert_eq!(
            parse("HSET h a 1 b").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(
            parse("HSET h").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'hset' command"
        );
        assert_eq!(
            parse("HVALS h").unwrap(),
            Command::HRead {
                key: b("h"),
                part: HashPart::Values
            }
        );
        assert_eq!(
            parse("HDEL h a b").unwrap(),
            Command::HDel {
                key: b("h"),
                fields: vec![b("a"), b("b")]
            }
        );
        assert!(parse("HGET h").is_err());
    }

    #[test]
    fn list_commands() {
        assert_eq!(
            parse("RPUSHX l a b").unwrap(),
            Command::Push {
                key: b("l"),
                left: false,
                values: vec![b("a"), b("b")],
                existing_only: true
            }
        );
        assert_eq!(
            parse("LPOP l 2").unwrap(),
            Command::Pop {
                key: b("l"),
                left: true,
                count: Some(2)
            }
        );
        assert_eq!(
            parse("RPOP l -1").unwrap_err().wire_text(),
            "ERR value is out of range, must be positive"
        );
        assert_eq!(parse("LRANGE l 0 x").unwrap_err(), Error::NotInteger);
        assert_eq!(
            parse("LRANGE l 0 -1").unwrap(),
            Command::LRange {
                key: b("l"),
                start: 0,
                stop: -1
            }
        );
        assert!(parse("LPUSH l").is_err());
        assert!(parse("LPOP l 1 2").is_err());
    }
}
