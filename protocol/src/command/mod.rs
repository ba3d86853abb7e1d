//! Typed commands, parsed once from a request's arguments.
//!
//! [`Command::parse`] looks the name up in the command registry ([`crate::table`]), checks
//! the arity, then runs the entry's parser, which lives in its family's file (one file per
//! family). Nothing downstream looks at raw arguments again.

pub(crate) mod acl;
pub(crate) mod ai_config;
pub(crate) mod cluster;
pub(crate) mod collections;
mod cursor;
pub(crate) mod dag;
pub(crate) mod expiry;
pub(crate) mod introspect;
pub(crate) mod keyspace;
pub(crate) mod lifecycle;
pub(crate) mod migrate;
pub(crate) mod model;
pub(crate) mod script;
pub(crate) mod server;
pub(crate) mod string_ops;
pub(crate) mod strings;
pub(crate) mod tensor;
pub(crate) mod transaction;

use bytes::Bytes;

pub use self::{
    acl::{AclCmd, AclLog},
    ai_config::{AiConfig, BACKENDS, MAX_BATCH_QUEUE_DELAY_US, MIN_MODEL_CHUNK_SIZE},
    cluster::{AdminCmd, ClusterCmd, Member, SetSlotAction, parse_members},
    collections::HashPart,
    cursor::Cursor,
    dag::{Dag, DagOp, MAX_DAG_KEYS, MAX_DAG_OPS, load_keys_checked_first},
    expiry::{ExpireArgs, ExpireCond, GetExChange, TtlArgs},
    introspect::{MemoryCmd, ObjectCmd, subcommand_key},
    keyspace::Scan,
    migrate::{Migrate, Restore},
    model::{Backend, BatchOpts, ModelExecute, ModelGet, ModelStore, modelexecute_input_count},
    script::{ScriptArgs, ScriptExecute, ScriptGet, ScriptStore},
    server::{ClientCmd, ClientFilter, CommandCmd, ConfigCmd, Hello, SlowlogCmd},
    string_ops::{byte_range, format_float, parse_float},
    strings::{Expiry, SetArgs, SetCond},
    tensor::{MAX_TENSOR_RANK, TensorData, TensorFormat, TensorGet, TensorSet},
};
use crate::{error::Error, table};

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`
    Hello(Hello),
    /// `QUIT`
    Quit,
    /// `AUTH [username] password`
    Auth {
        /// The user (`default` when absent).
        user: Option<Bytes>,
        /// The password.
        pass: Bytes,
    },
    /// `ACL subcommand ...`
    Acl(AclCmd),
    /// `SELECT index`
    Select(i64),
    /// `CLIENT subcommand ...`
    Client(ClientCmd),
    /// `COMMAND [subcommand ...]`
    Command(CommandCmd),
    /// `INFO [section ...]`
    Info(Vec<String>),
    /// `CONFIG subcommand ...`
    Config(ConfigCmd),
    /// `CLUSTER subcommand ...`
    Cluster(ClusterCmd),
    /// `ROLE`
    Role,
    /// `SLOWLOG subcommand ...`
    Slowlog(SlowlogCmd),
    /// `MONITOR`: stream every command the node receives to this connection.
    Monitor,
    /// `MULTI`: queue the connection's commands until EXEC.
    Multi,
    /// `EXEC`: run the queued commands.
    Exec,
    /// `DISCARD`: drop the queued commands.
    Discard,
    /// `WATCH key [key ...]`: EXEC runs nothing if one of them changed first.
    Watch(Vec<Bytes>),
    /// `UNWATCH`
    Unwatch,
    /// `SAVE` (`background` false) and `BGSAVE [SCHEDULE]`: a snapshot of the shard's data.
    Save {
        /// BGSAVE: answer at once.
        background: bool,
    },
    /// `READONLY`
    ReadOnly,
    /// `READWRITE`
    ReadWrite,
    /// `ASKING`
    Asking,
    /// `MIGRATE ...`
    Migrate(Migrate),
    /// `RESTORE ...` / `RESTORE-ASKING ...`
    Restore(Restore),
    /// `DUMP key`
    Dump(Bytes),
    /// `DBSIZE`
    DbSize,
    /// `DEL key [key ...]` and `UNLINK key [key ...]`
    Del(Vec<Bytes>),
    /// `EXISTS key [key ...]`
    Exists(Vec<Bytes>),
    /// `TYPE key`
    Type(Bytes),
    /// `KEYS pattern`
    Keys(Bytes),
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
    Scan(Scan),
    /// `RANDOMKEY`
    RandomKey,
    /// `FLUSHALL [ASYNC|SYNC]` and `FLUSHDB [ASYNC|SYNC]`
    Flush,
    /// `GET key`
    Get(Bytes),
    /// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`
    Set(SetArgs),
    /// `MGET key [key ...]`
    MGet(Vec<Bytes>),
    /// `MSET key value [key value ...]`
    MSet(Vec<(Bytes, Bytes)>),
    /// `INCR`, `INCRBY`, `DECR`, `DECRBY`
    IncrBy {
        /// The key.
        key: Bytes,
        /// The signed increment.
        delta: i64,
    },
    /// `HSET key field value [field value ...]` and `HMSET ...`
    HSet {
        /// The key.
        key: Bytes,
        /// Fields and values.
        pairs: Vec<(Bytes, Bytes)>,
        /// HMSET: answer OK instead of the count of new fields.
        ok_reply: bool,
    },
    /// `HGET key field`
    HGet {
        /// The key.
        key: Bytes,
        /// The field.
        field: Bytes,
    },
    /// `HEXISTS key field`
    HExists {
        /// The key.
        key: Bytes,
        /// The field.
        field: Bytes,
    },
    /// `HMGET key field [field ...]`
    HMGet {
        /// The key.
        key: Bytes,
        /// The fields.
        fields: Vec<Bytes>,
    },
    /// `HDEL key field [field ...]`
    HDel {
        /// The key.
        key: Bytes,
        /// The fields.
        fields: Vec<Bytes>,
    },
    /// `HGETALL`, `HKEYS`, `HVALS`, `HLEN key`
    HRead {
        /// The key.
        key: Bytes,
        /// What to return.
        part: HashPart,
    },
    /// `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX key element [element ...]`
    Push {
        /// The key.
        key: Bytes,
        /// At the head.
        left: bool,
        /// The elements.
        values: Vec<Bytes>,
        /// The X forms: only onto an existing list.
        existing_only: bool,
    },
    /// `LPOP key [count]`, `RPOP key [count]`
    Pop {
        /// The key.
        key: Bytes,
        /// From the head.
        left: bool,
        /// The count, when given (the reply is then an array).
        count: Option<usize>,
    },
    /// `LRANGE key start stop`
    LRange {
        /// The key.
        key: Bytes,
        /// First index (negative: from the tail).
        start: i64,
        /// Last index, inclusive.
        stop: i64,
    },
    /// `LLEN key`
    LLen(Bytes),
    /// `LINDEX key index`
    LIndex {
        /// The key.
        key: Bytes,
        /// The index (negative: from the tail).
        index: i64,
    },
    /// `AI.TENSORSET key type shape... [BLOB data | VALUES v...]`
    TensorSet(TensorSet),
    /// `AI.TENSORGET key [META] [BLOB|VALUES]`
    TensorGet(TensorGet),
    /// `AI.CONFIG ...`
    AiConfig(AiConfig),
    /// `AI.MODELSTORE ...` and the deprecated `AI.MODELSET ...`
    ModelStore(ModelStore),
    /// `AI.MODELGET key [META] [BLOB]`
    ModelGet(ModelGet),
    /// `AI.MODELDEL key`
    ModelDel(Bytes),
    /// `AI.MODELEXECUTE ...` and the deprecated `AI.MODELRUN ...`
    ModelExecute(ModelExecute),
    /// `AI._MODELSCAN`
    ModelScan,
    /// `AI.INFO key [RESETSTAT]`
    AiInfo {
        /// The model or script key.
        key: Bytes,
        /// RESETSTAT: zero the counters.
        reset: bool,
    },
    /// AI.DAGEXECUTE(_RO) and AI.DAGRUN(_RO).
    Dag(Dag),
    /// `AI.SCRIPTSTORE ...` and the deprecated `AI.SCRIPTSET ...`
    ScriptStore(ScriptStore),
    /// `AI.SCRIPTGET key [META] [SOURCE]`
    ScriptGet(ScriptGet),
    /// `AI.SCRIPTDEL key`
    ScriptDel(Bytes),
    /// `AI.SCRIPTEXECUTE ...` and the deprecated `AI.SCRIPTRUN ...`
    ScriptExecute(ScriptExecute),
    /// `AI._SCRIPTSCAN`
    ScriptScan,
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`
    Expire(ExpireArgs),
    /// `PERSIST key`
    Persist(Bytes),
    /// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`
    Ttl(TtlArgs),
    /// `GETEX key [EX|PX|EXAT|PXAT time | PERSIST]`
    GetEx {
        /// The key.
        key: Bytes,
        /// The deadline change, if any.
        change: Option<GetExChange>,
    },
    /// `RENAME key newkey` / `RENAMENX key newkey`
    Rename {
        /// The key renamed.
        from: Bytes,
        /// Its new name.
        to: Bytes,
        /// RENAMENX: only when `to` does not exist.
        nx: bool,
    },
    /// `COPY source destination [DB 0] [REPLACE]`
    Copy {
        /// The source key.
        from: Bytes,
        /// The destination key.
        to: Bytes,
        /// REPLACE an existing destination.
        replace: bool,
    },
    /// `TOUCH key [key ...]`
    Touch(Vec<Bytes>),
    /// `GETDEL key`
    GetDel(Bytes),
    /// `GETRANGE key start end`
    GetRange {
        /// The key.
        key: Bytes,
        /// First byte (negative counts from the end).
        start: i64,
        /// Last byte, included.
        end: i64,
    },
    /// `SETRANGE key offset value` (offset given) and `APPEND key value` (none).
    WriteRange {
        /// The key.
        key: Bytes,
        /// Where the value goes; `None` appends.
        offset: Option<u64>,
        /// The bytes written.
        value: Bytes,
    },
    /// `STRLEN key`
    StrLen(Bytes),
    /// `MSETNX key value [key value ...]`
    MSetNx(Vec<(Bytes, Bytes)>),
    /// `INCRBYFLOAT key increment`
    IncrByFloat {
        /// The key.
        key: Bytes,
        /// The increment (finite or infinite, never NaN).
        delta: f64,
    },
    /// `TIME`
    Time,
    /// `LASTSAVE`
    LastSave,
    /// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`
    Shutdown {
        /// ABORT: cancel a shutdown in progress.
        abort: bool,
    },
    /// `DEBUG SLEEP seconds`
    DebugSleep(std::time::Duration),
    /// `OBJECT subcommand ...`
    Object(ObjectCmd),
    /// `MEMORY subcommand ...`
    Memory(MemoryCmd),
    /// `WAIT numreplicas timeout` and `WAITAOF numlocal numreplicas timeout` (`local`).
    Wait {
        /// WAITAOF: the local fsyncs asked for (0 or 1).
        local: Option<i64>,
        /// Replicas asked for.
        replicas: i64,
        /// Milliseconds; 0 waits for ever.
        timeout_ms: u64,
    },
}

impl Command {
    /// Parses a request. `argv[0]` is the command name; `argv` is never empty.
    pub fn parse(argv: Vec<Bytes>) -> Result<Command, Error> {
        match table::lookup(&argv[0]) {
            Some(spec) => Command::parse_for(spec, argv),
            None => Err(Error::unknown_command(&argv[0], &argv[1..])),
        }
    }

    /// Parses a request whose name the caller already looked up in the command table.
    pub fn parse_for(
        spec: &'static table::CommandSpec,
        argv: Vec<Bytes>,
    ) -> Result<Command, Error> {
        let argc = argv.len();
        let mut c = Cursor::new(argv, spec);
        if !spec.arity_ok(argc) {
            return Err(c.arity_error());
        }
        let _ = c.next_bytes();
        let cmd = (spec.parse)(&mut c)?;
        c.finish()?;
        Ok(cmd)
    }
}

/// Lower-cases an argument for case-insensitive words (sections, options).
pub(crate) fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn parse(s: &str) -> Result<Command, Error> {
        Command::parse(
            s.split(' ')
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn unknown_and_arity() {
        assert_eq!(
            parse("FOO a").unwrap_err().wire_text(),
            "ERR unknown command 'FOO', with args beginning with: 'a' "
        );
        assert_eq!(
            parse("GET").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            parse("AI.TENSORSET k FLOAT").unwrap_err().wire_text(),
            "ERR wrong number of arguments for 'AI.TENSORSET' command"
        );
        assert_eq!(
            parse("get k").unwrap(),
            Command::Get(Bytes::from_static(b"k"))
        );
        assert_eq!(parse("PING").unwrap(), Command::Ping(None));
        // Not in the registry: Redis's unknown-command text, never a placeholder.
        assert_eq!(
            parse("AI.NOSUCH s").unwrap_err().wire_text(),
            "ERR unknown command 'AI.NOSUCH', with args beginning with: 's' "
        );
    }

    #[test]
    fn leftover_arguments_are_refused() {
        assert_eq!(
            parse("TYPE a b").unwrap_err(),
            Error::WrongArity("type".into())
        );
        assert_eq!(
            parse("PING a b").unwrap_err(),
            Error::WrongArity("ping".into())
        );
    }
}
