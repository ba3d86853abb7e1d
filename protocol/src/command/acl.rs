//! `AUTH` and the `ACL` family: Redis 7's access-control commands, parsed into [`AclCmd`].
//! The rules a user is given (`on`, `>pass`, `~pattern`, `+@read`, ...) stay raw arguments
//! here; the server's ACL module gives them meaning.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::error::Error;

/// `ACL` subcommands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclCmd {
    /// `ACL SETUSER name [rule ...]`
    SetUser {
        /// The user.
        name: Bytes,
        /// Its rules, in order.
        rules: Vec<Bytes>,
    },
    /// `ACL GETUSER name`
    GetUser(Bytes),
    /// `ACL DELUSER name [name ...]`
    DelUser(Vec<Bytes>),
    /// `ACL LIST`
    List,
    /// `ACL USERS`
    Users,
    /// `ACL WHOAMI`
    WhoAmI,
    /// `ACL CAT [category]`
    Cat(Option<Bytes>),
    /// `ACL LOG [count | RESET]`
    Log(AclLog),
    /// `ACL LOAD`
    Load,
    /// `ACL SAVE`
    Save,
    /// `ACL GENPASS [bits]`
    GenPass(Option<i64>),
    /// `ACL HELP`
    Help,
}

/// What `ACL LOG` was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclLog {
    /// The newest `n` entries (10 by default).
    Show(usize),
    /// `RESET`: forget every entry.
    Reset,
}

/// Every `ACL` subcommand, lower case, as `ACL HELP` and the registry list them.
pub(crate) const SUBCOMMANDS: &[&str] = &[
    "setuser", "getuser", "deluser", "list", "users", "whoami", "cat", "log", "load", "save",
    "genpass", "help",
];

fn sub_arity(sub: &str) -> Error {
    Error::WrongArity(format!("acl|{sub}"))
}

/// `AUTH [username] password`
pub(crate) fn auth(c: &mut Cursor) -> Result<Command, Error> {
    let first = c.next_bytes()?;
    match c.next_opt() {
        None => Ok(Command::Auth {
            user: None,
            pass: first,
        }),
        Some(pass) => Ok(Command::Auth {
            user: Some(first),
            pass,
        }),
    }
}

/// `ACL subcommand ...`
pub(crate) fn acl(c: &mut Cursor) -> Result<Command, Error> {
    let sub = lower(&c.next_bytes()?);
    let n = c.remaining();
    let cmd = match sub.as_str() {
        "setuser" if n >= 1 => AclCmd::SetUser {
            name: c.next_bytes()?,
            rules: c.rest(),
        },
        "getuser" if n == 1 => AclCmd::GetUser(c.next_bytes()?),
        "deluser" if n >= 1 => AclCmd::DelUser(c.rest()),
        "list" if n == 0 => AclCmd::List,
        "users" if n == 0 => AclCmd::Users,
        "whoami" if n == 0 => AclCmd::WhoAmI,
        "cat" if n <= 1 => AclCmd::Cat(c.next_opt()),
        "log" if n <= 1 => match c.next_opt() {
            None => AclCmd::Log(AclLog::Show(10)),
            Some(a) if a.eq_ignore_ascii_case(b"RESET") => AclCmd::Log(AclLog::Reset),
            Some(a) => match crate::frame::parse_i64(&a) {
                Some(n) if n >= 0 => AclCmd::Log(AclLog::Show(n as usize)),
                _ => return Err(Error::NotInteger),
            },
        },
        "load" if n == 0 => AclCmd::Load,
        "save" if n == 0 => AclCmd::Save,
        "genpass" if n <= 1 => AclCmd::GenPass(match c.next_opt() {
            None => None,
            Some(a) => Some(crate::frame::parse_i64(&a).ok_or(Error::NotInteger)?),
        }),
        "help" if n == 0 => AclCmd::Help,
        s if SUBCOMMANDS.contains(&s) => return Err(sub_arity(s)),
        _ => return Err(Error::UnknownSubcommand { cmd: "ACL", sub }),
    };
    Ok(Command::Acl(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::parse;

    #[test]
    fn auth_with_and_without_user() {
        assert_eq!(
            parse("AUTH pw").unwrap(),
            Command::Auth {
                user: None,
                pass: "pw".into()
            }
        );
        assert_eq!(
            parse("AUTH u pw").unwrap(),
            Command::Auth {
                user: Some("u".into()),
                pass: "pw".into()
            }
        );
        assert_eq!(
            parse("AUTH").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'auth' command"
        );
        assert!(parse("AUTH a b c").is_err());
    }

    #[test]
    fn acl_subcommands() {
        assert_eq!(
            parse("ACL SETUSER alice on >pw ~k* +get").unwrap(),
            Command::Acl(AclCmd::SetUser {
                name: "alice".into(),
                rules: ["on", ">pw", "~k*", "+get"]
                    .iter()
                    .map(|r| Bytes::from(r.to_string()))
                    .collect(),
            })
        );
        assert_eq!(
            parse("ACL LOG RESET").unwrap(),
            Command::Acl(AclCmd::Log(AclLog::Reset))
        );
        assert_eq!(
            parse("ACL LOG 3").unwrap(),
            Command::Acl(AclCmd::Log(AclLog::Show(3)))
        );
        assert_eq!(
            parse("ACL GETUSER").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'acl|getuser' command"
        );
        assert_eq!(
            parse("ACL NOPE").unwrap_err().wire_text(),
            "ERR unknown subcommand 'nope'. Try ACL HELP."
        );
    }
}
