//! Fault injection on the Raft layer: three replicas in one process, each with its real log
//! store, state machine and snapshot files, connected by an in-process transport that drops,
//! delays, duplicates and partitions messages following a seeded schedule; the schedule also
//! crashes and restarts replicas (reopening their files) and makes a replica's disk fail
//! (every fsync errs until it is restarted). A seed sweep checks the safety properties that
//! matter to users:
//!
//! - at most one leader per term (sampled from every node's metrics throughout),
//! - every read a leader serves after its read check (the lease read the server uses) returns
//!   at least the latest value acknowledged before the read began (one register written
//!   with increasing values), and
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
        AppendEntriesRequest, AppendEntriesResponse, ReadPolicy, SnapshotResponse, VoteRequest,
        VoteResponse,
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
    stores: Mutex<BTreeMap<u64, Arc<Store>>>,
    /// Who led each term, from every node's metrics.
    leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<u64>>>>,
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
    log: LogStore,
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
    let log_handle = log.clone();
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
    router.stores.lock().insert(id, store.clone());
    let mut rx = raft.metrics();
    let leaders = router.leaders.clone();
    tokio::spawn(async move {
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
    });
    Node {
        raft,
        store,
        log: log_handle,
    }
}

/// The node that believes it leads, else node `fallback % 3 + 1`: its Raft and its store.
fn pick(router: &Router, fallback: usize) -> Option<(ShardRaft, Arc<Store>)> {
    let nodes = router.nodes.lock().clone();
    let stores = router.stores.lock().clone();
    let id = nodes
        .iter()
        .find(|(_, (r, _))| r.metrics().borrow_watched().state == ServerState::Leader)
        .map(|(id, _)| *id)
        .unwrap_or(fallback as u64 % 3 + 1);
    Some((nodes.get(&id)?.0.clone(), stores.get(&id)?.clone()))
}

/// Crashes node `id` (its Raft stops; nothing more reaches its files) and starts it again
/// from its folder.
async fn restart(
    id: u64,
    nodes: &mut HashMap<u64, Node>,
    router: &Arc<Router>,
    dir: &std::path::Path,
) {
    let old = nodes.remove(&id).expect("node");
    router.nodes.lock().remove(&id);
    router.stores.lock().remove(&id);
    let _ = old.raft.shutdown().await;
    drop(old);
    tokio::time::sleep(Duration::from_millis(50)).await;
    nodes.insert(id, start_node(id, &dir.join(id.to_string()), router).await);
}

fn value_of(store: &Store, key: &str) -> Option<Bytes> {
    match store.get(key.as_bytes()) {
        Some(Value::Str(b)) => Some(b.into_bytes()),
        _ => None,
    }
}

async fn run_seed(seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let router = Arc::new(Router {
        nodes: Mutex::new(BTreeMap::new()),
        stores: Mutex::new(BTreeMap::new()),
        leaders: Arc::default(),
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

    // Election safety: every node's metrics are sampled all along (see `start_node`).
    let leaders = router.leaders.clone();
    // Writers: acknowledged writes are recorded; failed ones have unknown outcome.
    let acked: Arc<Mutex<BTreeMap<String, Bytes>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (acked, stop, router) = (acked.clone(), stop.clone(), router.clone());
        writers.push(tokio::spawn(async move {
            let (mut i, mut attempt) = (0u64, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                attempt += 1;
                let key = format!("k{w}:{i}");
                let val = Bytes::from(format!("v{seed}:{w}:{i}"));
                let m = Mutation::set(Bytes::from(key.clone()), val.clone());
                // Ask the node that believes it leads; else try them in turn.
                let Some((raft, _)) = pick(&router, attempt + w as usize) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
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

    // One register written with increasing values, and readers that check each value a
    // leader serves after its read check against what was acknowledged before the read.
    let reg_acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reads = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let (reg_acked, stop, router) = (reg_acked.clone(), stop.clone(), router.clone());
        writers.push(tokio::spawn(async move {
            let (mut next, mut attempt) = (1u64, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                attempt += 1;
                let m = Mutation::set(Bytes::from_static(b"reg"), Bytes::from(next.to_string()));
                let Some((raft, _)) = pick(&router, attempt) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let cmd = Cmd::of(&m, 1, 0, 0);
                match tokio::time::timeout(Duration::from_secs(2), raft.client_write(cmd)).await {
                    Ok(Ok(_)) => {
                        reg_acked.store(next, std::sync::atomic::Ordering::SeqCst);
                        next += 1;
                    }
                    // Unknown outcome: the next value is larger either way.
                    _ => {
                        next += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    for r in 0..2usize {
        let (reg_acked, reads, stop, router) = (
            reg_acked.clone(),
            reads.clone(),
            stop.clone(),
            router.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut attempt = r;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                attempt += 1;
                let Some((raft, store)) = pick(&router, attempt) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let lo = reg_acked.load(std::sync::atomic::Ordering::SeqCst);
                let check = raft.ensure_linearizable(ReadPolicy::LeaseRead);
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), check).await {
                    let v: u64 = value_of(&store, "reg")
                        .map(|b| String::from_utf8_lossy(&b).parse().unwrap())
                        .unwrap_or(0);
                    assert!(
                        v >= lo,
                        "seed {seed}: a leader read reg = {v} after {lo} was acknowledged"
                    );
                    reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }));
    }

    // The fault schedule.
    let mut rng = Rng(seed | 1);
    let mut failing: BTreeSet<u64> = BTreeSet::new();
    for _ in 0..10 {
        let f = match rng.next() % 7 {
            5 => {
                // A crash and restart (also the cure for a failed disk), of the leader half
                // the time.
                let leader = pick(&router, usize::MAX)
                    .map(|(r, _)| r.metrics().borrow_watched().clone())
                    .filter(|m| m.state == ServerState::Leader)
                    .map(|m| m.id);
                let id = match leader {
                    Some(l) if rng.chance(50) => l,
                    _ => 1 + rng.next() % 3,
                };
                eprintln!("seed {seed}: node {id} crashes and restarts (leader: {leader:?})");
                restart(id, &mut nodes, &router, tmp.path()).await;
                failing.remove(&id);
                Faults::default()
            }
            6 => {
                // A disk that fails: every later fsync errs, so the node acknowledges nothing.
                let id = 1 + rng.next() % 3;
                if failing.is_empty() {
                    eprintln!("seed {seed}: node {id}'s disk fails");
                    nodes[&id].log.fail_syncs_for_tests();
                    failing.insert(id);
                }
                Faults::default()
            }
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
    // A replica whose disk failed comes back only through a restart.
    for id in std::mem::take(&mut failing) {
        restart(id, &mut nodes, &router, tmp.path()).await;
    }
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
                .map(|(k, v, _)| {
                    (
                        k.to_bytes(),
                        if let Value::Str(b) = v {
                            Some(b.into_bytes())
                        } else {
                            None
                        },
                    )
                })
                .collect()
        })
        .collect();
    assert!(
        dumps.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: replicas differ"
    );
    assert!(
        reads.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "seed {seed}: no leader read was checked"
    );
    let snapshots = nodes
        .values()
        .filter(|n| n.raft.metrics().borrow_watched().snapshot.is_some())
        .count();
    eprintln!(
        "seed {seed}: {} acknowledged writes, {} checked leader reads, {} terms with a leader, \
         {snapshots} replicas with a snapshot",
        acked.len(),
        reads.load(std::sync::atomic::Ordering::Relaxed),
        leaders.lock().len()
    );
    for (term, who) in leaders.lock().iter() {
        assert!(
            who.len() <= 1,
            "seed {seed}: term {term} had leaders {who:?}"
        );
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
