//! Backend calls in progress on one device queue's workers, and MODEL_EXECUTION_TIMEOUT: whom
//! each call answers, which calls ran past their deadline, and which models still have an
//! abandoned call running.
//!
//! A backend that cannot be cancelled (libtorch, TensorFlow, TFLite) keeps its thread for as
//! long as the call runs. A call past its deadline is therefore abandoned: its requests are
//! answered with an error, its worker is replaced by a fresh one (the device keeps serving),
//! and the old thread exits whenever the library returns, its result dropped. Until then the
//! model is refused at once rather than started again, so a model that hangs takes at most the
//! threads of the calls that were running it, not one more per request.
//!
//! Pure bookkeeping under the queue's lock: no thread is started or joined here.

use std::{collections::HashMap, time::Instant};

use shardai_protocol::Error;
use tokio::sync::oneshot;

use crate::queue::Ran;

/// Where one request's result goes.
pub(crate) type Reply = oneshot::Sender<Result<Ran, Error>>;

/// A model, by the address of its shared handle (held by the call, so not reused meanwhile).
pub(crate) type ModelId = usize;

struct Call {
    deadline: Option<Instant>,
    model: ModelId,
    /// Its library runs one call of the model at a time.
    serial: bool,
    replies: Vec<Reply>,
}

/// What the watchdog thread is doing, as far as a starting call is concerned.
#[derive(Clone, Copy, Default)]
enum Watchdog {
    /// Awake, or already woken: it reads every call's deadline before it sleeps again.
    #[default]
    Awake,
    /// Asleep until a call with a deadline starts.
    Idle,
    /// Asleep until this instant.
    Until(Instant),
}

/// The calls of one device queue's workers.
#[derive(Default)]
pub(crate) struct Calls {
    by_worker: HashMap<u64, Call>,
    /// What the watchdog is doing.
    watchdog: Watchdog,
    /// Abandoned calls still running, per model.
    abandoned: HashMap<ModelId, usize>,
    /// Workers abandoned since the queue started.
    pub(crate) lost: u64,
}

impl Calls {
    /// `worker` starts a call of `model` that answers `replies`; true when the watchdog must
    /// be woken to watch its deadline (it sleeps past it, or without one). A watchdog that
    /// already sleeps until an earlier deadline finds this one when it wakes, so most calls
    /// wake no thread.
    pub(crate) fn start(
        &mut self,
        worker: u64,
        model: ModelId,
        serial: bool,
        deadline: Option<Instant>,
        replies: Vec<Reply>,
    ) -> bool {
        let wake = match (deadline, self.watchdog) {
            (Some(_), Watchdog::Idle) => true,
            (Some(d), Watchdog::Until(t)) => d < t,
            _ => false,
        };
        if wake {
            self.watchdog = Watchdog::Awake;
        }
        self.by_worker.insert(
            worker,
            Call {
                deadline,
                model,
                serial,
                replies,
            },
        );
        wake
    }

    /// The watchdog goes to sleep until `until` (None: until a call with a deadline starts).
    /// It holds the queue's `calls` lock from when its wait returns until it calls this again,
    /// so no call starts meanwhile; a call that starts while its timed wait is returning finds
    /// it still asleep and notifies it, which is redundant, as it reads every call next.
    pub(crate) fn watchdog_sleeps(&mut self, until: Option<Instant>) {
        self.watchdog = until.map_or(Watchdog::Idle, Watchdog::Until);
    }

    /// `worker`'s call returned: whom to answer, or None when it was abandoned (the worker
    /// was replaced and must exit).
    pub(crate) fn finish(&mut self, worker: u64, model: ModelId) -> Option<Vec<Reply>> {
        if let Some(call) = self.by_worker.remove(&worker) {
            return Some(call.replies);
        }
        if let Some(n) = self.abandoned.get_mut(&model) {
            *n -= 1;
            if *n == 0 {
                self.abandoned.remove(&model);
            }
        }
        None
    }

    /// The models running now whose library runs one call at a time.
    pub(crate) fn running_serial(&self) -> std::collections::HashSet<ModelId> {
        self.by_worker
            .values()
            .filter(|c| c.serial)
            .map(|c| c.model)
            .collect()
    }

    /// Abandoned calls still running, on every model.
    pub(crate) fn abandoned_running(&self) -> usize {
        self.abandoned.values().sum()
    }

    /// Whether `model` has an abandoned call still running.
    pub(crate) fn is_abandoned(&self, model: ModelId) -> bool {
        self.abandoned.contains_key(&model)
    }

    /// Abandons the calls past their deadline at `now`: their workers and the requests they
    /// must answer.
    pub(crate) fn overdue(&mut self, now: Instant) -> Vec<(u64, Vec<Reply>)> {
        let late: Vec<u64> = self
            .by_worker
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(w, _)| *w)
            .collect();
        late.into_iter()
            .filter_map(|w| {
                let call = self.by_worker.remove(&w)?;
                *self.abandoned.entry(call.model).or_default() += 1;
                self.lost += 1;
                Some((w, call.replies))
            })
            .collect()
    }

    /// The earliest deadline of a call in progress.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_worker.values().filter_map(|c| c.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn replies(n: usize) -> (Vec<Reply>, Vec<oneshot::Receiver<Result<Ran, Error>>>) {
        (0..n).map(|_| oneshot::channel()).unzip()
    }

    #[test]
    fn a_call_past_its_deadline_is_abandoned_until_it_returns() {
        let t0 = Instant::now();
        let mut c = Calls::default();
        let (r1, _rx1) = replies(2);
        let (r2, _rx2) = replies(1);
        c.start(1, 100, true, Some(t0 + Duration::from_secs(1)), r1);
        c.start(2, 200, false, Some(t0 + Duration::from_secs(5)), r2);
        c.start(3, 300, false, None, replies(1).0);
        assert_eq!(c.running_serial(), [100].into());
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(c.overdue(t0).is_empty());
        let late = c.overdue(t0 + Duration::from_secs(2));
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].0, late[0].1.len()), (1, 2));
        assert!(c.is_abandoned(100) && !c.is_abandoned(200));
        assert_eq!((c.lost, c.abandoned_running()), (1, 1));
        assert!(c.running_serial().is_empty());
        assert_eq!(c.next_deadline(), Some(t0 + Duration::from_secs(5)));
        // A call without a deadline is never abandoned.
        assert!(c.overdue(t0 + Duration::from_secs(3600)).len() == 1);
        // The abandoned worker's call returns at last: nothing to answer, the model is free.
        assert!(c.finish(1, 100).is_none());
        assert!(!c.is_abandoned(100));
        // One that finished in time answers its requests.
        assert_eq!(c.finish(3, 300).map(|r| r.len()), Some(1));
        assert!(c.finish(2, 200).is_none() && !c.is_abandoned(200));
    }

    #[test]
    fn the_watchdog_is_woken_only_for_a_deadline_it_would_sleep_past() {
        let t0 = Instant::now();
        let secs = |n| Some(t0 + Duration::from_secs(n));
        let mut c = Calls::default();
        // Awake: it reads the deadlines itself before it sleeps.
        assert!(!c.start(1, 100, false, secs(5), replies(1).0));
        c.watchdog_sleeps(c.next_deadline());
        // A later deadline waits for the wake-up at the earlier one.
        assert!(!c.start(2, 100, false, secs(6), replies(1).0));
        // A call without a deadline needs no watching.
        assert!(!c.start(3, 100, false, None, replies(1).0));
        // An earlier one wakes it, once: it is awake until it sleeps again.
        assert!(c.start(4, 100, false, secs(4), replies(1).0));
        assert!(!c.start(5, 100, false, secs(3), replies(1).0));
        c.watchdog_sleeps(c.next_deadline());
        assert_eq!(c.next_deadline(), secs(3));
        // Sleeping with nothing to watch, any deadline wakes it.
        for (w, m) in [(1, 100), (2, 100), (3, 100), (4, 100), (5, 100)] {
            c.finish(w, m);
        }
        c.watchdog_sleeps(c.next_deadline());
        assert!(c.start(6, 100, false, secs(60), replies(1).0));
    }
}
