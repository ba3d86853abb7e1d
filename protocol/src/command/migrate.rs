//! Moving keys between nodes, as Redis Cluster resharding does: MIGRATE (what
//! `redis-cli --cluster reshard` sends to the source node), RESTORE / RESTORE-ASKING (what
//! the source sends to the target) and DUMP. The payload is shardai's own serialization of a
//! value, not Redis's RDB format: it moves keys between shardai nodes.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::{error::Error, frame::parse_i64};

/// `MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key [key ...]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrate {
    /// Target host.
    pub host: String,
    /// Target port.
    pub port: u16,
    /// The keys to move.
    pub keys: Vec<Bytes>,
    /// Milliseconds allowed for each exchange with the target.
    pub timeout_ms: u64,
    /// Keep the keys here too.
    pub copy: bool,
    /// Replace existing keys on the target.
    pub replace: bool,
    /// AUTH / AUTH2 credentials for the target: (username, password).
    pub auth: Option<(Option<Bytes>, Bytes)>,
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]` (and RESTORE-ASKING).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restore {
    /// The key.
    pub key: Bytes,
    /// Time to live in ms (0: none), or an absolute Unix time in ms with ABSTTL.
    pub ttl: u64,
    /// ABSTTL given.
    pub absolute: bool,
    /// The serialized value (from DUMP or MIGRATE).
    pub payload: Bytes,
    /// Replace an existing key.
    pub replace: bool,
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn parse_migrate(c: &mut Cursor) -> Result<Command, Error> {
    let host = text(&c.next_bytes()?);
    let port = c.next_int()?;
    let port = u16::try_from(port).map_err(|_| Error::NotInteger)?;
    let key = c.next_bytes()?;
    let _db = c.next_int()?;
    let timeout = c.next_int()?;
    let mut m = Migrate {
        host,
        port,
        keys: Vec::new(),
        timeout_ms: if timeout <= 0 { 1000 } else { timeout as u64 },
        copy: false,
        replace: false,
        auth: None,
    };
    while let Some(opt) = c.next_opt() {
        match lower(&opt).as_str() {
            "copy" => m.copy = true,
            "replace" => m.replace = true,
            "auth" => m.auth = Some((None, c.next_opt().ok_or(Error::Syntax)?)),
            "auth2" => {
                let user = c.next_opt().ok_or(Error::Syntax)?;
                m.auth = Some((Some(user), c.next_opt().ok_or(Error::Syntax)?));
            }
            "keys" => {
                if !key.is_empty() {
                    return Err(Error::Verbatim(
                        "ERR When using MIGRATE KEYS option, the key argument must be set to \
                         the empty string"
                            .into(),
                    ));
                }
                m.keys = c.rest();
            }
            _ => return Err(Error::Syntax),
        }
    }
    if !key.is_empty() {
        m.keys = vec![key];
    }
    Ok(Command::Migrate(m))
}

pub(super) fn parse_restore(c: &mut Cursor) -> Result<Command, Error> {
    let key = c.next_bytes()?;
    let ttl = c.next_bytes()?;
    let ttl = parse_i64(&ttl)
        .filter(|t| *t >= 0)
        .ok_or_else(|| Error::Verbatim("ERR Invalid TTL value, must be >= 0".into()))?;
    let payload = c.next_bytes()?;
    let mut r = Restore {
        key,
        ttl: ttl as u64,
        absolute: false,
        payload,
        replace: false,
    };
    while let Some(opt) = c.next_opt() {
        match lower(&opt).as_str() {
            "replace" => r.replace = true,
            "absttl" => r.absolute = true,
            "idletime" | "freq" => {
                c.next_opt().ok_or(Error::Syntax)?;
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(Command::Restore(r))
}

// Registry parsers (see `crate::table`).

/// `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH ...] [KEYS ...]`
pub(crate) fn migrate(c: &mut Cursor) -> Result<Command, Error> {
    parse_migrate(c)
}

/// `RESTORE` / `RESTORE-ASKING key ttl payload [REPLACE] [ABSTTL] ...`
pub(crate) fn restore(c: &mut Cursor) -> Result<Command, Error> {
    parse_restore(c)
}

/// `DUMP key`
pub(crate) fn dump(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Dump(c.next_bytes()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::lookup;

    fn parse(s: &str) -> Result<Command, Error> {
        let argv: Vec<Bytes> = s
            .split(' ')
            .map(|a| {
                Bytes::from(if a == "\"\"" {
                    String::new()
                } else {
                    a.to_string()
                })
            })
            .collect();
        Command::parse_for(lookup(&argv[0]).unwrap(), argv)
    }

    #[test]
    fn migrate_as_redis_cli_sends_it() {
        let Command::Migrate(m) = parse("MIGRATE 127.0.0.1 7002 \"\" 0 60000 KEYS a b").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (m.host.as_str(), m.port, m.timeout_ms),
            ("127.0.0.1", 7002, 60000)
        );
        assert_eq!(m.keys, vec![Bytes::from("a"), Bytes::from("b")]);
        let Command::Migrate(m) = parse("MIGRATE h 1 k 0 10 COPY REPLACE AUTH pw").unwrap() else {
            panic!()
        };
        assert!(m.copy && m.replace && m.keys == vec![Bytes::from("k")]);
        assert!(parse("MIGRATE h 1 k 0 10 KEYS a").is_err());
        assert!(parse("MIGRATE h 1 k 0 10 BOGUS").is_err());
    }

    #[test]
    fn restore_options() {
        let Command::Restore(r) = parse("RESTORE k 0 xyz REPLACE").unwrap() else {
            panic!()
        };
        assert!(r.replace && r.ttl == 0 && r.payload == "xyz");
        assert!(parse("RESTORE k -1 xyz").is_err());
        assert!(matches!(
            parse("RESTORE-ASKING k 5 p ABSTTL").unwrap(),
            Command::Restore(Restore {
                absolute: true,
                ttl: 5,
                ..
            })
        ));
    }
}
