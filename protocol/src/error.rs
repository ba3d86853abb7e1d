//! Every error shardai answers a client with, and its exact wire text.
//!
//! This is the one place where errors become RESP error strings. The texts follow Redis 7
//! for core commands and RedisAI 1.2 for `AI.*` commands, so existing clients and code that
//! match on them keep working. Other crates return these variants (or convert into them);
//! nothing else formats an error reply.

use std::fmt;

/// An error that is sent to the client as a RESP error (`-...\r\n`) or, for `TimedOut`,
/// as RedisAI's `+TIMEDOUT` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A malformed frame; the connection is closed after the reply, as Redis does.
    #[error("ERR Protocol error: {0}")]
    Protocol(String),
    /// Unknown command name.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The command name as sent (truncated to 128 bytes).
        name: String,
        /// The first arguments, each quoted and followed by a space, as Redis prints them.
        args: String,
    },
    /// Unknown subcommand of a container command (CLIENT, COMMAND, CONFIG).
    #[error("ERR unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The container command, upper case.
        cmd: &'static str,
        /// The subcommand as sent.
        sub: String,
    },
    /// Wrong number of arguments; `name` is the command as Redis or RedisAI prints it.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    /// Generic syntax error.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be an integer is not one.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// An argument that must be a float is not one.
    #[error("ERR value is not a valid float")]
    NotFloat,
    /// INCR and friends would overflow.
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// SET with a non-positive or overflowing expire time.
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    /// SELECT with an index other than 0.
    #[error("ERR DB index is out of range")]
    DbIndexOutOfRange,
    /// SCAN with a cursor that is not a number.
    #[error("ERR invalid cursor")]
    InvalidCursor,
    /// The key holds a value of another type.
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// HELLO with a protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// CLIENT SETNAME with a name containing spaces or control characters.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    BadClientName,
    /// CONFIG SET of an option we do not know or cannot change.
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    UnknownConfig(String),
    /// CONFIG SET with a value the option refuses.
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")]
    ConfigSetFailed {
        /// The option.
        name: String,
        /// Why the value was refused.
        reason: String,
    },
    /// COMMAND GETKEYS of an unknown command.
    #[error("ERR Invalid command specified")]
    GetKeysUnknown,
    /// COMMAND GETKEYS with the wrong number of arguments for the command.
    #[error("ERR Invalid number of arguments specified for command")]
    GetKeysArity,
    /// COMMAND GETKEYS of a command without keys.
    #[error("ERR The command has no key arguments")]
    GetKeysNone,
    /// COMMAND GETKEYS whose arguments cannot be parsed for keys.
    #[error("ERR Invalid arguments specified for command")]
    GetKeysInvalid,
    /// The server has reached its connection limit.
    #[error("ERR max number of clients reached")]
    MaxClients,
    /// AI.TENSORGET VALUES of a tensor too large to reply element by element.
    #[error("ERR tensor has {elements} elements, more than VALUES replies ({max}): use BLOB")]
    ValuesReplyTooLarge {
        /// The tensor's elements.
        elements: usize,
        /// The most a VALUES reply holds.
        max: usize,
    },
    /// AI.TENSORSET with more dimensions than a tensor may have.
    #[error("ERR tensor has more than {0} dimensions")]
    RankTooLarge(usize),
    /// MODEL_CHUNK_SIZE below the smallest chunk MODELGET splits into.
    #[error("ERR MODEL_CHUNK_SIZE: the chunk size must be at least {0} bytes")]
    ChunkSizeTooSmall(u64),
    /// A write larger than one replicated log entry may be (`--max-entry-size`).
    #[error(
        "ERR the write makes a {size}-byte log entry, more than max-entry-size ({max} bytes): \
         write less at once (for a DAG, PERSIST fewer or smaller tensors) or raise \
         --max-entry-size"
    )]
    EntryTooLarge {
        /// Bytes of the entry.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A write that would take the dataset past `maxmemory` (policy noeviction).
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    Oom,
    /// A command other than AUTH/HELLO/QUIT before the connection authenticated.
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    /// HELLO without AUTH on a connection that has not authenticated.
    #[error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO \
         <proto> AUTH <user> <pass> option can be used to authenticate the client and select the \
         RESP protocol version at the same time"
    )]
    HelloNoAuth,
    /// AUTH or HELLO AUTH with a wrong user or password, or a disabled user.
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    /// `AUTH password` while the default user needs no password.
    #[error(
        "ERR AUTH <password> called without any password configured for the default user. Are \
         you sure your configuration is correct?"
    )]
    AuthNotConfigured,
    /// The user may not run this command (`cmd` is `name` or `name|subcommand`).
    #[error("NOPERM User {user} has no permissions to run the '{cmd}' command")]
    NoPermCommand {
        /// The user.
        user: String,
        /// The command as Redis names it.
        cmd: String,
    },
    /// The user may not touch one of the command's keys.
    #[error("NOPERM No permissions to access a key")]
    NoPermKey,
    /// Protected mode: no password is set and the client is not on the loopback interface.
    #[error(
        "DENIED Redis is running in protected mode because protected mode is enabled and no \
         password is set for the default user. In this mode connections are only accepted from \
         the loopback interface. If you want to connect from external computers to Redis you \
         may adopt one of the following solutions: 1) Just disable protected mode sending the \
         command 'CONFIG SET protected-mode no' from the loopback interface by connecting to \
         Redis from the same host the server is running, however MAKE SURE Redis is not \
         publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change \
         permanent. 2) Alternatively you can just disable the protected mode by editing the \
         Redis configuration file, and setting the protected mode option to 'no', and then \
         restarting the server. 3) If you started the server manually just for testing, restart \
         it with the '--protected-mode no' option. 4) Set up an authentication password for the \
         default user. NOTE: You only need to do one of the above things in order for the \
         server to start accepting connections from the outside."
    )]
    Denied,
    /// A mutation could not be applied (replication unavailable, shutting down, ...).
    #[error("ERR {0}")]
    Unavailable(String),

    /// The key's slot is served by another node (Redis Cluster redirect).
    #[error("MOVED {slot} {addr}")]
    Moved {
        /// The key's hash slot.
        slot: u16,
        /// host:port of the node that serves it.
        addr: String,
    },
    /// The slot is migrating and the key is on the importing node: ask it once.
    #[error("ASK {slot} {addr}")]
    Ask {
        /// The key's hash slot.
        slot: u16,
        /// host:port of the importing node.
        addr: String,
    },
    /// The command's keys hash to different slots.
    #[error("CROSSSLOT Keys in request don't hash to the same slot")]
    CrossSlot,
    /// The cluster cannot serve the request now (no leader, not formed).
    #[error("CLUSTERDOWN {0}")]
    ClusterDown(String),
    /// Retry shortly (a leader is being elected).
    #[error("TRYAGAIN {0}")]
    TryAgain(String),

    // ---- RedisAI (texts from RedisAI 1.2) ----
    /// AI.TENSORSET with an unknown dtype name.
    #[error("ERR invalid data type")]
    InvalidDataType,
    /// AI.TENSORSET with a non-numeric, zero or negative dimension.
    #[error("ERR invalid or negative value found in tensor shape")]
    InvalidShape,
    /// AI.TENSORSET VALUES with a count that does not match the shape.
    #[error("ERR wrong number of values was given in 'AI.TENSORSET' command")]
    WrongValueCount,
    /// AI.TENSORSET BLOB whose length does not match shape and dtype.
    #[error("ERR data length does not match tensor shape and type")]
    DataLengthMismatch,
    /// AI.TENSORSET VALUES with a value that does not parse or is out of the dtype's range.
    #[error("ERR invalid value")]
    InvalidValue,
    /// AI.TENSORSET of a BOOL BLOB with bytes other than 0 and 1.
    #[error("ERR BOOL tensor elements must be 0 or 1")]
    BoolValue,
    /// A STRING tensor element that contains a NUL byte.
    #[error("ERR C-string value contains null character")]
    StringNul,
    /// A STRING tensor BLOB whose NUL-terminated elements do not match the shape.
    #[error("ERR Number of string elements in data blob does not match tensor length")]
    StringBlobCount,
    /// AI.TENSORSET with anything but exactly one argument after BLOB.
    #[error(
        "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"
    )]
    BlobArity,
    /// AI.TENSORGET with an unknown format word.
    #[error("ERR unsupported data format")]
    UnsupportedFormat,
    /// AI.TENSORGET with both BLOB and VALUES.
    #[error("ERR both BLOB and VALUES specified")]
    BlobAndValues,
    /// AI.MODELGET / MODELDEL / MODELEXECUTE on a missing key.
    #[error("ERR model key is empty")]
    ModelKeyEmpty,
    /// AI.SCRIPTGET / SCRIPTDEL / SCRIPTEXECUTE on a missing key.
    #[error("ERR script key is empty")]
    ScriptKeyEmpty,
    /// AI.INFO on a key with no model or script statistics.
    #[error("ERR cannot find run info for key")]
    NoRunInfo,
    /// AI.TENSORGET on a missing key.
    #[error("ERR tensor key is empty or in a different shard")]
    TensorKeyEmpty,
    /// A tensor larger than the server accepts.
    #[error("ERR tensor is too large")]
    TensorTooLarge,
    /// AI.CONFIG with an unknown subcommand.
    #[error("ERR unsupported subcommand")]
    UnsupportedSubcommand,
    /// AI.CONFIG GET of an unknown option.
    #[error("ERR unsupported config name")]
    UnsupportedConfigName,
    /// AI.CONFIG LOADBACKEND of a backend that cannot be loaded; the detail says why.
    #[error("ERR error loading backend: {0}")]
    ErrorLoadingBackend(String),
    /// AI.CONFIG MODEL_CHUNK_SIZE with a value that is not a positive integer.
    #[error("ERR MODEL_CHUNK_SIZE: invalid chunk size")]
    InvalidChunkSize,
    /// AI.CONFIG BACKENDSPATH without a path.
    #[error("ERR BACKENDSPATH: missing path argument")]
    BackendsPathMissing,
    /// AI.CONFIG LOADBACKEND of an unknown backend name.
    #[error("ERR unsupported backend")]
    UnsupportedBackend,
    /// A backend whose library cannot be loaded (the reason goes to the log).
    #[error("ERR Could not load backend")]
    CouldNotLoadBackend,
    /// AI.CONFIG MODEL_CHUNK_SIZE without a valid positive size.
    #[error("ERR MODEL_CHUNK_SIZE: missing chunk size")]
    ChunkSizeMissing,
    /// AI.CONFIG BACKEND_MEMORY_LIMIT without a whole number 0 or more.
    #[error("ERR BACKEND_MEMORY_LIMIT: the limit must be a whole number of MB, 0 for none")]
    InvalidMemoryLimit,
    /// A RedisAI argument error whose full text (with or without `ERR`) is sent as it is, as
    /// RedisAI's module errors are; the texts are listed in `docs/redisai-model-commands.md`.
    #[error("{0}")]
    Verbatim(String),
    /// A request that waited longer than its TIMEOUT (RedisAI answers a status, not an error).
    #[error("TIMEDOUT")]
    TimedOut,
}

impl Error {
    /// Builds the unknown-command error as Redis 7 prints it: the name and up to 128 bytes of
    /// each of the first arguments, each argument quoted and followed by one space.
    pub fn unknown_command(name: &[u8], args: &[impl AsRef<[u8]>]) -> Self {
        let mut shown = String::new();
        for a in args.iter().take(128) {
            let a = a.as_ref();
            if shown.len() >= 128 {
                break;
            }
            shown.push('\'');
            shown.push_str(&sanitize(&a[..a.len().min(128)]));
            shown.push_str("' ");
        }
        Error::UnknownCommand {
            name: sanitize(&name[..name.len().min(128)]),
            args: shown,
        }
    }

    /// True when the reply must be followed by closing the connection.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Error::Protocol(_) | Error::MaxClients | Error::Denied)
    }

    /// True for errors sent as a status line (`+TIMEDOUT`) rather than an error line.
    pub fn is_status(&self) -> bool {
        matches!(self, Error::TimedOut)
    }

    /// The wire text without the leading `-` and trailing CRLF. Newlines are replaced so that
    /// a reply can never break the framing.
    pub fn wire_text(&self) -> String {
        self.to_string().replace(['\r', '\n'], " ")
    }
}

/// Lossy UTF-8 with control characters replaced, for echoing client input inside errors.
fn sanitize(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Displays a byte string for logs: UTF-8 where it is, escapes elsewhere.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redisai_texts_are_exact() {
        assert_eq!(Error::InvalidDataType.wire_text(), "ERR invalid data type");
        assert_eq!(
            Error::InvalidShape.wire_text(),
            "ERR invalid or negative value found in tensor shape"
        );
        assert_eq!(
            Error::WrongValueCount.wire_text(),
            "ERR wrong number of values was given in 'AI.TENSORSET' command"
        );
        assert_eq!(
            Error::DataLengthMismatch.wire_text(),
            "ERR data length does not match tensor shape and type"
        );
        assert_eq!(Error::InvalidValue.wire_text(), "ERR invalid value");
        assert_eq!(
            Error::BoolValue.wire_text(),
            "ERR BOOL tensor elements must be 0 or 1"
        );
        assert_eq!(
            Error::WrongType.wire_text(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(
            Error::TensorKeyEmpty.wire_text(),
            "ERR tensor key is empty or in a different shard"
        );
        assert_eq!(
            Error::UnsupportedFormat.wire_text(),
            "ERR unsupported data format"
        );
        assert_eq!(
            Error::CouldNotLoadBackend.wire_text(),
            "ERR Could not load backend"
        );
    }

    #[test]
    fn redis_texts_are_exact() {
        assert_eq!(
            Error::WrongArity("get".into()).wire_text(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            Error::unknown_command(b"foo", &[b"a".as_slice(), b"b"]).wire_text(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            Error::unknown_command(b"foo", &[] as &[&[u8]]).wire_text(),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            Error::Protocol("invalid bulk length".into()).wire_text(),
            "ERR Protocol error: invalid bulk length"
        );
        assert_eq!(
            Error::NotInteger.wire_text(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            Error::UnknownSubcommand {
                cmd: "CLIENT",
                sub: "x".into()
            }
            .wire_text(),
            "ERR unknown subcommand 'x'. Try CLIENT HELP."
        );
        assert_eq!(
            Error::NoProto.wire_text(),
            "NOPROTO unsupported protocol version"
        );
        assert!(Error::Protocol("x".into()).closes_connection());
        assert!(!Error::Syntax.closes_connection());
    }

    #[test]
    fn wire_text_never_contains_newlines() {
        let e = Error::unknown_command(b"a\r\nb", &[b"c\nd".as_slice()]);
        assert!(!e.wire_text().contains(['\r', '\n']));
    }
}
