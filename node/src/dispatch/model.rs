//! AI.MODELSTORE / MODELSET, MODELGET, MODELDEL, MODELEXECUTE / MODELRUN, AI._MODELSCAN.
//!
//! A model is loaded into its backend on a blocking thread before it is proposed, so a bad
//! blob is an error reply and never a stored key. Execution runs on the model's device queue;
//! its outputs are stored by one `Mutation`.

use std::{sync::Arc, time::Duration};

use shardai_engine::{Mutation, Proposer, Store, Value, backend::Backends, model::Model};
use shardai_protocol::{
    Error, Reply,
    command::{ModelExecute, ModelGet, ModelStore},
};

use super::keyspace::applied;
use crate::state::Engine;

/// # Format
/// `AI.MODELSTORE key backend device [TAG tag] [BATCHSIZE n [MINBATCHSIZE m
/// [MINBATCHTIMEOUT t]]] [INPUTS n name...] [OUTPUTS m name...] BLOB chunk...` → `+OK`
pub(super) async fn modelstore(
    m: ModelStore,
    proposer: &dyn Proposer,
    backends: &Arc<Backends>,
) -> Reply {
    let blob = if m.blob.len() == 1 {
        m.blob[0].clone()
    } else {
        bytes::Bytes::from(m.blob.concat())
    };
    let (inputs, outputs) = (m.inputs.clone(), m.outputs.clone());
    let (device, load_blob, kind) = (m.device.clone(), blob.clone(), m.backend);
    let backends = backends.clone();
    // Loading the library (first use) and the model are backend calls: not on an async
    // worker.
    let loaded = tokio::task::spawn_blocking(move || {
        backends.load_model(kind, &load_blob, &device, &inputs, &outputs)
    })
    .await;
    let loaded = match loaded {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return Reply::Error(e),
        Err(e) => return Reply::Error(Error::Verbatim(format!("ERR model loading failed: {e}"))),
    };
    let model = Model {
        backend: m.backend,
        device: m.device,
        tag: m.tag,
        batch: m.batch,
        inputs: m.inputs,
        outputs: m.outputs,
        blob,
        loaded,
        stats: Default::default(),
    };
    applied(
        proposer
            .propose(Mutation::SetModel {
                key: m.key,
                model: Arc::new(model),
            })
            .await,
    )
}

/// The `backend`, `device`, `tag` pairs that MODELGET META and AI.INFO both report.
fn identity(m: &Model) -> Vec<Reply> {
    vec![
        Reply::bulk("backend"),
        Reply::bulk(m.backend.name()),
        Reply::bulk("device"),
        Reply::Bulk(bytes::Bytes::from(m.device.clone())),
        Reply::bulk("tag"),
        Reply::Bulk(m.tag.clone()),
    ]
}

/// The model named `key`: in `store`, or among the cluster-wide objects for a cluster-wide
/// name in a cluster.
pub(super) fn model_of(key: &[u8], store: &Store, engine: &Engine) -> Result<Arc<Model>, Error> {
    model_in(key, engine.store_for(key, store))
}

fn model_in(key: &[u8], store: &Store) -> Result<Arc<Model>, Error> {
    match store.get(key) {
        Some(Value::Model(m)) => Ok(m),
        Some(_) => Err(Error::WrongType),
        None => Err(Error::ModelKeyEmpty),
    }
}

/// # Format
/// `AI.MODELGET key [META] [BLOB]` → the blob (or its chunks), or `backend`, `device`, `tag`,
/// `batchsize`, `minbatchsize`, `inputs`, `outputs`, `minbatchtimeout` [, `blob`, ...].
pub(super) fn modelget(g: ModelGet, store: &Store, chunk: usize) -> Reply {
    let m = match model_in(&g.key, store) {
        Ok(m) => m,
        Err(e) => return Reply::Error(e),
    };
    let blob = || {
        let chunks = m.chunks(chunk);
        if chunks.len() == 1 {
            Reply::Bulk(chunks[0].clone())
        } else {
            Reply::Array(chunks.into_iter().map(Reply::Bulk).collect())
        }
    };
    if g.blob && !g.meta {
        return blob();
    }
    let names = |v: &[bytes::Bytes]| Reply::Array(v.iter().cloned().map(Reply::Bulk).collect());
    // Names given at store time (TF), else those the model declares (ONNX, TORCH).
    let (inputs, outputs) = match m.loaded.names() {
        Some(own) if m.inputs.is_empty() && m.outputs.is_empty() => own,
        _ => (m.inputs.clone(), m.outputs.clone()),
    };
    let mut out = identity(&m);
    out.extend([
        Reply::bulk("batchsize"),
        Reply::Int(m.batch.batchsize as i64),
        Reply::bulk("minbatchsize"),
        Reply::Int(m.batch.minbatchsize as i64),
        Reply::bulk("inputs"),
        names(&inputs),
        Reply::bulk("outputs"),
        names(&outputs),
        Reply::bulk("minbatchtimeout"),
        Reply::Int(m.batch.minbatchtimeout as i64),
    ]);
    if g.blob || !g.meta {
        out.push(Reply::bulk("blob"));
        out.push(blob());
    }
    Reply::Array(out)
}

pub(super) async fn modeldel(key: bytes::Bytes, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::DelModel(key)).await)
}

/// # Format
/// `AI.MODELEXECUTE key INPUTS n key... OUTPUTS m key... [TIMEOUT ms]` → `+OK`, or
/// `+TIMEDOUT` when the request waited in the queue longer than TIMEOUT.
pub(super) async fn modelexecute(
    e: ModelExecute,
    proposer: &dyn Proposer,
    engine: &Engine,
) -> Reply {
    match execute(e, proposer, engine).await {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

fn mismatch(what: &str) -> Error {
    Error::Verbatim(format!(
        "Number of keys given as {what} here does not match model definition"
    ))
}

/// RedisAI's check of the INPUTS count against the model (made before OUTPUTS is parsed),
/// where the backend can tell its count before running.
pub(super) fn check_inputs(model: &Model, inputs: usize) -> Result<(), Error> {
    if model.loaded.num_inputs().is_some_and(|n| n != inputs) {
        return Err(mismatch("INPUTS"));
    }
    Ok(())
}

/// RedisAI's checks of INPUTS and OUTPUTS counts against the model, where the backend can
/// tell its counts before running (TORCH cannot).
pub(super) fn check_counts(model: &Model, inputs: usize, outputs: usize) -> Result<(), Error> {
    check_inputs(model, inputs)?;
    if model.loaded.num_outputs().is_some_and(|n| n != outputs) {
        return Err(mismatch("OUTPUTS"));
    }
    Ok(())
}

async fn execute(
    e: ModelExecute,
    proposer: &dyn Proposer,
    engine: &Engine,
) -> Result<Reply, Error> {
    let store = proposer.store();
    let model = model_of(&e.key, store, engine)?;
    check_counts(&model, e.inputs.len(), e.outputs.len())?;
    let inputs = super::tensor::tensors_of(&e.inputs, store)?;
    let timeout = e.timeout_ms.map(Duration::from_millis);
    let stats = model.stats.clone();
    let outputs = match engine.queues.run(model, inputs, timeout, stats).await {
        Ok(ran) => ran.outputs,
        Err(Error::TimedOut) => return Ok(Reply::Status("TIMEDOUT")),
        Err(err) => return Err(err),
    };
    if outputs.len() != e.outputs.len() {
        // Only for backends that cannot tell their output count before running (TORCH).
        return Err(mismatch("OUTPUTS"));
    }
    let pairs = e.outputs.into_iter().zip(outputs).collect();
    Ok(applied(proposer.propose(Mutation::SetTensors(pairs)).await))
}

/// `AI._MODELSCAN` → `[[key, tag], ...]`, the shard's models then the cluster-wide ones
/// (`objects`, in a cluster).
pub(super) fn modelscan(store: &Store, objects: Option<&Store>) -> Reply {
    let stores: Vec<&Store> = std::iter::once(store).chain(objects).collect();
    scan_tags(&stores, shardai_engine::model::MODEL_TYPE, |v| match v {
        Value::Model(m) => Some(m.tag.clone()),
        _ => None,
    })
}

/// `[[key, tag], ...]` of every key of type `type_name` in `stores` (AI._MODELSCAN,
/// AI._SCRIPTSCAN); `tag_of` reads a value's tag.
pub(super) fn scan_tags(
    stores: &[&Store],
    type_name: &str,
    tag_of: impl Fn(&Value) -> Option<bytes::Bytes>,
) -> Reply {
    let mut out = Vec::new();
    for store in stores {
        scan_store(store, type_name, &tag_of, &mut out);
    }
    Reply::Array(out)
}

fn scan_store(
    store: &Store,
    type_name: &str,
    tag_of: &impl Fn(&Value) -> Option<bytes::Bytes>,
    out: &mut Vec<Reply>,
) {
    let mut cursor = 0;
    loop {
        let page = store.scan(
            cursor,
            1000,
            None,
            Some(type_name),
            shardai_engine::now_ms(),
        );
        for k in page.keys {
            if let Some(tag) = store.get(&k).as_ref().and_then(tag_of) {
                out.push(Reply::Array(vec![Reply::Bulk(k), Reply::Bulk(tag)]));
            }
        }
        if page.cursor == 0 {
            break;
        }
        cursor = page.cursor;
    }
}

/// # Format
/// `AI.INFO key [RESETSTAT]` → `key`, `type`, `backend`, `device`, `tag`, `duration` (µs),
/// `samples` (-1 for a script), `calls`, `errors`; or `+OK` after RESETSTAT. A model or
/// script has statistics from the moment it is stored (zeros until it runs).
pub(super) fn ai_info(key: &bytes::Bytes, reset: bool, store: &Store) -> Reply {
    let (kind, backend, device, tag, load_error, stats) = match store.get(key) {
        Some(Value::Model(m)) => (
            "MODEL",
            m.backend.name(),
            m.device.clone(),
            m.tag.clone(),
            m.loaded.load_error().map(str::to_string),
            m.stats.clone(),
        ),
        Some(Value::Script(s)) => (
            "SCRIPT",
            "TORCH",
            s.device.clone(),
            s.tag.clone(),
            s.compiled.load_error().map(str::to_string),
            s.stats.clone(),
        ),
        _ => return Reply::Error(Error::NoRunInfo),
    };
    if reset {
        stats.reset();
        return Reply::OK;
    }
    let s = stats.snapshot();
    let samples = if kind == "MODEL" {
        s.samples as i64
    } else {
        -1
    };
    let mut out = vec![
        Reply::bulk("key"),
        Reply::Bulk(key.clone()),
        Reply::bulk("type"),
        Reply::bulk(kind),
        Reply::bulk("backend"),
        Reply::bulk(backend),
        Reply::bulk("device"),
        Reply::Bulk(bytes::Bytes::from(device)),
        Reply::bulk("tag"),
        Reply::Bulk(tag),
        Reply::bulk("duration"),
        Reply::Int(s.duration_us as i64),
        Reply::bulk("samples"),
        Reply::Int(samples),
        Reply::bulk("calls"),
        Reply::Int(s.calls as i64),
        Reply::bulk("errors"),
        Reply::Int(s.errors as i64),
    ];
    // A replicated model or script this node keeps without its backend says why.
    if let Some(why) = load_error {
        out.extend([
            Reply::bulk("load_error"),
            Reply::Bulk(bytes::Bytes::from(why)),
        ]);
    }
    Reply::Array(out)
}
