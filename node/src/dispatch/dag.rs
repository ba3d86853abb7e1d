//! AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the deprecated AI.DAGRUN / AI.DAGRUN_RO.
//!
//! The LOADed tensors are read from the keyspace, every op is checked (TENSORSET's tensor
//! built, MODELEXECUTE's model found and its INPUTS/OUTPUTS counted) and the DAG planned
//! before anything runs; the engine then runs it (`shardai_engine::dag`). The PERSISTed
//! tensors are written by one `Mutation`, and only when every op succeeded.

use std::{sync::Arc, time::Duration};

use shardai_engine::{
    Mutation, Proposer, Tensor,
    dag::{self, DagResult, OpNames, Outcome, Step},
    script::ScriptHost,
};
use shardai_protocol::{
    Error, Reply,
    command::{Dag, DagOp},
};

use super::{
    keyspace::applied,
    model::model_of,
    tensor::{tensor_reply, tensors_of},
};
use crate::state::Engine;

/// # Format
/// `AI.DAGEXECUTE [LOAD n key...] [PERSIST n key...] [ROUTING tag] [TIMEOUT ms] |> op ...`
/// → one reply per op (`OK`, a tensor, an error, or `NA` for ops after a failure), or
/// `+TIMEDOUT`.
pub(super) async fn dagexecute(
    d: Dag,
    proposer: &dyn Proposer,
    engine: &Engine,
    max_bulk: usize,
    host: Arc<dyn ScriptHost>,
) -> Reply {
    match run(d, proposer, engine, max_bulk, host).await {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

async fn run(
    d: Dag,
    proposer: &dyn Proposer,
    engine: &Engine,
    max: usize,
    host: Arc<dyn ScriptHost>,
) -> Result<Reply, Error> {
    let store = proposer.store();
    let loaded = tensors_of(&d.load, store)?;
    let mut steps = Vec::with_capacity(d.ops.len());
    for op in &d.ops {
        steps.push(match op {
            DagOp::TensorSet(t) => Step::Set(Tensor::build(
                t.dtype,
                t.shape.clone(),
                t.data.clone(),
                max,
            )?),
            DagOp::TensorGet(_) => Step::Get,
            DagOp::ModelExecute(e) => {
                let model = model_of(&e.key, store, engine)?;
                super::model::check_counts(&model, e.inputs.len(), e.outputs.len())?;
                Step::Run {
                    stats: model.stats.clone(),
                    model,
                }
            }
            DagOp::ScriptExecute(e) => {
                let script = super::script::script_of(&e.key, store, engine)?;
                let args = e.args.as_ref().map_err(Clone::clone)?;
                Step::Run {
                    stats: script.stats.clone(),
                    model: super::script::call_of(script, args, Some(host.clone())),
                }
            }
        });
    }
    let names: Vec<OpNames<'_>> = d
        .ops
        .iter()
        .map(|op| OpNames {
            inputs: op.inputs(),
            outputs: op.outputs(),
        })
        .collect();
    let plan = dag::plan(&d.load, &d.persist, &names)?;
    let timeout = d.timeout_ms.map(Duration::from_millis);
    let (outcomes, slots) = match dag::execute(&engine.queues, &plan, steps, loaded, timeout).await
    {
        DagResult::TimedOut => return Ok(Reply::Status("TIMEDOUT")),
        DagResult::Finished {
            outcomes, slots, ..
        } => (outcomes, slots),
    };
    let failed = outcomes.iter().any(|o| matches!(o, Outcome::Failed(_)));
    if !failed && !d.persist.is_empty() {
        let pairs = d
            .persist
            .iter()
            .zip(&plan.persist)
            .filter_map(|(k, &slot)| slots[slot].clone().map(|t| (k.clone(), t)))
            .collect();
        let r = applied(proposer.propose(Mutation::SetTensors(pairs)).await);
        if let Reply::Error(e) = r {
            return Err(e);
        }
    }
    let replies = outcomes
        .into_iter()
        .zip(&d.ops)
        .map(|(o, op)| match (o, op) {
            (Outcome::Done, _) => Reply::OK,
            (Outcome::Got(t), DagOp::TensorGet(g)) => tensor_reply(&t, g.format),
            (Outcome::Got(_), _) => Reply::OK,
            (Outcome::Failed(e), _) => Reply::Error(e),
            (Outcome::NotRun, _) => Reply::Status("NA"),
        })
        .collect();
    Ok(Reply::Array(replies))
}
