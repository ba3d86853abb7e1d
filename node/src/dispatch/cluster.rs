//! CLUSTER (the Redis Cluster subcommands: SLOTS, SHARDS, NODES, INFO, MYID, KEYSLOT,
//! COUNTKEYSINSLOT, GETKEYSINSLOT; the internal SHARDAI-* ones are in `cluster_admin`), ROLE,
//! and INFO replication. A node started without `--cluster-enabled` answers as a one-node
//! cluster owning every slot, so cluster clients work against it unchanged.

use std::{net::SocketAddr, sync::Arc};

use shardai_engine::Store;
use shardai_protocol::{Error, Reply, command::ClusterCmd, slot::key_slot};
use shardai_raft::RoleInfo;
use shardai_router::{Topology, View, replies};

use crate::{client::ConnState, cluster::Cluster, state::Shared};

/// The routing view CLUSTER answers from: the cluster's, or for a node running alone a
/// one-node cluster at the address the client reached.
fn view_of(
    cluster: Option<&Arc<Cluster>>,
    laddr: SocketAddr,
    tls: bool,
) -> Result<Arc<View>, Error> {
    match cluster {
        Some(c) => c.view_for(tls).ok_or_else(|| {
            Error::ClusterDown(if c.identity().is_some() {
                "the cluster topology is not known yet".into()
            } else {
                "this node has not joined a cluster".into()
            })
        }),
        None => {
            let bus = SocketAddr::new(laddr.ip(), laddr.port().wrapping_add(10000));
            let t = Topology::single(0, &laddr.to_string(), &bus.to_string());
            Ok(Arc::new(View::new(t, [(0, (0, 0))].into(), 0)))
        }
    }
}

/// # Format
/// `CLUSTER SLOTS | SHARDS | NODES | INFO | MYID | KEYSLOT key | COUNTKEYSINSLOT slot |
/// GETKEYSINSLOT slot count | SETSLOT ... | HELP`, and the internal `SHARDAI-*` subcommands.
pub(super) async fn cluster(cmd: ClusterCmd, shared: &Shared, conn: &ConnState) -> Reply {
    let (cluster, store) = (shared.cluster.as_ref(), &**shared.store());
    run(cmd, cluster, store, conn.info.laddr, conn.tls)
        .await
        .unwrap_or_else(Reply::Error)
}

async fn run(
    cmd: ClusterCmd,
    cluster: Option<&Arc<Cluster>>,
    store: &Store,
    laddr: SocketAddr,
    tls: bool,
) -> Result<Reply, Error> {
    Ok(match cmd {
        ClusterCmd::Admin(a) => super::cluster_admin::admin(a, cluster).await?,
        ClusterCmd::Malformed(e) => {
            super::cluster_admin::cluster_of(cluster)?;
            return Err(e);
        }
        ClusterCmd::SetSlot { slot, action } => {
            super::setslot::setslot(slot, action, cluster, store).await?
        }
        ClusterCmd::KeySlot(key) => Reply::Int(key_slot(&key) as i64),
        ClusterCmd::MyId => {
            let id = cluster.and_then(|c| c.identity()).map_or(0, |i| i.node);
            Reply::bulk(replies::node_name(id))
        }
        ClusterCmd::Info => match view_of(cluster, laddr, tls) {
            Ok(v) => Reply::Verbatim(replies::cluster_info(&v)),
            Err(_) => Reply::Verbatim(
                "cluster_state:fail\r\ncluster_slots_assigned:0\r\ncluster_slots_ok:0\r\n\
                 cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:1\r\n\
                 cluster_size:0\r\ncluster_current_epoch:0\r\ncluster_my_epoch:0\r\n"
                    .into(),
            ),
        },
        ClusterCmd::Slots => replies::cluster_slots(&*view_of(cluster, laddr, tls)?),
        ClusterCmd::Shards => {
            let v = view_of(cluster, laddr, tls)?;
            let me = v.me;
            let applied = cluster
                .and_then(|c| c.group())
                .map_or(0, |g| g.role().applied as i64);
            replies::cluster_shards(&v, &|id| if id == me { applied } else { 0 })
        }
        ClusterCmd::Nodes => {
            let v = view_of(cluster, laddr, tls)?;
            Reply::Verbatim(replies::cluster_nodes(&v, shardai_engine::now_ms()))
        }
        ClusterCmd::CountKeysInSlot(slot) => {
            Reply::Int(store.count_in_slot(slot, shardai_engine::now_ms()) as i64)
        }
        ClusterCmd::GetKeysInSlot { slot, count } => Reply::Array(
            store
                .keys_in_slot(slot, shardai_engine::now_ms())
                .into_iter()
                .take(count)
                .map(Reply::Bulk)
                .collect(),
        ),
        ClusterCmd::Help => Reply::Array(
            HELP.iter()
                .map(|l| Reply::StatusOwned((*l).into()))
                .collect(),
        ),
    })
}

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
    "    Set slot state.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port@bus-port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "HELP",
    "    Print this help.",
];

fn host_port(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

/// # Format
/// `ROLE` → `master offset [[host port offset]...]` or `slave host port state offset`
/// (offsets are Raft log indexes).
pub(super) fn role(cluster: Option<&Cluster>) -> Reply {
    let Some(g) = cluster.and_then(|c| c.group()) else {
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Int(0),
            Reply::Array(vec![]),
        ]);
    };
    let r = g.role();
    if r.leader.as_ref().is_some_and(|(id, _)| *id == r.me) {
        let replicas = r
            .members
            .iter()
            .filter(|(id, _, _)| *id != r.me)
            .map(|(id, n, _)| {
                let (h, p) = host_port(&n.client_addr);
                Reply::Array(vec![
                    Reply::bulk(h),
                    Reply::bulk(p.to_string()),
                    Reply::bulk(r.matched.get(id).copied().unwrap_or(0).to_string()),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::bulk("master"),
            Reply::Int(r.committed as i64),
            Reply::Array(replicas),
        ]);
    }
    let (h, p) = r
        .leader
        .as_ref()
        .map_or((String::from("?"), -1), |(_, n)| host_port(&n.client_addr));
    Reply::Array(vec![
        Reply::bulk("slave"),
        Reply::bulk(h),
        Reply::Int(p),
        Reply::bulk(if r.leader.is_some() {
            "connected"
        } else {
            "connect"
        }),
        Reply::Int(r.applied as i64),
    ])
}

/// INFO replication lines.
pub(super) fn replication_info(cluster: Option<&Cluster>) -> Vec<(String, String)> {
    let Some(g) = cluster.and_then(|c| c.group()) else {
        return vec![
            ("role".into(), "master".into()),
            ("connected_slaves".into(), "0".into()),
        ];
    };
    let r: RoleInfo = g.role();
    let leading = r.leader.as_ref().is_some_and(|(id, _)| *id == r.me);
    let mut out = vec![(
        "role".to_string(),
        if leading { "master" } else { "slave" }.to_string(),
    )];
    if leading {
        let followers: Vec<_> = r.members.iter().filter(|(id, _, _)| *id != r.me).collect();
        out.push(("connected_slaves".into(), followers.len().to_string()));
        for (i, (id, n, voter)) in followers.iter().enumerate() {
            let (h, p) = host_port(&n.client_addr);
            let matched = r.matched.get(id).copied().unwrap_or(0);
            out.push((
                format!("slave{i}"),
                format!(
                    "ip={h},port={p},state=online,offset={matched},lag={},node_id={id},voter={}",
                    r.last_log.saturating_sub(matched),
                    u8::from(*voter)
                ),
            ));
        }
    } else {
        let (h, p) = r
            .leader
            .as_ref()
            .map_or((String::new(), 0), |(_, n)| host_port(&n.client_addr));
        out.extend([
            ("master_host".into(), h),
            ("master_port".into(), p.to_string()),
            (
                "master_link_status".into(),
                if r.leader.is_some() { "up" } else { "down" }.into(),
            ),
            ("slave_read_only".into(), "1".into()),
        ]);
    }
    out.extend([
        ("raft_node_id".into(), r.me.to_string()),
        ("raft_state".into(), format!("{:?}", r.state).to_lowercase()),
        ("raft_term".into(), r.term.to_string()),
        (
            "raft_leader_id".into(),
            r.leader.as_ref().map_or(0, |(id, _)| *id).to_string(),
        ),
        ("raft_last_log_index".into(), r.last_log.to_string()),
        ("raft_commit_index".into(), r.committed.to_string()),
        ("raft_applied_index".into(), r.applied.to_string()),
        (
            "raft_apply_lag".into(),
            r.committed.saturating_sub(r.applied).to_string(),
        ),
        ("raft_snapshot_index".into(), r.snapshot.to_string()),
        ("raft_log_first_index".into(), r.first_log.to_string()),
        ("raft_members".into(), r.members.len().to_string()),
        (
            "raft_status".into(),
            r.fatal.map_or("ok".into(), |e| {
                format!("stopped ({e})").replace(['\r', '\n'], " ")
            }),
        ),
    ]);
    out
}
