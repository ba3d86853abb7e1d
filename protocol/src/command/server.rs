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
    /// `CLIENT LIST`
    List,
    /// `CLIENT HELP`
    Help,
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
        "list" => (ClientCmd::List, usize::MAX),
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
        ClientCmd::List => {
            // CLIENT LIST [TYPE ...] [ID ...]: filters are accepted and ignored.
            c.rest();
            ClientCmd::List
        }
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
