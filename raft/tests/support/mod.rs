//! What the tests over the real cluster bus share: a node of one Raft group serving its own
//! bus on a free loopback port, and stopping it (its Raft and its bus's accept loop; open
//! bus connections end when their peers close).

use std::{path::Path, sync::Arc};

use shardai_engine::{Store, backend::Backends};
use shardai_raft::{BusSecurity, GroupConfig, ShardGroup, ShardNode, TargetSlot};
use tokio::task::JoinHandle;

/// A replica of group "data" of `cluster`, with its bus; not initialized.
pub(crate) struct BusNode {
    pub(crate) group: Arc<ShardGroup>,
    pub(crate) node: ShardNode,
    bus: JoinHandle<()>,
}

impl BusNode {
    /// Node `me`, keeping its log and snapshots in `dir`, its bus secured as `sec` says.
    pub(crate) async fn start(cluster: &str, me: u64, dir: &Path, sec: BusSecurity) -> BusNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let raft_addr = listener.local_addr().unwrap().to_string();
        let slot = TargetSlot::default();
        let bus = tokio::spawn(shardai_raft::network::serve(
            listener,
            slot.clone(),
            sec.clone(),
        ));
        let group = ShardGroup::start(
            GroupConfig {
                cluster: cluster.into(),
                group: "data".into(),
                me,
                dir: dir.to_path_buf(),
                heartbeat_ms: 50,
                election_ms: (200, 400),
                snapshot_every: 1000,
                bus: sec,
                limits: Default::default(),
                fsync: Default::default(),
                reads: shardai_raft::ReadCheck::ReadIndex,
                alone: false,
            },
            Arc::new(Store::new()),
            Arc::new(Backends::new(None)),
        )
        .await
        .unwrap();
        slot.write()
            .insert("data".into(), group.target(dir.join("snapshots")));
        let node = ShardNode {
            raft_addr,
            client_addr: "127.0.0.1:1".into(),
        };
        BusNode { group, node, bus }
    }

    /// Stops accepting bus connections and shuts Raft down.
    pub(crate) async fn stop(self) {
        self.bus.abort();
        self.group.raft.shutdown().await.unwrap();
    }
}
