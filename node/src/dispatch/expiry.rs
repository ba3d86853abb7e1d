//! EXPIRE and its forms, PERSIST, TTL and its forms, GETEX. A relative time becomes a Unix
//! time here, on the node that took the command (a shard's leader), and the log carries
//! that deadline: every replica expires the key at the same moment, and none decides on its
//! own clock that a key is gone from the log.

use bytes::Bytes;
use shardai_engine::{Mutation, Proposer, Store, Value, now_ms};
use shardai_protocol::{
    Error, Reply,
    command::{GetExChange, TtlArgs},
};

use super::keyspace::applied;

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for no key, -1 for no deadline.
pub(super) fn ttl(a: TtlArgs, store: &Store) -> Reply {
    let now = now_ms();
    let left = match store.ttl_ms(&a.key, now) {
        None => return Reply::Int(-2),
        Some(None) => return Reply::Int(-1),
        Some(Some(left)) => left,
    };
    Reply::Int(match (a.absolute, a.millis) {
        (true, true) => (now + left) as i64,
        (true, false) => ((now + left) / 1000) as i64,
        (false, true) => left as i64,
        // As Redis: rounded to the nearest second.
        (false, false) => (left.saturating_add(500) / 1000) as i64,
    })
}

/// GETEX: the string's value, its deadline changed as asked; read where the change applies,
/// so the value answered is the one whose deadline changed.
pub(super) async fn getex(
    key: Bytes,
    change: Option<GetExChange>,
    store: &Store,
    proposer: &dyn Proposer,
) -> Reply {
    // Redis's order: no key, then the type, then the time.
    match store.get(&key) {
        None => return Reply::Nil,
        Some(Value::Str(_)) => {}
        Some(_) => return Reply::Error(Error::WrongType),
    }
    let change = match change.map(|c| c.deadline(now_ms() as i64)).transpose() {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    applied(proposer.propose(Mutation::GetEx { key, change }).await)
}
