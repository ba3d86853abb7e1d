//! The transaction gate: EXEC holds it exclusively and every other command shared, so that no
//! other client's command runs on this node while a transaction does.
//!
//! Every command passes the gate, so its shared side is made to cost what a counter of the
//! thread's own does: two atomic operations on one of [`SHARDS`] counters (the one of the
//! thread the command enters on, each on a cache line of its own) and a read of a flag that
//! only EXEC writes. While no transaction runs, the I/O threads write only their own counters
//! (a command whose task moved to another thread leaves through the counter it entered by),
//! where a lock word that every command writes would pass between the cores with every
//! command. A write put in flight also holds a reference to the gate until it applies.
//!
//! EXEC closes the gate and waits for the commands inside to leave; commands that arrive
//! meanwhile wait for it to reopen. Before an EXEC closes the gate it lets in the commands the
//! EXEC before it held back, so a stream of transactions does not starve other clients.

use std::{
    ops::Deref,
    pin::pin,
    sync::{
        Arc,
        atomic::{
            AtomicBool, AtomicUsize,
            Ordering::{Relaxed, SeqCst},
        },
    },
};

use tokio::sync::{Mutex, MutexGuard, Notify};

/// Counters of commands inside the gate; threads take them in turn as they first enter.
pub const SHARDS: usize = 16;

/// One counter, alone on its cache line (128 bytes: adjacent lines are fetched in pairs).
#[repr(align(128))]
#[derive(Default)]
struct Shard(AtomicUsize);

/// See the module documentation.
#[derive(Default)]
pub struct TxGate {
    shards: [Shard; SHARDS],
    /// An EXEC holds the gate or waits for the commands inside to leave.
    closed: AtomicBool,
    /// Commands waiting for the gate to reopen.
    held_back: AtomicUsize,
    /// EXECs, one at a time.
    writers: Mutex<()>,
    /// Rung when the gate reopens.
    reopened: Notify,
    /// Rung when a counter empties while the gate is closed, and when the last held-back
    /// command gets in.
    changed: Notify,
}

impl std::fmt::Debug for TxGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxGate")
            .field("closed", &self.closed.load(SeqCst))
            .finish()
    }
}

/// A command inside the gate (shared), through `G`: a borrow of the gate, or an `Arc` of it
/// for a `'static` holder ([`OwnedSharedGuard`]).
#[must_use]
pub struct SharedGuard<G: Deref<Target = TxGate>> {
    gate: G,
    shard: usize,
}

impl<G: Deref<Target = TxGate>> Drop for SharedGuard<G> {
    fn drop(&mut self) {
        self.gate.leave(self.shard);
    }
}

/// A command inside the gate (shared) that a `'static` future holds.
pub type OwnedSharedGuard = SharedGuard<Arc<TxGate>>;

/// An EXEC holding the gate; dropping it reopens the gate.
#[must_use]
pub struct ExclusiveGuard<'a> {
    gate: &'a TxGate,
    _writer: MutexGuard<'a, ()>,
}

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        self.gate.closed.store(false, SeqCst);
        self.gate.reopened.notify_waiters();
    }
}

/// Counts a command among the held back while it waits (its future may also be dropped).
struct HeldBack<'a>(&'a TxGate);

impl Drop for HeldBack<'_> {
    fn drop(&mut self) {
        if self.0.held_back.fetch_sub(1, SeqCst) == 1 {
            self.0.changed.notify_waiters();
        }
    }
}

/// The counter of the calling thread.
fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl TxGate {
    /// Enters the gate shared, waiting while an EXEC holds it or is closing it.
    pub async fn shared(&self) -> SharedGuard<&Self> {
        let shard = my_shard();
        self.enter(shard).await;
        SharedGuard { gate: self, shard }
    }

    /// As [`TxGate::shared`], for a `'static` holder; None at once while an EXEC holds the
    /// gate or is closing it (waiting for the commands inside to leave).
    pub fn try_shared_owned(self: &Arc<Self>) -> Option<OwnedSharedGuard> {
        let shard = my_shard();
        self.try_enter(shard).then(|| SharedGuard {
            gate: self.clone(),
            shard,
        })
    }

    /// As [`TxGate::shared`], for a `'static` holder.
    pub async fn shared_owned(self: Arc<Self>) -> OwnedSharedGuard {
        let shard = my_shard();
        self.enter(shard).await;
        SharedGuard { gate: self, shard }
    }

    /// Holds the gate alone: waits for the EXEC before (and the commands it held back), closes
    /// the gate, then waits for the commands inside to leave.
    pub async fn exclusive(&self) -> ExclusiveGuard<'_> {
        let writer = self.writers.lock().await;
        self.wait_until(|| self.held_back.load(SeqCst) == 0).await;
        self.closed.store(true, SeqCst);
        // From here a dropped future reopens the gate.
        let held = ExclusiveGuard {
            gate: self,
            _writer: writer,
        };
        self.wait_until(|| self.shards.iter().all(|s| s.0.load(SeqCst) == 0))
            .await;
        held
    }

    /// Counts a command in when the gate is open. The count comes before the look at `closed`
    /// and EXEC's close before its look at the counts (all sequentially consistent), so one
    /// of the two sees the other.
    fn try_enter(&self, shard: usize) -> bool {
        self.shards[shard].0.fetch_add(1, SeqCst);
        if !self.closed.load(SeqCst) {
            return true;
        }
        self.leave(shard);
        false
    }

    fn leave(&self, shard: usize) {
        if self.shards[shard].0.fetch_sub(1, SeqCst) == 1 && self.closed.load(SeqCst) {
            self.changed.notify_waiters();
        }
    }

    async fn enter(&self, shard: usize) {
        if self.try_enter(shard) {
            return;
        }
        self.held_back.fetch_add(1, SeqCst);
        let _counted = HeldBack(self);
        loop {
            // Created before the look at the gate: a reopening after the look wakes it.
            let reopened = pin!(self.reopened.notified());
            if self.try_enter(shard) {
                return;
            }
            reopened.await;
        }
    }

    async fn wait_until(&self, done: impl Fn() -> bool) {
        loop {
            let changed = pin!(self.changed.notified());
            if done() {
                return;
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicIsize, AtomicUsize},
        time::Duration,
    };

    use tokio::time::timeout;

    use super::*;

    const SHORT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn an_exec_waits_for_the_commands_inside_and_holds_back_new_ones() {
        let gate = Arc::new(TxGate::default());
        let inside = gate.shared().await;
        let owned = gate.try_shared_owned().expect("open");
        let g = gate.clone();
        let exec = tokio::spawn(async move {
            let _held = g.exclusive().await;
            tokio::time::sleep(10 * SHORT).await;
        });
        tokio::time::sleep(SHORT).await;
        assert!(!exec.is_finished(), "EXEC entered with commands inside");
        // Closing: new commands wait, the owned form refuses at once.
        assert!(gate.try_shared_owned().is_none());
        assert!(timeout(SHORT, gate.shared()).await.is_err());
        drop(inside);
        tokio::time::sleep(SHORT).await;
        assert!(!exec.is_finished());
        drop(owned);
        // Inside the EXEC's hold: still closed.
        assert!(timeout(SHORT, gate.shared()).await.is_err());
        exec.await.unwrap();
        let _again = timeout(SHORT, gate.shared()).await.expect("reopened");
        assert!(gate.try_shared_owned().is_some());
    }

    #[tokio::test]
    async fn dropped_waits_leave_nothing_behind() {
        let gate = TxGate::default();
        // An EXEC that gave up waiting for a command inside reopens the gate.
        let inside = gate.shared().await;
        assert!(timeout(SHORT, gate.exclusive()).await.is_err());
        drop(inside);
        let inside = timeout(SHORT, gate.shared()).await.expect("reopened");
        drop(inside);
        // A held-back command that gave up waiting is no longer counted: the next EXEC
        // does not wait for it.
        let held = gate.exclusive().await;
        assert!(timeout(SHORT, gate.shared()).await.is_err());
        drop(held);
        let _next = timeout(SHORT, gate.exclusive())
            .await
            .expect("no one held back");
    }

    #[tokio::test]
    async fn commands_held_back_get_in_before_the_next_exec() {
        let gate = Arc::new(TxGate::default());
        let first = gate.exclusive().await;
        let entered = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for _ in 0..4 {
            let (g, n) = (gate.clone(), entered.clone());
            waiting.push(tokio::spawn(async move {
                let _in = g.shared().await;
                n.fetch_add(1, SeqCst);
            }));
        }
        tokio::time::sleep(SHORT).await;
        assert_eq!(entered.load(SeqCst), 0, "entered beside an EXEC");
        drop(first);
        // This task asks for the gate again before the held-back tasks have run: without
        // their turn it would take the free writer lock and close the gate at once.
        let _second = gate.exclusive().await;
        assert_eq!(entered.load(SeqCst), 4, "the next EXEC went first");
        for w in waiting {
            w.await.unwrap();
        }
    }

    /// Many connections on several threads: no command is ever inside with an EXEC.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_command_runs_beside_an_exec() {
        let gate = Arc::new(TxGate::default());
        // Commands inside, or -1 while an EXEC holds the gate.
        let state = Arc::new(AtomicIsize::new(0));
        let mut tasks = Vec::new();
        for conn in 0..24u64 {
            let (g, s) = (gate.clone(), state.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..400u64 {
                    if (conn + i) % 97 == 0 {
                        let _held = g.exclusive().await;
                        assert_eq!(s.swap(-1, SeqCst), 0, "EXEC beside commands");
                        tokio::task::yield_now().await;
                        assert_eq!(s.swap(0, SeqCst), -1);
                    } else {
                        let owned = i % 3 == 0;
                        let (_a, _b) = if owned {
                            (None, Some(g.clone().shared_owned().await))
                        } else {
                            (Some(g.shared().await), None)
                        };
                        assert!(s.fetch_add(1, SeqCst) >= 0, "command beside an EXEC");
                        // The task may move to another thread before it leaves.
                        tokio::task::yield_now().await;
                        s.fetch_sub(1, SeqCst);
                    }
                }
            }));
        }
        for t in tasks {
            timeout(Duration::from_secs(60), t)
                .await
                .expect("no deadlock")
                .unwrap();
        }
    }
}
