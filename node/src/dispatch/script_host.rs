//! What a running script reaches the server through: `redis.execute` runs a command as the
//! client that called the script, and `redisAI.model_execute` runs a stored model.
//!
//! Both are called on the run-queue thread running the script. A command goes through the
//! same checks as a client's (its user's ACL, the command's own parser) and the same handlers
//! (`dispatch::execute`), so a write is proposed through the shard's Raft log like any other
//! and is refused where the node cannot write. A script may only touch keys in the hash slots
//! of its command's keys (the script key, KEYS, INPUTS and OUTPUTS; a DAG's LOAD, PERSIST and
//! ROUTING keys), so that everything it does stays on the shard that runs it. Commands that
//! wait on the run queues (model and script runs, DAGs) are refused: the queue running the
//! script could be the one they wait on. A model runs on this thread, not through its queue,
//! and counts in its AI.INFO.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use shardai_engine::{Tensor, script::ScriptHost};
use shardai_protocol::{
    Command, Error, Reply,
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
}

fn host(shared: &Arc<Shared>, conn: &ConnState, keys: &[&Bytes]) -> Arc<dyn ScriptHost> {
    let mut slots: Vec<u16> = keys.iter().map(|k| key_slot(k)).collect();
    slots.sort_unstable();
    slots.dedup();
    Arc::new(Host {
        shared: shared.clone(),
        info: conn.info.clone(),
        user: conn.user.clone(),
        acl_generation: conn.acl_generation,
        slots,
        runtime: tokio::runtime::Handle::current(),
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

fn cross_slot() -> Error {
    Error::Verbatim(
        "ERR CROSSSLOT a script may only touch keys in the hash slots of its command's keys".into(),
    )
}

impl Host {
    fn run(&self, argv: Vec<Bytes>) -> Reply {
        let Some((index, spec)) = argv.first().and_then(|name| table::lookup_indexed(name)) else {
            let name = argv.first().cloned().unwrap_or_default();
            return Reply::Error(Error::unknown_command(&name, argv.get(1..).unwrap_or(&[])));
        };
        if REFUSED.contains(&spec.name) {
            return Reply::Error(Error::Verbatim(format!(
                "ERR {} cannot be run from a script",
                spec.name.to_ascii_uppercase()
            )));
        }
        if spec.arity_ok(argv.len()) {
            if let Some(user) = &self.user
                && let Err(d) = self.shared.acl.check(user, index, spec, &argv)
            {
                return Reply::Error(d.error);
            }
            match spec.keys(&argv) {
                Ok(keys) if keys.iter().all(|k| self.slots.contains(&key_slot(k))) => {}
                Ok(_) => return Reply::Error(cross_slot()),
                Err(e) => return Reply::Error(e),
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
        }
        let cmd = match Command::parse_for(spec, argv) {
            Ok(cmd) => cmd,
            Err(e) => return Reply::Error(e),
        };
        let mut conn = ConnState::new(self.info.clone(), self.user.clone(), self.acl_generation);
        // This thread is a run-queue thread, not one of the runtime's: it may wait on it.
        self.runtime
            .block_on(super::execute(cmd, &self.shared, &mut conn))
            .0
    }
}

impl ScriptHost for Host {
    fn execute(&self, argv: Vec<Bytes>) -> Vec<u8> {
        let reply = self.run(argv);
        let mut w = WriteBuf::new();
        w.push(&reply, 2);
        w.take().concat()
    }

    fn model_execute(
        &self,
        key: &[u8],
        inputs: Vec<Arc<Tensor>>,
        outputs: usize,
    ) -> Result<Vec<Tensor>, Error> {
        if !self.slots.contains(&key_slot(key)) {
            return Err(cross_slot());
        }
        let model = super::model::model_of(key, self.shared.store())?;
        super::model::check_counts(&model, inputs.len(), outputs)?;
        let stats = self
            .shared
            .engine
            .run_stats
            .entry(&Bytes::copy_from_slice(key));
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
