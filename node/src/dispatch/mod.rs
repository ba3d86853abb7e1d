//! Dispatch: runs a parsed [`Command`] against the shard and builds its [`Reply`].
//!
//! Reads go to the store; writes become `Mutation`s proposed through the shard's
//! `Proposer`. One file per command family.

mod ai_config;
mod cluster;
mod cluster_admin;
mod command;
mod dag;
mod info;
mod keyspace;
mod migrate;
mod model;
mod server;
mod setslot;
mod strings;
mod tensor;

use shardai_protocol::{Command, Error, Reply};

use crate::{conn::ConnState, state::Shared};

/// What the connection does after the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Close after writing the reply (QUIT).
    Close,
}

/// Executes one command.
pub async fn execute(cmd: Command, shared: &Shared, conn: &mut ConnState) -> (Reply, Flow) {
    let reply = match cmd {
        Command::Quit => return (Reply::OK, Flow::Close),
        Command::Ping(msg) => server::ping(msg, conn),
        Command::Echo(m) => Reply::Bulk(m),
        Command::Hello(h) => server::hello(h, shared, conn),
        Command::Select(db) => server::select(db),
        Command::Client(c) => server::client(c, shared, conn),
        Command::Command(c) => command::command(c),
        Command::Info(sections) => info::info(&sections, shared),
        Command::Config(c) => server::config(c, shared),
        Command::Cluster(args) => cluster::cluster(args, shared, conn).await,
        Command::Role => cluster::role(shared),
        Command::ReadOnly => {
            conn.readonly = true;
            Reply::OK
        }
        Command::ReadWrite => {
            conn.readonly = false;
            Reply::OK
        }
        Command::Asking => {
            conn.asking = true;
            Reply::OK
        }
        Command::Migrate(m) => migrate::migrate(m, shared).await,
        Command::Restore(r) => migrate::restore(r, shared).await,
        Command::Dump(key) => migrate::dump_key(&key, shared),
        Command::DbSize => Reply::Int(shared.store().len() as i64),
        Command::Del(keys) => keyspace::del(keys, shared).await,
        Command::Exists(keys) => keyspace::exists(&keys, shared),
        Command::Type(key) => keyspace::type_of(&key, shared),
        Command::Keys(pattern) => keyspace::keys(&pattern, shared),
        Command::Scan(s) => keyspace::scan(s, shared),
        Command::RandomKey => keyspace::random_key(shared),
        Command::Flush => keyspace::flush(shared).await,
        Command::Get(key) => strings::get(&key, shared),
        Command::Set(args) => strings::set(args, shared).await,
        Command::MGet(keys) => strings::mget(&keys, shared),
        Command::MSet(pairs) => strings::mset(pairs, shared).await,
        Command::IncrBy { key, delta } => strings::incr_by(key, delta, shared).await,
        Command::TensorSet(t) => tensor::tensorset(t, shared).await,
        Command::TensorGet(t) => tensor::tensorget(t, shared),
        Command::AiConfig(c) => ai_config::ai_config(c, shared).await,
        Command::ModelStore(m) => model::modelstore(m, shared).await,
        Command::ModelGet(g) => model::modelget(g, shared),
        Command::ModelDel(key) => model::modeldel(key, shared).await,
        Command::ModelExecute(e) => model::modelexecute(e, shared).await,
        Command::ModelScan => model::modelscan(shared),
        Command::AiInfo { key, reset } => model::ai_info(&key, reset, shared),
        Command::Dag(d) => dag::dagexecute(d, shared).await,
        Command::NotYet(name) => Reply::Error(Error::Unavailable(format!(
            "{} is not available in this build yet: it arrives with the scripts issue",
            name.to_ascii_uppercase()
        ))),
    };
    (reply, Flow::Continue)
}
