//! Connection and server commands: HELLO, CLIENT, COMMAND, CONFIG.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::error::Error;

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// Requested protocol version; `None` keeps the current one.
    pub proto: Option<i64>,
    /// AUTH username and password.
    pub auth: Option<(Bytes, Bytes)>,
    /// SETNAME.
    pub setname: Option<Bytes>,
}

pub(super) fn parse_hello(c: &mut Cursor) -> Result<Hello, Error> {
    let mut h = Hello::default();
    if c.remaining() == 0 {
        return Ok(h);
    }
    let v = c.next_bytes()?;
    h.proto = Some(crate::frame::parse_i64(&v).ok_or_else(|| {
        Error::Unavailable("Protocol version is not an integer or out of range".into())
    })?);
    while c.remaining() > 0 {
        if c.eat("AUTH") && c.remaining() >= 2 {
            h.auth = Some((c.next_bytes()?, c.next_bytes()?));
        } else if c.eat("SETNAME") && c.remaining() >= 1 {
            h.setname = Some(c.next_bytes()?);
        } else {
            let opt = c.next_opt().unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt)
            )));
        }
    }
    Ok(h)
}

/// `CLIENT` subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCmd {
    /// `CLIENT SETNAME name`
    SetName(Bytes),
    /// `CLIENT GETNAME`
    GetName,
    /// `CLIENT ID`
    Id,
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value`
    SetInfo {
        /// `lib-name` or `lib-ver`.
        attr: String,
        /// The value.
        value: Bytes,
    },
    /// `CLIENT INFO`
    Info,
    /// `CLIENT LIST [TYPE type] [ID id ...]`
    List(ClientFilter),
    /// `CLIENT KILL ip:port` (`old_form`) or `CLIENT KILL filter value ...`
    Kill {
        /// Which connections.
        filter: ClientFilter,
        /// The one-argument form, answered with OK or an error instead of a count.
        old_form: bool,
        /// Whether the connection sending it may be among them (`SKIPME`, default yes).
        skip_me: bool,
    },
    /// `CLIENT HELP`
    Help,
}

/// Which connections `CLIENT LIST` and `CLIENT KILL` name; every given condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientFilter {
    /// `ID id ...`
    pub ids: Vec<u64>,
    /// `TYPE normal|master|replica|pubsub`, lowercased.
    pub kind: Option<String>,
    /// `ADDR ip:port`
    pub addr: Option<String>,
    /// `LADDR ip:port`
    pub laddr: Option<String>,
    /// `USER username`
    pub user: Option<String>,
    /// `MAXAGE seconds`: connections older than this.
    pub max_age: Option<u64>,
}

fn client_type(c: &mut Cursor) -> Result<String, Error> {
    let t = lower(&c.next_bytes()?);
    match t.as_str() {
        "normal" | "master" | "replica" | "slave" | "pubsub" => Ok(t),
        _ => Err(Error::Verbatim(format!("ERR Unknown client type '{t}'"))),
    }
}

fn parse_client_list(c: &mut Cursor) -> Result<ClientFilter, Error> {
    let mut f = ClientFilter::default();
    while c.remaining() > 0 {
        let opt = lower(&c.next_bytes()?);
        match opt.as_str() {
            "type" if c.remaining() >= 1 => f.kind = Some(client_type(c)?),
            "id" if c.remaining() >= 1 => {
                while c.remaining() > 0 {
                    match c.next_int()? {
                        id if id > 0 => f.ids.push(id as u64),
                        _ => return Err(Error::Verbatim("ERR Invalid client ID".into())),
                    }
                }
            }
            _ => return Err(Error::Syntax),
        }
    }
    Ok(f)
}

fn parse_client_kill(c: &mut Cursor) -> Result<ClientCmd, Error> {
    let mut filter = ClientFilter::default();
    if c.remaining() == 1 {
        filter.addr = Some(String::from_utf8_lossy(&c.next_bytes()?).into_owned());
        return Ok(ClientCmd::Kill {
            filter,
            old_form: true,
            skip_me: false,
        });
    }
    if !c.remaining().is_multiple_of(2) {
        return Err(Error::Syntax);
    }
    let mut skip_me = true;
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    while c.remaining() > 0 {
        let opt = lower(&c.next_bytes()?);
        match opt.as_str() {
            "id" => match c.next_int() {
                Ok(id) if id > 0 => filter.ids.push(id as u64),
                _ => {
                    return Err(Error::Verbatim(
                        "ERR client-id should be greater than 0".into(),
                    ));
                }
            },
            "type" => filter.kind = Some(client_type(c)?),
            "addr" => filter.addr = Some(text(c.next_bytes()?)),
            "laddr" => filter.laddr = Some(text(c.next_bytes()?)),
            "user" => filter.user = Some(text(c.next_bytes()?)),
            "maxage" => match c.next_int() {
                Ok(n) if n >= 0 => filter.max_age = Some(n as u64),
                _ => return Err(Error::Syntax),
            },
            "skipme" => match lower(&c.next_bytes()?).as_str() {
                "yes" => skip_me = true,
                "no" => skip_me = false,
                _ => return Err(Error::Syntax),
            },
            _ => return Err(Error::Syntax),
        }
    }
    Ok(ClientCmd::Kill {
        filter,
        old_form: false,
        skip_me,
    })
}

fn sub_arity(cmd: &str, sub: &str) -> Error {
    Error::WrongArity(format!("{}|{}", cmd, sub))
}

pub(super) fn parse_client(c: &mut Cursor) -> Result<ClientCmd, Error> {
    let sub = lower(&c.next_bytes()?);
    let (cmd, want) = match sub.as_str() {
        "setname" => (ClientCmd::SetName(Bytes::new()), 1),
        "getname" => (ClientCmd::GetName, 0),
        "id" => (ClientCmd::Id, 0),
        "setinfo" => (
            ClientCmd::SetInfo {
                attr: String::new(),
                value: Bytes::new(),
            },
            2,
        ),
        "info" => (ClientCmd::Info, 0),
        "list" => (ClientCmd::List(ClientFilter::default()), usize::MAX),
        "kill" => {
            if c.remaining() == 0 {
                return Err(sub_arity("client", &sub));
            }
            return parse_client_kill(c);
        }
        "help" => (ClientCmd::Help, 0),
        _ => return Err(Error::UnknownSubcommand { cmd: "CLIENT", sub }),
    };
    if want != usize::MAX && c.remaining() != want {
        return Err(sub_arity("client", &sub));
    }
    Ok(match cmd {
        ClientCmd::SetName(_) => {
            let name = c.next_bytes()?;
            if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return Err(Error::BadClientName);
            }
            ClientCmd::SetName(name)
        }
        ClientCmd::SetInfo { .. } => {
            let attr = lower(&c.next_bytes()?);
            if attr != "lib-name" && attr != "lib-ver" {
                return Err(Error::Unavailable(format!("Unrecognized option '{attr}'")));
            }
            let value = c.next_bytes()?;
            if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
                return Err(Error::Unavailable(format!(
                    "{attr} cannot contain spaces, newlines or special characters."
                )));
            }
            ClientCmd::SetInfo { attr, value }
        }
        ClientCmd::List(_) => ClientCmd::List(parse_client_list(c)?),
        other => other,
    })
}

/// `COMMAND` subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandCmd {
    /// `COMMAND`: every command's info.
    All,
    /// `COMMAND COUNT`
    Count,
    /// `COMMAND INFO [name ...]`
    Info(Vec<Bytes>),
    /// `COMMAND DOCS [name ...]`
    Docs(Vec<Bytes>),
    /// `COMMAND LIST [FILTERBY ...]`
    List,
    /// `COMMAND GETKEYS command [arg ...]`
    GetKeys(Vec<Bytes>),
    /// `COMMAND HELP`
    Help,
}

pub(super) fn parse_command(c: &mut Cursor) -> Result<CommandCmd, Error> {
    let Some(sub) = c.next_opt() else {
        return Ok(CommandCmd::All);
    };
    let sub = lower(&sub);
    Ok(match sub.as_str() {
        "count" if c.remaining() == 0 => CommandCmd::Count,
        "info" => CommandCmd::Info(c.rest()),
        "docs" => CommandCmd::Docs(c.rest()),
        "list" => {
            c.rest();
            CommandCmd::List
        }
        "getkeys" if c.remaining() >= 1 => CommandCmd::GetKeys(c.rest()),
        "help" if c.remaining() == 0 => CommandCmd::Help,
        "count" | "getkeys" | "help" => return Err(sub_arity("command", &sub)),
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "COMMAND",
                sub,
            });
        }
    })
}

/// `CONFIG` subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigCmd {
    /// `CONFIG GET pattern [pattern ...]`
    Get(Vec<Bytes>),
    /// `CONFIG SET name value [name value ...]`
    Set(Vec<(String, Bytes)>),
    /// `CONFIG RESETSTAT`
    ResetStat,
    /// `CONFIG HELP`
    Help,
}

pub(super) fn parse_config(c: &mut Cursor) -> Result<ConfigCmd, Error> {
    let sub = lower(&c.next_bytes()?);
    Ok(match sub.as_str() {
        "get" if c.remaining() >= 1 => ConfigCmd::Get(c.rest()),
        "set" if c.remaining() >= 2 && c.remaining().is_multiple_of(2) => {
            let rest = c.rest();
            let mut pairs = Vec::new();
            for pair in rest.chunks(2) {
                pairs.push((lower(&pair[0]), pair[1].clone()));
            }
            ConfigCmd::Set(pairs)
        }
        "resetstat" if c.remaining() == 0 => ConfigCmd::ResetStat,
        "help" if c.remaining() == 0 => ConfigCmd::Help,
        "get" | "set" | "resetstat" | "help" => return Err(sub_arity("config", &sub)),
        _ => return Err(Error::UnknownSubcommand { cmd: "CONFIG", sub }),
    })
}

// Registry parsers (see `crate::table`).

/// `PING [message]`
pub(crate) fn ping(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Ping(c.next_opt()))
}

/// `ECHO message`
pub(crate) fn echo(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Echo(c.next_bytes()?))
}

/// `HELLO ...`
pub(crate) fn hello(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Hello(parse_hello(c)?))
}

/// `QUIT`
pub(crate) fn quit(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Quit)
}

/// `SELECT index`
pub(crate) fn select(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Select(c.next_int()?))
}

/// `CLIENT ...`
pub(crate) fn client(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Client(parse_client(c)?))
}

/// `COMMAND ...`
pub(crate) fn command(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Command(parse_command(c)?))
}

/// `INFO [section ...]`
pub(crate) fn info(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Info(c.rest().iter().map(|s| lower(s)).collect()))
}

/// `CONFIG ...`
pub(crate) fn config(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Config(parse_config(c)?))
}

/// `SAVE`, `BGSAVE [SCHEDULE]`
pub(crate) fn save(c: &mut Cursor) -> Result<Command, Error> {
    let background = c.name() == "bgsave";
    if background
        && c.next_opt()
            .is_some_and(|a| !a.eq_ignore_ascii_case(b"SCHEDULE"))
    {
        return Err(Error::Syntax);
    }
    Ok(Command::Save { background })
}

/// `ROLE`
pub(crate) fn role(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Role)
}

/// `SLOWLOG` subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlowlogCmd {
    /// `SLOWLOG GET [count]`: the newest `count` entries (10 by default; all when `None`).
    Get(Option<usize>),
    /// `SLOWLOG LEN`
    Len,
    /// `SLOWLOG RESET`
    Reset,
    /// `SLOWLOG HELP`
    Help,
}

/// `SLOWLOG GET [count] | LEN | RESET | HELP`
pub(crate) fn slowlog(c: &mut Cursor) -> Result<Command, Error> {
    let sub = lower(&c.next_bytes()?);
    let cmd = match (sub.as_str(), c.remaining()) {
        ("get", 0) => SlowlogCmd::Get(Some(10)),
        ("get", 1) => {
            // As Redis: one error for a count that is not a number or is below -1.
            match c.next_int().unwrap_or(-2) {
                -1 => SlowlogCmd::Get(None),
                n if n >= 0 => SlowlogCmd::Get(Some(n as usize)),
                _ => {
                    return Err(Error::Verbatim(
                        "ERR count should be greater than or equal to -1".into(),
                    ));
                }
            }
        }
        ("len", 0) => SlowlogCmd::Len,
        ("reset", 0) => SlowlogCmd::Reset,
        ("help", 0) => SlowlogCmd::Help,
        ("get" | "len" | "reset" | "help", _) => return Err(sub_arity("slowlog", &sub)),
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "SLOWLOG",
                sub,
            });
        }
    };
    Ok(Command::Slowlog(cmd))
}

/// `MONITOR`
pub(crate) fn monitor(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Monitor)
}

#[cfg(test)]
mod tests {
    use super::super::{Command, tests::parse};
    use super::*;

    #[test]
    fn hello() {
        assert_eq!(parse("HELLO").unwrap(), Command::Hello(Hello::default()));
        let Command::Hello(h) = parse("HELLO 3 AUTH default pw SETNAME me").unwrap() else {
            panic!()
        };
        assert_eq!(h.proto, Some(3));
        assert_eq!(h.setname.as_deref(), Some(&b"me"[..]));
        assert!(parse("HELLO x").is_err());
        assert!(parse("HELLO 3 BOGUS").is_err());
    }

    #[test]
    fn client() {
        assert_eq!(parse("CLIENT ID").unwrap(), Command::Client(ClientCmd::Id));
        assert_eq!(
            parse("client setname a b").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'client|setname' command"
        );
        assert_eq!(
            parse("CLIENT SETNAME a\tb").unwrap_err(),
            Error::BadClientName
        );
        assert_eq!(
            parse("CLIENT nope").unwrap_err().wire_text(),
            "ERR unknown subcommand 'nope'. Try CLIENT HELP."
        );
        assert!(matches!(
            parse("CLIENT SETINFO LIB-NAME redis-py").unwrap(),
            Command::Client(ClientCmd::SetInfo { .. })
        ));
    }

    #[test]
    fn client_kill_and_list_filters() {
        let kill = |s: &str| match parse(s).unwrap() {
            Command::Client(ClientCmd::Kill {
                filter,
                old_form,
                skip_me,
            }) => (filter, old_form, skip_me),
            other => panic!("{other:?}"),
        };
        let (f, old, skip) = kill("CLIENT KILL 127.0.0.1:5");
        assert_eq!(
            (f.addr.as_deref(), old, skip),
            (Some("127.0.0.1:5"), true, false)
        );
        let (f, old, skip) = kill("client kill ID 7 USER bob SKIPME no MAXAGE 3");
        assert_eq!(
            (f.ids, f.user.as_deref(), f.max_age),
            (vec![7], Some("bob"), Some(3))
        );
        assert!(!old && !skip);
        assert!(kill("CLIENT KILL TYPE normal").2);
        for bad in [
            "CLIENT KILL ID 7 USER",
            "CLIENT KILL NOPE x",
            "CLIENT KILL SKIPME maybe",
        ] {
            assert_eq!(parse(bad).unwrap_err(), Error::Syntax, "{bad}");
        }
        assert_eq!(
            parse("CLIENT KILL ID 0").unwrap_err().wire_text(),
            "ERR client-id should be greater than 0"
        );
        assert_eq!(
            parse("CLIENT KILL TYPE robots").unwrap_err().wire_text(),
            "ERR Unknown client type 'robots'"
        );
        match parse("CLIENT LIST TYPE normal ID 3 4").unwrap() {
            Command::Client(ClientCmd::List(f)) => {
                assert_eq!((f.kind.as_deref(), f.ids), (Some("normal"), vec![3, 4]))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("CLIENT LIST ID 0").unwrap_err().wire_text(),
            "ERR Invalid client ID"
        );
    }

    #[test]
    fn slowlog_and_monitor() {
        use super::SlowlogCmd;
        assert_eq!(
            parse("SLOWLOG GET").unwrap(),
            Command::Slowlog(SlowlogCmd::Get(Some(10)))
        );
        assert_eq!(
            parse("slowlog get -1").unwrap(),
            Command::Slowlog(SlowlogCmd::Get(None))
        );
        assert_eq!(
            parse("SLOWLOG LEN").unwrap(),
            Command::Slowlog(SlowlogCmd::Len)
        );
        for bad in ["SLOWLOG GET -2", "SLOWLOG GET x"] {
            assert_eq!(
                parse(bad).unwrap_err().wire_text(),
                "ERR count should be greater than or equal to -1"
            );
        }
        assert_eq!(
            parse("SLOWLOG RESET now").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'slowlog|reset' command"
        );
        assert_eq!(parse("MONITOR").unwrap(), Command::Monitor);
    }

    #[test]
    fn command_and_config() {
        assert_eq!(parse("COMMAND").unwrap(), Command::Command(CommandCmd::All));
        assert_eq!(
            parse("command count").unwrap(),
            Command::Command(CommandCmd::Count)
        );
        assert!(matches!(parse("COMMAND GETKEYS GET k").unwrap(),
                         Command::Command(CommandCmd::GetKeys(v)) if v.len() == 2));
        assert!(parse("COMMAND GETKEYS").is_err());
        assert!(matches!(parse("CONFIG SET a 1 b 2").unwrap(),
                         Command::Config(ConfigCmd::Set(v)) if v.len() == 2));
        assert!(parse("CONFIG SET a").is_err());
        assert_eq!(
            parse("CONFIG BOGUS").unwrap_err().wire_text(),
            "ERR unknown subcommand 'bogus'. Try CONFIG HELP."
        );
    }
}
