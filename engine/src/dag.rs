//! DAGs (AI.DAGEXECUTE): the plan, a pure function of the LOAD keys, the ops' tensor names
//! and the PERSIST keys; and the executor, which runs each op once its inputs exist.
//!
//! Every tensor an op writes gets a slot of its own (a name written twice is two slots), so
//! an op depends only on the ops that wrote the versions it reads, and ops whose inputs are
//! ready run at once: model runs on different device queues overlap. TENSORSET and
//! TENSORGET are done by the executor itself; model runs go through the run queues (where
//! they may be batched, and are counted in AI.INFO). After a failed op no new op starts and
//! the ones not run are reported as such; the caller persists nothing then. The DAG's
//! TIMEOUT is checked between ops and bounds each model run's wait in its queue.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::Poll,
    time::{Duration, Instant},
};

use bytes::Bytes;
use shardai_protocol::Error;

use crate::{
    model::Model,
    queue::{Ran, RunQueues},
    stats::RunStats,
    tensor::Tensor,
};

/// One op's tensor names, for planning.
#[derive(Debug, Clone, Copy)]
pub struct OpNames<'a> {
    /// The names it reads.
    pub inputs: &'a [Bytes],
    /// The names it writes.
    pub outputs: &'a [Bytes],
}

/// Where one op reads and writes, and which ops it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSlots {
    /// Slots of its inputs.
    pub inputs: Vec<usize>,
    /// Slots of its outputs.
    pub outputs: Vec<usize>,
    /// Ops that must finish first (the writers of its inputs), ascending.
    pub after: Vec<usize>,
}

/// A DAG's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Number of tensor slots; the first ones hold the LOADed tensors, in LOAD order.
    pub slots: usize,
    /// Per op, in the DAG's order.
    pub ops: Vec<OpSlots>,
    /// The slot each PERSIST key takes its tensor from (the last version written).
    pub persist: Vec<usize>,
}

/// Plans a DAG: RedisAI's `ERR INPUT key cannot be found in DAG` for a name that is neither
/// LOADed nor written by an earlier op, `ERR PERSIST key cannot be found in DAG` for a
/// PERSIST key no op writes and nothing LOADs.
pub fn plan(load: &[Bytes], persist: &[Bytes], ops: &[OpNames<'_>]) -> Result<Plan, Error> {
    // name → (slot, writer op)
    let mut latest: std::collections::HashMap<&Bytes, (usize, Option<usize>)> = load
        .iter()
        .enumerate()
        .map(|(i, k)| (k, (i, None)))
        .collect();
    let mut slots = load.len();
    let mut planned = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut inputs = Vec::with_capacity(op.inputs.len());
        let mut after = Vec::new();
        for name in op.inputs {
            let &(slot, writer) = latest
                .get(name)
                .ok_or_else(|| Error::Verbatim("ERR INPUT key cannot be found in DAG".into()))?;
            inputs.push(slot);
            after.extend(writer);
        }
        after.sort_unstable();
        after.dedup();
        let mut outputs = Vec::with_capacity(op.outputs.len());
        for name in op.outputs {
            outputs.push(slots);
            latest.insert(name, (slots, Some(i)));
            slots += 1;
        }
        planned.push(OpSlots {
            inputs,
            outputs,
            after,
        });
    }
    let persist = persist
        .iter()
        .map(|k| {
            latest
                .get(k)
                .map(|&(slot, _)| slot)
                .ok_or_else(|| Error::Verbatim("ERR PERSIST key cannot be found in DAG".into()))
        })
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        slots,
        ops: planned,
        persist,
    })
}

/// What an op does.
#[derive(Debug, Clone)]
pub enum Step {
    /// AI.TENSORSET: its tensor, built when the command was parsed.
    Set(Tensor),
    /// AI.TENSORGET: the tensor is handed back for the reply.
    Get,
    /// AI.MODELEXECUTE on a model, counted in the model key's statistics.
    Run {
        /// The model.
        model: Arc<Model>,
        /// Its key's AI.INFO statistics.
        stats: Arc<RunStats>,
    },
}

/// How an op ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran (TENSORSET, MODELEXECUTE).
    Done,
    /// TENSORGET's tensor.
    Got(Tensor),
    /// It failed with this error.
    Failed(Error),
    /// It did not run because an earlier op failed.
    NotRun,
}

/// When a model op's backend call ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The op's position in the DAG.
    pub op: usize,
    /// The device queue it ran on.
    pub device: String,
    /// When the backend call started.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
}

/// The result of a DAG.
#[derive(Debug)]
pub enum DagResult {
    /// The DAG's TIMEOUT passed before it finished.
    TimedOut,
    /// Every op ran, or the DAG stopped after a failure.
    Finished {
        /// One per op.
        outcomes: Vec<Outcome>,
        /// Every slot's tensor (`None` where its op did not run).
        slots: Vec<Option<Tensor>>,
        /// The model runs' backend calls.
        spans: Vec<Span>,
    },
}

type Running<'a> = Pin<Box<dyn Future<Output = Result<Ran, Error>> + Send + 'a>>;

/// Runs a planned DAG. `loaded` fills the first slots; `steps` has one entry per op.
pub async fn execute(
    queues: &RunQueues,
    plan: &Plan,
    steps: Vec<Step>,
    loaded: Vec<Tensor>,
    timeout: Option<Duration>,
) -> DagResult {
    let deadline = timeout.map(|t| Instant::now() + t);
    let n = plan.ops.len();
    let mut slots: Vec<Option<Tensor>> = vec![None; plan.slots];
    for (slot, t) in slots.iter_mut().zip(loaded) {
        *slot = Some(t);
    }
    let mut outcomes = vec![Outcome::NotRun; n];
    let mut started = vec![false; n];
    let mut finished = vec![false; n];
    let mut failed = false;
    let mut spans = Vec::new();
    let mut running: Vec<(usize, Running<'_>)> = Vec::new();
    loop {
        let pending = !running.is_empty() || (!failed && started.iter().any(|s| !s));
        if pending && deadline.is_some_and(|d| Instant::now() >= d) {
            return DagResult::TimedOut;
        }
        // Start every op whose inputs are ready; TENSORSET / TENSORGET finish at once and
        // may make further ops ready, hence the inner loop.
        let mut progressed = true;
        while progressed && !failed {
            progressed = false;
            for i in 0..n {
                let op = &plan.ops[i];
                if started[i] || !op.after.iter().all(|&a| finished[a]) {
                    continue;
                }
                started[i] = true;
                match &steps[i] {
                    Step::Set(t) => {
                        if let Some(&out) = op.outputs.first() {
                            slots[out] = Some(t.clone());
                        }
                        outcomes[i] = Outcome::Done;
                        finished[i] = true;
                        progressed = true;
                    }
                    Step::Get => {
                        outcomes[i] = match op.inputs.first().and_then(|&s| slots[s].clone()) {
                            Some(t) => Outcome::Got(t),
                            None => Outcome::Failed(Error::Verbatim(
                                "ERR INPUT key cannot be found in DAG".into(),
                            )),
                        };
                        finished[i] = true;
                        progressed = true;
                    }
                    Step::Run { model, stats } => {
                        let inputs: Vec<Tensor> =
                            op.inputs.iter().filter_map(|&s| slots[s].clone()).collect();
                        let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                        let fut = queues.run(model.clone(), inputs, wait, stats.clone());
                        running.push((i, Box::pin(fut)));
                    }
                }
            }
        }
        if running.is_empty() {
            break;
        }
        // Wait for the first model run to finish (or the deadline).
        let next = std::future::poll_fn(|cx| {
            for (k, (_, fut)) in running.iter_mut().enumerate() {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    return Poll::Ready((k, r));
                }
            }
            Poll::Pending
        });
        let (k, result) = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), next).await {
                Ok(r) => r,
                Err(_) => return DagResult::TimedOut,
            },
            None => next.await,
        };
        let (i, _) = running.swap_remove(k);
        let op = &plan.ops[i];
        finished[i] = true;
        match result {
            Ok(ran) if ran.outputs.len() == op.outputs.len() => {
                if let Step::Run { model, .. } = &steps[i] {
                    spans.push(Span {
                        op: i,
                        device: model.device.to_ascii_uppercase(),
                        started: ran.started,
                        ended: ran.ended,
                    });
                }
                for (&slot, t) in op.outputs.iter().zip(ran.outputs) {
                    slots[slot] = Some(t);
                }
                outcomes[i] = Outcome::Done;
            }
            Ok(_) => {
                outcomes[i] = Outcome::Failed(Error::Verbatim(
                    "Number of keys given as OUTPUTS here does not match model definition".into(),
                ));
                failed = true;
            }
            Err(Error::TimedOut) => return DagResult::TimedOut,
            Err(e) => {
                outcomes[i] = Outcome::Failed(e);
                failed = true;
            }
        }
    }
    DagResult::Finished {
        outcomes,
        slots,
        spans,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use shardai_protocol::{DType, command::Backend as Kind};

    use super::*;
    use crate::backend::LoadedModel;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn names<'a>(ops: &'a [(Vec<Bytes>, Vec<Bytes>)]) -> Vec<OpNames<'a>> {
        ops.iter()
            .map(|(i, o)| OpNames {
                inputs: i,
                outputs: o,
            })
            .collect()
    }

    #[test]
    fn plan_follows_versions_and_dependencies() {
        // LOAD x |> set a |> run(x, a) -> y |> run(y) -> a |> get a
        let ops = vec![
            (vec![], vec![b("a")]),
            (vec![b("x"), b("a")], vec![b("y")]),
            (vec![b("y")], vec![b("a")]),
            (vec![b("a")], vec![]),
        ];
        let p = plan(&[b("x")], &[b("a"), b("x")], &names(&ops)).unwrap();
        assert_eq!(p.slots, 4);
        assert_eq!(p.ops[1].inputs, vec![0, 1]);
        assert_eq!(p.ops[1].after, vec![0]);
        assert_eq!(p.ops[2].after, vec![1]);
        assert_eq!(p.ops[3].inputs, vec![3], "reads the second version of a");
        assert_eq!(p.ops[3].after, vec![2]);
        assert_eq!(p.persist, vec![3, 0]);
    }

    #[test]
    fn independent_ops_have_no_dependencies() {
        let ops = vec![
            (vec![b("x")], vec![b("p")]),
            (vec![b("x")], vec![b("q")]),
            (vec![b("p"), b("q")], vec![b("r")]),
        ];
        let p = plan(&[b("x")], &[], &names(&ops)).unwrap();
        assert!(p.ops[0].after.is_empty() && p.ops[1].after.is_empty());
        assert_eq!(p.ops[2].after, vec![0, 1]);
    }

    #[test]
    fn unknown_inputs_and_persist_keys_are_refused() {
        let ops = vec![(vec![b("nope")], vec![])];
        assert_eq!(
            plan(&[], &[], &names(&ops)).unwrap_err(),
            Error::Verbatim("ERR INPUT key cannot be found in DAG".into())
        );
        let ops = vec![(vec![], vec![b("a")])];
        assert_eq!(
            plan(&[], &[b("b")], &names(&ops)).unwrap_err(),
            Error::Verbatim("ERR PERSIST key cannot be found in DAG".into())
        );
    }

    /// Adds 1 to every byte after sleeping; fails on an input whose first byte is 255.
    struct Slow {
        sleep: Duration,
        calls: AtomicUsize,
    }

    impl LoadedModel for Slow {
        fn num_inputs(&self) -> Option<usize> {
            Some(1)
        }
        fn num_outputs(&self) -> Option<usize> {
            Some(1)
        }
        fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.sleep);
            if inputs[0].data()[0] == 255 {
                return Err(Error::Verbatim("ERR boom".into()));
            }
            let out: Vec<u8> = inputs[0].data().iter().map(|x| x + 1).collect();
            Ok(vec![Tensor::from_blob(
                DType::Uint8,
                inputs[0].shape().to_vec(),
                Bytes::from(out),
            )?])
        }
    }

    fn model(device: &str, sleep: Duration) -> (Arc<Model>, Arc<Slow>) {
        let slow = Arc::new(Slow {
            sleep,
            calls: AtomicUsize::new(0),
        });
        let m = Model {
            backend: Kind::Onnx,
            device: device.into(),
            tag: Bytes::new(),
            batch: Default::default(),
            inputs: vec![],
            outputs: vec![],
            blob: Bytes::new(),
            loaded: slow.clone(),
            stats: Default::default(),
        };
        (Arc::new(m), slow)
    }

    fn run(m: &Arc<Model>) -> Step {
        Step::Run {
            model: m.clone(),
            stats: Arc::new(RunStats::default()),
        }
    }

    fn byte(v: u8) -> Tensor {
        Tensor::from_blob(DType::Uint8, vec![1], Bytes::from(vec![v])).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ops_on_two_devices_overlap() {
        let queues = RunQueues::new(1);
        let (cpu0, _) = model("CPU", Duration::from_millis(150));
        let (cpu1, _) = model("CPU:1", Duration::from_millis(150));
        // LOAD x |> run cpu0(x) -> p |> run cpu1(x) -> q |> get p |> get q
        let ops = vec![
            (vec![b("x")], vec![b("p")]),
            (vec![b("x")], vec![b("q")]),
            (vec![b("p")], vec![]),
            (vec![b("q")], vec![]),
        ];
        let p = plan(&[b("x")], &[], &names(&ops)).unwrap();
        let steps = vec![run(&cpu0), run(&cpu1), Step::Get, Step::Get];
        let DagResult::Finished {
            outcomes, spans, ..
        } = execute(&queues, &p, steps, vec![byte(1)], None).await
        else {
            panic!("timed out")
        };
        assert_eq!(outcomes[2], Outcome::Got(byte(2)));
        assert_eq!(outcomes[3], Outcome::Got(byte(2)));
        assert_eq!(spans.len(), 2);
        let (a, b) = (&spans[0], &spans[1]);
        assert_ne!(a.device, b.device);
        assert!(
            a.started < b.ended && b.started < a.ended,
            "the two backend calls overlap: {spans:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_op_stops_the_dag() {
        let queues = RunQueues::new(1);
        let (m, slow) = model("CPU", Duration::ZERO);
        // set a=255 |> run(a) -> b (fails) |> run(b) -> c |> get c
        let ops = vec![
            (vec![], vec![b("a")]),
            (vec![b("a")], vec![b("b")]),
            (vec![b("b")], vec![b("c")]),
            (vec![b("c")], vec![]),
        ];
        let p = plan(&[], &[b("c")], &names(&ops)).unwrap();
        let steps = vec![Step::Set(byte(255)), run(&m), run(&m), Step::Get];
        let DagResult::Finished {
            outcomes, slots, ..
        } = execute(&queues, &p, steps, vec![], None).await
        else {
            panic!("timed out")
        };
        assert_eq!(outcomes[0], Outcome::Done);
        assert_eq!(
            outcomes[1],
            Outcome::Failed(Error::Verbatim("ERR boom".into()))
        );
        assert_eq!(outcomes[2], Outcome::NotRun);
        assert_eq!(outcomes[3], Outcome::NotRun);
        assert!(slots[p.persist[0]].is_none(), "nothing to persist");
        assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_timeout_is_checked_between_ops() {
        let queues = RunQueues::new(1);
        let (m, slow) = model("CPU", Duration::from_millis(100));
        let ops = vec![
            (vec![b("x")], vec![b("y")]),
            (vec![b("y")], vec![b("z")]),
            (vec![b("z")], vec![b("w")]),
        ];
        let p = plan(&[b("x")], &[], &names(&ops)).unwrap();
        let steps = vec![run(&m), run(&m), run(&m)];
        let r = execute(
            &queues,
            &p,
            steps,
            vec![byte(1)],
            Some(Duration::from_millis(50)),
        )
        .await;
        assert!(matches!(r, DagResult::TimedOut));
        // Give the worker time to finish the op it had started; no later op was sent.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
    }
}
