//! String commands: SET (with its options), MSET, INCR/INCRBY/DECR/DECRBY. The other string
//! commands are in `string_ops`.

use bytes::Bytes;

use super::{Command, Cursor};
use crate::{error::Error, frame::parse_i64};

/// When a SET expires its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Relative, in milliseconds (EX, PX).
    InMillis(i64),
    /// Absolute Unix time in milliseconds (EXAT, PXAT).
    AtMillis(i64),
    /// KEEPTTL: keep the key's current deadline.
    Keep,
}

/// SET's NX / XX condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCond {
    /// Only set a missing key.
    Nx,
    /// Only set an existing key.
    Xx,
}

/// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT|KEEPTTL]`, and SETNX, SETEX, PSETEX and
/// GETSET, which are SETs with a fixed option and their own reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetArgs {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// NX / XX.
    pub cond: Option<SetCond>,
    /// GET: reply with the old value.
    pub get: bool,
    /// The expiry, if any (none clears an existing one).
    pub expiry: Option<Expiry>,
    /// SETNX: reply 1 or 0 (whether it was written) instead of OK or nil.
    pub int_reply: bool,
    /// The command's name, for its `invalid expire time` error.
    pub name: &'static str,
}

impl SetArgs {
    /// A SET of `key` to `value` without options.
    pub fn plain(key: Bytes, value: Bytes) -> Self {
        SetArgs {
            key,
            value,
            cond: None,
            get: false,
            expiry: None,
            int_reply: false,
            name: "set",
        }
    }
}

pub(super) fn parse_set(c: &mut Cursor) -> Result<SetArgs, Error> {
    let key = c.next_bytes()?;
    let value = c.next_bytes()?;
    let mut args = SetArgs::plain(key, value);
    while let Some(opt) = c.next_opt() {
        let word = opt.to_ascii_uppercase();
        match word.as_slice() {
            b"NX" | b"XX" if args.cond.is_none() => {
                args.cond = Some(if word == b"NX" {
                    SetCond::Nx
                } else {
                    SetCond::Xx
                });
            }
            b"GET" if !args.get => args.get = true,
            b"KEEPTTL" if args.expiry.is_none() => args.expiry = Some(Expiry::Keep),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if args.expiry.is_none() => {
                let n = c.next_opt().ok_or(Error::Syntax)?;
                let n = parse_i64(&n).ok_or(Error::NotInteger)?;
                let ms = if word.starts_with(b"E") {
                    n.checked_mul(1000)
                } else {
                    Some(n)
                };
                let ms = ms.filter(|_| n > 0).ok_or(Error::InvalidExpire("set"))?;
                args.expiry = Some(if word.ends_with(b"AT") {
                    Expiry::AtMillis(ms)
                } else {
                    Expiry::InMillis(ms)
                });
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(args)
}

pub(super) fn parse_mset(c: &mut Cursor, name: &str) -> Result<Command, Error> {
    if !c.remaining().is_multiple_of(2) {
        return Err(Error::WrongArity(name.to_string()));
    }
    let rest = c.rest();
    let pairs = rest
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    Ok(Command::MSet(pairs))
}

pub(super) fn parse_incr(c: &mut Cursor, name: &str) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    let delta = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => c.next_int()?,
        _ => c.next_int()?.checked_neg().ok_or(Error::Overflow)?,
    };
    Ok(Command::IncrBy { key, delta })
}

// Registry parsers (see `crate::table`).

/// `GET key`
pub(crate) fn get(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Get(c.next_bytes()?))
}

/// `SET key value ...`
pub(crate) fn set(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Set(parse_set(c)?))
}

/// `MGET key [key ...]`
pub(crate) fn mget(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::MGet(c.rest()))
}

/// `MSET key value [key value ...]`
pub(crate) fn mset(c: &mut Cursor) -> Result<Command, Error> {
    parse_mset(c, c.name())
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`
pub(crate) fn incr(c: &mut Cursor) -> Result<Command, Error> {
    parse_incr(c, c.name())
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    fn set(s: &str) -> Result<SetArgs, Error> {
        match parse(s)? {
            Command::Set(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_options() {
        let a = set("SET k v NX EX 10").unwrap();
        assert_eq!(a.cond, Some(SetCond::Nx));
        assert_eq!(a.expiry, Some(Expiry::InMillis(10_000)));
        assert_eq!(
            set("set k v px 5").unwrap().expiry,
            Some(Expiry::InMillis(5))
        );
        assert_eq!(
            set("set k v pxat 5").unwrap().expiry,
            Some(Expiry::AtMillis(5))
        );
        assert_eq!(
            set("set k v keepttl get").unwrap().expiry,
            Some(Expiry::Keep)
        );
        assert_eq!(set("SET k v NX XX").unwrap_err(), Error::Syntax);
        assert_eq!(set("SET k v EX 1 PX 1").unwrap_err(), Error::Syntax);
        assert_eq!(set("SET k v EX").unwrap_err(), Error::Syntax);
        assert_eq!(set("SET k v EX x").unwrap_err(), Error::NotInteger);
        assert_eq!(
            set("SET k v EX 0").unwrap_err().wire_text(),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            set("SET k v EX 9223372036854775807").unwrap_err(),
            Error::InvalidExpire("set")
        );
        assert_eq!(set("SET k v BOGUS").unwrap_err(), Error::Syntax);
    }

    #[test]
    fn incr_family() {
        let k = Bytes::from_static(b"k");
        assert_eq!(
            parse("INCR k").unwrap(),
            Command::IncrBy {
                key: k.clone(),
                delta: 1
            }
        );
        assert_eq!(
            parse("DECRBY k 5").unwrap(),
            Command::IncrBy { key: k, delta: -5 }
        );
        assert_eq!(parse("INCRBY k x").unwrap_err(), Error::NotInteger);
        assert_eq!(
            parse("DECRBY k -9223372036854775808").unwrap_err(),
            Error::Overflow
        );
    }

    #[test]
    fn mset_pairs() {
        assert!(matches!(parse("MSET a 1 b 2").unwrap(), Command::MSet(p) if p.len() == 2));
        assert_eq!(
            parse("MSET a 1 b").unwrap_err(),
            Error::WrongArity("mset".into())
        );
    }
}
