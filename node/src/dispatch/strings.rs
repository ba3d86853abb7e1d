//! GET, SET, MGET, MSET and the INCR family.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shardai_engine::{Deadline, Mutation, Proposer, Store, Value, now_ms};
use shardai_protocol::{
    Error, Reply,
    command::{Expiry, SetArgs},
};

use super::keyspace::applied;
use crate::state::Stats;

fn count(stats: &Stats, hit: bool) {
    let c = if hit { &stats.hits } else { &stats.misses };
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(key: &[u8], store: &Store, stats: &Stats) -> Reply {
    match store.get(key) {
        Some(Value::Str(v)) => {
            count(stats, true);
            Reply::Bulk(v)
        }
        Some(_) => Reply::Error(Error::WrongType),
        None => {
            count(stats, false);
            Reply::Nil
        }
    }
}

pub(super) fn mget(keys: &[Bytes], store: &Store) -> Reply {
    Reply::Array(
        keys.iter()
            .map(|k| match store.get(k) {
                Some(Value::Str(v)) => Reply::Bulk(v),
                _ => Reply::Nil,
            })
            .collect(),
    )
}

pub(super) async fn set(a: SetArgs, proposer: &dyn Proposer) -> Reply {
    // Relative deadlines become absolute here, on the node that accepted the write, so that
    // every replica expires the key at the same moment.
    let deadline = match a.expiry {
        None => Deadline::None,
        Some(Expiry::Keep) => Deadline::Keep,
        Some(Expiry::AtMillis(t)) => Deadline::At(t as u64),
        Some(Expiry::InMillis(ms)) => match now_ms().checked_add(ms as u64) {
            Some(t) if t < i64::MAX as u64 => Deadline::At(t),
            _ => return Reply::Error(Error::InvalidExpire("set")),
        },
    };
    let m = Mutation::Set {
        key: a.key,
        value: a.value,
        cond: a.cond,
        get: a.get,
        deadline,
    };
    applied(proposer.propose(m).await)
}

pub(super) async fn mset(pairs: Vec<(Bytes, Bytes)>, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::MSet(pairs)).await)
}

pub(super) async fn incr_by(key: Bytes, delta: i64, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::IncrBy { key, delta }).await)
}
