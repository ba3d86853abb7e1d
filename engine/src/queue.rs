//! Run queues: one queue per device string, each served by its own worker threads.
//!
//! A job carries a model, its input tensors (shared handles, not copies) and a one-shot
//! channel for the result; the async side awaits the channel, so no tokio worker ever runs a
//! model. A job that waited in its queue longer than its TIMEOUT is answered `TIMEDOUT`
//! without running.

use std::{
    collections::HashMap,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use shardai_protocol::Error;
use tokio::sync::oneshot;

use crate::{model::Model, tensor::Tensor};

/// The result of one execution.
pub type RunResult = Result<Vec<Tensor>, Error>;

/// A finished execution: the outputs and how long the backend ran (queueing excluded).
#[derive(Debug)]
pub struct Ran {
    /// The model's outputs.
    pub outputs: Vec<Tensor>,
    /// Time spent in the backend.
    pub took: Duration,
}

struct Job {
    model: Arc<Model>,
    inputs: Vec<Arc<Tensor>>,
    enqueued: Instant,
    timeout: Option<Duration>,
    reply: oneshot::Sender<Result<Ran, Error>>,
}

/// All run queues of the process.
#[derive(Default)]
pub struct RunQueues {
    queues: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    threads_per_queue: usize,
}

impl std::fmt::Debug for RunQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQueues")
            .field("devices", &self.queues.lock().len())
            .finish()
    }
}

impl RunQueues {
    /// Queues with `threads_per_queue` workers each (at least one).
    pub fn new(threads_per_queue: usize) -> Self {
        RunQueues {
            queues: Mutex::new(HashMap::new()),
            threads_per_queue: threads_per_queue.max(1),
        }
    }

    /// Queues `model` with `inputs` on the model's device; resolves with the outputs.
    pub async fn run(
        &self,
        model: Arc<Model>,
        inputs: Vec<Arc<Tensor>>,
        timeout: Option<Duration>,
    ) -> Result<Ran, Error> {
        let (tx, rx) = oneshot::channel();
        let device = model.device.to_ascii_uppercase();
        let job = Job {
            model,
            inputs,
            enqueued: Instant::now(),
            timeout,
            reply: tx,
        };
        self.sender(&device)?
            .send(job)
            .map_err(|_| Error::Verbatim("ERR run queue stopped".into()))?;
        rx.await
            .map_err(|_| Error::Verbatim("ERR run queue stopped".into()))?
    }

    fn sender(&self, device: &str) -> Result<mpsc::Sender<Job>, Error> {
        let mut queues = self.queues.lock();
        if let Some(tx) = queues.get(device) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.threads_per_queue {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("shardai-run-{device}-{i}"))
                .spawn(move || worker(rx))
                .map_err(|_| {
                    Error::Verbatim("ERR Could not initialize queue on requested device".into())
                })?;
        }
        queues.insert(device.to_string(), tx.clone());
        Ok(tx)
    }
}

fn worker(rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let job = match rx.lock().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if job.timeout.is_some_and(|t| job.enqueued.elapsed() > t) {
            let _ = job.reply.send(Err(Error::TimedOut));
            continue;
        }
        let started = Instant::now();
        let result = job.model.loaded.run(&job.inputs);
        let took = started.elapsed();
        let _ = job.reply.send(result.map(|outputs| Ran { outputs, took }));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use shardai_protocol::{DType, command::Backend as Kind};

    use super::*;
    use crate::backend::LoadedModel;

    /// Doubles its one input; sleeps first so that later jobs wait in the queue.
    struct Doubler {
        calls: AtomicUsize,
        sleep: Duration,
    }

    impl LoadedModel for Doubler {
        fn num_inputs(&self) -> Option<usize> {
            Some(1)
        }
        fn num_outputs(&self) -> Option<usize> {
            Some(1)
        }
        fn run(&self, inputs: &[Arc<Tensor>]) -> RunResult {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.sleep);
            let b: Vec<u8> = inputs[0].blob().iter().map(|x| x * 2).collect();
            Ok(vec![Tensor::from_blob(
                DType::Uint8,
                inputs[0].shape().to_vec(),
                Bytes::from(b),
            )?])
        }
    }

    fn model(sleep: Duration) -> (Arc<Model>, Arc<Doubler>) {
        let d = Arc::new(Doubler {
            calls: AtomicUsize::new(0),
            sleep,
        });
        let m = Model {
            backend: Kind::Onnx,
            device: "cpu".into(),
            tag: Bytes::new(),
            batch: Default::default(),
            inputs: vec![],
            outputs: vec![],
            blob: Bytes::from_static(b"blob"),
            loaded: d.clone(),
        };
        (Arc::new(m), d)
    }

    fn input() -> Vec<Arc<Tensor>> {
        vec![Arc::new(
            Tensor::from_blob(DType::Uint8, vec![2], Bytes::from_static(&[1, 2])).unwrap(),
        )]
    }

    #[tokio::test]
    async fn runs_on_queue_threads() {
        let q = RunQueues::new(1);
        let (m, d) = model(Duration::ZERO);
        let out = q.run(m, input(), None).await.unwrap().outputs;
        assert_eq!(&out[0].blob()[..], &[2, 4]);
        assert_eq!(d.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_waited_past_its_timeout_is_not_run() {
        let q = Arc::new(RunQueues::new(1));
        let (m, d) = model(Duration::from_millis(200));
        let first = tokio::spawn({
            let (q, m) = (q.clone(), m.clone());
            async move { q.run(m, input(), None).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = q.run(m, input(), Some(Duration::from_millis(50))).await;
        assert_eq!(second.unwrap_err(), Error::TimedOut);
        assert!(first.await.unwrap().is_ok());
        assert_eq!(
            d.calls.load(Ordering::SeqCst),
            1,
            "the timed-out job never ran"
        );
    }

    #[test]
    fn model_chunks_as_redisai_counts_them() {
        let (m, _) = model(Duration::ZERO);
        let mut m = (*m).clone();
        m.blob = Bytes::from(vec![7u8; 10]);
        assert_eq!(m.chunks(100).len(), 1);
        let c = m.chunks(4);
        assert_eq!(c.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 2]);
        let c = m.chunks(5);
        assert_eq!(
            c.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [5, 5, 0],
            "exact multiple ends empty"
        );
    }
}
