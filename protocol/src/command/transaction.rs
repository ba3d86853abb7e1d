//! Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH.

use super::{Command, Cursor};
use crate::error::Error;

/// `MULTI`, `EXEC`, `DISCARD`, `UNWATCH`
pub(crate) fn bare(c: &mut Cursor) -> Result<Command, Error> {
    Ok(match c.name() {
        "multi" => Command::Multi,
        "exec" => Command::Exec,
        "discard" => Command::Discard,
        _ => Command::Unwatch,
    })
}

/// `WATCH key [key ...]`
pub(crate) fn watch(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Watch(c.rest()))
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn transaction_commands() {
        assert_eq!(parse("MULTI").unwrap(), Command::Multi);
        assert_eq!(parse("exec").unwrap(), Command::Exec);
        assert_eq!(parse("DISCARD").unwrap(), Command::Discard);
        assert_eq!(parse("UNWATCH").unwrap(), Command::Unwatch);
        assert!(matches!(parse("WATCH a b").unwrap(), Command::Watch(k) if k.len() == 2));
        assert!(parse("WATCH").is_err() && parse("MULTI x").is_err());
    }
}
