//! OBJECT and MEMORY (what a key holds and how), WAIT and WAITAOF (how many replicas have
//! this connection's writes), with Redis 7's errors.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::{error::Error, frame::parse_i64};

/// `OBJECT ENCODING | REFCOUNT | FREQ | IDLETIME key`, `OBJECT HELP`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectCmd {
    /// ENCODING key
    Encoding(Bytes),
    /// REFCOUNT key
    RefCount(Bytes),
    /// FREQ key
    Freq(Bytes),
    /// IDLETIME key
    IdleTime(Bytes),
    /// HELP
    Help,
}

/// `MEMORY USAGE key [SAMPLES count]`, `MEMORY HELP`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryCmd {
    /// USAGE key
    Usage(Bytes),
    /// HELP
    Help,
}

/// The key a container command's subcommand names (`OBJECT ENCODING key`, `MEMORY USAGE
/// key`), for routing and `COMMAND GETKEYS`.
pub fn subcommand_key<'a>(name: &str, argv: &'a [Bytes]) -> Option<&'a Bytes> {
    let sub = lower(argv.get(1)?);
    match (name, sub.as_str()) {
        ("object", "encoding" | "refcount" | "freq" | "idletime") | ("memory", "usage") => {
            argv.get(2)
        }
        _ => None,
    }
}

fn arity(cmd: &str, sub: &str) -> Error {
    Error::WrongArity(format!("{cmd}|{sub}"))
}

/// `OBJECT subcommand ...`
pub(crate) fn object(c: &mut Cursor) -> Result<Command, Error> {
    let sub_raw = c.next_bytes()?;
    let sub = lower(&sub_raw);
    let args = c.rest();
    let key = || match &args[..] {
        [k] => Ok(k.clone()),
        _ => Err(arity("object", &sub)),
    };
    Ok(Command::Object(match sub.as_str() {
        "encoding" => ObjectCmd::Encoding(key()?),
        "refcount" => ObjectCmd::RefCount(key()?),
        "freq" => ObjectCmd::Freq(key()?),
        "idletime" => ObjectCmd::IdleTime(key()?),
        "help" if args.is_empty() => ObjectCmd::Help,
        "help" => return Err(arity("object", "help")),
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "OBJECT",
                sub: String::from_utf8_lossy(&sub_raw).into_owned(),
            });
        }
    }))
}

/// `MEMORY subcommand ...`
pub(crate) fn memory(c: &mut Cursor) -> Result<Command, Error> {
    let sub_raw = c.next_bytes()?;
    let sub = lower(&sub_raw);
    let args = c.rest();
    Ok(Command::Memory(match sub.as_str() {
        "usage" => {
            let (key, opts) = args.split_first().ok_or_else(|| arity("memory", "usage"))?;
            match opts {
                [] => {}
                [o, n] if o.eq_ignore_ascii_case(b"SAMPLES") => {
                    if parse_i64(n).ok_or(Error::NotInteger)? < 0 {
                        return Err(Error::Syntax);
                    }
                }
                _ => return Err(Error::Syntax),
            }
            MemoryCmd::Usage(key.clone())
        }
        "help" if args.is_empty() => MemoryCmd::Help,
        "help" => return Err(arity("memory", "help")),
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "MEMORY",
                sub: String::from_utf8_lossy(&sub_raw).into_owned(),
            });
        }
    }))
}

/// A timeout in milliseconds as Redis reads WAIT's.
fn timeout(b: &[u8]) -> Result<u64, Error> {
    let t = parse_i64(b)
        .ok_or_else(|| Error::Verbatim("ERR timeout is not an integer or out of range".into()))?;
    u64::try_from(t).map_err(|_| Error::Verbatim("ERR timeout is negative".into()))
}

/// `WAIT numreplicas timeout`
pub(crate) fn wait(c: &mut Cursor) -> Result<Command, Error> {
    let replicas = c.next_int()?;
    let timeout_ms = timeout(&c.next_bytes()?)?;
    Ok(Command::Wait {
        local: None,
        replicas,
        timeout_ms,
    })
}

/// `WAITAOF numlocal numreplicas timeout`
pub(crate) fn waitaof(c: &mut Cursor) -> Result<Command, Error> {
    let local = c.next_int()?;
    let replicas = c.next_int()?;
    let timeout_ms = timeout(&c.next_bytes()?)?;
    Ok(Command::Wait {
        local: Some(local),
        replicas,
        timeout_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn subcommands_keys_and_errors() {
        let k = Bytes::from_static(b"k");
        assert_eq!(
            parse("OBJECT encoding k").unwrap(),
            Command::Object(ObjectCmd::Encoding(k.clone()))
        );
        assert_eq!(
            parse("MEMORY USAGE k SAMPLES 5").unwrap(),
            Command::Memory(MemoryCmd::Usage(k))
        );
        let text = |s: &str| parse(s).unwrap_err().wire_text();
        assert_eq!(
            text("OBJECT ENCODING"),
            "ERR wrong number of arguments for 'object|encoding' command"
        );
        assert_eq!(
            text("OBJECT foo k"),
            "ERR unknown subcommand 'foo'. Try OBJECT HELP."
        );
        assert_eq!(
            text("MEMORY foo"),
            "ERR unknown subcommand 'foo'. Try MEMORY HELP."
        );
        assert_eq!(
            text("MEMORY USAGE k SAMPLES x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(text("MEMORY USAGE k foo"), "ERR syntax error");
        let argv: Vec<Bytes> = ["object", "FREQ", "k"]
            .map(|s| Bytes::from_static(s.as_bytes()))
            .to_vec();
        assert_eq!(subcommand_key("object", &argv), Some(&argv[2]));
        assert_eq!(subcommand_key("object", &argv[..2]), None);
    }

    #[test]
    fn wait_timeouts() {
        let text = |s: &str| parse(s).unwrap_err().wire_text();
        assert_eq!(
            text("WAIT 0 x"),
            "ERR timeout is not an integer or out of range"
        );
        assert_eq!(
            text("WAIT x 0"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(text("WAIT 0 -1"), "ERR timeout is negative");
        assert_eq!(
            parse("WAITAOF 1 0 10").unwrap(),
            Command::Wait {
                local: Some(1),
                replicas: 0,
                timeout_ms: 10
            }
        );
    }
}
