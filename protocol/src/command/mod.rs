//! Typed commands, parsed once from a request's arguments.
//!
//! [`Command::parse`] checks the name and arity against the command table, then hands the
//! arguments to the family's parser (one file per family). Nothing downstream looks at raw
//! arguments again.

mod ai_config;
mod cursor;
mod dag;
mod keyspace;
mod migrate;
mod model;
mod server;
mod strings;
mod tensor;

use bytes::Bytes;

pub use self::{
    ai_config::{AiConfig, BACKENDS},
    cursor::Cursor,
    dag::{Dag, DagOp},
    keyspace::Scan,
    migrate::{Migrate, Restore},
    model::{Backend, BatchOpts, ModelExecute, ModelGet, ModelStore},
    server::{ClientCmd, CommandCmd, ConfigCmd, Hello},
    strings::{Expiry, SetArgs, SetCond},
    tensor::{TensorData, TensorFormat, TensorGet, TensorSet},
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
    /// `CLUSTER subcommand ...` (arguments as sent, subcommand first).
    Cluster(Vec<Bytes>),
    /// `ROLE`
    Role,
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
    /// A command in the table whose implementation arrives with a later capability.
    NotYet(&'static str),
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
        let cmd = match spec.name {
            "ping" => Command::Ping(c.next_opt()),
            "echo" => Command::Echo(c.next_bytes()?),
            "hello" => Command::Hello(server::parse_hello(&mut c)?),
            "quit" => Command::Quit,
            "select" => Command::Select(c.next_int()?),
            "client" => Command::Client(server::parse_client(&mut c)?),
            "command" => Command::Command(server::parse_command(&mut c)?),
            "info" => Command::Info(c.rest().iter().map(|s| lower(s)).collect()),
            "config" => Command::Config(server::parse_config(&mut c)?),
            "cluster" => Command::Cluster(c.rest()),
            "role" => Command::Role,
            "readonly" => Command::ReadOnly,
            "readwrite" => Command::ReadWrite,
            "asking" => Command::Asking,
            "migrate" => migrate::parse_migrate(&mut c)?,
            "restore" | "restore-asking" => migrate::parse_restore(&mut c)?,
            "dump" => Command::Dump(c.next_bytes()?),
            "dbsize" => Command::DbSize,
            "del" | "unlink" => Command::Del(c.rest()),
            "exists" => Command::Exists(c.rest()),
            "type" => Command::Type(c.next_bytes()?),
            "keys" => Command::Keys(c.next_bytes()?),
            "scan" => Command::Scan(keyspace::parse_scan(&mut c)?),
            "randomkey" => Command::RandomKey,
            "flushall" | "flushdb" => keyspace::parse_flush(&mut c)?,
            "get" => Command::Get(c.next_bytes()?),
            "set" => Command::Set(strings::parse_set(&mut c)?),
            "mget" => Command::MGet(c.rest()),
            "mset" => strings::parse_mset(&mut c, spec.name)?,
            "incr" | "decr" | "incrby" | "decrby" => strings::parse_incr(&mut c, spec.name)?,
            "ai.tensorset" => Command::TensorSet(tensor::parse_tensorset(&mut c)?),
            "ai.tensorget" => Command::TensorGet(tensor::parse_tensorget(&mut c)?),
            "ai.config" => Command::AiConfig(ai_config::parse(&mut c)?),
            "ai.modelstore" => Command::ModelStore(model::parse_modelstore(&mut c, false)?),
            "ai.modelset" => Command::ModelStore(model::parse_modelstore(&mut c, true)?),
            "ai.modelget" => Command::ModelGet(model::parse_modelget(&mut c)?),
            "ai.modeldel" => Command::ModelDel(c.next_bytes()?),
            "ai.modelexecute" => Command::ModelExecute(model::parse_modelexecute(&mut c)?),
            "ai.modelrun" => Command::ModelExecute(model::parse_modelrun(&mut c)?),
            "ai._modelscan" => Command::ModelScan,
            "ai.dagexecute" | "ai.dagexecute_ro" | "ai.dagrun" | "ai.dagrun_ro" => {
                Command::Dag(dag::parse(&mut c, spec.name)?)
            }
            "ai.info" => {
                if c.remaining() > 2 {
                    return Err(c.arity_error());
                }
                let key = c.next_bytes()?;
                // RedisAI ignores a third argument other than RESETSTAT.
                let reset = c
                    .next_opt()
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"RESETSTAT"));
                Command::AiInfo { key, reset }
            }
            other => return Ok(Command::NotYet(other)),
        };
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
        assert_eq!(
            parse("AI.SCRIPTGET s").unwrap(),
            Command::NotYet("ai.scriptget")
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
