//! AI.TENSORGET, and the tensors that model runs and DAGs read (AI.TENSORSET is built in
//! `super::writes`).

use shardai_engine::{Store, Tensor, Value, tensor::Values};
use shardai_protocol::{
    Error, Reply,
    command::{TensorFormat, TensorGet},
};

use crate::state::Stats;

/// The tensors at `keys`, as model runs and DAG LOADs read them: `WRONGTYPE` for another
/// type, RedisAI's `ERR tensor key is empty or in a different shard` for a missing key.
pub(super) fn tensors_of(keys: &[bytes::Bytes], store: &Store) -> Result<Vec<Tensor>, Error> {
    keys.iter()
        .map(|k| match store.get(k) {
            Some(Value::Tensor(t)) => Ok(t),
            Some(_) => Err(Error::WrongType),
            None => Err(Error::TensorKeyEmpty),
        })
        .collect()
}

/// # Format
/// `AI.TENSORGET key [META] [BLOB | VALUES]` → the blob, the values, or an array of
/// `dtype`, `shape` and `blob`/`values` (META and BLOB when no format is given).
pub(super) fn tensorget(g: TensorGet, store: &Store, stats: &Stats) -> Reply {
    let tensor = match store.get(&g.key) {
        Some(Value::Tensor(t)) => t,
        Some(_) => return Reply::Error(Error::WrongType),
        None => {
            stats
                .misses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Reply::Error(Error::TensorKeyEmpty);
        }
    };
    stats
        .hits
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tensor_reply(&tensor, g.format)
}

/// The most elements a VALUES reply holds. Each element is a reply of its own (tens of
/// bytes in memory before it is written): a larger tensor is read with BLOB.
pub(super) const MAX_VALUES_REPLY: usize = 1 << 22;

/// A tensor as AI.TENSORGET replies it in `format` (also inside DAG replies).
pub(super) fn tensor_reply(tensor: &Tensor, f: TensorFormat) -> Reply {
    if f.values && !f.blob && tensor.len() > MAX_VALUES_REPLY {
        return Reply::Error(Error::ValuesReplyTooLarge {
            elements: tensor.len(),
            max: MAX_VALUES_REPLY,
        });
    }
    let data = if f.blob {
        Some(("blob", Reply::Bulk(tensor.blob())))
    } else if f.values {
        Some(("values", values_reply(tensor)))
    } else {
        None
    };
    if !f.meta {
        return data.map_or(Reply::Array(vec![]), |(_, r)| r);
    }
    let mut out = vec![
        Reply::bulk("dtype"),
        Reply::bulk(tensor.dtype().name()),
        Reply::bulk("shape"),
        Reply::Array(
            tensor
                .shape()
                .iter()
                .map(|&d| Reply::Int(d as i64))
                .collect(),
        ),
    ];
    if let Some((name, r)) = data {
        out.push(Reply::bulk(name));
        out.push(r);
    }
    Reply::Array(out)
}

/// Elements as RedisAI replies them: doubles for FLOAT/DOUBLE (bulk strings in RESP2),
/// integers for the integer types and BOOL, bulk strings for STRING.
fn values_reply(t: &Tensor) -> Reply {
    match t.values() {
        Values::Floats(v) => Reply::Array(v.into_iter().map(Reply::Double).collect()),
        Values::Ints(v) => Reply::Array(v.into_iter().map(Reply::Int).collect()),
        Values::Strings(v) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
    }
}
