//! COMMAND, COMMAND COUNT/INFO/DOCS/LIST/GETKEYS: the command table in Redis 7's formats.

use bytes::Bytes;
use shardai_protocol::{
    Error, Reply,
    command::CommandCmd,
    table::{self, COMMANDS, CommandSpec},
};

fn status_set(items: &'static [&'static str]) -> Reply {
    Reply::Set(items.iter().map(|s| Reply::Status(s)).collect())
}

/// Redis 7 key specifications for a command with fixed key positions.
fn key_specs(c: &CommandSpec) -> Reply {
    if c.first_key <= 0 {
        return Reply::Array(vec![]);
    }
    let access = if c.is_write() { "RW" } else { "RO" };
    let lastkey = if c.last_key < 0 {
        c.last_key
    } else {
        c.last_key - c.first_key
    };
    let spec = |pairs: Vec<(&'static str, Reply)>| {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::bulk(k), v))
                .collect(),
        )
    };
    Reply::Array(vec![spec(vec![
        ("flags", Reply::Set(vec![Reply::Status(access)])),
        (
            "begin_search",
            spec(vec![
                ("type", Reply::bulk("index")),
                (
                    "spec",
                    spec(vec![("index", Reply::Int(c.first_key as i64))]),
                ),
            ]),
        ),
        (
            "find_keys",
            spec(vec![
                ("type", Reply::bulk("range")),
                (
                    "spec",
                    spec(vec![
                        ("lastkey", Reply::Int(lastkey as i64)),
                        ("keystep", Reply::Int(c.step as i64)),
                        ("limit", Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ])])
}

/// The ten-element COMMAND INFO reply of Redis 7.
fn info_of(c: &CommandSpec) -> Reply {
    let subs = c
        .subcommands
        .iter()
        .map(|name| {
            Reply::Array(vec![
                Reply::bulk(*name),
                Reply::Int(-2),
                Reply::Set(vec![]),
                Reply::Int(0),
                Reply::Int(0),
                Reply::Int(0),
                status_set(c.acl),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
            ])
        })
        .collect();
    Reply::Array(vec![
        Reply::bulk(c.name),
        Reply::Int(c.arity as i64),
        status_set(c.flags),
        Reply::Int(c.first_key as i64),
        Reply::Int(c.last_key as i64),
        Reply::Int(c.step as i64),
        status_set(c.acl),
        Reply::Array(vec![]),
        key_specs(c),
        Reply::Array(subs),
    ])
}

fn docs_of(c: &CommandSpec) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(c.summary)),
        (
            Reply::bulk("since"),
            Reply::bulk(if c.is_module() { "1.2.7" } else { "1.0.0" }),
        ),
        (Reply::bulk("group"), Reply::bulk(c.group)),
        (
            Reply::bulk("complexity"),
            Reply::bulk("O(1) per key, O(N) in payload size"),
        ),
        (Reply::bulk("arguments"), Reply::Array(vec![])),
    ])
}

fn getkeys(argv: &[Bytes]) -> Result<Reply, Error> {
    let spec = table::lookup(&argv[0]).ok_or(Error::GetKeysUnknown)?;
    if !spec.arity_ok(argv.len()) {
        return Err(Error::GetKeysArity);
    }
    if spec.first_key <= 0 && !spec.has_movable_keys() {
        return Err(Error::GetKeysNone);
    }
    let keys = spec.slot_keys(argv).map_err(|_| Error::GetKeysInvalid)?;
    if keys.is_empty() {
        return Err(Error::GetKeysNone);
    }
    Ok(Reply::Array(
        keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect(),
    ))
}

pub(super) fn command(c: CommandCmd) -> Reply {
    match c {
        CommandCmd::All => Reply::Array(COMMANDS.iter().map(info_of).collect()),
        CommandCmd::Count => Reply::Int(COMMANDS.len() as i64),
        CommandCmd::List => Reply::Array(COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect()),
        CommandCmd::Info(names) if names.is_empty() => {
            Reply::Array(COMMANDS.iter().map(info_of).collect())
        }
        CommandCmd::Info(names) => Reply::Array(
            names
                .iter()
                .map(|n| table::lookup(n).map_or(Reply::NilArray, info_of))
                .collect(),
        ),
        CommandCmd::Docs(names) => {
            let specs: Vec<&CommandSpec> = if names.is_empty() {
                COMMANDS.iter().collect()
            } else {
                names.iter().filter_map(|n| table::lookup(n)).collect()
            };
            Reply::Map(
                specs
                    .into_iter()
                    .map(|c| (Reply::bulk(c.name), docs_of(c)))
                    .collect(),
            )
        }
        CommandCmd::GetKeys(argv) => getkeys(&argv).into(),
        CommandCmd::Help => super::server::help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about the given commands.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about the given commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn every_info_has_ten_elements() {
        for c in COMMANDS {
            let Reply::Array(v) = info_of(c) else {
                panic!()
            };
            assert_eq!(v.len(), 10, "{}", c.name);
        }
    }

    #[test]
    fn getkeys_errors() {
        assert_eq!(getkeys(&argv("NOPE a")).unwrap_err(), Error::GetKeysUnknown);
        assert_eq!(getkeys(&argv("GET")).unwrap_err(), Error::GetKeysArity);
        assert_eq!(getkeys(&argv("PING")).unwrap_err(), Error::GetKeysNone);
        assert_eq!(
            getkeys(&argv("AI.MODELEXECUTE m INPUTS 9 a OUTPUTS 1 b")).unwrap_err(),
            Error::GetKeysInvalid
        );
        assert!(getkeys(&argv("AI.DAGEXECUTE LOAD 1 a |> AI.TENSORGET a")).is_ok());
    }
}
