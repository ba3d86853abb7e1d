//! MULTI, EXEC, DISCARD, WATCH and UNWATCH. The connection loop queues the commands sent
//! after MULTI (`ConnState::tx`); EXEC runs them in order through [`super::execute`] while
//! the connection loop holds `Shared::tx_gate` exclusively, so no other client's command runs
//! on this node in between. Each write is proposed as it comes, its own log entry.
//!
//! As in RedisAI, the commands that run models and scripts (AI.MODELEXECUTE, AI.SCRIPTEXECUTE,
//! the DAG commands and their deprecated forms) are queued but answer `ERR Cannot run RedisAI
//! command within a transaction or a LUA script` inside EXEC.

use std::{future::Future, pin::Pin, sync::Arc};

use bytes::Bytes;
use shardai_engine::{Store, Value};
use shardai_protocol::{Command, Error, Reply};

use crate::{
    client::{ConnState, Transaction},
    state::Shared,
};

fn err(text: &str) -> Reply {
    Reply::Error(Error::Verbatim(text.to_string()))
}

/// True when `now` is the very value `then` was (or both are missing). Every write stores
/// a new value, or copies one that someone else holds (the WATCH holds it), so a value kept
/// at WATCH is the one still stored only if no write came since.
fn unchanged(then: &Option<Value>, now: &Option<Value>) -> bool {
    match (then, now) {
        (None, None) => true,
        (Some(Value::Str(a)), Some(Value::Str(b))) => {
            a.as_ptr() == b.as_ptr() && a.len() == b.len()
        }
        (Some(Value::Tensor(a)), Some(Value::Tensor(b))) => Arc::ptr_eq(a, b),
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
        let v = store.get(&k);
        conn.watched.push((k, v));
    }
    Reply::OK
}

pub(super) fn unwatch(conn: &mut ConnState) -> Reply {
    conn.watched.clear();
    Reply::OK
}

/// True for the commands RedisAI refuses inside a transaction.
fn runs_models(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ModelExecute(_) | Command::ScriptExecute(_) | Command::Dag(_)
    )
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
        if watched.iter().any(|(k, v)| !unchanged(v, &store.get(k))) {
            return Reply::NilArray;
        }
        let mut replies = Vec::with_capacity(tx.queued.len());
        for cmd in tx.queued {
            if runs_models(&cmd) {
                replies.push(err(
                    "ERR Cannot run RedisAI command within a transaction or a LUA script",
                ));
                continue;
            }
            let (reply, _) = super::execute(cmd, shared, conn).await;
            replies.push(reply);
        }
        Reply::Array(replies)
    })
}
