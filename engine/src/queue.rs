//! Run queues: one queue per device string, each served by its own worker threads.
//!
//! A job carries a model, its input tensors (shared handles, not copies), the model key's
//! AI.INFO statistics and a one-shot channel for the result; the async side awaits the
//! channel, so no tokio worker ever runs a model. Workers take their next step from the
//! auto-batching policy (`crate::batching`): a job alone, several jobs for one model
//! concatenated along dimension 0 and run as one backend call (outputs split back per job),
//! jobs that waited past their TIMEOUT answered `TIMEDOUT` without running, or a wait.
//! Statistics count backend calls: a batch of 8 requests is one call of 8 samples.
//!
//! With an execution timeout (MODEL_EXECUTION_TIMEOUT), a watchdog thread per queue abandons a
//! call that runs past it: its requests get an error and a fresh worker takes the thread's
//! place (see `crate::calls`).

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};
use shardai_protocol::Error;
use tokio::sync::oneshot;

use crate::{
    batching::{self, Pick, Queued},
    calls::{Calls, Reply},
    model::Model,
    stats::RunStats,
    tensor::Tensor,
};

/// The result of one execution.
pub type RunResult = Result<Vec<Tensor>, Error>;

/// A finished execution: the request's outputs and when the backend call that produced
/// them ran (shared by every request of a batch).
#[derive(Debug)]
pub struct Ran {
    /// The model's outputs for this request.
    pub outputs: Vec<Tensor>,
    /// When the backend call started.
    pub started: Instant,
    /// When it ended.
    pub ended: Instant,
}

/// One queued execution request.
struct Job {
    model: Arc<Model>,
    inputs: Vec<Tensor>,
    enqueued: Instant,
    deadline: Option<Instant>,
    stats: Arc<RunStats>,
    reply: oneshot::Sender<Result<Ran, Error>>,
}

/// One device's queue.
struct DeviceQueue {
    device: String,
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// The workers' backend calls in progress.
    calls: Mutex<Calls>,
    /// Wakes the watchdog when a call starts whose deadline it would sleep past.
    watch: Condvar,
    /// How long one backend call may take (None: no limit).
    timeout: Option<Duration>,
    next_worker: AtomicU64,
    /// Microseconds its workers spent in backend calls.
    busy_us: AtomicU64,
    /// The queue delay in µs (see [`crate::batching`]), shared by every device queue.
    delay_us: Arc<AtomicU64>,
}

/// One device queue's load, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLoad {
    /// The device (`CPU`, `GPU:0`, ...).
    pub device: String,
    /// Requests waiting to run.
    pub waiting: usize,
    /// Seconds its workers spent in backend calls since it started.
    pub busy_seconds: f64,
}

/// The most abandoned calls one device queue lets run on (each holds a thread): past it,
/// runs on that device are refused until one ends.
const MAX_ABANDONED: usize = 8;

fn model_id(m: &Arc<Model>) -> usize {
    Arc::as_ptr(m) as *const () as usize
}

/// ONNX Runtime stops its own runs at the execution timeout (and answers its own error); the
/// watchdog abandons an ONNX run only this much later, should that fail.
const ONNX_GRACE: Duration = Duration::from_secs(1);

/// The most device queues a node keeps: each has worker threads of its own, so device
/// names (`CPU:7`, `GPU:3`) cannot make threads without bound.
pub const MAX_DEVICE_QUEUES: usize = 64;

/// The most requests one device queue holds; a request beyond it is answered at once
/// with an error instead of growing the queue (backpressure).
pub const MAX_QUEUED: usize = 10_000;

/// The longest queue delay (`AI.CONFIG BATCH_QUEUE_DELAY_US` refuses more).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(1);

/// The per-device queues of this node, created on first use.
pub struct RunQueues {
    queues: Mutex<HashMap<String, Arc<DeviceQueue>>>,
    threads_per_queue: usize,
    max_devices: usize,
    max_queued: usize,
    timeout: Option<Duration>,
    delay_us: Arc<AtomicU64>,
}

impl std::fmt::Debug for RunQueues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQueues")
            .field("devices", &self.queues.lock().len())
            .finish()
    }
}

impl Default for RunQueues {
    fn default() -> Self {
        RunQueues::new(1)
    }
}

impl RunQueues {
    /// Queues whose devices each get `threads_per_queue` worker threads.
    pub fn new(threads_per_queue: usize) -> Self {
        RunQueues::with_limits(threads_per_queue, MAX_DEVICE_QUEUES, MAX_QUEUED)
    }

    /// As [`RunQueues::new`], with other bounds on devices and queued requests.
    pub fn with_limits(threads_per_queue: usize, max_devices: usize, max_queued: usize) -> Self {
        RunQueues {
            queues: Mutex::new(HashMap::new()),
            threads_per_queue: threads_per_queue.max(1),
            max_devices,
            max_queued,
            timeout: None,
            delay_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Sets the queue delay: how long a batch that is not full waits for more requests
    /// (zero: none, RedisAI's rules), at most [`MAX_QUEUE_DELAY`]. Waiting workers are woken
    /// to decide again with it.
    pub fn set_queue_delay(&self, delay: Duration) {
        let us = delay.min(MAX_QUEUE_DELAY).as_micros() as u64;
        self.delay_us.store(us, Ordering::Relaxed);
        for q in self.queues.lock().values() {
            // Under the queue's lock: a worker between reading the delay and waiting would
            // otherwise miss the wake-up.
            let _jobs = q.jobs.lock();
            q.ready.notify_all();
        }
    }

    /// The queue delay.
    pub fn queue_delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Abandons a backend call that runs longer than `timeout` (MODEL_EXECUTION_TIMEOUT):
    /// its requests get an error and a fresh worker takes its thread's place.
    pub fn with_execution_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// Worker threads abandoned to calls that overran, on all devices, since the start.
    pub fn lost_workers(&self) -> u64 {
        self.queues
            .lock()
            .values()
            .map(|q| q.calls.lock().lost)
            .sum()
    }

    /// Every device queue's load, by device name.
    pub fn loads(&self) -> Vec<DeviceLoad> {
        self.queues
            .lock()
            .values()
            .map(|q| DeviceLoad {
                device: q.device.clone(),
                waiting: q.jobs.lock().len(),
                busy_seconds: q.busy_us.load(Ordering::Relaxed) as f64 / 1e6,
            })
            .collect()
    }

    /// Runs `model` on `inputs` on the model's device queue, possibly batched with other
    /// requests for the same model. `TimedOut` when the job waited longer than `timeout`.
    /// Backend calls (and their errors) are counted in `stats`.
    pub async fn run(
        &self,
        model: Arc<Model>,
        inputs: Vec<Tensor>,
        timeout: Option<Duration>,
        stats: Arc<RunStats>,
    ) -> Result<Ran, Error> {
        let (tx, rx) = oneshot::channel();
        let device = model.device.to_ascii_uppercase();
        let enqueued = Instant::now();
        let job = Job {
            model,
            inputs,
            enqueued,
            deadline: timeout.map(|t| enqueued + t),
            stats,
            reply: tx,
        };
        let queue = self.queue(&device)?;
        {
            let mut jobs = queue.jobs.lock();
            if jobs.len() >= self.max_queued {
                return Err(Error::Verbatim(format!(
                    "ERR the run queue of device {device} is full ({} requests waiting): \
                     try again later",
                    self.max_queued
                )));
            }
            jobs.push_back(job);
        }
        queue.ready.notify_one();
        rx.await
            .map_err(|_| Error::Verbatim("ERR run queue stopped".into()))?
    }

    fn queue(&self, device: &str) -> Result<Arc<DeviceQueue>, Error> {
        let mut queues = self.queues.lock();
        if let Some(q) = queues.get(device) {
            return Ok(q.clone());
        }
        if queues.len() >= self.max_devices {
            return Err(Error::Verbatim(format!(
                "ERR Could not initialize queue on requested device: this node already runs \
                 {} device queues",
                self.max_devices
            )));
        }
        let queue = Arc::new(DeviceQueue {
            device: device.to_string(),
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            calls: Mutex::new(Calls::default()),
            watch: Condvar::new(),
            timeout: self.timeout,
            next_worker: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            delay_us: self.delay_us.clone(),
        });
        let failed =
            |_| Error::Verbatim("ERR Could not initialize queue on requested device".into());
        for _ in 0..self.threads_per_queue {
            spawn_worker(&queue).map_err(failed)?;
        }
        if queue.timeout.is_some() {
            let q = queue.clone();
            std::thread::Builder::new()
                .name(format!("shardai-watch-{device}"))
                .spawn(move || watchdog(&q))
                .map_err(failed)?;
        }
        queues.insert(device.to_string(), queue.clone());
        Ok(queue)
    }
}

fn spawn_worker(queue: &Arc<DeviceQueue>) -> std::io::Result<()> {
    let id = queue.next_worker.fetch_add(1, Ordering::Relaxed);
    let q = queue.clone();
    std::thread::Builder::new()
        .name(format!("shardai-run-{}-{id}", q.device))
        .spawn(move || worker(&q, id))
        .map(|_| ())
}

/// Abandons the calls that run past their deadline, answers their requests and puts a fresh
/// worker in each one's place.
fn watchdog(queue: &Arc<DeviceQueue>) {
    let mut calls = queue.calls.lock();
    loop {
        for (worker, replies) in calls.overdue(Instant::now()) {
            let ms = queue.timeout.map_or(0, |t| t.as_millis());
            tracing::warn!(
                device = %queue.device,
                worker,
                timeout_ms = ms as u64,
                requests = replies.len(),
                lost = calls.lost,
                "a model run passed MODEL_EXECUTION_TIMEOUT: its requests get an error, its \
                 thread is left to the backend and a fresh worker serves the device"
            );
            for r in replies {
                let _ = r.send(Err(Error::Verbatim(format!(
                    "ERR model execution timed out after {ms} ms (MODEL_EXECUTION_TIMEOUT): the \
                     run was abandoned"
                ))));
            }
            if let Err(e) = spawn_worker(queue) {
                tracing::error!(device = %queue.device, error = %e, "no fresh worker thread");
            }
        }
        let next = calls.next_deadline();
        calls.watchdog_sleeps(next);
        match next {
            Some(t) => {
                queue.watch.wait_until(&mut calls, t);
            }
            None => queue.watch.wait(&mut calls),
        }
    }
}

/// Takes the jobs at `positions` (ascending) out of the queue, in order.
fn take(jobs: &mut VecDeque<Job>, positions: &[usize]) -> Vec<Job> {
    let mut out: Vec<Job> = positions
        .iter()
        .rev()
        .filter_map(|&i| jobs.remove(i))
        .collect();
    out.reverse();
    out
}

fn worker(queue: &DeviceQueue, id: u64) {
    loop {
        let group = {
            let mut jobs = queue.jobs.lock();
            loop {
                let now = Instant::now();
                // A model whose library runs one call at a time (its handle is locked) is
                // left to the worker running it: another would only wait on the lock, and
                // that wait would count against MODEL_EXECUTION_TIMEOUT.
                let busy = queue.calls.lock().running_serial();
                let eligible: Vec<usize> = (0..jobs.len())
                    .filter(|&i| !busy.contains(&model_id(&jobs[i].model)))
                    .collect();
                let view: Vec<Queued<'_>> = eligible
                    .iter()
                    .map(|&i| &jobs[i])
                    .map(|j| Queued {
                        model: Arc::as_ptr(&j.model) as *const () as usize,
                        opts: j.model.batch,
                        inputs: j.inputs.iter().map(|t| (t.dtype(), t.shape())).collect(),
                        enqueued: j.enqueued,
                        deadline: j.deadline,
                    })
                    .collect();
                let at =
                    |p: Vec<usize>| -> Vec<usize> { p.into_iter().map(|i| eligible[i]).collect() };
                let delay = Duration::from_micros(queue.delay_us.load(Ordering::Relaxed));
                match batching::pick(&view, now, delay) {
                    Pick::TimedOut(positions) => {
                        drop(view);
                        for job in take(&mut jobs, &at(positions)) {
                            let _ = job.reply.send(Err(Error::TimedOut));
                        }
                    }
                    Pick::Run(positions) => {
                        drop(view);
                        break take(&mut jobs, &at(positions));
                    }
                    Pick::Wait(until) => {
                        drop(view);
                        match until {
                            Some(t) => {
                                queue.ready.wait_until(&mut jobs, t);
                            }
                            None => queue.ready.wait(&mut jobs),
                        }
                    }
                }
            }
        };
        // Another worker may now find something to run (a model not held by this batch).
        queue.ready.notify_one();
        if !execute(queue, id, group) {
            // Abandoned: a fresh worker took this one's place.
            return;
        }
    }
}

/// Runs a group of jobs for one model as one backend call and answers each; false when the
/// call overran and was abandoned (the worker must exit).
fn execute(queue: &DeviceQueue, id: u64, group: Vec<Job>) -> bool {
    let Some(first) = group.first() else {
        return true;
    };
    let (model, stats) = (first.model.clone(), first.stats.clone());
    let model_id = model_id(&model);
    let refused = {
        let calls = queue.calls.lock();
        if calls.is_abandoned(model_id) {
            Some(
                "ERR the model's previous run passed MODEL_EXECUTION_TIMEOUT and has not ended: \
                 it cannot run again until it does"
                    .to_string(),
            )
        } else if calls.abandoned_running() >= MAX_ABANDONED {
            Some(format!(
                "ERR device {} has {MAX_ABANDONED} runs past MODEL_EXECUTION_TIMEOUT still \
                 running: no more runs start there until one ends",
                queue.device
            ))
        } else {
            None
        }
    };
    if let Some(why) = refused {
        for job in group {
            let _ = job.reply.send(Err(Error::Verbatim(why.clone())));
        }
        return true;
    }
    let sizes: Vec<usize> = group
        .iter()
        .map(|j| {
            j.inputs
                .first()
                .and_then(|t| t.shape().first().copied())
                .unwrap_or(1)
        })
        .collect();
    let samples: usize = sizes.iter().sum();
    let inputs = if group.len() == 1 {
        Ok(group[0].inputs.clone())
    } else {
        (0..first.inputs.len())
            .map(|i| {
                let parts: Vec<&Tensor> = group.iter().map(|j| &j.inputs[i]).collect();
                batching::concat(&parts)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let started = Instant::now();
    for job in &group {
        stats.record_wait(started.saturating_duration_since(job.enqueued));
    }
    let replies: Vec<Reply> = group.into_iter().map(|j| j.reply).collect();
    let deadline = queue.timeout.map(|t| {
        let grace = match model.backend {
            shardai_protocol::command::Backend::Onnx => ONNX_GRACE,
            _ => Duration::ZERO,
        };
        started + t + grace
    });
    let serial = matches!(
        model.backend,
        shardai_protocol::command::Backend::Onnx | shardai_protocol::command::Backend::TfLite
    );
    let wake_watchdog = queue
        .calls
        .lock()
        .start(id, model_id, serial, deadline, replies);
    if wake_watchdog {
        queue.watch.notify_one();
    }
    // A panicking backend (a library error tch turns into a panic) must not take the worker
    // thread, and with it the device's queue, down.
    let result = inputs.and_then(|inputs| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.loaded.run(&inputs)))
            .unwrap_or_else(|_| {
                Err(Error::Verbatim(
                    "ERR the backend failed while running the model (see the server log)".into(),
                ))
            })
    });
    let ended = Instant::now();
    let Some(replies) = queue.calls.lock().finish(id, model_id) else {
        tracing::warn!(
            device = %queue.device,
            worker = id,
            ran_ms = (ended - started).as_millis() as u64,
            "an abandoned model run ended; its thread exits"
        );
        stats.record_error();
        return false;
    };
    let took = ended - started;
    queue
        .busy_us
        .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    let ran = |outputs| Ran {
        outputs,
        started,
        ended,
    };
    let record = |ok: bool| {
        if ok {
            stats.record(took.as_micros() as u64, samples as u64)
        } else {
            stats.record_error()
        }
    };
    if replies.len() == 1 {
        record(result.is_ok());
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(result.map(ran));
        }
        return true;
    }
    let split = result.and_then(|outputs| batching::split(outputs, &sizes));
    record(split.is_ok());
    match split {
        Ok(per_job) => {
            for (reply, outputs) in replies.into_iter().zip(per_job) {
                let _ = reply.send(Ok(ran(outputs)));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
    true
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
        fn run(&self, inputs: &[Tensor]) -> RunResult {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.sleep);
            let b: Vec<u8> = inputs[0].data().iter().map(|x| x * 2).collect();
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
            stats: Default::default(),
        };
        (Arc::new(m), d)
    }

    fn stats() -> Arc<RunStats> {
        Arc::new(RunStats::default())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_requests_for_a_batching_model_share_one_backend_call() {
        let q = Arc::new(RunQueues::new(1));
        let (m, d) = model(Duration::from_millis(100));
        let mut m2 = (*m).clone();
        m2.batch.batchsize = 8;
        let m2 = Arc::new(m2);
        let s = stats();
        // The first request occupies the worker; the next 7 queue up and run together.
        let first = tokio::spawn({
            let (q, m, s) = (q.clone(), m2.clone(), s.clone());
            async move { q.run(m, input(), None, s).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let rest: Vec<_> = (0..7)
            .map(|i| {
                let (q, m, s) = (q.clone(), m2.clone(), s.clone());
                tokio::spawn(async move {
                    let t = Tensor::from_blob(DType::Uint8, vec![1, 2], Bytes::from(vec![i, 1]))
                        .unwrap();
                    q.run(m, vec![t], None, s).await
                })
            })
            .collect();
        first.await.unwrap().unwrap();
        for (i, r) in rest.into_iter().enumerate() {
            let out = r.await.unwrap().unwrap().outputs;
            assert_eq!(&out[0].shape()[..], &[1, 2]);
            assert_eq!(out[0].data(), &[2 * i as u8, 2], "each gets its own rows");
        }
        assert_eq!(d.calls.load(Ordering::SeqCst), 2);
        let snap = s.snapshot();
        assert_eq!((snap.calls, snap.samples), (2, 9));
    }

    fn input() -> Vec<Tensor> {
        vec![Tensor::from_blob(DType::Uint8, vec![2], Bytes::from_static(&[1, 2])).unwrap()]
    }

    #[tokio::test]
    async fn runs_on_queue_threads() {
        let q = RunQueues::new(1);
        let (m, d) = model(Duration::ZERO);
        let out = q.run(m, input(), None, stats()).await.unwrap().outputs;
        assert_eq!(out[0].data(), &[2, 4]);
        assert_eq!(d.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_waited_past_its_timeout_is_not_run() {
        let q = Arc::new(RunQueues::new(1));
        let (m, d) = model(Duration::from_millis(200));
        let first = tokio::spawn({
            let (q, m) = (q.clone(), m.clone());
            async move { q.run(m, input(), None, stats()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = q
            .run(m, input(), Some(Duration::from_millis(50)), stats())
            .await;
        assert_eq!(second.unwrap_err(), Error::TimedOut);
        assert!(first.await.unwrap().is_ok());
        assert_eq!(
            d.calls.load(Ordering::SeqCst),
            1,
            "the timed-out job never ran"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_and_waiting_requests_are_bounded() {
        let q = Arc::new(RunQueues::with_limits(1, 2, 2));
        let (m, _) = model(Duration::from_millis(600));
        let on = |device: &str| {
            let mut m = (*m).clone();
            m.device = device.into();
            Arc::new(m)
        };
        // One running and two waiting: the fourth is refused at once.
        let spawn = || {
            let (q, m) = (q.clone(), on("cpu"));
            tokio::spawn(async move { q.run(m, input(), None, stats()).await })
        };
        let mut busy = vec![spawn()];
        // The worker takes the first job before the others queue behind it.
        tokio::time::sleep(Duration::from_millis(150)).await;
        busy.push(spawn());
        busy.push(spawn());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let e = q.run(on("CPU"), input(), None, stats()).await.unwrap_err();
        assert!(
            e.to_string().contains("run queue of device CPU is full"),
            "{e}"
        );
        for h in busy {
            assert!(h.await.unwrap().is_ok());
        }
        // A second device gets a queue; a third does not.
        assert!(q.run(on("GPU:1"), input(), None, stats()).await.is_ok());
        let e = q
            .run(on("CPU:99999"), input(), None, stats())
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ERR Could not initialize queue on requested device"),
            "{e}"
        );
        assert!(q.run(on("cpu"), input(), None, stats()).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_past_the_execution_timeout_is_abandoned_and_the_device_keeps_serving() {
        let q =
            Arc::new(RunQueues::new(1).with_execution_timeout(Some(Duration::from_millis(200))));
        let (slow, d) = model(Duration::from_millis(1500));
        let mut torch = (*slow).clone();
        torch.backend = Kind::Torch;
        let slow = Arc::new(torch);
        let (fast, _) = model(Duration::ZERO);
        let start = Instant::now();
        let e = q
            .run(slow.clone(), input(), None, stats())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("timed out after 200 ms"), "{e}");
        assert!(start.elapsed() < Duration::from_millis(1000));
        assert_eq!(q.lost_workers(), 1);
        // The one worker is stuck in the backend; a fresh one serves the device.
        let out = q.run(fast.clone(), input(), None, stats()).await.unwrap();
        assert_eq!(out.outputs[0].data(), &[2, 4]);
        // The hung model is refused at once while its run goes on (no second thread lost).
        let e = q
            .run(slow.clone(), input(), None, stats())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has not ended"), "{e}");
        assert_eq!(d.calls.load(Ordering::SeqCst), 1);
        // Once it ends, the model runs again (and overruns again).
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let e = q.run(slow, input(), None, stats()).await.unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert_eq!(d.calls.load(Ordering::SeqCst), 2);
        assert!(q.run(fast, input(), None, stats()).await.is_ok());
    }

    /// The watchdog sleeps until the earliest deadline it knows; a call that starts with an
    /// earlier one (an ONNX call's deadline has a grace, another library's has none) wakes it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_with_an_earlier_deadline_wakes_the_watchdog() {
        let q =
            Arc::new(RunQueues::new(2).with_execution_timeout(Some(Duration::from_millis(200))));
        // ONNX: abandoned at 200 ms + ONNX_GRACE, which the watchdog then sleeps until.
        let (onnx, _) = model(Duration::from_millis(1500));
        let (slow, _) = model(Duration::from_millis(1500));
        let mut torch = (*slow).clone();
        torch.backend = Kind::Torch;
        let torch = Arc::new(torch);
        let first = tokio::spawn({
            let q = q.clone();
            async move { q.run(onnx, input(), None, stats()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let start = Instant::now();
        let e = q.run(torch, input(), None, stats()).await.unwrap_err();
        assert!(e.to_string().contains("timed out after 200 ms"), "{e}");
        assert!(
            start.elapsed() < Duration::from_millis(800),
            "abandoned after {:?}, at the ONNX call's deadline",
            start.elapsed()
        );
        let e = first.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("timed out after 200 ms"), "{e}");
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
