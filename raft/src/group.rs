//! One shard's Raft group on this node: starting it from its folder, proposing mutations
//! (the `Proposer` that replaces the local applier), the read gate, membership changes and
//! the role/progress numbers that ROLE and INFO replication print.
//!
//! Reads on the leader pass the read check ([`ReadCheck`]): by default a read index (the
//! leader confirms with a quorum, by a heartbeat round sent after the read arrived, that it
//! still leads), which holds whatever the nodes' clocks do. A lease read instead serves
//! locally while a quorum acknowledged the leader recently; it assumes the clocks' rates
//! differ by at most a stated bound, and breaks when they differ more (a leader whose clock
//! runs slow keeps serving after the others elected a new leader).

mod save;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use openraft::async_runtime::WatchReceiver;
use openraft::{
    ChangeMembers, Config, LinearizerOption, ServerState, SnapshotPolicy,
    error::{
        ChangeMembershipError, ClientWriteError, Fatal, ForwardToLeader, LinearizableReadError,
        RaftError,
    },
    raft::ReadPolicy,
};
use shardai_engine::{Applied, Mutation, Proposal, Proposer, Store, backend::Backends, now_ms};
use shardai_protocol::{Error, slot::key_slot};
use tracing::{info, warn};

use crate::{
    log_store::{Fsync, LogStore},
    network::{Network, ShardRaft, Target},
    state_machine::{Pending, StateMachine},
    types::{Cmd, ShardNode, TypeConfig},
};

/// Timing and snapshot settings of a group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The cluster id (every bus message is checked against it).
    pub cluster: String,
    /// The group's name on the bus (a node runs several groups).
    pub group: String,
    /// This node's id in the group.
    pub me: u64,
    /// The folder holding the log and snapshots.
    pub dir: PathBuf,
    /// Leader heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Election timeout range, ms.
    pub election_ms: (u64, u64),
    /// A snapshot is taken after at least this many entries since the last one, once the
    /// log since it is at least as large as it (see [`snapshot_policy`]).
    pub snapshot_every: u64,
    /// How this node's bus connections to the group's other members authenticate.
    pub bus: crate::network::BusSecurity,
    /// Bounds on one write.
    pub limits: WriteLimits,
    /// When an append counts as durable: [`Fsync::Always`] unless the group has one member.
    pub fsync: Fsync,
    /// How a leader makes sure it still leads before it serves a read.
    pub reads: ReadCheck,
    /// The group never has another member (a node outside a cluster): its log keeps no
    /// entry in memory past its apply (see [`LogStore::uncache_applied`]).
    pub alone: bool,
}

/// How a leader makes sure it still leads before it serves a read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadCheck {
    /// A quorum acknowledges a heartbeat sent after the read arrived (a round trip to the
    /// nearest majority per read, shared by the reads waiting at once). Safe under any
    /// clock behaviour.
    ReadIndex,
    /// Served while a quorum acknowledged a heartbeat sent at most this long ago. Followers
    /// refuse to elect anyone for the election timeout's maximum after they last heard from
    /// the leader; a lease of that maximum divided by the largest ratio of two nodes' clock
    /// rates ends before anyone else can lead.
    Lease(Duration),
}

impl ReadCheck {
    fn option(self) -> LinearizerOption {
        match self {
            ReadCheck::ReadIndex => ReadPolicy::ReadIndex.into(),
            // Never waits: a stale lease sends heartbeats at once and the read gate retries.
            ReadCheck::Lease(age) => {
                LinearizerOption::new(Some(age), true).with_wait_timeout(Duration::ZERO)
            }
        }
    }
}

/// Bounds on one write through the group.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// The largest log entry a write may make, bytes (`--max-entry-size`). Bounded by
    /// [`MAX_ENTRY_BYTES`] so that one entry always fits a bus frame and a log record.
    pub max_entry_bytes: u64,
    /// How long a write waits for its entry to commit before it answers that its outcome is
    /// unknown (`--raft-commit-timeout-ms`).
    pub commit_timeout: Duration,
}

/// The most `--max-entry-size` may be: one entry plus its frame stays well below the bus's
/// largest frame (2 GiB), and every log and snapshot record length fits in 32 bits.
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_entry_bytes: 512 << 20,
            commit_timeout: Duration::from_secs(10),
        }
    }
}

/// Role and progress, as ROLE and INFO replication show them.
#[derive(Debug, Clone)]
pub struct RoleInfo {
    /// This node.
    pub me: u64,
    /// Leader, follower, candidate or learner.
    pub state: ServerState,
    /// Current term.
    pub term: u64,
    /// The leader, if known.
    pub leader: Option<(u64, ShardNode)>,
    /// Last log index.
    pub last_log: u64,
    /// Commit index.
    pub committed: u64,
    /// Applied index.
    pub applied: u64,
    /// Last snapshot's index.
    pub snapshot: u64,
    /// The first index the log still holds (0 while nothing was purged): a replica whose
    /// log ends before it gets a snapshot instead of entries.
    pub first_log: u64,
    /// Members: id, addresses, voter.
    pub members: Vec<(u64, ShardNode, bool)>,
    /// Leader only: each follower's matched index.
    pub matched: BTreeMap<u64, u64>,
    /// Set when Raft stopped (a storage error): the node no longer acknowledges anything.
    pub fatal: Option<String>,
    /// A leader of several voters that has not heard from a majority for longer than an
    /// election timeout: cut off, it leads nothing the others still follow.
    pub leader_cut_off: bool,
}

/// A shard replica.
pub struct ShardGroup {
    /// The Raft handle.
    pub raft: ShardRaft,
    /// This node's id.
    pub me: u64,
    /// The cluster id.
    pub cluster: String,
    /// The group's name on the bus.
    pub group: String,
    network: Network,
    store: Arc<Store>,
    pending: Arc<Pending>,
    seq: AtomicU64,
    patience: Duration,
    limits: WriteLimits,
    reads: ReadCheck,
    batcher: tokio::sync::mpsc::Sender<(Cmd, Reply)>,
    log: LogStore,
    /// The index the newest SAVE / BGSAVE asked a snapshot to cover.
    save_target: AtomicU64,
    /// The last SAVE / BGSAVE did not complete.
    save_failed: std::sync::atomic::AtomicBool,
    /// The newest snapshot (LASTSAVE reads when it was written).
    current: crate::state_machine::CurrentSnapshot,
    /// The index the state machine applied up to (ahead of openraft's metrics by a moment).
    applied_index: Arc<AtomicU64>,
    stats: Arc<crate::stats::GroupStats>,
}

type WriteOutcome = Result<crate::ApplyResult, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;
type Reply = tokio::sync::oneshot::Sender<WriteOutcome>;

/// Counts the group's leader changes (see [`crate::stats::is_leader_change`]) until the
/// group shuts down.
async fn count_leader_changes(raft: ShardRaft, stats: Arc<crate::stats::GroupStats>) {
    let mut metrics = raft.metrics();
    let mut known = metrics.borrow_watched().current_leader;
    while metrics.changed().await.is_ok() {
        let leader = metrics.borrow_watched().current_leader;
        if crate::stats::is_leader_change(known, leader) {
            stats
                .leader_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if leader.is_some() {
            known = leader;
        }
    }
}

/// Hands concurrent proposals to Raft in batches (one message to the Raft core, one log
/// append per batch) and routes each result back to its proposer.
async fn batch_loop(raft: ShardRaft, mut rx: tokio::sync::mpsc::Receiver<(Cmd, Reply)>) {
    use futures_util::StreamExt;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (cmds, replies): (Vec<Cmd>, Vec<Reply>) = batch.into_iter().unzip();
        match raft.client_write_many(cmds).await {
            Ok(mut results) => {
                tokio::spawn(async move {
                    let mut replies = replies.into_iter();
                    while let Some(r) = results.next().await {
                        let Some(reply) = replies.next() else { break };
                        let _ = reply.send(match r {
                            Ok(Ok(w)) => Ok(w.response),
                            Ok(Err(e)) => Err(RaftError::APIError(e)),
                            Err(f) => Err(RaftError::Fatal(f)),
                        });
                    }
                    for reply in replies {
                        let _ = reply.send(Err(RaftError::Fatal(Fatal::Stopped)));
                    }
                });
            }
            Err(f) => {
                for reply in replies {
                    let _ = reply.send(Err(RaftError::Fatal(f.clone())));
                }
            }
        }
    }
}

/// Takes a snapshot once at least `every` entries were applied since the last one and the log
/// since it is at least as large as it, as Redis rewrites its AOF once it has doubled: the
/// disk writes of snapshots then stay within those of the log, however large the keyspace
/// (a fixed entry count rewrote a keyspace of large tensors every few seconds under load).
async fn snapshot_policy(
    raft: ShardRaft,
    log: LogStore,
    current: crate::state_machine::CurrentSnapshot,
    every: u64,
) {
    let mut asked: Option<(u64, Instant)> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let m = raft.metrics().borrow_watched().clone();
        if m.running_state.is_err() {
            return;
        }
        let applied = m.last_applied.map_or(0, |l| l.index);
        let last = current.last();
        let (snap_index, snap_bytes) = last.map_or((None, 0), |(i, b)| (Some(i), b));
        if applied.saturating_sub(snap_index.unwrap_or(0)) < every
            || log.bytes_after(snap_index) < snap_bytes
        {
            continue;
        }
        // One build at a time: wait for the asked-for one (or a minute, if it failed).
        if let Some((at, when)) = asked
            && snap_index.is_none_or(|i| i < at)
            && when.elapsed() < Duration::from_secs(60)
        {
            continue;
        }
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        asked = Some((applied, Instant::now()));
    }
}

/// Wakes on this replica's Raft state changes (an entry applied, a leader elected, a
/// heartbeat answered), for callers waiting until something they wrote is applied here.
pub struct Changes(openraft::alias::WatchReceiverOf<TypeConfig, openraft::RaftMetrics<TypeConfig>>);

impl Changes {
    /// Waits for the next change, at most `timeout`.
    pub async fn next(&mut self, timeout: Duration) {
        match tokio::time::timeout(timeout, self.0.changed()).await {
            Ok(Ok(())) | Err(_) => {}
            // Raft stopped: nothing will change; do not spin.
            Ok(Err(_)) => tokio::time::sleep(timeout.min(Duration::from_millis(5))).await,
        }
    }
}

impl std::fmt::Debug for ShardGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardGroup")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

fn api<E: std::fmt::Display>(e: RaftError<TypeConfig, E>) -> Error {
    Error::Unavailable(format!("replication: {e}"))
}

impl ShardGroup {
    /// Opens the log and snapshots in `cfg.dir` and starts Raft (recovering the store from
    /// the newest snapshot and the committed log).
    pub async fn start(
        cfg: GroupConfig,
        store: Arc<Store>,
        backends: Arc<Backends>,
    ) -> Result<Arc<ShardGroup>, String> {
        let config = Config {
            cluster_name: cfg.cluster.clone(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_ms.0,
            election_timeout_max: cfg.election_ms.1,
            install_snapshot_timeout: 30_000,
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: (cfg.snapshot_every / 4).min(1000),
            ..Default::default()
        }
        .validate()
        .map_err(|e| format!("Raft settings: {e}"))?;
        let log = LogStore::open(&cfg.dir.join("log")).map_err(|e| format!("Raft log: {e}"))?;
        log.set_fsync(cfg.fsync);
        let pending = Arc::new(Pending::default());
        let stats = log.stats();
        let sm = StateMachine::open(
            &cfg.dir.join("snapshots"),
            store.clone(),
            backends,
            cfg.me,
            pending.clone(),
        )
        .map_err(|e| format!("snapshots: {e}"))?
        .with_stats(stats.clone());
        let (log_handle, current) = (log.clone(), sm.current_snapshot());
        let applied_index = sm.applied_index();
        if cfg.alone {
            log.uncache_applied(applied_index.clone());
        }
        let log_for_group = log.clone();
        let raft = ShardRaft::new(
            cfg.me,
            Arc::new(config),
            Network::new(&cfg.cluster, &cfg.group, cfg.bus.clone())
                .with_append_budget(cfg.limits.max_entry_bytes),
            log,
            sm,
        )
        .await
        .map_err(|e| format!("Raft: {e}"))?;
        tokio::spawn(snapshot_policy(
            raft.clone(),
            log_handle,
            current.clone(),
            cfg.snapshot_every,
        ));
        // Raft::new re-applied the locally committed log over the newest snapshot; catching
        // up with the cluster's commit needs a leader, so it is only logged when it happens.
        let r = raft.clone();
        tokio::spawn(async move {
            if let Ok(m) = r.wait_for_recovery(None).await {
                info!(
                    applied = m.last_applied.map_or(0, |l| l.index),
                    "applied the log up to the group's commit"
                );
            }
        });
        // Sequence numbers that never repeat across restarts of this node.
        let seq = AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        );
        let (batcher, rx) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(batch_loop(raft.clone(), rx));
        tokio::spawn(count_leader_changes(raft.clone(), stats.clone()));
        info!(node = cfg.me, cluster = %cfg.cluster, group = %cfg.group, "Raft group started");
        Ok(Arc::new(ShardGroup {
            raft,
            me: cfg.me,
            network: Network::new(&cfg.cluster, &cfg.group, cfg.bus.clone())
                .with_append_budget(cfg.limits.max_entry_bytes),
            cluster: cfg.cluster,
            group: cfg.group,
            store,
            pending,
            seq,
            batcher,
            patience: Duration::from_millis(cfg.election_ms.1 * 3 + 1000),
            limits: cfg.limits,
            reads: cfg.reads,
            log: log_for_group,
            save_target: AtomicU64::new(0),
            save_failed: Default::default(),
            current,
            applied_index,
            stats,
        }))
    }

    /// What this group measured about itself (see [`crate::stats`]).
    pub fn stats(&self) -> &crate::stats::GroupStats {
        &self.stats
    }

    /// Sets when this replica's appends count as durable (see [`Fsync`]; only a group of
    /// one may relax [`Fsync::Always`]).
    pub fn set_fsync(&self, policy: Fsync) {
        self.log.set_fsync(policy);
    }

    /// When this replica's appends count as durable.
    pub fn fsync(&self) -> Fsync {
        self.log.fsync()
    }

    /// Fsyncs everything this replica appended so far (a clean shutdown under a relaxed
    /// fsync policy).
    pub async fn sync_log(&self) -> Result<(), String> {
        self.log.sync_all().await.map_err(|e| e.to_string())
    }

    /// Why this replica's log takes no more writes, if it does not: Raft stopped on a storage
    /// error, or a background fsync failed before any write noticed.
    /// A panicked Raft core counts too (a restart brings the group back); a shutdown
    /// does not.
    pub fn storage_failure(&self) -> Option<String> {
        let stopped = match &self.raft.metrics().borrow_watched().running_state {
            Err(Fatal::Stopped) | Ok(()) => None,
            Err(f) => Some(f.to_string()),
        };
        stopped.or_else(|| {
            self.log
                .failed()
                .then(|| "an fsync of the Raft log failed".to_string())
        })
    }

    /// What the bus server needs to hand messages to this group.
    pub fn target(&self, snap_dir: PathBuf) -> Target {
        Target {
            cluster: self.cluster.clone(),
            me: self.me,
            raft: self.raft.clone(),
            snap_dir,
        }
    }

    /// Forms a new group of `members` (call on one node only).
    pub async fn initialize(&self, members: BTreeMap<u64, ShardNode>) -> Result<(), Error> {
        self.raft.initialize(members).await.map_err(api)
    }

    /// Adds a node: first as a learner that catches up, then as a voter.
    pub async fn add_node(&self, id: u64, node: ShardNode) -> Result<(), Error> {
        self.change_members(|| self.raft.add_learner(id, node.clone(), true))
            .await?;
        let voters: BTreeSet<u64> = [id].into();
        self.change_members(|| {
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(voters.clone()), false)
        })
        .await
    }

    /// Adds a node as a learner only (it receives the log but does not vote).
    pub async fn add_learner(&self, id: u64, node: ShardNode) -> Result<(), Error> {
        self.change_members(|| self.raft.add_learner(id, node.clone(), true))
            .await
    }

    /// Removes a node from the group (voter, if it votes, and node entry).
    pub async fn del_node(&self, id: u64) -> Result<(), Error> {
        let ids: BTreeSet<u64> = [id].into();
        let members = self.role().members;
        let voters = members.iter().filter(|m| m.2).count();
        let votes = members.iter().any(|m| m.0 == id && m.2);
        if votes && voters <= 1 {
            return Err(Error::Unavailable("cannot remove the last voter".into()));
        }
        if !members.iter().any(|m| m.0 == id) {
            return Err(Error::Unavailable(format!("node {id} is not a member")));
        }
        // Checked once, before any wait below: openraft still refuses a membership left
        // without voters should the group change meanwhile.
        if votes {
            self.change_members(|| {
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
            })
            .await?;
        }
        self.change_members(|| {
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(ids.clone()), false)
        })
        .await
    }

    /// Runs a membership change, again while the last membership entry has not committed
    /// (a leader just elected has not yet committed the one it inherited, or another
    /// change's is on its way): openraft refuses such a change before proposing it, so
    /// trying again is safe. Gives up after the group's write patience, most likely for
    /// want of a majority to commit that entry.
    async fn change_members<F, Fut, T>(&self, change: F) -> Result<(), Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>,
            >,
    {
        let deadline = Instant::now() + self.patience;
        loop {
            match change().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) => {
                    if Instant::now() >= deadline {
                        return Err(Error::ClusterDown(
                            "the shard's last membership change did not commit: is a majority \
                             of its voters reachable?"
                                .into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(self.write_error(e, None)),
            }
        }
    }

    /// A waiter for this replica's next state changes; take it before checking the state
    /// it waits for.
    pub fn changes(&self) -> Changes {
        Changes(self.raft.metrics())
    }

    /// The current role and progress (from Raft's metrics, without waiting).
    pub fn role(&self) -> RoleInfo {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members: Vec<(u64, ShardNode, bool)> = membership
            .nodes()
            .map(|(id, n)| (*id, n.clone(), voters.contains(id)))
            .collect();
        // A stopped group (a storage error: a full or failing disk) leads nothing and knows
        // no leader, whatever its last metrics said.
        let stopped = m.running_state.is_err();
        let leader = m.current_leader.filter(|_| !stopped).and_then(|l| {
            members
                .iter()
                .find(|(id, _, _)| *id == l)
                .map(|(id, n, _)| (*id, n.clone()))
        });
        RoleInfo {
            me: m.id,
            state: m.state,
            term: m.current_term,
            leader,
            last_log: m.last_log_index.unwrap_or(0),
            committed: m
                .cluster_committed
                .or(m.local_committed)
                .map_or(0, |l| l.index),
            applied: m.last_applied.map_or(0, |l| l.index),
            snapshot: m.snapshot.map_or(0, |l| l.index),
            first_log: m.purged.map_or(0, |l| l.index + 1),
            members,
            matched: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
            fatal: m.running_state.as_ref().err().map(|e| e.to_string()),
            leader_cut_off: m.state == ServerState::Leader
                && voters.len() > 1
                && m.last_quorum_acked.as_deref().is_none_or(|at| {
                    openraft::Instant::elapsed(at).as_millis() as u64
                        > self.raft.config().election_timeout_max
                }),
        }
    }

    /// True when this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// The leader's client address, if known and not this node.
    pub fn leader_addr(&self) -> Option<String> {
        let r = self.role();
        r.leader
            .filter(|(id, _)| *id != self.me)
            .map(|(_, n)| n.client_addr)
    }

    /// Makes a read of `slot` on the leader linearizable (the group's [`ReadCheck`]; see the
    /// module docs). Errors with MOVED when this node is not the leader.
    pub async fn read_gate(&self, slot: u16) -> Result<(), Error> {
        let deadline = Instant::now() + self.patience;
        loop {
            // One attempt may wait on heartbeats to paused followers: bound it too.
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = self.raft.ensure_linearizable(self.reads.option());
            let Ok(res) = tokio::time::timeout(left, attempt).await else {
                return Err(Error::ClusterDown("The cluster is down".into()));
            };
            match res {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                    if let Some(e) = self.redirect(&f, Some(slot)) {
                        return Err(e);
                    }
                }
                Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {}
                Err(e) => return Err(api(e)),
            }
            if Instant::now() >= deadline {
                return Err(Error::ClusterDown("The cluster is down".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The redirect for a `ForwardToLeader`: MOVED when another node leads, None when this
    /// node may become able to serve (no leader yet, lease not yet acquired).
    fn redirect(&self, f: &ForwardToLeader<TypeConfig>, slot: Option<u16>) -> Option<Error> {
        // openraft does not always fill in the leader's node: look it up in the membership,
        // and fall back on what the metrics say the leader is.
        let role = self.role();
        let id = f
            .leader_id
            .or_else(|| role.leader.as_ref().map(|(id, _)| *id))?;
        if id == self.me {
            return None;
        }
        let addr = match &f.leader_node {
            Some(n) => n.client_addr.clone(),
            None => role
                .members
                .into_iter()
                .find(|(m, _, _)| *m == id)
                .map(|(_, n, _)| n.client_addr)?,
        };
        Some(match slot {
            Some(slot) => Error::Moved { slot, addr },
            None => Error::TryAgain(format!("the shard's leader is {addr}")),
        })
    }

    fn write_error(
        &self,
        e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
        slot: Option<u16>,
    ) -> Error {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self
                .redirect(&f, slot)
                .unwrap_or_else(|| Error::ClusterDown("The cluster is down".into())),
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => Error::Unavailable(
                "leadership changed before the write committed: its outcome is unknown; \
                 read the key to find out"
                    .into(),
            ),
            // Raft stopped on a storage error (the write itself may only see `Stopped`).
            RaftError::Fatal(f)
                if matches!(f, Fatal::StorageError(_))
                    || matches!(
                        self.raft.metrics().borrow_watched().running_state,
                        Err(Fatal::StorageError(_))
                    ) =>
            {
                let why = self.role().fatal.unwrap_or_else(|| f.to_string());
                Error::Unavailable(format!(
                    "this node takes no writes: its log could not be written ({why}); it \
                     restarts once its data folder takes writes again"
                ))
            }
            e => api(e),
        }
    }

    async fn propose_inner(&self, m: Mutation) -> Result<Applied, Error> {
        let slot = m.first_key().map(|k| key_slot(k));
        let deadline = Instant::now() + self.patience;
        loop {
            let r = match self.enqueue(m.clone()).await {
                Ok(queued) => self.outcome(queued).await,
                Err(e) => return Err(e),
            };
            match r {
                Ok(resp) => return resp.into_result(),
                Err(WriteFailure::TimedOut(e)) => return Err(e),
                Err(WriteFailure::Raft(e)) => {
                    // Not accepted: safe to retry while a leader (maybe this node) settles.
                    let retry = matches!(
                        &e,
                        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
                            if self.redirect(f, slot).is_none()
                    );
                    if !retry || Instant::now() >= deadline {
                        return Err(self.write_error(e, slot));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Hands `m` to the group's proposal queue: writes enqueued one after another by one
    /// caller enter the log in that order.
    async fn enqueue(&self, m: Mutation) -> Result<Queued, Error> {
        let slot = m.first_key().map(|k| key_slot(k));
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let cmd = Cmd::of(&m, now_ms(), self.me, seq);
        // Refused before it is proposed: an entry the followers cannot take would stop the
        // shard's commits.
        let size = entry_bytes(&cmd);
        let max = self.limits.max_entry_bytes;
        if size > max {
            return Err(Error::EntryTooLarge { size, max });
        }
        self.pending.put(seq, m);
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.batcher.send((cmd, tx)).await.is_err() {
            self.pending.take(seq);
            return Err(self.write_error(RaftError::Fatal(Fatal::Stopped), slot));
        }
        let limit = commit_limit(self.limits.commit_timeout, size);
        Ok(Queued {
            seq,
            slot,
            limit,
            // From now, not from when the outcome is first awaited: a caller that awaits
            // several in turn gives each its own limit, not the sum of those before it.
            deadline: tokio::time::Instant::now() + limit,
            rx,
        })
    }

    /// Waits for an enqueued write to commit and apply.
    async fn outcome(&self, q: Queued) -> Result<crate::ApplyResult, WriteFailure> {
        let r = match tokio::time::timeout_at(q.deadline, q.rx).await {
            Ok(r) => r.unwrap_or_else(|_| Err(RaftError::Fatal(Fatal::Stopped))),
            Err(_) => {
                // Appended, maybe replicated, not committed: it may still commit later (and
                // is then applied from the log).
                self.pending.take(q.seq);
                // A group of one has no majority to wait for: only its own disk.
                let why = if self.role().members.len() > 1 {
                    "a majority of the shard's nodes did not acknowledge it"
                } else {
                    "the log did not store it in time"
                };
                warn!(
                    group = %self.group,
                    timeout_ms = q.limit.as_millis() as u64,
                    "a write did not commit in time ({why})"
                );
                return Err(WriteFailure::TimedOut(Error::Unavailable(format!(
                    "the write did not commit within {} ms ({why}): its outcome is \
                     unknown; read the key to find out",
                    q.limit.as_millis()
                ))));
            }
        };
        self.pending.take(q.seq);
        r.map_err(WriteFailure::Raft)
    }

    /// Hands `m` to the group's proposal queue now and returns the future of its outcome,
    /// for a caller that sends several writes without waiting for each (a connection's
    /// pipeline): writes submitted one after another by one caller apply in that order.
    /// Unlike [`Proposer::propose`] it never proposes again: a write the group refuses (no
    /// leader) answers its error.
    pub async fn submit(
        self: &Arc<Self>,
        m: Mutation,
    ) -> Result<impl std::future::Future<Output = Result<Applied, Error>> + Send + 'static, Error>
    {
        let queued = self.enqueue(m).await?;
        let group = self.clone();
        Ok(async move {
            let slot = queued.slot;
            match group.outcome(queued).await {
                Ok(resp) => resp.into_result(),
                Err(WriteFailure::TimedOut(e)) => Err(e),
                Err(WriteFailure::Raft(e)) => Err(group.write_error(e, slot)),
            }
        })
    }
}

/// A write in the group's proposal queue.
struct Queued {
    seq: u64,
    slot: Option<u16>,
    limit: Duration,
    deadline: tokio::time::Instant,
    rx: tokio::sync::oneshot::Receiver<WriteOutcome>,
}

/// Why a queued write has no result.
enum WriteFailure {
    /// It did not commit in time (the error to answer).
    TimedOut(Error),
    /// Raft refused it or stopped.
    Raft(RaftError<TypeConfig, ClientWriteError<TypeConfig>>),
}

/// How long a write of `size` bytes waits to commit: `base` (`--raft-commit-timeout-ms`) and
/// one second more per 10 MB, so a large model has the time to reach a majority.
pub fn commit_limit(base: Duration, size: u64) -> Duration {
    base + Duration::from_millis(size / 10_000)
}

/// Bytes of the log entry `cmd` makes (its record and its share of a bus frame).
pub fn entry_bytes(cmd: &Cmd) -> u64 {
    // Bytes fields are length-prefixed: sizing them reads no data.
    bincode::serialized_size(cmd).unwrap_or(u64::MAX)
}

impl ShardGroup {
    /// Proposes `m` on this node if it leads the group, else forwards it to the leader over
    /// the bus; waits for a leader while an election runs. For small, rare, idempotent writes
    /// (the metadata group's records: a lost answer is retried), not for the client write path.
    pub async fn propose_anywhere(&self, m: Mutation) -> Result<Applied, Error> {
        let deadline = Instant::now() + self.patience;
        loop {
            let role = self.role();
            match role.leader {
                Some((id, _)) if id == self.me => return self.propose_inner(m).await,
                Some((id, node)) => {
                    let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                    let cmd = Cmd::of(&m, now_ms(), self.me, seq);
                    match self.network.propose(id, &node.raft_addr, cmd).await {
                        Ok(resp) => return resp.into_result(),
                        Err(e) if Instant::now() >= deadline => {
                            return Err(Error::Unavailable(format!(
                                "the {} group's leader did not take the write: {e}",
                                self.group
                            )));
                        }
                        Err(_) => {}
                    }
                }
                None if Instant::now() >= deadline => {
                    return Err(Error::ClusterDown(format!(
                        "the {} group has no leader",
                        self.group
                    )));
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Proposer for ShardGroup {
    fn propose(&self, m: Mutation) -> Proposal<'_> {
        Box::pin(self.propose_inner(m))
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}
