//! GET, SET, MGET, MSET and the INCR family.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shardai_engine::{Deadline, Mutation, Value, now_ms};
use shardai_protocol::{
    Error, Reply,
    command::{Expiry, SetArgs},
};

use super::keyspace::applied;
use crate::state::Shared;

fn count(shared: &Shared, hit: bool) {
    let c = if hit {
        &shared.stats.hits
    } else {
        &shared.stats.misses
    };
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(key: &[u8], shared: &Shared) -> Reply {
    match shared.store().get(key) {
        Some(Value::Str(v)) => {
            count(shared, true);
            Reply::Bulk(v)
        }
        Some(_) => Reply::Error(Error::WrongType),
        None => {
            count(shared, false);
            Reply::Nil
        }
    }
}

pub(super) fn mget(keys: &[Bytes], shared: &Shared) -> Reply {
    Reply::Array(
        keys.iter()
            .map(|k| match shared.store().get(k) {
                Some(Value::Str(v)) => Reply::Bulk(v),
                _ => Reply::Nil,
            })
            .collect(),
    )
}

pub(super) async fn set(a: SetArgs, shared: &Shared) -> Reply {
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
    applied(shared.proposer.propose(m).await)
}

pub(super) async fn mset(pairs: Vec<(Bytes, Bytes)>, shared: &Shared) -> Reply {
    applied(shared.proposer.propose(Mutation::MSet(pairs)).await)
}

pub(super) async fn incr_by(key: Bytes, delta: i64, shared: &Shared) -> Reply {
    applied(
        shared
            .proposer
            .propose(Mutation::IncrBy { key, delta })
            .await,
    )
}
