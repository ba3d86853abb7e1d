//! OBJECT and MEMORY: how a key's value is held and how many bytes it takes.

use bytes::Bytes;
use shardai_engine::{Store, Value};
use shardai_protocol::{
    Error, Reply,
    command::{MemoryCmd, ObjectCmd},
    frame::parse_i64,
};

/// Bytes a key takes beyond its name and value: its map slot and deadline.
const ENTRY_OVERHEAD: usize = 56;

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value.",
    "HELP",
    "    Prints this help.",
];

fn help(lines: &[&str]) -> Reply {
    Reply::Array(
        lines
            .iter()
            .map(|l| Reply::StatusOwned((*l).into()))
            .collect(),
    )
}

/// A string Redis would hold as an integer: its canonical decimal form.
fn as_int(s: &[u8]) -> Option<i64> {
    parse_i64(s).filter(|n| n.to_string().as_bytes() == s)
}

/// The encoding name Redis 7.0 gives a value of this shape; RedisAI's types are module
/// values (`raw`).
fn encoding(v: &Value) -> &'static str {
    match v {
        Value::Str(s) if s.len() <= 20 && as_int(s).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Hash(h)
            if h.len() <= 128 && h.iter().all(|(f, v)| f.len() <= 64 && v.len() <= 64) =>
        {
            "listpack"
        }
        Value::Hash(_) => "hashtable",
        Value::List(_) => "quicklist",
        _ => "raw",
    }
}

pub(super) fn object(cmd: ObjectCmd, store: &Store) -> Reply {
    let key = match &cmd {
        ObjectCmd::Help => return help(OBJECT_HELP),
        ObjectCmd::Encoding(k)
        | ObjectCmd::RefCount(k)
        | ObjectCmd::Freq(k)
        | ObjectCmd::IdleTime(k) => k,
    };
    let Some(v) = store.get(key) else {
        return Reply::Nil;
    };
    match cmd {
        ObjectCmd::Encoding(_) => Reply::Bulk(Bytes::from_static(encoding(&v).as_bytes())),
        // As Redis, whose small integers are shared objects.
        ObjectCmd::RefCount(_) => Reply::Int(match &v {
            Value::Str(s) if as_int(s).is_some_and(|n| (0..10_000).contains(&n)) => i32::MAX as i64,
            _ => 1,
        }),
        ObjectCmd::Freq(_) => Reply::Error(Error::Verbatim(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please \
             note that when switching between policies at runtime LRU and LFU data will take \
             some time to adjust."
                .into(),
        )),
        ObjectCmd::IdleTime(_) => Reply::Error(Error::Verbatim(
            "ERR OBJECT IDLETIME is not available: key access times are not tracked".into(),
        )),
        ObjectCmd::Help => unreachable!("answered above"),
    }
}

pub(super) fn memory(cmd: MemoryCmd, store: &Store) -> Reply {
    match cmd {
        MemoryCmd::Help => help(MEMORY_HELP),
        MemoryCmd::Usage(key) => match store.get(&key) {
            Some(v) => Reply::Int((key.len() + v.size() + ENTRY_OVERHEAD) as i64),
            None => Reply::Nil,
        },
    }
}
