//! Cluster mode on this node: its identity file, its two Raft groups (its shard's data group
//! and the metadata group holding the topology; started at boot from `--dir`, or when
//! `shardai cluster create` / `add-node` tells it to join), and the cluster bus server's view
//! of them. The routing decision for each request (serve here, MOVED, ASK, TRYAGAIN,
//! CROSSSLOT, CLUSTERDOWN) is in [`route`]; the routing view itself is kept by [`meta`].
//!
//! Reads a follower serves on a READONLY connection come from its applied state: they may lag
//! the leader by the replication lag (INFO replication shows it; normally a few ms, unbounded
//! while the replica is cut off from the leader).

pub mod meta;
pub mod objects;
pub mod route;
pub mod settings;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, atomic::AtomicBool},
};

use parking_lot::RwLock;
use shardai_engine::{Applied, Mutation, Proposal, Proposer, Store, backend::Backends};
use shardai_protocol::{Error, command::Member};
use shardai_raft::{BusSecurity, GroupConfig, ShardGroup, ShardNode, TargetSlot};
use shardai_router::{View, view::not_served};
use tracing::{error, info};

pub use self::route::{Role, Route};
use crate::config::Config;

/// This node's place in a cluster, as saved in `<dir>/cluster.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The cluster id.
    pub cluster: String,
    /// This node's Raft id.
    pub node: u64,
    /// Address clients use to reach this node.
    pub client_addr: String,
    /// Address of this node's cluster bus.
    pub raft_addr: String,
    /// The node's Raft state (logs, votes) was created in the data folder: from then on a
    /// start without it is a partial wipe, not a fresh node.
    pub raft_state: bool,
}

/// The folders of this node's Raft groups under `--dir` (each keeps its log in `log/`):
/// the data group and the metadata group.
const GROUP_FOLDERS: [&str; 2] = ["raft", "meta"];

/// Why a node that has been part of a cluster cannot start from `dir`: the Raft state of one
/// of its groups is gone (the folder, or every log segment in it) while `cluster.conf`
/// remains. Started anyway, it would have forgotten its votes and the entries it
/// acknowledged: it could vote twice in a term and lose committed writes.
pub fn partial_wipe(dir: &Path, id: &Identity) -> Option<String> {
    if !id.raft_state {
        return None;
    }
    let missing = GROUP_FOLDERS.iter().find(|f| {
        let segments = std::fs::read_dir(dir.join(f).join("log")).map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        });
        !segments.unwrap_or(false)
    })?;
    Some(format!(
        "{}/cluster.conf says this is node {} of cluster {}, but its Raft log in {}/{missing} is \
         gone: started like this it would forget its votes and the writes it acknowledged. \
         Remove it from the cluster (`shardai cluster del-node <a live node> {}`), empty {} \
         and add it again (`shardai cluster add-node {} <a live node>`)",
        dir.display(),
        id.node,
        id.cluster,
        dir.display(),
        id.node,
        dir.display(),
        id.client_addr
    ))
}

impl Identity {
    fn path(dir: &Path) -> PathBuf {
        dir.join("cluster.conf")
    }

    /// Reads the identity file, if the node has joined a cluster.
    pub fn load(dir: &Path) -> Result<Option<Identity>, String> {
        let text = match std::fs::read_to_string(Self::path(dir)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", Self::path(dir).display())),
        };
        let mut kv = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(' ') {
                kv.insert(k.to_string(), v.trim().to_string());
            }
        }
        let get = |k: &str| {
            kv.get(k)
                .cloned()
                .ok_or_else(|| format!("{} lacks {k}", Self::path(dir).display()))
        };
        Ok(Some(Identity {
            cluster: get("cluster-id")?,
            node: get("node-id")?
                .parse()
                .map_err(|_| "bad node-id".to_string())?,
            client_addr: get("client-addr")?,
            raft_addr: get("bus-addr")?,
            raft_state: kv.get("raft-state").is_some_and(|v| v == "yes"),
        }))
    }

    fn save(&self, dir: &Path) -> Result<(), String> {
        let text = format!(
            "# shardai cluster identity: written by `shardai cluster create`/`add-node`\n\
             cluster-id {}\nnode-id {}\nclient-addr {}\nbus-addr {}\nraft-state {}\n",
            self.cluster,
            self.node,
            self.client_addr,
            self.raft_addr,
            if self.raft_state { "yes" } else { "no" }
        );
        shardai_raft::log_store::write_atomic(&Self::path(dir), text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", Self::path(dir).display()))
    }
}

/// The bus name of a node's shard (data) group.
pub const DATA_GROUP: &str = "data";
/// The bus name of the metadata group.
pub const META_GROUP: &str = "meta";

/// Cluster mode state.
pub struct Cluster {
    dir: PathBuf,
    bus_port: u16,
    settings: (u64, u64, u64),
    /// How a leader checks that it still leads before a read (`--raft-read-policy`).
    reads: shardai_raft::ReadCheck,
    limits: shardai_raft::WriteLimits,
    store: Arc<Store>,
    meta_store: Arc<Store>,
    backends: OnceLock<Arc<Backends>>,
    acl: OnceLock<Arc<crate::acl::Acl>>,
    acl_applied: std::sync::atomic::AtomicU64,
    group: RwLock<Option<Arc<ShardGroup>>>,
    meta: RwLock<Option<Arc<ShardGroup>>>,
    identity: RwLock<Option<Identity>>,
    slot: TargetSlot,
    bus: BusSecurity,
    joining: tokio::sync::Mutex<()>,
    view: RwLock<Option<Arc<View>>>,
    tls_view: RwLock<Option<Arc<View>>>,
    inputs: parking_lot::Mutex<meta::Inputs>,
    publishing: AtomicBool,
    /// Versions of the cluster-wide objects by name, with the value they were computed for.
    versions: parking_lot::Mutex<std::collections::HashMap<bytes::Bytes, (objects::Held, String)>>,
    /// When this node last reported its cluster-wide objects, and what it reported.
    reported_at: parking_lot::Mutex<Option<std::time::Instant>>,
    last_reports: parking_lot::Mutex<BTreeMap<bytes::Bytes, objects::Report>>,
    reporting: AtomicBool,
    /// The cluster's AI.CONFIG records this node applied, by record key.
    settings_applied: parking_lot::Mutex<BTreeMap<String, String>>,
    /// Held shared by every keyed command from its routing decision to its reply, and
    /// exclusively by MIGRATE: a key is either still here and served here, or gone to the
    /// target, never in between (a write routed before its slot started migrating cannot
    /// land after MIGRATE moved the key). Reading a slot's keys for a migration takes it
    /// exclusively for a moment ([`Cluster::settle_slot`]).
    pub migration: Arc<tokio::sync::RwLock<()>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Cluster state for `config`, writing to `store`.
    pub fn new(config: &Config, store: Arc<Store>) -> Result<Arc<Cluster>, String> {
        if let Some(why) = crate::standalone::holds_standalone_data(&config.dir) {
            return Err(why);
        }
        Ok(Arc::new(Cluster {
            dir: config.dir.clone(),
            bus_port: config.bus_port()?,
            settings: (
                config.raft_heartbeat_ms,
                config.raft_election_timeout_ms,
                config.snapshot_entries,
            ),
            limits: config.write_limits(),
            reads: config.read_check(),
            store,
            meta_store: Arc::new(Store::new()),
            backends: OnceLock::new(),
            acl: OnceLock::new(),
            acl_applied: std::sync::atomic::AtomicU64::new(u64::MAX),
            group: RwLock::new(None),
            meta: RwLock::new(None),
            identity: RwLock::new(None),
            slot: TargetSlot::default(),
            bus: config.bus_security()?,
            joining: tokio::sync::Mutex::new(()),
            view: RwLock::new(None),
            tls_view: RwLock::new(None),
            inputs: parking_lot::Mutex::new(meta::Inputs::default()),
            publishing: AtomicBool::new(false),
            versions: Default::default(),
            reported_at: Default::default(),
            last_reports: Default::default(),
            reporting: AtomicBool::new(false),
            settings_applied: Default::default(),
            migration: Arc::new(tokio::sync::RwLock::new(())),
        }))
    }

    /// The bus server's view of the local replica.
    pub fn target_slot(&self) -> TargetSlot {
        self.slot.clone()
    }

    /// The cluster bus port.
    pub fn bus_port(&self) -> u16 {
        self.bus_port
    }

    /// How the cluster bus authenticates peers (both the server and this node's clients).
    pub fn bus_security(&self) -> BusSecurity {
        self.bus.clone()
    }

    /// Sets the backends models are loaded into (before any group starts).
    pub fn set_backends(&self, b: Arc<Backends>) {
        let _ = self.backends.set(b);
    }

    /// Sets the users that the cluster's user records are applied to.
    pub fn set_acl(&self, acl: Arc<crate::acl::Acl>) {
        let _ = self.acl.set(acl);
    }

    /// The running group, if this node has joined a cluster.
    pub fn group(&self) -> Option<Arc<ShardGroup>> {
        self.group.read().clone()
    }

    /// The metadata group, if this node has joined a cluster.
    pub fn meta_group(&self) -> Option<Arc<ShardGroup>> {
        self.meta.read().clone()
    }

    /// The group named `name` ([`DATA_GROUP`] or [`META_GROUP`]).
    pub fn group_named(&self, name: &[u8]) -> Option<Arc<ShardGroup>> {
        match name {
            b"data" => self.group(),
            b"meta" => self.meta_group(),
            _ => None,
        }
    }

    /// This node's identity, if joined.
    pub fn identity(&self) -> Option<Identity> {
        self.identity.read().clone()
    }

    /// Starts the group saved in `--dir`, if any (at boot).
    pub async fn resume(self: &Arc<Self>) -> Result<(), String> {
        if let Some(mut id) = Identity::load(&self.dir)? {
            if let Some(why) = partial_wipe(&self.dir, &id) {
                return Err(why);
            }
            info!(node = id.node, cluster = %id.cluster, "rejoining the cluster saved in the data folder");
            self.start(id.clone()).await?;
            if !id.raft_state {
                // Saved by an earlier version: mark the state as made now that it is.
                id.raft_state = true;
                id.save(&self.dir)?;
            }
        } else {
            info!(
                "cluster mode: not part of a cluster yet; form one with `shardai cluster create`"
            );
        }
        Ok(())
    }

    async fn start_group(
        &self,
        id: &Identity,
        name: &str,
        folder: &str,
        store: Arc<Store>,
    ) -> Result<Arc<ShardGroup>, String> {
        let backends = self.backends.get().cloned().ok_or("backends not set")?;
        let (heartbeat_ms, election, snapshot_every) = self.settings;
        let dir = self.dir.join(folder);
        let group = ShardGroup::start(
            GroupConfig {
                cluster: id.cluster.clone(),
                group: name.to_string(),
                me: id.node,
                dir: dir.clone(),
                heartbeat_ms,
                election_ms: (election, election * 2),
                snapshot_every,
                bus: self.bus.clone(),
                limits: self.limits,
                fsync: shardai_raft::log_store::Fsync::Always,
                reads: self.reads,
                alone: false,
            },
            store,
            backends,
        )
        .await?;
        self.slot
            .write()
            .insert(name.to_string(), group.target(dir.join("snapshots")));
        Ok(group)
    }

    async fn start(self: &Arc<Self>, id: Identity) -> Result<(), String> {
        let data = self
            .start_group(&id, DATA_GROUP, "raft", self.store.clone())
            .await?;
        let meta = self
            .start_group(&id, META_GROUP, "meta", self.meta_store.clone())
            .await?;
        *self.group.write() = Some(data);
        *self.meta.write() = Some(meta);
        *self.identity.write() = Some(id);
        tokio::spawn(meta::refresh_loop(Arc::downgrade(self)));
        Ok(())
    }

    /// Joins cluster `cluster` as node `node` reachable by clients at `client_addr`; returns
    /// the bus address. Idempotent for the same identity.
    pub async fn join(
        self: &Arc<Self>,
        cluster: &str,
        node: u64,
        client_addr: &str,
    ) -> Result<String, Error> {
        let _g = self.joining.lock().await;
        let host = client_addr
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .ok_or_else(|| Error::Unavailable("address must be host:port".into()))?;
        let raft_addr = format!("{host}:{}", self.bus_port);
        if let Some(cur) = self.identity() {
            if cur.cluster == cluster && cur.node == node {
                return Ok(cur.raft_addr);
            }
            return Err(Error::Unavailable(format!(
                "this node already belongs to cluster {} as node {}",
                cur.cluster, cur.node
            )));
        }
        if !self.store.is_empty() {
            return Err(Error::Unavailable(
                "this node holds data: only an empty node can join a cluster".into(),
            ));
        }
        let mut id = Identity {
            cluster: cluster.to_string(),
            node,
            client_addr: client_addr.to_string(),
            raft_addr: raft_addr.clone(),
            raft_state: false,
        };
        id.save(&self.dir).map_err(Error::Unavailable)?;
        self.start(id.clone()).await.map_err(|e| {
            error!(error = %e, "cannot start the Raft group");
            Error::Unavailable(e)
        })?;
        // From here on the folder holds votes and entries this node may have acknowledged.
        id.raft_state = true;
        id.save(&self.dir).map_err(Error::Unavailable)?;
        info!(node, cluster, "joined the cluster");
        Ok(raft_addr)
    }

    /// The members named by `SHARDAI-INIT` / `SHARDAI-ADDNODE`, by id.
    pub fn members(list: &[Member]) -> BTreeMap<u64, ShardNode> {
        list.iter()
            .map(|m| {
                (
                    m.id,
                    ShardNode {
                        client_addr: m.client_addr.clone(),
                        raft_addr: m.bus_addr.clone(),
                    },
                )
            })
            .collect()
    }
}

impl Proposer for Cluster {
    fn propose(&self, m: Mutation) -> Proposal<'_> {
        match self.group() {
            Some(g) => Box::pin(async move { g.propose(m).await }),
            None => Box::pin(std::future::ready(Err::<Applied, Error>(not_served()))),
        }
    }

    fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_raft_log_is_a_partial_wipe() {
        let dir = std::env::temp_dir().join(format!("shardai-wipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        struct Gone<'a>(&'a Path);
        impl Drop for Gone<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(self.0);
            }
        }
        let _gone = Gone(&dir);
        let d = &dir;
        let mut id = Identity {
            cluster: "c".into(),
            node: 3,
            client_addr: "127.0.0.1:7000".into(),
            raft_addr: "127.0.0.1:17000".into(),
            raft_state: false,
        };
        // Before its state was made (or from an earlier version): nothing to check.
        assert_eq!(partial_wipe(d.as_path(), &id), None);
        id.raft_state = true;
        let why = partial_wipe(d.as_path(), &id).unwrap();
        assert!(
            why.contains("node 3 of cluster c") && why.contains("raft is gone"),
            "{why}"
        );
        for f in GROUP_FOLDERS {
            // Where the groups keep their logs (`<dir>/<group>/log/log-<first>.seg`).
            let log = d.as_path().join(f).join("log");
            std::fs::create_dir_all(&log).unwrap();
            std::fs::write(log.join("log-00000000000000000000.seg"), b"").unwrap();
        }
        assert_eq!(partial_wipe(d.as_path(), &id), None);
        std::fs::remove_file(d.as_path().join("meta/log/log-00000000000000000000.seg")).unwrap();
        assert!(
            partial_wipe(d.as_path(), &id)
                .unwrap()
                .contains("/meta is gone")
        );
        // A cluster.conf written before raft-state existed still loads, without the flag.
        std::fs::write(
            d.as_path().join("cluster.conf"),
            "# shardai cluster identity: written by `shardai cluster create`/`add-node`\n\
             cluster-id c\nnode-id 3\nclient-addr 127.0.0.1:7000\nbus-addr 127.0.0.1:17000\n",
        )
        .unwrap();
        let old = Identity::load(d.as_path()).unwrap().unwrap();
        assert!(!old.raft_state && old.node == 3 && old.raft_addr == "127.0.0.1:17000");
        // The flag survives a save and a load.
        id.save(d.as_path()).unwrap();
        assert_eq!(Identity::load(d.as_path()).unwrap(), Some(id));
    }
}
