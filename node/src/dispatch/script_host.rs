//! What a running script reaches the server through: `redis.execute` runs a command as the
//! client that called the script, and `redisAI.model_execute` runs a stored model.
//!
//! Both are called on the run-queue thread running the script. A command goes through the
//! same checks as a client's (its user's ACL, denials recorded in ACL LOG; maxmemory for a
//! write that grows the dataset; the command's own parser) and the same handlers
//! (`dispatch::execute`), so a write is proposed through the shard's Raft log like any other
//! and is refused where the node cannot write. A script may only touch keys in the hash slots
//! of its command's keys (the script key, KEYS, INPUTS and OUTPUTS; a DAG's LOAD, PERSIST and
//! ROUTING keys), so that everything it does stays on the shard that runs it; keyless
//! commands other than PING and ECHO (FLUSHALL, KEYS, CONFIG, ...) are refused for the same
//! reason. Commands that wait on the run queues (model and script runs, DAGs) are refused: the
//! queue running the script could be the one they wait on. Once the command running the
//! script has answered (a timeout, a client gone), the script can change nothing more. A
//! model runs on this thread, not through its queue, and counts in its AI.INFO.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use shardai_engine::{Tensor, script::ScriptHost};
use shardai_protocol::{
    Command, Error, Reply,
    cluster_wide::is_cluster_wide,
    command::{Dag, DagOp, ScriptExecute},
    reply::WriteBuf,
    slot::key_slot,
    table,
};

use crate::{
    acl::User,
    client::{ClientInfo, ConnState},
    state::Shared,
};

/// Keyless commands a script may run: they touch no data.
const KEYLESS: [&str; 2] = ["ping", "echo"];

/// Commands a script may not run: they wait on the run queues, or leave the shard.
const REFUSED: [&str; 9] = [
    "ai.modelexecute",
    "ai.modelrun",
    "ai.scriptexecute",
    "ai.scriptrun",
    "ai.dagexecute",
    "ai.dagexecute_ro",
    "ai.dagrun",
    "ai.dagrun_ro",
    "migrate",
];

/// The server as one script call sees it.
struct Host {
    shared: Arc<Shared>,
    info: Arc<ClientInfo>,
    user: Option<Arc<User>>,
    acl_generation: u64,
    /// The hash slots the script may touch.
    slots: Vec<u16>,
    runtime: tokio::runtime::Handle,
    /// Set once the command that runs the script has answered (or its client left): a
    /// script still running then (past MODEL_EXECUTION_TIMEOUT, a DAG's TIMEOUT) can no
    /// longer change anything.
    done: AtomicBool,
}

/// Ends a host's commands when dropped: held by the handler for as long as it runs the
/// command, so it drops when the command answers and when its client leaves.
pub(super) struct Finish(pub(super) Arc<dyn ScriptHost>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Whether a script may run `spec` with `keys`, given the hash `slots` it may touch: the
/// decision that does not need the server's state.
fn allowed(spec: &table::CommandSpec, keys: &[&Bytes], slots: &[u16]) -> Result<(), Error> {
    if REFUSED.contains(&spec.name) {
        return Err(Error::Verbatim(format!(
            "ERR {} cannot be run from a script",
            spec.name.to_ascii_uppercase()
        )));
    }
    if keys.is_empty() && !KEYLESS.contains(&spec.name) {
        return Err(Error::Verbatim(format!(
            "ERR {} cannot be run from a script: a script runs only commands on the keys of \
             its own hash slots",
            spec.name.to_ascii_uppercase()
        )));
    }
    if !keys.iter().all(|k| slots.contains(&key_slot(k))) {
        return Err(cross_slot());
    }
    Ok(())
}

fn host(shared: &Arc<Shared>, conn: &ConnState, keys: &[&Bytes]) -> Arc<dyn ScriptHost> {
    // In a cluster, a cluster-wide script or model is not in a slot: it adds none.
    let wide = |k: &[u8]| shared.cluster.is_some() && is_cluster_wide(k);
    let mut slots: Vec<u16> = keys
        .iter()
        .filter(|k| !wide(k))
        .map(|k| key_slot(k))
        .collect();
    slots.sort_unstable();
    slots.dedup();
    Arc::new(Host {
        shared: shared.clone(),
        info: conn.info.clone(),
        user: conn.user.clone(),
        acl_generation: conn.acl_generation,
        slots,
        runtime: tokio::runtime::Handle::current(),
        done: AtomicBool::new(false),
    })
}

/// The host of an AI.SCRIPTEXECUTE / AI.SCRIPTRUN call by `conn`.
pub(super) fn for_script(
    e: &ScriptExecute,
    shared: &Arc<Shared>,
    conn: &ConnState,
) -> Arc<dyn ScriptHost> {
    let mut keys = vec![&e.key];
    if let Ok(a) = &e.args {
        keys.extend(a.keys.iter().chain(&a.inputs).chain(&a.outputs));
    }
    host(shared, conn, &keys)
}

/// The host of the script ops of a DAG run by `conn`.
pub(super) fn for_dag(d: &Dag, shared: &Arc<Shared>, conn: &ConnState) -> Arc<dyn ScriptHost> {
    let mut keys: Vec<&Bytes> = d.load.iter().chain(&d.persist).chain(&d.routing).collect();
    for op in &d.ops {
        match op {
            DagOp::ScriptExecute(s) => {
                keys.push(&s.key);
                if let Ok(a) = &s.args {
                    keys.extend(&a.keys);
                }
            }
            DagOp::ModelExecute(m) => keys.push(&m.key),
            DagOp::TensorSet(_) | DagOp::TensorGet(_) => {}
        }
    }
    host(shared, conn, &keys)
}

fn answered() -> Error {
    Error::Verbatim(
        "ERR the command that ran this script has already answered: the script can no longer \
         run commands or models"
            .into(),
    )
}

fn cross_slot() -> Error {
    Error::Verbatim(
        "ERR CROSSSLOT a script may only touch keys in the hash slots of its command's keys".into(),
    )
}

impl Host {
    fn run(&self, argv: Vec<Bytes>) -> Reply {
        if self.done.load(Ordering::Acquire) {
            return Reply::Error(answered());
        }
        let Some((index, spec)) = argv.first().and_then(|name| table::lookup_indexed(name)) else {
            let name = argv.first().cloned().unwrap_or_default();
            return Reply::Error(Error::unknown_command(&name, argv.get(1..).unwrap_or(&[])));
        };
        if spec.arity_ok(argv.len()) {
            if let Some(user) = &self.user
                && let Err(d) = self.shared.acl.check(user, index, spec, &argv)
            {
                self.shared.acl.log_denial(&d, &user.name, self.info.line());
                return Reply::Error(d.error);
            }
            // In a cluster, the cluster-wide models and scripts a command runs are in no
            // slot, and no other use of their names reaches the shard's keys.
            let in_cluster = self.shared.cluster.is_some();
            let keys = match in_cluster {
                true => spec.slot_keys(&argv),
                false => spec.keys(&argv),
            };
            let keys = match keys {
                Ok(keys) => keys,
                Err(e) => return Reply::Error(e),
            };
            if in_cluster {
                match crate::cluster::objects::admission(spec, &keys) {
                    crate::cluster::objects::Admission::Keys => {}
                    crate::cluster::objects::Admission::Here => {
                        return Reply::Error(Error::Verbatim(format!(
                            "ERR {} of a cluster-wide model or script cannot be run from a \
                             script",
                            spec.name.to_ascii_uppercase()
                        )));
                    }
                    crate::cluster::objects::Admission::Refuse(e) => return Reply::Error(e),
                }
            }
            if let Err(e) = allowed(spec, &keys, &self.slots) {
                return Reply::Error(e);
            }
            // A script running on a replica (a read-only DAG) reads; it never writes, not
            // even through the leader.
            if spec.flags.contains(&"write")
                && let Some(cluster) = &self.shared.cluster
                && cluster.role() != Some(crate::cluster::Role::Leader)
            {
                return Reply::Error(Error::Verbatim(
                    "READONLY You can't write against a read only replica.".into(),
                ));
            }
        } else if REFUSED.contains(&spec.name) {
            return Reply::Error(allowed(spec, &[], &[]).err().unwrap_or(Error::Syntax));
        }
        let request_bytes: usize = argv.iter().map(Bytes::len).sum();
        let cmd = match Command::parse_for(spec, argv) {
            Ok(cmd) => cmd,
            Err(e) => return Reply::Error(e),
        };
        // maxmemory, as for a client's write that grows the dataset.
        let rt = &self.shared.runtime;
        let _admitted = if spec.flags.contains(&"denyoom") {
            match crate::memory::admit(
                self.shared.store().used_bytes(),
                &rt.in_flight,
                crate::memory::growth(&cmd, request_bytes),
                rt.maxmemory.load(Ordering::Relaxed),
            ) {
                Ok(a) => a,
                Err(e) => return Reply::Error(e),
            }
        } else {
            None
        };
        let mut conn = ConnState::new(self.info.clone(), self.user.clone(), self.acl_generation);
        // This thread is a run-queue thread, not one of the runtime's: it may wait on it.
        self.runtime
            .block_on(super::execute(cmd, &self.shared, &mut conn))
            .0
    }
}

impl ScriptHost for Host {
    fn finish(&self) {
        self.done.store(true, Ordering::Release);
    }

    fn execute(&self, argv: Vec<Bytes>) -> Vec<u8> {
        let reply = self.run(argv);
        let mut w = WriteBuf::new();
        w.push(&reply, 2);
        w.take().concat()
    }

    fn model_execute(
        &self,
        key: &[u8],
        inputs: Vec<Tensor>,
        outputs: usize,
    ) -> Result<Vec<Tensor>, Error> {
        if self.done.load(Ordering::Acquire) {
            return Err(answered());
        }
        let wide = self.shared.cluster.is_some() && is_cluster_wide(key);
        if !self.slots.contains(&key_slot(key)) && !wide {
            return Err(cross_slot());
        }
        let model = super::model::model_of(key, self.shared.store(), &self.shared.engine)?;
        super::model::check_counts(&model, inputs.len(), outputs)?;
        let stats = model.stats.clone();
        let started = Instant::now();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.loaded.run(&inputs)))
                .unwrap_or_else(|_| {
                    Err(Error::Verbatim(
                        "ERR the backend failed while running the model (see the server log)"
                            .into(),
                    ))
                })
                .and_then(|out| {
                    if out.len() == outputs {
                        Ok(out)
                    } else {
                        Err(Error::Verbatim(
                            "ERR Model did not generate the expected number of outputs".into(),
                        ))
                    }
                });
        match &result {
            Ok(_) => {
                let samples = inputs
                    .first()
                    .and_then(|t| t.shape().first().copied())
                    .unwrap_or(1);
                stats.record(started.elapsed().as_micros() as u64, samples as u64)
            }
            Err(_) => stats.record_error(),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(argv: &str, slots: &[u16]) -> Result<(), Error> {
        let argv: Vec<Bytes> = argv
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        let spec = table::lookup(&argv[0]).unwrap();
        let keys = spec.keys(&argv).unwrap();
        allowed(spec, &keys, slots)
    }

    #[test]
    fn a_script_runs_commands_on_its_own_slots_only() {
        let mine = [key_slot(b"{1}")];
        assert!(check("SET k{1} v", &mine).is_ok());
        assert!(check("MGET a{1} b{1}", &mine).is_ok());
        assert!(check("PING", &mine).is_ok());
        assert_eq!(check("SET k{2} v", &mine).unwrap_err(), cross_slot());
        assert_eq!(check("MGET a{1} b{2}", &mine).unwrap_err(), cross_slot());
        for keyless in [
            "FLUSHALL",
            "KEYS *",
            "DBSIZE",
            "CONFIG GET maxmemory",
            "SCAN 0",
        ] {
            let e = check(keyless, &mine).unwrap_err().wire_text();
            assert!(e.contains("cannot be run from a script"), "{keyless}: {e}");
        }
        let e = check("AI.MODELEXECUTE m{1} INPUTS 1 a{1} OUTPUTS 1 b{1}", &mine);
        assert_eq!(
            e.unwrap_err().wire_text(),
            "ERR AI.MODELEXECUTE cannot be run from a script"
        );
        assert!(check("AI.DAGEXECUTE ROUTING {1} |> AI.TENSORGET a META", &mine).is_err());
    }
}
