//! EXISTS, TOUCH, TYPE, KEYS, SCAN, RANDOMKEY and FLUSHALL/FLUSHDB, and [`applied`], the
//! reply a write's outcome gives (DEL, RENAME and COPY are built in `super::writes`).

use bytes::Bytes;
use shardai_engine::{Applied, Mutation, Proposer, Store, now_ms};
use shardai_protocol::{Reply, command::Scan};

/// Turns a proposal's outcome into a reply.
pub(crate) fn applied(r: Result<Applied, shardai_protocol::Error>) -> Reply {
    match r {
        Ok(Applied::Ok) => Reply::OK,
        Ok(Applied::Int(n)) => Reply::Int(n),
        Ok(Applied::Set { written, old }) => match old {
            Some(v) => Reply::Bulk(v),
            None if written => Reply::OK,
            None => Reply::Nil,
        },
        Ok(Applied::Values(v)) => match v {
            Some(v) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
            None => Reply::NilArray,
        },
        Ok(Applied::Batch(v)) => Reply::Array(v.into_iter().map(applied).collect()),
        Ok(Applied::Value(v)) => v.map_or(Reply::Nil, Reply::Bulk),
        Err(e) => Reply::Error(e),
    }
}

pub(super) fn exists(keys: &[Bytes], store: &Store) -> Reply {
    Reply::Int(keys.iter().filter(|k| store.get(k).is_some()).count() as i64)
}

pub(super) fn type_of(key: &[u8], store: &Store) -> Reply {
    match store.get(key) {
        Some(v) => Reply::Status(v.type_name()),
        None => Reply::Status("none"),
    }
}

pub(super) fn keys(pattern: &[u8], store: &Store) -> Reply {
    let keys = store.keys(pattern, now_ms());
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}

pub(super) fn scan(s: Scan, store: &Store) -> Reply {
    let page = store.scan(
        s.cursor,
        s.count,
        s.pattern.as_deref(),
        s.type_name.as_deref(),
        now_ms(),
    );
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(page.cursor.to_string())),
        Reply::Array(page.keys.into_iter().map(Reply::Bulk).collect()),
    ])
}

pub(super) fn random_key(store: &Store, seed: u64) -> Reply {
    match store.random_key(seed, now_ms()) {
        Some(k) => Reply::Bulk(k),
        None => Reply::Nil,
    }
}

pub(super) async fn flush(proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::Flush).await)
}
