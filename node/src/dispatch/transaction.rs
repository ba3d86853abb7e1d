//! MULTI, EXEC, DISCARD, WATCH and UNWATCH. The connection loop queues the commands sent
//! after MULTI (`ConnState::tx`, with the keys each names: [`staged_keys`]); EXEC runs them
//! in order while the connection loop holds `Shared::tx_gate` exclusively, so no other
//! client's command runs on this node in between.
//!
//! EXEC runs the commands on a copy of the keys they name ([`Store::subset`], through a
//! [`Staging`] proposer), so each sees the writes before it, then proposes all their writes
//! as one `Mutation::Batch`: one log entry, applied by every replica all or none, also
//! across a crash or a failover. The entry is held to `--max-entry-size` as a whole.
//! A transaction holding a command that reaches beyond its keys (DBSIZE, KEYS, SCAN, INFO,
//! CONFIG, MIGRATE, ...) cannot run on such a copy: its writes are proposed one by one.
//!
//! As in RedisAI, the commands that run models and scripts (AI.MODELEXECUTE, AI.SCRIPTEXECUTE,
//! the DAG commands and their deprecated forms) are queued but answer `ERR Cannot run RedisAI
//! command within a transaction or a LUA script` inside EXEC. MIGRATE, which waits on another
//! node and on every command routed to the keys it moves, answers `ERR MIGRATE cannot run
//! inside a transaction` there.

use std::{future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use shardai_engine::{Applied, Mutation, Proposer, Staging, Store, Tensor, Value, now_ms};
use shardai_protocol::{Command, Error, Reply, table::CommandSpec};
use tracing::warn;

use crate::{
    client::{ConnState, Transaction, Watched},
    state::Shared,
};

fn err(text: &str) -> Reply {
    Reply::Error(Error::Verbatim(text.to_string()))
}

/// True when `now` is the very value `then` was, with the same deadline (or both are
/// missing). Every write stores a new value, or copies one that someone else holds (the
/// WATCH holds it), so a value kept at WATCH is the one still stored only if no write came
/// since; EXPIRE and PERSIST change only the deadline.
fn unchanged(then: &Option<Watched>, now: &Option<Watched>) -> bool {
    let (then, now) = match (then, now) {
        (Some((a, at)), Some((b, bt))) if at == bt => (Some(a), Some(b)),
        (Some(_), Some(_)) => return false,
        (a, b) => (a.as_ref().map(|x| &x.0), b.as_ref().map(|x| &x.0)),
    };
    match (then, now) {
        (None, None) => true,
        (Some(Value::Str(a)), Some(Value::Str(b))) => {
            a.as_ptr() == b.as_ptr() && a.len() == b.len()
        }
        (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => Tensor::ptr_eq(a, b),
        (Some(Value::Model(a)), Some(Value::Model(b))) => Arc::ptr_eq(a, b),
        (Some(Value::Script(a)), Some(Value::Script(b))) => Arc::ptr_eq(a, b),
        (Some(Value::Hash(a)), Some(Value::Hash(b))) => Arc::ptr_eq(a, b),
        (Some(Value::List(a)), Some(Value::List(b))) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

pub(super) fn multi(conn: &mut ConnState) -> Reply {
    if conn.tx.is_some() {
        return err("ERR MULTI calls can not be nested");
    }
    conn.tx = Some(Transaction::default());
    Reply::OK
}

pub(super) fn discard(conn: &mut ConnState) -> Reply {
    if conn.tx.take().is_none() {
        return err("ERR DISCARD without MULTI");
    }
    conn.watched.clear();
    Reply::OK
}

pub(super) fn watch(keys: Vec<Bytes>, store: &Store, conn: &mut ConnState) -> Reply {
    if conn.tx.is_some() {
        return err("ERR WATCH inside MULTI is not allowed");
    }
    for k in keys {
        let v = store.entry_at(&k, now_ms());
        conn.watched.push((k, v));
    }
    Reply::OK
}

pub(super) fn unwatch(conn: &mut ConnState) -> Reply {
    conn.watched.clear();
    Reply::OK
}

/// Keyless commands that touch neither the keyspace beyond the transaction's keys nor the
/// server: a transaction holding them still runs on a copy of its keys. FLUSHALL empties
/// the copy as it empties the keyspace.
const WITHIN_KEYS: &[&str] = &[
    "ping", "echo", "select", "flushall", "flushdb", "wait", "waitaof",
];

/// The keys a request to `spec` names, for queuing it in a transaction; `None` when it
/// reaches beyond them (see [`WITHIN_KEYS`]; MIGRATE sends its keys elsewhere).
pub fn staged_keys(spec: &CommandSpec, argv: &[Bytes]) -> Option<Vec<Bytes>> {
    if spec.name == "migrate" {
        return None;
    }
    if spec.first_key > 0 || spec.has_movable_keys() {
        return spec
            .keys(argv)
            .ok()
            .map(|k| k.into_iter().cloned().collect());
    }
    WITHIN_KEYS.contains(&spec.name).then(Vec::new)
}

/// The reply of a queued command EXEC does not run, if it is one.
fn refused_in_exec(cmd: &Command) -> Option<Reply> {
    match cmd {
        Command::ModelExecute(_) | Command::ScriptExecute(_) | Command::Dag(_) => Some(err(
            "ERR Cannot run RedisAI command within a transaction or a LUA script",
        )),
        Command::Migrate(_) => Some(err("ERR MIGRATE cannot run inside a transaction")),
        _ => None,
    }
}

/// EXEC: the queued commands' replies in order; a null array when a WATCHed key changed;
/// EXECABORT when a command was refused while queuing.
pub(super) fn exec<'a>(
    shared: &'a Arc<Shared>,
    conn: &'a mut ConnState,
) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
    Box::pin(async move {
        let Some(tx) = conn.tx.take() else {
            return err("ERR EXEC without MULTI");
        };
        let watched = std::mem::take(&mut conn.watched);
        if tx.failed {
            return err("EXECABORT Transaction discarded because of previous errors.");
        }
        let store = shared.store();
        let now = now_ms();
        if watched
            .iter()
            .any(|(k, v)| !unchanged(v, &store.entry_at(k, now)))
        {
            return Reply::NilArray;
        }
        if tx.beyond_keys {
            // Each write is its own proposal.
            return Reply::Array(run_all(tx.queued, shared, conn, &*shared.proposer).await);
        }
        let mut keys = tx.keys;
        keys.sort_unstable();
        keys.dedup();
        let staging = Staging::new(store.subset(&keys, now_ms()));
        let replies = run_all(tx.queued, shared, conn, &staging).await;
        // A write that failed changed nothing: it has its reply and no place in the log.
        let (writes, staged): (Vec<Mutation>, Vec<_>) = staging
            .into_writes()
            .into_iter()
            .filter(|(_, r)| r.is_ok())
            .unzip();
        if writes.is_empty() {
            return Reply::Array(replies);
        }
        // All or nothing: a proposal that fails leaves every write of the transaction out.
        let applied = match shared.proposer.propose(Mutation::Batch(writes)).await {
            Ok(Applied::Batch(v)) => v,
            Ok(other) => vec![Ok(other)],
            Err(e) => return Reply::Error(e),
        };
        if !same_results(&staged, &applied) {
            // The copy and the keyspace agreed when the copy was made, and no other command
            // ran on this node since: only a deadline passing in between can do this.
            warn!(
                writes = staged.len(),
                "a transaction's writes applied with other results than EXEC answered"
            );
        }
        Reply::Array(replies)
    })
}

/// Runs the queued commands in order against `proposer` (and its store): their replies.
async fn run_all(
    queued: Vec<Command>,
    shared: &Arc<Shared>,
    conn: &mut ConnState,
    proposer: &dyn Proposer,
) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(queued.len());
    for cmd in queued {
        // As Redis in a transaction: WAIT does not block, it answers the count it has.
        let cmd = match cmd {
            Command::Wait { local, .. } => Command::Wait {
                local,
                replicas: 0,
                timeout_ms: 0,
            },
            cmd => cmd,
        };
        let reply = match refused_in_exec(&cmd) {
            Some(refused) => refused,
            None => super::run(cmd, shared, conn, proposer).await.0,
        };
        replies.push(reply);
    }
    replies
}

type Outcome = Result<Applied, Error>;

/// True when two lists of results agree (errors by their wire text: a result that crossed
/// the bus carries its error as text).
fn same_results(a: &[Outcome], b: &[Outcome]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Ok(x), Ok(y)) => x == y,
            (Err(x), Err(y)) => x.wire_text() == y.wire_text(),
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use shardai_protocol::table;

    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn keys_of(words: &[&str]) -> Option<Vec<Bytes>> {
        let (_, spec) = table::lookup_indexed(words[0].as_bytes()).unwrap();
        staged_keys(spec, &argv(words))
    }

    #[test]
    fn queued_commands_name_their_keys_or_reach_beyond_them() {
        assert_eq!(keys_of(&["set", "a", "1"]), Some(argv(&["a"])));
        assert_eq!(
            keys_of(&["mset", "a", "1", "b", "2"]),
            Some(argv(&["a", "b"]))
        );
        assert_eq!(
            keys_of(&["ai.tensorset", "t", "FLOAT", "1", "VALUES", "1"]),
            Some(argv(&["t"]))
        );
        assert_eq!(keys_of(&["ping"]), Some(vec![]));
        assert_eq!(keys_of(&["flushall"]), Some(vec![]));
        for beyond in [
            &["dbsize"][..],
            &["keys", "*"],
            &["info"],
            &["config", "get", "maxmemory"],
            &["migrate", "h", "1", "k", "0", "1000"],
        ] {
            assert_eq!(keys_of(beyond), None, "{beyond:?}");
        }
    }

    #[test]
    fn results_compare_errors_by_their_text() {
        let a = [Ok(Applied::Int(1)), Err(Error::WrongType)];
        let b = [
            Ok(Applied::Int(1)),
            Err(Error::Verbatim(Error::WrongType.wire_text())),
        ];
        assert!(same_results(&a, &b));
        assert!(!same_results(&a, &b[..1]));
        assert!(!same_results(&[Ok(Applied::Int(2))], &b[..1]));
    }
}
