//! GET, SET (and SETNX, SETEX, PSETEX, GETSET), MGET, MSET, the INCR family, STRLEN,
//! GETRANGE, and the writes GETDEL, SETRANGE, APPEND, MSETNX and INCRBYFLOAT.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shardai_engine::{Applied, Deadline, Mutation, Proposer, Store, Value, now_ms};
use shardai_protocol::{
    Error, Reply,
    command::{Expiry, SetArgs, byte_range},
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
            _ => return Reply::Error(Error::InvalidExpire(a.name)),
        },
    };
    let m = Mutation::Set {
        key: a.key,
        value: a.value,
        cond: a.cond,
        get: a.get,
        deadline,
    };
    match proposer.propose(m).await {
        // SETNX: whether it was written.
        Ok(Applied::Set { written, .. }) if a.int_reply => Reply::Int(written as i64),
        // GET, GETSET: the old value, nil when there was none.
        Ok(Applied::Set { old, .. }) if a.get => old.map_or(Reply::Nil, Reply::Bulk),
        r => applied(r),
    }
}

pub(super) async fn mset(pairs: Vec<(Bytes, Bytes)>, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::MSet(pairs)).await)
}

pub(super) async fn incr_by(key: Bytes, delta: i64, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::IncrBy { key, delta }).await)
}

/// STRLEN: 0 for no key.
pub(super) fn strlen(key: &[u8], store: &Store) -> Reply {
    match store.get(key) {
        None => Reply::Int(0),
        Some(Value::Str(v)) => Reply::Int(v.len() as i64),
        Some(_) => Reply::Error(Error::WrongType),
    }
}

/// GETRANGE: an empty string for no key or an empty range.
pub(super) fn getrange(key: &[u8], start: i64, end: i64, store: &Store) -> Reply {
    match store.get(key) {
        None => Reply::Bulk(Bytes::new()),
        Some(Value::Str(v)) => match byte_range(v.len(), start, end) {
            Some((a, b)) => Reply::Bulk(v.slice(a..b)),
            None => Reply::Bulk(Bytes::new()),
        },
        Some(_) => Reply::Error(Error::WrongType),
    }
}
