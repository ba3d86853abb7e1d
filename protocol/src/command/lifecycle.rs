//! Server commands about time and the process: TIME, LASTSAVE, SHUTDOWN and DEBUG SLEEP.

use std::time::Duration;

use super::{Command, Cursor, lower};
use crate::error::Error;

/// `TIME`
pub(crate) fn time(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Time)
}

/// `LASTSAVE`
pub(crate) fn lastsave(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::LastSave)
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`: every write is in the log before it is
/// acknowledged, so SAVE and NOSAVE stop the same way; NOW and FORCE change nothing either.
pub(crate) fn shutdown(c: &mut Cursor) -> Result<Command, Error> {
    let (mut save, mut nosave, mut abort, mut other) = (false, false, false, false);
    for opt in c.rest() {
        match lower(&opt).as_str() {
            "save" => save = true,
            "nosave" => nosave = true,
            "now" | "force" => other = true,
            "abort" => abort = true,
            _ => return Err(Error::Syntax),
        }
    }
    if abort && (save || nosave || other) || save && nosave {
        return Err(Error::Syntax);
    }
    Ok(Command::Shutdown { abort })
}

/// `DEBUG SLEEP seconds` (a float, as Redis reads it); the other DEBUG subcommands are not
/// served.
pub(crate) fn debug(c: &mut Cursor) -> Result<Command, Error> {
    let sub = c.next_bytes()?;
    let args = c.rest();
    match (lower(&sub).as_str(), &args[..]) {
        ("sleep", [secs]) => {
            // As Redis's strtod: what does not parse is 0.
            let s: f64 = std::str::from_utf8(secs)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|s: &f64| s.is_finite() && *s > 0.0)
                .unwrap_or(0.0);
            Ok(Command::DebugSleep(Duration::from_secs_f64(s.min(1e9))))
        }
        _ => Err(Error::Verbatim(format!(
            "ERR Unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(&sub)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn shutdown_options_as_redis() {
        assert_eq!(
            parse("SHUTDOWN").unwrap(),
            Command::Shutdown { abort: false }
        );
        assert_eq!(
            parse("shutdown nosave now force").unwrap(),
            Command::Shutdown { abort: false }
        );
        assert_eq!(
            parse("SHUTDOWN ABORT").unwrap(),
            Command::Shutdown { abort: true }
        );
        for bad in [
            "SHUTDOWN SAVE NOSAVE",
            "SHUTDOWN ABORT NOW",
            "SHUTDOWN LATER",
        ] {
            assert_eq!(parse(bad).unwrap_err(), Error::Syntax, "{bad}");
        }
    }

    #[test]
    fn debug_sleep_only() {
        assert_eq!(
            parse("DEBUG SLEEP 0.25").unwrap(),
            Command::DebugSleep(Duration::from_millis(250))
        );
        assert_eq!(
            parse("DEBUG sleep x").unwrap(),
            Command::DebugSleep(Duration::ZERO)
        );
        assert_eq!(
            parse("DEBUG OBJECT k").unwrap_err().wire_text(),
            "ERR Unknown subcommand or wrong number of arguments for 'OBJECT'. Try DEBUG HELP."
        );
    }
}
