//! The string reads: GET, MGET, STRLEN and GETRANGE (the string writes are built in
//! `super::writes`).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use shardai_engine::{Store, Value};
use shardai_protocol::{Error, Reply, command::byte_range};

use crate::state::Stats;

fn count(stats: &Stats, hit: bool) {
    let c = if hit { &stats.hits } else { &stats.misses };
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(key: &[u8], store: &Store, stats: &Stats) -> Reply {
    match store.get(key) {
        Some(Value::Str(v)) => {
            count(stats, true);
            Reply::Bulk(v.into_bytes())
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
                Some(Value::Str(v)) => Reply::Bulk(v.into_bytes()),
                _ => Reply::Nil,
            })
            .collect(),
    )
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
            Some((a, b)) => Reply::Bulk(v.into_bytes().slice(a..b)),
            None => Reply::Bulk(Bytes::new()),
        },
        Some(_) => Reply::Error(Error::WrongType),
    }
}
