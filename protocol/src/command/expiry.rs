//! Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX/XX/GT/LT), PERSIST, TTL,
//! PTTL, EXPIRETIME, PEXPIRETIME and GETEX, with Redis 7's order of checks and error texts.

use bytes::Bytes;

use super::{Command, Cursor};
use crate::{error::Error, frame::parse_i64};

/// The conditions of an EXPIRE-family command (NX alone, or any of XX and one of GT/LT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireCond {
    /// NX: only when the key has no deadline.
    pub nx: bool,
    /// XX: only when the key has a deadline.
    pub xx: bool,
    /// GT: only when the new deadline is later (no deadline counts as infinite).
    pub gt: bool,
    /// LT: only when the new deadline is earlier (no deadline counts as infinite).
    pub lt: bool,
}

impl ExpireCond {
    /// The conditions as bits (NX 1, XX 2, GT 4, LT 8), as the log stores them.
    pub fn bits(self) -> u8 {
        self.nx as u8 | (self.xx as u8) << 1 | (self.gt as u8) << 2 | (self.lt as u8) << 3
    }

    /// The conditions from [`ExpireCond::bits`].
    pub fn from_bits(b: u8) -> Self {
        ExpireCond {
            nx: b & 1 != 0,
            xx: b & 2 != 0,
            gt: b & 4 != 0,
            lt: b & 8 != 0,
        }
    }

    /// Whether a key whose deadline is `current` (None: none) takes the new deadline `new`
    /// (both Unix ms), as Redis decides.
    pub fn allows(self, current: Option<i64>, new: i64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|c| new <= c)
            || self.lt && current.is_some_and(|c| new >= c))
    }
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its PEXPIRE, EXPIREAT, PEXPIREAT forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpireArgs {
    /// The key.
    pub key: Bytes,
    /// The time given, in milliseconds (seconds already multiplied).
    pub ms: i64,
    /// EXPIREAT / PEXPIREAT: `ms` is a Unix time; else it counts from now.
    pub absolute: bool,
    /// NX / XX / GT / LT.
    pub cond: ExpireCond,
    /// The command's name, for its `invalid expire time` error.
    pub name: &'static str,
}

/// A deadline change GETEX asks for. Its time is checked only once the key is found to be a
/// string (Redis's order: `GETEX missing EX 0` is nil).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetExChange {
    /// EX / PX / EXAT / PXAT and the time as given.
    Time {
        /// EX / EXAT: seconds, else milliseconds.
        secs: bool,
        /// EXAT / PXAT: a Unix time, else from now.
        absolute: bool,
        /// The time as sent.
        raw: Bytes,
    },
    /// PERSIST: remove the deadline.
    Persist,
}

impl GetExChange {
    /// The new deadline (Unix ms; `None`: PERSIST) for a command taken at `now_ms`, or
    /// Redis's error for the time given.
    pub fn deadline(&self, now_ms: i64) -> Result<Option<i64>, Error> {
        let Self::Time {
            secs,
            absolute,
            raw,
        } = self
        else {
            return Ok(None);
        };
        let n = parse_i64(raw).ok_or(Error::NotInteger)?;
        let bad = Error::InvalidExpire("getex");
        if n <= 0 {
            return Err(bad);
        }
        let ms = if *secs {
            n.checked_mul(1000).ok_or(bad.clone())?
        } else {
            n
        };
        match absolute {
            true => Ok(Some(ms)),
            false => ms.checked_add(now_ms).map(Some).ok_or(bad),
        }
    }
}

/// What TTL-family command reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlArgs {
    /// The key.
    pub key: Bytes,
    /// PTTL / PEXPIRETIME: milliseconds, else seconds.
    pub millis: bool,
    /// EXPIRETIME / PEXPIRETIME: the Unix time, else the time left.
    pub absolute: bool,
}

/// Parses NX/XX/GT/LT as Redis does: every option is read (a repeated one is allowed),
/// then the combinations are checked.
fn parse_cond(opts: &[Bytes]) -> Result<ExpireCond, Error> {
    let mut cond = ExpireCond::default();
    for o in opts {
        match o.to_ascii_uppercase().as_slice() {
            b"NX" => cond.nx = true,
            b"XX" => cond.xx = true,
            b"GT" => cond.gt = true,
            b"LT" => cond.lt = true,
            _ => {
                return Err(Error::Verbatim(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )));
            }
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(Error::Verbatim(
            "ERR NX and XX, GT or LT options at the same time are not compatible".into(),
        ));
    }
    if cond.gt && cond.lt {
        return Err(Error::Verbatim(
            "ERR GT and LT options at the same time are not compatible".into(),
        ));
    }
    Ok(cond)
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`
pub(crate) fn expire(c: &mut Cursor) -> Result<Command, Error> {
    let name = c.name();
    let key = c.next_bytes()?;
    let when = c.next_bytes()?;
    // As Redis: the options first, then the number.
    let cond = parse_cond(&c.rest())?;
    let n = parse_i64(&when).ok_or(Error::NotInteger)?;
    let seconds = !name.starts_with('p');
    let ms = if seconds {
        n.checked_mul(1000).ok_or(Error::InvalidExpire(name))?
    } else {
        n
    };
    Ok(Command::Expire(ExpireArgs {
        key,
        ms,
        absolute: name.ends_with("at"),
        cond,
        name,
    }))
}

/// `PERSIST key`
pub(crate) fn persist(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Persist(c.next_bytes()?))
}

/// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`
pub(crate) fn ttl(c: &mut Cursor) -> Result<Command, Error> {
    let name = c.name();
    Ok(Command::Ttl(TtlArgs {
        key: c.next_bytes()?,
        millis: name.starts_with('p'),
        absolute: name.ends_with("time"),
    }))
}

/// `GETEX key [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-ms |
/// PERSIST]`
pub(crate) fn getex(c: &mut Cursor) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    let mut change = None;
    while let Some(opt) = c.next_opt() {
        let word = opt.to_ascii_uppercase();
        match word.as_slice() {
            b"PERSIST" if change.is_none() => change = Some(GetExChange::Persist),
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if change.is_none() => {
                change = Some(GetExChange::Time {
                    secs: word.starts_with(b"E"),
                    absolute: word.ends_with(b"AT"),
                    raw: c.next_opt().ok_or(Error::Syntax)?,
                });
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::GetEx { key, change })
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    fn expire(s: &str) -> Result<ExpireArgs, Error> {
        match parse(s)? {
            Command::Expire(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expire_forms_and_units() {
        let a = expire("EXPIRE k 10").unwrap();
        let none = ExpireCond::default();
        assert_eq!(
            (a.ms, a.absolute, a.cond, a.name),
            (10_000, false, none, "expire")
        );
        let a = expire("pexpireat k 5 gt").unwrap();
        assert_eq!((a.ms, a.absolute, a.cond.bits()), (5, true, 4));
        assert_eq!(expire("EXPIRE k -1").unwrap().ms, -1000);
        let c = expire("EXPIRE k 1 XX LT").unwrap().cond;
        assert_eq!((c.bits(), ExpireCond::from_bits(c.bits())), (10, c));
        assert_eq!(expire("EXPIRE k 1 NX NX").unwrap().cond.bits(), 1);
    }

    #[test]
    fn conditions_as_redis_decides() {
        let c = |b| ExpireCond::from_bits(b);
        assert!(c(0).allows(None, 5) && c(0).allows(Some(9), 5));
        assert!(c(1).allows(None, 5) && !c(1).allows(Some(9), 5));
        assert!(!c(2).allows(None, 5) && c(2).allows(Some(9), 5));
        // GT: no deadline is infinite, so never later; LT: always earlier.
        assert!(!c(4).allows(None, 5) && c(4).allows(Some(4), 5) && !c(4).allows(Some(5), 5));
        assert!(c(8).allows(None, 5) && c(8).allows(Some(6), 5) && !c(8).allows(Some(5), 5));
        assert!(!c(10).allows(None, 5) && c(10).allows(Some(6), 5));
    }

    #[test]
    fn expire_errors_in_redis_order() {
        let text = |s: &str| expire(s).unwrap_err().wire_text();
        assert_eq!(
            text("EXPIRE k x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(text("EXPIRE k x FOO"), "ERR Unsupported option FOO");
        assert_eq!(
            text("EXPIRE k 1 NX GT"),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            text("EXPIRE k 1 GT LT"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            text("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            text("EXPIRE"),
            "ERR wrong number of arguments for 'expire' command"
        );
    }

    #[test]
    fn ttl_family_and_getex() {
        assert_eq!(
            parse("PEXPIRETIME k").unwrap(),
            Command::Ttl(TtlArgs {
                key: Bytes::from_static(b"k"),
                millis: true,
                absolute: true
            })
        );
        let getex = |s: &str| match parse(s) {
            Ok(Command::GetEx { change, .. }) => {
                Ok(change.map(|c| c.deadline(1000).map_err(|e| e.wire_text())))
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.wire_text()),
        };
        assert_eq!(getex("GETEX k"), Ok(None));
        assert_eq!(getex("GETEX k ex 2"), Ok(Some(Ok(Some(3000)))));
        assert_eq!(getex("GETEX k PXAT 7"), Ok(Some(Ok(Some(7)))));
        assert_eq!(getex("GETEX k persist"), Ok(Some(Ok(None))));
        assert_eq!(getex("GETEX k EX 1 PX 1"), Err("ERR syntax error".into()));
        assert_eq!(
            getex("GETEX k PERSIST EX 1"),
            Err("ERR syntax error".into())
        );
        assert_eq!(getex("GETEX k EX"), Err("ERR syntax error".into()));
        // The time is checked after the key (by the caller, with `deadline`).
        let int = "ERR value is not an integer or out of range".to_string();
        assert_eq!(getex("GETEX k EX x"), Ok(Some(Err(int))));
        let bad = "ERR invalid expire time in 'getex' command".to_string();
        assert_eq!(getex("GETEX k EX 0"), Ok(Some(Err(bad.clone()))));
        assert_eq!(getex("GETEX k PX 9223372036854775807"), Ok(Some(Err(bad))));
    }
}
