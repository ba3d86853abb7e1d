//! Fault injection on the Raft layer: three replicas in one process, each with its real log
//! store, state machine and snapshot files, connected by an in-process transport that drops,
//! delays, duplicates and partitions messages following a seeded schedule. A seed sweep
//! checks the two safety properties that matter to users:
//!
//! - at most one leader per term (sampled from every node's metrics throughout), and
//! - no acknowledged write is lost: after the faults stop, every replica holds every write
//!   that `client_write` acknowledged, and the replicas' keyspaces are identical.
//!
//! The fault schedule comes from the seed; thread timing (fsync threads, the runtime) is
//! real, so two runs of one seed are alike but not bit-identical. `SHARDAI_FAULT_SEEDS=N`
//! runs more seeds.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use openraft::{
    Config, RaftNetworkFactory, ServerState, SnapshotPolicy,
    alias::{SnapshotOf, VoteOf},
    async_runtime::WatchReceiver,
    error::{RPCError, ReplicationClosed, StreamingError, Unreachable},
    network::{RPCOption, v2::RaftNetworkV2},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
    },
};
use parking_lot::Mutex;
use shardai_engine::{Mutation, Store, Value, backend::Backends};
use shardai_raft::{
    Cmd, ShardNode, ShardRaft, TypeConfig,
    log_store::LogStore,
    snapshot::SnapshotFile,
    state_machine::{Pending, StateMachine},
};

type C = TypeConfig;

/// xorshift64*: a small seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The faults in force.
#[derive(Default, Clone)]
struct Faults {
    /// Nodes cut off from everyone.
    isolated: BTreeSet<u64>,
    drop_pct: u64,
    dup_pct: u64,
    max_delay_ms: u64,
}

struct Router {
    nodes: Mutex<BTreeMap<u64, (ShardRaft, std::path::PathBuf)>>,
    faults: Mutex<Faults>,
    rng: Mutex<Rng>,
}

impl Router {
    /// Decides the fate of one message: Err = lost, Ok(delay, duplicate).
    fn fate(&self, from: u64, to: u64) -> Result<(Duration, bool), ()> {
        let f = self.faults.lock().clone();
        if f.isolated.contains(&from) || f.isolated.contains(&to) {
            return Err(());
        }
        let mut rng = self.rng.lock();
        if rng.chance(f.drop_pct) {
            return Err(());
        }
        let delay = if f.max_delay_ms > 0 {
            rng.next() % f.max_delay_ms
        } else {
            0
        };
        Ok((Duration::from_millis(delay), rng.chance(f.dup_pct)))
    }

    fn raft(&self, id: u64) -> Option<(ShardRaft, std::path::PathBuf)> {
        self.nodes.lock().get(&id).cloned()
    }
}

#[derive(Clone)]
struct Net {
    router: Arc<Router>,
    from: u64,
}

struct Peer {
    router: Arc<Router>,
    from: u64,
    to: u64,
}

fn lost() -> Unreachable<C> {
    Unreachable::new(&io::Error::other("message lost"))
}

impl RaftNetworkFactory<C> for Net {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _node: &ShardNode) -> Peer {
        Peer {
            router: self.router.clone(),
            from: self.from,
            to: target,
        }
    }
}

impl Peer {
    /// Delivers (maybe twice) and returns the first answer, or loses the message.
    async fn deliver<T, F, Fut>(&self, call: F) -> Result<T, Unreachable<C>>
    where
        F: Fn(ShardRaft) -> Fut,
        Fut: std::future::Future<Output = Result<T, String>> + Send + 'static,
        T: Send + 'static,
    {
        let (delay, dup) = self.router.fate(self.from, self.to).map_err(|_| lost())?;
        tokio::time::sleep(delay).await;
        let (raft, _) = self.router.raft(self.to).ok_or_else(lost)?;
        if dup {
            let again = call(raft.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(7)).await;
                let _ = again.await;
            });
        }
        let out = call(raft)
            .await
            .map_err(|e| Unreachable::new(&io::Error::other(e)))?;
        // The answer can be lost too.
        self.router.fate(self.to, self.from).map_err(|_| lost())?;
        Ok(out)
    }
}

impl RaftNetworkV2<C> for Peer {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        self.deliver(move |r| {
            let rpc = rpc.clone();
            async move { r.append_entries(rpc).await.map_err(|e| e.to_string()) }
        })
        .await
        .map_err(RPCError::Unreachable)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        _o: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        self.deliver(move |r| {
            let rpc = rpc.clone();
            async move { r.vote(rpc).await.map_err(|e| e.to_string()) }
        })
        .await
        .map_err(RPCError::Unreachable)
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SnapshotFile>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _o: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let (_, dir) = self.router.raft(self.to).ok_or_else(lost)?;
        let seq = self.router.rng.lock().next();
        self.deliver(move |r| {
            // The receiver gets its own copy of the file, as the TCP transport writes one.
            let copy = dir.join(format!("recv-{seq}.tmp"));
            let snap = snapshot.clone();
            let vote = vote;
            async move {
                std::fs::copy(&snap.snapshot.path, &copy).map_err(|e| e.to_string())?;
                let s = openraft::storage::Snapshot {
                    meta: snap.meta.clone(),
                    snapshot: SnapshotFile { path: copy.clone() },
                };
                let out = r
                    .install_full_snapshot(vote, s)
                    .await
                    .map_err(|e| e.to_string());
                let _ = std::fs::remove_file(&copy);
                out
            }
        })
        .await
        .map_err(StreamingError::Unreachable)
    }
}

struct Node {
    raft: ShardRaft,
    store: Arc<Store>,
}

async fn start_node(id: u64, dir: &std::path::Path, router: &Arc<Router>) -> Node {
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(150),
        max_in_snapshot_log_to_keep: 20,
        ..Default::default()
    }
    .validate()
    .unwrap();
    let store = Arc::new(Store::new());
    let log = LogStore::open(&dir.join("log")).unwrap();
    let snaps = dir.join("snapshots");
    let sm = StateMachine::open(
        &snaps,
        store.clone(),
        Arc::new(Backends::new(None)),
        id,
        Arc::new(Pending::default()),
    )
    .unwrap();
    let net = Net {
        router: router.clone(),
        from: id,
    };
    let raft = ShardRaft::new(id, Arc::new(config), net, log, sm)
        .await
        .unwrap();
    router.nodes.lock().insert(id, (raft.clone(), snaps));
    Node { raft, store }
}

fn value_of(store: &Store, key: &str) -> Option<Bytes> {
    match store.get(key.as_bytes()) {
        Some(Value::Str(b)) => Some(b),
        _ => None,
    }
}

async fn run_seed(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let router = Arc::new(Router {
        nodes: Mutex::new(BTreeMap::new()),
        faults: Mutex::new(Faults::default()),
        rng: Mutex::new(Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)),
    });
    let ids = [1u64, 2, 3];
    let mut nodes = HashMap::new();
    for id in ids {
        nodes.insert(
            id,
            start_node(id, &tmp.path().join(id.to_string()), &router).await,
        );
    }
    let members: BTreeMap<u64, ShardNode> =
        ids.iter().map(|i| (*i, ShardNode::default())).collect();
    nodes[&1].raft.initialize(members).await.unwrap();

    // Election safety: sample every node's metrics all along.
    let leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<u64>>>> = Arc::default();
    let mut watchers = Vec::new();
    for n in nodes.values() {
        let mut rx = n.raft.metrics();
        let leaders = leaders.clone();
        watchers.push(tokio::spawn(async move {
            loop {
                {
                    let m = rx.borrow_watched();
                    if m.state == ServerState::Leader {
                        leaders
                            .lock()
                            .entry(m.current_term)
                            .or_default()
                            .insert(m.id);
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
    }

    // Writers: acknowledged writes are recorded; failed ones have unknown outcome.
    let acked: Arc<Mutex<BTreeMap<String, Bytes>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (acked, stop) = (acked.clone(), stop.clone());
        let rafts: Vec<ShardRaft> = nodes.values().map(|n| n.raft.clone()).collect();
        writers.push(tokio::spawn(async move {
            let (mut i, mut attempt) = (0u64, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                attempt += 1;
                let key = format!("k{w}:{i}");
                let val = Bytes::from(format!("v{seed}:{w}:{i}"));
                let m = Mutation::set(Bytes::from(key.clone()), val.clone());
                // Ask the node that believes it leads; else try them in turn.
                let raft = rafts
                    .iter()
                    .find(|r| r.metrics().borrow_watched().state == ServerState::Leader)
                    .unwrap_or(&rafts[(attempt + w as usize) % rafts.len()]);
                let cmd = Cmd::of(&m, 1, 0, 0);
                match tokio::time::timeout(Duration::from_secs(2), raft.client_write(cmd)).await {
                    Ok(Ok(_)) => {
                        acked.lock().insert(key, val);
                        i += 1;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }

    // The fault schedule.
    let mut rng = Rng(seed | 1);
    for _ in 0..10 {
        let f = match rng.next() % 5 {
            0 => Faults::default(),
            1 => Faults {
                isolated: [1 + rng.next() % 3].into(),
                ..Default::default()
            },
            2 => Faults {
                drop_pct: 20,
                ..Default::default()
            },
            3 => Faults {
                drop_pct: 10,
                dup_pct: 30,
                max_delay_ms: 40,
                ..Default::default()
            },
            _ => {
                // Cut the current leader off.
                let leader = nodes
                    .values()
                    .map(|n| n.raft.metrics().borrow_watched().clone())
                    .find(|m| m.state == ServerState::Leader)
                    .map(|m| m.id);
                Faults {
                    isolated: leader.into_iter().collect(),
                    drop_pct: 5,
                    ..Default::default()
                }
            }
        };
        *router.faults.lock() = f;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    *router.faults.lock() = Faults::default();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // Heal and converge: every node applies everything the leader committed.
    let acked = acked.lock().clone();
    assert!(
        !acked.is_empty(),
        "seed {seed}: no write was acknowledged at all"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics: Vec<_> = nodes
            .values()
            .map(|n| n.raft.metrics().borrow_watched().clone())
            .collect();
        let leader = metrics.iter().find(|m| m.state == ServerState::Leader);
        if let Some(l) = leader {
            let target = l.last_log_index;
            if metrics
                .iter()
                .all(|m| m.last_applied.map(|x| x.index) == target)
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: no convergence: {metrics:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (id, n) in &nodes {
        for (k, v) in &acked {
            assert_eq!(
                value_of(&n.store, k).as_ref(),
                Some(v),
                "seed {seed}: node {id} lost acknowledged write {k}"
            );
        }
    }
    let dumps: Vec<BTreeMap<Bytes, Option<Bytes>>> = nodes
        .values()
        .map(|n| {
            n.store
                .dump()
                .into_iter()
                .map(|(k, v, _)| (k, if let Value::Str(b) = v { Some(b) } else { None }))
                .collect()
        })
        .collect();
    assert!(
        dumps.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: replicas differ"
    );
    let snapshots = nodes
        .values()
        .filter(|n| n.raft.metrics().borrow_watched().snapshot.is_some())
        .count();
    eprintln!(
        "seed {seed}: {} acknowledged writes, {} terms with a leader, {snapshots} replicas \
         with a snapshot",
        acked.len(),
        leaders.lock().len()
    );
    for (term, who) in leaders.lock().iter() {
        assert!(
            who.len() <= 1,
            "seed {seed}: term {term} had leaders {who:?}"
        );
    }
    for w in watchers {
        w.abort();
    }
    for n in nodes.values() {
        n.raft.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_and_one_leader_per_term_under_faults() {
    let seeds: u64 = std::env::var("SHARDAI_FAULT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 1..=seeds {
        run_seed(seed).await;
    }
}
