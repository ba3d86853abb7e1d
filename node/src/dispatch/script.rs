//! AI.SCRIPTSTORE / SCRIPTSET, SCRIPTGET, SCRIPTDEL, SCRIPTEXECUTE / SCRIPTRUN,
//! AI._SCRIPTSCAN.
//!
//! A script is compiled by libtorch on a blocking thread, and its entry points checked, before
//! it is proposed, so source that does not compile is an error reply and never a stored key.
//! A call runs on the script's device queue; its outputs are stored by one `Mutation`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use shardai_engine::{
    Mutation, Proposer, Store, Value,
    backend::Backends,
    model::Model,
    script::{Script, ScriptCall, ScriptHost, bind, check_entry_points},
};
use shardai_protocol::{
    Error, Reply,
    command::{ScriptArgs, ScriptExecute, ScriptGet, ScriptStore},
};

use super::keyspace::applied;
use crate::state::Engine;

/// Devices RedisAI's TORCH backend accepts for a script: anything starting with `CPU`,
/// `GPU`, or `GPU:` and an index.
fn valid_device(d: &str) -> bool {
    let upper = d.to_ascii_uppercase();
    upper.starts_with("CPU")
        || upper == "GPU"
        || upper
            .strip_prefix("GPU:")
            .is_some_and(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// # Format
/// `AI.SCRIPTSTORE key device [TAG tag] ENTRY_POINTS n fn... SOURCE script` → `+OK`
pub(super) async fn scriptstore(
    s: ScriptStore,
    proposer: &dyn Proposer,
    backends: &Arc<Backends>,
) -> Reply {
    if !valid_device(&s.device) {
        return Reply::Error(Error::Verbatim("ERR unsupported device".into()));
    }
    let (source, device, entry_points) =
        (s.source.clone(), s.device.clone(), s.entry_points.clone());
    let backends = backends.clone();
    // Compiling is a backend call: not on an async worker.
    let compiled = tokio::task::spawn_blocking(move || {
        let compiled = backends.compile_script(&source, &device)?;
        check_entry_points(&*compiled, &entry_points)?;
        Ok::<_, Error>(compiled)
    })
    .await;
    let compiled = match compiled {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Reply::Error(e),
        Err(e) => {
            return Reply::Error(Error::Verbatim(format!(
                "ERR script compilation failed: {e}"
            )));
        }
    };
    let script = Script {
        device: s.device,
        tag: s.tag,
        entry_points: s.entry_points,
        source: s.source,
        compiled,
        stats: Default::default(),
    };
    let m = Mutation::SetScript {
        key: s.key,
        script: Arc::new(script),
    };
    applied(proposer.propose(m).await)
}

/// The script named `key`: in `store`, or among the cluster-wide objects for a cluster-wide
/// name in a cluster.
pub(super) fn script_of(key: &[u8], store: &Store, engine: &Engine) -> Result<Arc<Script>, Error> {
    script_in(key, engine.store_for(key, store))
}

fn script_in(key: &[u8], store: &Store) -> Result<Arc<Script>, Error> {
    match store.get(key) {
        Some(Value::Script(s)) => Ok(s),
        Some(_) => Err(Error::WrongType),
        None => Err(Error::ScriptKeyEmpty),
    }
}

/// # Format
/// `AI.SCRIPTGET key [META] [SOURCE]` → `device`, `tag`, `Entry Points` [, `source`]; the
/// source alone with only SOURCE.
pub(super) fn scriptget(g: ScriptGet, store: &Store) -> Reply {
    let s = match script_in(&g.key, store) {
        Ok(s) => s,
        Err(e) => return Reply::Error(e),
    };
    if g.source && !g.meta {
        return Reply::Bulk(s.source.clone());
    }
    let mut out = vec![
        Reply::bulk("device"),
        Reply::Bulk(Bytes::from(s.device.clone())),
        Reply::bulk("tag"),
        Reply::Bulk(s.tag.clone()),
        Reply::bulk("Entry Points"),
        Reply::Array(s.entry_points.iter().cloned().map(Reply::Bulk).collect()),
    ];
    if g.source || !g.meta {
        out.push(Reply::bulk("source"));
        out.push(Reply::Bulk(s.source.clone()));
    }
    Reply::Array(out)
}

/// # Format
/// `AI.SCRIPTDEL key` → `+OK`
pub(super) async fn scriptdel(key: Bytes, proposer: &dyn Proposer) -> Reply {
    applied(proposer.propose(Mutation::DelScript(key)).await)
}

/// A call of `a.function` of `script` with `a`'s inputs, keys and args, as a model for the
/// run queues. A call that cannot bind (no such function, parameters it cannot fill, a
/// script this node could not compile) fails when it runs, counted in AI.INFO as RedisAI
/// counts it.
pub(super) fn call_of(
    script: Arc<Script>,
    a: &ScriptArgs,
    host: Option<Arc<dyn ScriptHost>>,
) -> Arc<Model> {
    let binding = match script.compiled.load_error() {
        Some(why) => Err(Error::Verbatim(format!(
            "ERR the script is stored but could not be compiled on this node ({})",
            why.strip_prefix("ERR ").unwrap_or(why)
        ))),
        None => {
            let kinds = script.compiled.signature(&a.function);
            let entry = script
                .entry_points
                .iter()
                .any(|e| e[..] == *a.function.as_bytes());
            bind(
                &a.function,
                kinds.as_deref(),
                entry,
                a.inputs.len(),
                &a.keys,
                &a.args,
            )
        }
    };
    ScriptCall::model(script, a.function.clone(), binding, a.outputs.len(), host)
}

/// # Format
/// `AI.SCRIPTEXECUTE key function [KEYS n key...] [INPUTS n key...] [ARGS n arg...]
/// [OUTPUTS n key...] [TIMEOUT ms]` → `+OK`, or `+TIMEDOUT` when the request waited in the
/// queue longer than TIMEOUT.
pub(super) async fn scriptexecute(
    e: ScriptExecute,
    proposer: &dyn Proposer,
    engine: &Engine,
    host: Arc<dyn ScriptHost>,
) -> Reply {
    match execute(e, proposer, engine, host).await {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

async fn execute(
    e: ScriptExecute,
    proposer: &dyn Proposer,
    engine: &Engine,
    host: Arc<dyn ScriptHost>,
) -> Result<Reply, Error> {
    let store = proposer.store();
    let script = script_of(&e.key, store, engine)?;
    let a = e.args?;
    let inputs = super::tensor::tensors_of(&a.inputs, store)?;
    let stats = script.stats.clone();
    let call = call_of(script, &a, Some(host));
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let outputs = match engine.queues.run(call, inputs, timeout, stats).await {
        Ok(ran) => ran.outputs,
        Err(Error::TimedOut) => return Ok(Reply::Status("TIMEDOUT")),
        Err(err) => return Err(err),
    };
    if outputs.is_empty() {
        return Ok(Reply::OK);
    }
    let pairs = a.outputs.into_iter().zip(outputs).collect();
    Ok(applied(proposer.propose(Mutation::SetTensors(pairs)).await))
}

/// `AI._SCRIPTSCAN` → `[[key, tag], ...]`
/// The shard's scripts, then the cluster-wide ones (`objects`, in a cluster).
pub(super) fn scriptscan(store: &Store, objects: Option<&Store>) -> Reply {
    let stores: Vec<&Store> = std::iter::once(store).chain(objects).collect();
    super::model::scan_tags(&stores, shardai_engine::script::SCRIPT_TYPE, |v| match v {
        Value::Script(s) => Some(s.tag.clone()),
        _ => None,
    })
}
