//! The internal `CLUSTER SHARDAI-*` subcommands that `shardai cluster create / add-node /
//! del-node / info` send to a node's client port: joining a cluster, forming and changing a
//! Raft group (`data`, this node's shard, or `meta`, the metadata group), and reading or
//! writing the topology.

use std::sync::Arc;

use bytes::Bytes;
use shardai_protocol::{Error, Reply, command::AdminCmd};
use shardai_raft::ShardGroup;
use shardai_router::Topology;

use crate::cluster::Cluster;

pub(super) fn cluster_of(cluster: Option<&Arc<Cluster>>) -> Result<&Arc<Cluster>, Error> {
    cluster.ok_or_else(|| Error::Verbatim("ERR This instance has cluster support disabled".into()))
}

fn group_named(cluster: Option<&Arc<Cluster>>, name: &Bytes) -> Result<Arc<ShardGroup>, Error> {
    let c = cluster_of(cluster)?;
    if c.identity().is_none() {
        return Err(Error::ClusterDown(
            "this node has not joined a cluster".into(),
        ));
    }
    c.group_named(&name.to_ascii_lowercase()).ok_or_else(|| {
        Error::Unavailable(format!(
            "no Raft group named {:?}",
            String::from_utf8_lossy(name)
        ))
    })
}

/// Redirects an admin request to the group's leader.
fn leader_only(g: &ShardGroup) -> Result<(), Error> {
    if g.is_leader() {
        return Ok(());
    }
    Err(match g.leader_addr() {
        Some(addr) => Error::Moved { slot: 0, addr },
        None => Error::ClusterDown("no leader yet".into()),
    })
}

/// # Format
/// `CLUSTER SHARDAI-JOIN cluster node addr | SHARDAI-INIT group (id addr bus)... |
/// SHARDAI-ADDNODE group voter|learner id addr bus | SHARDAI-DELNODE group id |
/// SHARDAI-STATE | SHARDAI-TOPOLOGY | SHARDAI-SETTOPOLOGY json`
pub(super) async fn admin(cmd: AdminCmd, cluster: Option<&Arc<Cluster>>) -> Result<Reply, Error> {
    Ok(match cmd {
        AdminCmd::Join {
            cluster: id,
            node,
            addr,
        } => Reply::bulk(cluster_of(cluster)?.join(&id, node, &addr).await?),
        AdminCmd::Init { group, members } => {
            group_named(cluster, &group)?
                .initialize(Cluster::members(&members))
                .await?;
            Reply::OK
        }
        AdminCmd::AddNode {
            group,
            voter,
            member,
        } => {
            let g = group_named(cluster, &group)?;
            leader_only(&g)?;
            for (id, node) in Cluster::members(std::slice::from_ref(&member)) {
                if voter {
                    g.add_node(id, node).await?;
                } else {
                    g.add_learner(id, node).await?;
                }
            }
            Reply::OK
        }
        AdminCmd::DelNode { group, id } => {
            let g = group_named(cluster, &group)?;
            leader_only(&g)?;
            g.del_node(id).await?;
            Reply::OK
        }
        AdminCmd::State => {
            let c = cluster_of(cluster)?;
            let (Some(id), Some(g)) = (c.identity(), c.group()) else {
                return Ok(Reply::Array(vec![]));
            };
            let role = g.role();
            let members = role
                .members
                .iter()
                .map(|(id, n, voter)| {
                    Reply::Array(vec![
                        Reply::Int(*id as i64),
                        Reply::bulk(n.client_addr.clone()),
                        Reply::bulk(n.raft_addr.clone()),
                        Reply::Int(i64::from(*voter)),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::bulk(id.cluster),
                Reply::Int(id.node as i64),
                Reply::bulk(role.leader.map(|(_, n)| n.client_addr).unwrap_or_default()),
                Reply::Array(members),
            ])
        }
        AdminCmd::Topology => cluster_of(cluster)?
            .view()
            .map_or(Reply::Nil, |v| Reply::bulk(v.topology.encode())),
        AdminCmd::SetTopology(json) => {
            let c = cluster_of(cluster)?;
            let t = Topology::decode(&json).map_err(Error::Unavailable)?;
            c.set_topology(&t).await?;
            Reply::OK
        }
    })
}
