//! Dispatch: runs a parsed [`Command`] against the shard and builds its [`Reply`].
//!
//! Reads go to the store; writes become `Mutation`s proposed through the shard's
//! `Proposer`. One file per command family; [`execute`] is the one place that maps a
//! command to its handler. Handlers never import the connection loop ([`crate::conn`]);
//! what they know of the connection is [`ConnState`].

mod acl;
pub mod ai_config;
pub mod check_order;
mod cluster;
mod cluster_admin;
mod collections;
mod command;
mod dag;
mod expiry;
mod info;
mod introspect;
mod keyspace;
mod lifecycle;
mod migrate;
mod model;
mod objects;
mod script;
mod script_host;
mod server;
mod setslot;
mod strings;
pub(crate) mod tensor;
pub(crate) mod writes;

pub mod transaction;
mod wait;

use std::sync::{Arc, atomic::Ordering};

use shardai_protocol::{Command, Reply};

use shardai_protocol::cluster_wide::is_cluster_wide;

use crate::{client::ConnState, cluster::objects::ObjectWrites, state::Shared};

/// What the connection does after the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving.
    Continue,
    /// Close after writing the reply (QUIT).
    Close,
    /// Close without a reply: the server is stopping (SHUTDOWN).
    Shutdown,
}

/// Executes one command: the handler registry. Each command's handler is named here once
/// and given only what it uses (the store, the proposer, the engine, settings); the match
/// is exhaustive, so a new [`Command`] variant without a handler does not compile.
pub async fn execute(cmd: Command, shared: &Arc<Shared>, conn: &mut ConnState) -> (Reply, Flow) {
    run(cmd, shared, conn, &*shared.proposer).await
}

/// [`execute`] with keyed reads and writes going to `proposer` and its store (EXEC runs a
/// transaction's commands on a [`shardai_engine::Staging`]).
async fn run(
    cmd: Command,
    shared: &Arc<Shared>,
    conn: &mut ConnState,
    proposer: &dyn shardai_engine::Proposer,
) -> (Reply, Flow) {
    let store = &**proposer.store();
    let engine = &shared.engine;
    // Cluster-wide models and scripts, which commands naming them by name read and write.
    let objects = shared.cluster.as_deref().map(ObjectWrites);
    let by_name = |key: &[u8]| pick(key, objects.as_ref(), proposer);
    let max_bulk = || shared.runtime.max_bulk.load(Ordering::Relaxed);
    // The writes whose reply is what their apply answers: one place builds them (it also
    // puts a connection's pipelined writes in flight, `crate::pipeline`).
    let cmd = match writes::of(cmd, max_bulk()) {
        writes::Built::Write(w) => return (writes::propose(w, proposer).await, Flow::Continue),
        writes::Built::Other(cmd) => cmd,
    };
    let reply = match cmd {
        Command::Quit => return (Reply::OK, Flow::Close),
        Command::Ping(msg) => server::ping(msg, conn),
        Command::Echo(m) => Reply::Bulk(m),
        Command::Hello(h) => acl::hello(h, &shared.acl, shared.cluster.as_ref(), conn).await,
        Command::Auth { user, pass } => {
            acl::auth(user, pass, &shared.acl, shared.cluster.as_ref(), conn).await
        }
        Command::Acl(c) => acl::acl_cmd(c, &shared.acl, shared.cluster.as_ref(), conn).await,
        Command::Select(db) => server::select(db),
        Command::Client(c) => server::client(c, shared, conn),
        Command::Command(c) => command::command(c),
        Command::Info(sections) => info::info(&sections, shared),
        Command::Config(c) => server::config(c, shared),
        Command::Cluster(c) => cluster::cluster(c, shared, conn).await,
        Command::Role => cluster::role(shared.cluster.as_deref()),
        Command::Slowlog(c) => server::slowlog(c, &shared.ops.slowlog),
        Command::Monitor => server::monitor(conn),
        Command::Save { background } => server::save(background, shared).await,
        Command::Multi => transaction::multi(conn),
        Command::Exec => transaction::exec(shared, conn).await,
        Command::Discard => transaction::discard(conn),
        Command::Watch(keys) => transaction::watch(keys, store, conn),
        Command::Unwatch => transaction::unwatch(conn),
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
        Command::Migrate(m) => {
            let any_host = shared.config.migrate_any_host;
            migrate::migrate(m, proposer, shared.cluster.as_deref(), any_host).await
        }
        Command::Restore(r) => migrate::restore(r, proposer, &engine.backends).await,
        Command::Dump(key) => migrate::dump_key(&key, store),
        Command::DbSize => Reply::Int(store.len() as i64),
        Command::Exists(keys) => keyspace::exists(&keys, store),
        Command::Type(key) => keyspace::type_of(&key, by_name(&key).store()),
        Command::Keys(pattern) => keyspace::keys(&pattern, store),
        Command::Scan(s) => keyspace::scan(s, store),
        Command::RandomKey => keyspace::random_key(store, shared.random()),
        Command::Flush => keyspace::flush(proposer).await,
        Command::Get(key) => strings::get(&key, store, &shared.stats),
        Command::MGet(keys) => strings::mget(&keys, store),
        Command::HGet { key, field } => collections::hget(&key, &field, store),
        Command::HExists { key, field } => collections::hexists(&key, &field, store),
        Command::HMGet { key, fields } => collections::hmget(&key, &fields, store),
        Command::HRead { key, part } => collections::hread(&key, part, store),
        Command::LRange { key, start, stop } => collections::lrange(&key, start, stop, store),
        Command::LLen(key) => collections::llen(&key, store),
        Command::LIndex { key, index } => collections::lindex(&key, index, store),
        Command::TensorGet(t) => tensor::tensorget(t, store, &shared.stats),
        Command::AiConfig(c) => {
            let allow_loading = shared.config.enable_backend_loading;
            ai_config::ai_config(
                c,
                &shared.runtime,
                (shared.store(), engine.objects.get()),
                (&engine.backends, &engine.queues),
                allow_loading,
                shared.cluster.as_ref(),
            )
            .await
        }
        Command::ModelStore(m) => {
            let target = by_name(&m.key);
            model::modelstore(m, target, &engine.backends).await
        }
        Command::ModelGet(g) => {
            let store = by_name(&g.key).store();
            let chunk = shared.runtime.model_chunk_size.load(Ordering::Relaxed);
            model::modelget(g, store, chunk)
        }
        Command::ModelDel(key) => model::modeldel(key.clone(), by_name(&key)).await,
        Command::ModelExecute(e) => model::modelexecute(e, proposer, engine).await,
        Command::ModelScan => model::modelscan(store, engine.objects.get().map(|o| &**o)),
        Command::AiInfo { key, reset } => match (&shared.cluster, is_cluster_wide(&key)) {
            (Some(c), true) => objects::ai_info(&key, reset, c),
            _ => model::ai_info(&key, reset, store),
        },
        Command::Dag(d) => {
            let host = script_host::for_dag(&d, shared, conn);
            let _done = script_host::Finish(host.clone());
            dag::dagexecute(d, proposer, engine, max_bulk(), host).await
        }
        Command::ScriptStore(s) => {
            let target = by_name(&s.key);
            script::scriptstore(s, target, &engine.backends).await
        }
        Command::ScriptGet(g) => {
            let store = by_name(&g.key).store();
            script::scriptget(g, store)
        }
        Command::ScriptDel(key) => script::scriptdel(key.clone(), by_name(&key)).await,
        Command::ScriptExecute(e) => {
            let host = script_host::for_script(&e, shared, conn);
            let _done = script_host::Finish(host.clone());
            script::scriptexecute(e, proposer, engine, host).await
        }
        Command::ScriptScan => script::scriptscan(store, engine.objects.get().map(|o| &**o)),
        Command::Ttl(a) => expiry::ttl(a, store),
        Command::GetEx { key, change } => expiry::getex(key, change, store, proposer).await,
        Command::Touch(keys) => keyspace::exists(&keys, store),
        Command::GetRange { key, start, end } => strings::getrange(&key, start, end, store),
        Command::StrLen(key) => strings::strlen(&key, store),
        Command::Time => lifecycle::time(),
        Command::LastSave => lifecycle::lastsave(shared),
        Command::Shutdown { abort } => return lifecycle::shutdown(abort, shared, conn),
        Command::DebugSleep(d) => lifecycle::sleep(d).await,
        Command::Object(c) => introspect::object(c, store),
        Command::Memory(c) => introspect::memory(c, store),
        Command::Wait {
            local,
            replicas,
            timeout_ms,
        } => wait::wait(local, replicas, timeout_ms, shared).await,
        Command::TensorSet(_)
        | Command::Set(_)
        | Command::MSet(_)
        | Command::MSetNx(_)
        | Command::IncrBy { .. }
        | Command::IncrByFloat { .. }
        | Command::Del(_)
        | Command::HSet { .. }
        | Command::HDel { .. }
        | Command::Push { .. }
        | Command::Pop { .. }
        | Command::Expire(_)
        | Command::Persist(_)
        | Command::Rename { .. }
        | Command::Copy { .. }
        | Command::GetDel(_)
        | Command::WriteRange { .. } => unreachable!("writes::of builds these writes"),
    };
    (reply, Flow::Continue)
}

/// Where a command that names a model or script `key` reads and writes: the cluster-wide
/// objects for a cluster-wide name in a cluster, else the shard's `proposer`.
fn pick<'a>(
    key: &[u8],
    objects: Option<&'a ObjectWrites<'a>>,
    proposer: &'a dyn shardai_engine::Proposer,
) -> &'a dyn shardai_engine::Proposer {
    match objects {
        Some(o) if is_cluster_wide(key) => o,
        _ => proposer,
    }
}

#[cfg(test)]
mod tests;
