//! The default node (no `--cluster-enabled`): its data is a Raft group of one member in
//! `<dir>/standalone/`, so every write is in the log before it is acknowledged and the node
//! recovers its keys from the log and snapshots when it restarts. `--appendfsync` (and
//! `CONFIG SET appendfsync`) sets when the log is fsync'd, as Redis's AOF does. The group has
//! no peers, so it opens no bus port and elects itself at once.
//!
//! A data folder belongs to one mode: a standalone node refuses a folder holding a cluster
//! node's identity, and a cluster node one holding standalone data.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use shardai_engine::{Store, backend::Backends};
use shardai_raft::{BusSecurity, GroupConfig, ShardGroup, ShardNode};
use tracing::info;

use crate::config::Config;

/// The folder under `--dir` holding the standalone node's log and snapshots.
pub const FOLDER: &str = "standalone";

/// This node's id in its group of one.
const ME: u64 = 1;

/// How long the start may go without electing itself or applying an entry.
const STALLED_AFTER: Duration = Duration::from_secs(120);

/// Why a cluster node cannot start from `dir`: it holds a standalone node's data.
pub fn holds_standalone_data(dir: &Path) -> Option<String> {
    dir.join(FOLDER).exists().then(|| {
        format!(
            "{} holds the data of a standalone node (one started without --cluster-enabled, \
             in {}/{FOLDER}): start it without --cluster-enabled, or give a cluster node \
             another --dir",
            dir.display(),
            dir.display()
        )
    })
}

/// Opens (or creates) the standalone node's group in `config.dir` over `store` and waits
/// until it leads and has applied every entry its log holds.
pub async fn start(
    config: &Config,
    store: Arc<Store>,
    backends: Arc<Backends>,
) -> Result<Arc<ShardGroup>, String> {
    if crate::cluster::Identity::load(&config.dir)?.is_some() {
        return Err(format!(
            "{}/cluster.conf says this data folder belongs to a cluster node: start it with \
             --cluster-enabled yes, or give a standalone node another --dir",
            config.dir.display()
        ));
    }
    let fsync = config.fsync();
    let group_config = GroupConfig {
        cluster: "standalone".into(),
        group: "data".into(),
        me: ME,
        dir: config.dir.join(FOLDER),
        // No peers: heartbeats go nowhere and the only election is this node's own.
        heartbeat_ms: 50,
        election_ms: (100, 200),
        snapshot_every: config.snapshot_entries,
        bus: BusSecurity::open(),
        limits: config.write_limits(),
        fsync,
        // No other member can ever lead: a lease is as safe as a read index here.
        reads: shardai_raft::ReadCheck::Lease(std::time::Duration::from_millis(200)),
        alone: true,
    };
    // The group's tasks (Raft's core, the log's appends, the state machine, the proposal
    // batcher) run on a thread of their own, so that a write hops between them without
    // waking another thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("shardai-raft")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the data log's thread: {e}"))?;
    let started = runtime.spawn(ShardGroup::start(group_config, store.clone(), backends));
    // It serves until the process exits.
    std::mem::forget(runtime);
    let group = started
        .await
        .map_err(|e| format!("the data log's thread stopped: {e}"))?
        .map_err(|e| format!("{}/{FOLDER}: {e}", config.dir.display()))?;
    let initialized = group
        .raft
        .is_initialized()
        .await
        .map_err(|e| format!("the data log stopped: {e}"))?;
    if !initialized {
        let me = ShardNode {
            raft_addr: String::new(),
            client_addr: format!("{}:{}", config.bind, config.port),
        };
        group
            .initialize(BTreeMap::from([(ME, me)]))
            .await
            .map_err(|e| format!("cannot create the data log: {e}"))?;
        info!(dir = %config.dir.join(FOLDER).display(), "new data log created");
    }
    wait_ready(&group).await?;
    let role = group.role();
    info!(
        keys = store.len(),
        entries = role.last_log,
        appendfsync = fsync.name(),
        "data recovered from {}",
        config.dir.join(FOLDER).display()
    );
    Ok(group)
}

/// Waits until the group leads and has applied its whole log (what it held before the
/// restart included). Gives up only when nothing moves for [`STALLED_AFTER`]: replaying a
/// large log (models are loaded again) may take long.
async fn wait_ready(group: &ShardGroup) -> Result<(), String> {
    let mut deadline = tokio::time::Instant::now() + STALLED_AFTER;
    let mut applied = group.role().applied;
    loop {
        let mut changes = group.changes();
        let role = group.role();
        if let Some(e) = role.fatal {
            return Err(format!("the data log stopped: {e}"));
        }
        if group.is_leader() && role.applied >= role.last_log {
            return Ok(());
        }
        if role.applied > applied {
            applied = role.applied;
            deadline = tokio::time::Instant::now() + STALLED_AFTER;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the data log made no progress for {} s (state {:?}, {} of {} entries applied)",
                STALLED_AFTER.as_secs(),
                role.state,
                role.applied,
                role.last_log
            ));
        }
        changes.next(Duration::from_millis(100)).await;
    }
}
