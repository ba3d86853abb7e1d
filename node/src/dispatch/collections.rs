//! Hash and list reads (their writes are built in `super::writes`).

use bytes::Bytes;
use shardai_engine::{
    Store, Value,
    collections::{Hash, List},
};
use shardai_protocol::{Error, Reply, command::HashPart};

/// The hash at `key`: None when missing, WRONGTYPE for another type.
fn hash(key: &[u8], store: &Store) -> Result<Option<std::sync::Arc<Hash>>, Reply> {
    match store.get(key) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(Reply::Error(Error::WrongType)),
    }
}

/// The list at `key`: None when missing, WRONGTYPE for another type.
fn list(key: &[u8], store: &Store) -> Result<Option<std::sync::Arc<List>>, Reply> {
    match store.get(key) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l)),
        Some(_) => Err(Reply::Error(Error::WrongType)),
    }
}

fn bulk_or_nil(v: Option<&Bytes>) -> Reply {
    v.map_or(Reply::Nil, |v| Reply::Bulk(v.clone()))
}

pub(super) fn hget(key: &[u8], field: &[u8], store: &Store) -> Reply {
    match hash(key, store) {
        Ok(h) => bulk_or_nil(h.as_ref().and_then(|h| h.get(field))),
        Err(r) => r,
    }
}

pub(super) fn hexists(key: &[u8], field: &[u8], store: &Store) -> Reply {
    match hash(key, store) {
        Ok(h) => Reply::Int(h.is_some_and(|h| h.get(field).is_some()) as i64),
        Err(r) => r,
    }
}

pub(super) fn hmget(key: &[u8], fields: &[Bytes], store: &Store) -> Reply {
    match hash(key, store) {
        Ok(h) => Reply::Array(
            fields
                .iter()
                .map(|f| bulk_or_nil(h.as_ref().and_then(|h| h.get(f))))
                .collect(),
        ),
        Err(r) => r,
    }
}

pub(super) fn hread(key: &[u8], part: HashPart, store: &Store) -> Reply {
    let h = match hash(key, store) {
        Ok(h) => h.unwrap_or_default(),
        Err(r) => return r,
    };
    let bulk = |b: &Bytes| Reply::Bulk(b.clone());
    match part {
        HashPart::Len => Reply::Int(h.len() as i64),
        HashPart::All => Reply::Map(h.iter().map(|(f, v)| (bulk(f), bulk(v))).collect()),
        HashPart::Keys => Reply::Array(h.iter().map(|(f, _)| bulk(f)).collect()),
        HashPart::Values => Reply::Array(h.iter().map(|(_, v)| bulk(v)).collect()),
    }
}

pub(super) fn lrange(key: &[u8], start: i64, stop: i64, store: &Store) -> Reply {
    match list(key, store) {
        Ok(l) => Reply::Array(
            l.map(|l| l.range(start, stop))
                .unwrap_or_default()
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        ),
        Err(r) => r,
    }
}

pub(super) fn llen(key: &[u8], store: &Store) -> Reply {
    match list(key, store) {
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len() as i64)),
        Err(r) => r,
    }
}

pub(super) fn lindex(key: &[u8], index: i64, store: &Store) -> Reply {
    match list(key, store) {
        Ok(l) => bulk_or_nil(l.as_ref().and_then(|l| l.index(index))),
        Err(r) => r,
    }
}
