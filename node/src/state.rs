//! State shared by every connection: the shard's proposer and store, the AI engine
//! ([`Engine`]), run-time settings, statistics and the client registry (for CLIENT LIST and
//! INFO clients). Per-connection state is in [`crate::client`].

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::Instant,
};

use parking_lot::Mutex;
use shardai_engine::{Proposer, Store, backend::Backends, queue::RunQueues};
use shardai_raft::ShardGroup;

use crate::{
    acl::Acl,
    client::{ClientInfo, ClientNames},
    cluster::Cluster,
    config::Config,
    output_limit::SharedLimit,
};

/// Server-wide counters for INFO stats.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted since start.
    pub connections: AtomicU64,
    /// Connections refused by the connection limit.
    pub rejected: AtomicU64,
    /// Commands processed.
    pub commands: AtomicU64,
    /// Bytes read from clients.
    pub net_in: AtomicU64,
    /// Bytes written to clients.
    pub net_out: AtomicU64,
    /// Reads that found their key.
    pub hits: AtomicU64,
    /// Reads that did not.
    pub misses: AtomicU64,
    /// Keys removed by expiry.
    pub expired: AtomicU64,
    /// Protocol errors (connections closed for malformed input).
    pub protocol_errors: AtomicU64,
    /// MOVED redirects answered.
    pub moved: AtomicU64,
    /// ASK redirects answered.
    pub ask: AtomicU64,
}

/// Settings that CONFIG SET and AI.CONFIG change at run time.
#[derive(Debug)]
pub struct Runtime {
    /// proto-max-bulk-len.
    pub max_bulk: AtomicUsize,
    /// maxclients.
    pub maxclients: AtomicUsize,
    /// AI.CONFIG MODEL_CHUNK_SIZE.
    pub model_chunk_size: AtomicUsize,
    /// AI.CONFIG BACKEND_MEMORY_LIMIT, MB (0: none); the ONNX allocator holds the live value.
    pub backend_memory_limit: AtomicU64,
    /// protected-mode.
    pub protected_mode: AtomicBool,
    /// maxmemory (0: no limit).
    pub maxmemory: AtomicUsize,
    /// Bytes admitted under maxmemory whose writes have not finished yet.
    pub in_flight: AtomicUsize,
    /// timeout: idle seconds before a client is closed (0: never).
    pub idle_timeout: AtomicU64,
    /// client-output-buffer-limit for normal clients.
    pub output_limit: SharedLimit,
    /// Seconds a reply may go unread before its client is closed (0: never).
    pub write_timeout: AtomicU64,
}

/// What AI commands run with: the backends models load into, the per-device run queues
/// and the AI.INFO statistics.
pub struct Engine {
    /// Model backends, loaded on first use.
    pub backends: Arc<Backends>,
    /// Per-device run queues.
    pub queues: RunQueues,
    /// In a cluster: the cluster-wide models and scripts (the metadata group's store), which
    /// names starting with `@` resolve to.
    pub objects: std::sync::OnceLock<Arc<shardai_engine::Store>>,
}

impl Engine {
    /// The engine `config` asks for.
    pub fn for_config(config: &Config) -> Self {
        shardai_engine::backend::onnx_memory::set_limit_mb(config.backend_memory_limit);
        let threads = shardai_engine::backend::Settings {
            intra_op: config.intra_op_parallelism,
            inter_op: config.inter_op_parallelism,
            execution_timeout_ms: config.model_execution_timeout,
            onnx_no_spinning: !config.onnx_spinning,
        };
        let engine = Engine::new(
            config.backends_path.clone(),
            threads,
            config.threads_per_queue,
        );
        engine
            .queues
            .set_queue_delay(std::time::Duration::from_micros(
                config.batch_queue_delay_us,
            ));
        engine
    }

    /// An engine whose backends look for their libraries in `backends_path` (the wheels'
    /// folders when `None`), with `threads_per_queue` workers per device queue.
    pub fn new(
        backends_path: Option<std::path::PathBuf>,
        settings: shardai_engine::backend::Settings,
        threads_per_queue: usize,
    ) -> Self {
        let path = backends_path.or_else(shardai_engine::backend::default_path);
        let timeout = std::time::Duration::from_millis(settings.execution_timeout_ms);
        Engine {
            backends: Arc::new(Backends::with_threads(path, settings)),
            queues: RunQueues::new(threads_per_queue).with_execution_timeout(Some(timeout)),
            objects: std::sync::OnceLock::new(),
        }
    }
}

impl Engine {
    /// The store a model or script named `key` lives in: the cluster-wide objects for a
    /// cluster-wide name in a cluster, else `data`.
    pub fn store_for<'a>(
        &'a self,
        key: &[u8],
        data: &'a shardai_engine::Store,
    ) -> &'a shardai_engine::Store {
        match self.objects.get() {
            Some(o) if shardai_protocol::cluster_wide::is_cluster_wide(key) => o,
            _ => data,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// Everything a connection needs from the server.
pub struct Shared {
    /// The write path of this node's (only) shard.
    pub proposer: Arc<dyn Proposer>,
    /// Cluster mode (`--cluster-enabled yes`): the shard's Raft group and routing.
    pub cluster: Option<Arc<Cluster>>,
    /// The default node's data log (a Raft group of one; the proposer too).
    pub standalone: Option<Arc<ShardGroup>>,
    /// The start-up configuration.
    pub config: Config,
    /// Settings changed at run time.
    pub runtime: Runtime,
    /// Counters.
    pub stats: Stats,
    /// Backends, run queues and AI.INFO statistics.
    pub engine: Engine,
    /// Users and the denial log.
    pub acl: Arc<Acl>,
    /// Live connections by id.
    pub clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    next_client_id: AtomicU64,
    /// Start time, for uptime.
    pub started: Instant,
    /// Unique id of this run (INFO run_id).
    pub run_id: String,
    /// EXEC holds it exclusively, every other client command shared: no command of another
    /// client runs on this node while a transaction does.
    pub tx_gate: Arc<crate::tx_gate::TxGate>,
    /// SLOWLOG, MONITOR, metrics and readiness.
    pub ops: crate::ops::Ops,
    /// Notified by SHUTDOWN: the server stops as on SIGTERM.
    pub shutdown: tokio::sync::Notify,
    /// The Unix time (s) the server started: LASTSAVE before any snapshot, as Redis.
    pub started_unix: u64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Shared state for a server with `config` writing through `proposer`, its users in
    /// `acl`.
    pub fn new(
        config: Config,
        proposer: Arc<dyn Proposer>,
        cluster: Option<Arc<Cluster>>,
        acl: Arc<Acl>,
    ) -> Self {
        let engine = Engine::for_config(&config);
        Self::with_engine(config, engine, proposer, cluster, acl)
    }

    /// As [`Shared::new`], with an engine made beforehand (its backends are what a Raft
    /// group loads models into).
    pub fn with_engine(
        config: Config,
        engine: Engine,
        proposer: Arc<dyn Proposer>,
        cluster: Option<Arc<Cluster>>,
        acl: Arc<Acl>,
    ) -> Self {
        let runtime = Runtime {
            max_bulk: AtomicUsize::new(config.proto_max_bulk_len),
            maxclients: AtomicUsize::new(config.maxclients),
            model_chunk_size: AtomicUsize::new(config.model_chunk_size),
            backend_memory_limit: AtomicU64::new(config.backend_memory_limit),
            protected_mode: AtomicBool::new(config.protected_mode),
            maxmemory: AtomicUsize::new(config.maxmemory),
            in_flight: AtomicUsize::new(0),
            idle_timeout: AtomicU64::new(config.timeout),
            output_limit: SharedLimit::new(config.client_output_buffer_limit),
            write_timeout: AtomicU64::new(config.client_write_timeout),
        };
        let seed = shardai_engine::now_ms() ^ ((std::process::id() as u64) << 20);
        let run_id = (0..5)
            .map(|i| format!("{:08x}", mix(seed.wrapping_add(i))))
            .collect();
        Shared {
            proposer,
            cluster,
            standalone: None,
            ops: crate::ops::Ops::for_config(&config),
            config,
            runtime,
            stats: Stats::default(),
            engine,
            acl,
            clients: Mutex::new(BTreeMap::new()),
            shutdown: tokio::sync::Notify::new(),
            started_unix: shardai_engine::now_ms() / 1000,
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            run_id,
            tx_gate: Arc::default(),
        }
    }

    /// The default node's data log, which is also its proposer.
    pub fn with_standalone(mut self, group: Arc<ShardGroup>) -> Self {
        self.proposer = group.clone();
        self.standalone = Some(group);
        self
    }

    /// The Raft group holding this node's data: the standalone log, or the cluster shard's
    /// replica (`None` before the node joined a shard).
    pub fn data_group(&self) -> Option<Arc<ShardGroup>> {
        self.standalone
            .clone()
            .or_else(|| self.cluster.as_ref().and_then(|c| c.group()))
    }

    /// The shard's keyspace.
    pub fn store(&self) -> &Arc<Store> {
        self.proposer.store()
    }

    /// Registers a new connection (`fd`: its socket's file descriptor).
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Arc<ClientInfo> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(ClientInfo {
            id,
            addr,
            laddr,
            fd,
            kill: tokio::sync::Notify::new(),
            monitor: std::sync::atomic::AtomicBool::new(false),
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
            resp: AtomicU8::new(2),
            names: Mutex::new(ClientNames::default()),
            last_cmd: AtomicUsize::new(usize::MAX),
            user: Mutex::new("default".into()),
        });
        self.clients.lock().insert(id, info.clone());
        info
    }

    /// Removes a closed connection.
    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// A pseudo-random number (RANDOMKEY), different on every call.
    pub fn random(&self) -> u64 {
        mix(self.stats.commands.load(Ordering::Relaxed) ^ shardai_engine::now_ms().rotate_left(17))
    }
}

/// splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
