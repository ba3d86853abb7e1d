//! The internal `CLUSTER SHARDAI-*` subcommands that `shardai cluster create / add-node /
//! del-node / info` send to a node's client port: joining a cluster, forming and changing a
//! Raft group (`data`, this node's shard, or `meta`, the metadata group), and reading or
//! writing the topology.

use std::sync::Arc;

use bytes::Bytes;
use shardai_protocol::{Error, Reply};
use shardai_raft::ShardGroup;
use shardai_router::Topology;

use crate::{cluster::Cluster, state::Shared};

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cluster_of(shared: &Shared) -> Result<&Arc<Cluster>, Error> {
    shared
        .cluster
        .as_ref()
        .ok_or_else(|| Error::Verbatim("ERR This instance has cluster support disabled".into()))
}

fn group_named(shared: &Shared, name: &Bytes) -> Result<Arc<ShardGroup>, Error> {
    let c = cluster_of(shared)?;
    if c.identity().is_none() {
        return Err(Error::ClusterDown(
            "this node has not joined a cluster".into(),
        ));
    }
    c.group_named(&name.to_ascii_lowercase())
        .ok_or_else(|| Error::Unavailable(format!("no Raft group named {:?}", s(name))))
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
pub(super) async fn admin(sub: &[u8], args: &[Bytes], shared: &Shared) -> Reply {
    match admin_cmd(sub, args, shared).await {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

async fn admin_cmd(sub: &[u8], args: &[Bytes], shared: &Shared) -> Result<Reply, Error> {
    let rest = &args[1..];
    let arity = |n: usize| super::cluster::arity(args, n);
    match sub {
        b"shardai-join" => {
            arity(3)?;
            let c = cluster_of(shared)?;
            let node: u64 = s(&rest[1]).parse().map_err(|_| Error::NotInteger)?;
            let bus = c.join(&s(&rest[0]), node, &s(&rest[2])).await?;
            Ok(Reply::bulk(bus))
        }
        b"shardai-init" => {
            let (name, members) = rest.split_first().ok_or(Error::Syntax)?;
            let members = Cluster::parse_members(members)?;
            group_named(shared, name)?.initialize(members).await?;
            Ok(Reply::OK)
        }
        b"shardai-addnode" => {
            arity(5)?;
            let g = group_named(shared, &rest[0])?;
            let voter = match &rest[1].to_ascii_lowercase()[..] {
                b"voter" => true,
                b"learner" => false,
                _ => return Err(Error::Syntax),
            };
            leader_only(&g)?;
            for (id, node) in Cluster::parse_members(&rest[2..])? {
                if voter {
                    g.add_node(id, node).await?;
                } else {
                    g.add_learner(id, node).await?;
                }
            }
            Ok(Reply::OK)
        }
        b"shardai-delnode" => {
            arity(2)?;
            let g = group_named(shared, &rest[0])?;
            let id: u64 = s(&rest[1]).parse().map_err(|_| Error::NotInteger)?;
            leader_only(&g)?;
            g.del_node(id).await?;
            Ok(Reply::OK)
        }
        b"shardai-state" => {
            arity(0)?;
            let c = cluster_of(shared)?;
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
            Ok(Reply::Array(vec![
                Reply::bulk(id.cluster),
                Reply::Int(id.node as i64),
                Reply::bulk(role.leader.map(|(_, n)| n.client_addr).unwrap_or_default()),
                Reply::Array(members),
            ]))
        }
        b"shardai-topology" => {
            arity(0)?;
            let c = cluster_of(shared)?;
            Ok(c.view()
                .map_or(Reply::Nil, |v| Reply::bulk(v.topology.encode())))
        }
        b"shardai-settopology" => {
            arity(1)?;
            let c = cluster_of(shared)?;
            let t = Topology::decode(&rest[0]).map_err(Error::Unavailable)?;
            c.set_topology(&t).await?;
            Ok(Reply::OK)
        }
        _ => Err(Error::UnknownSubcommand {
            cmd: "CLUSTER",
            sub: s(&args[0]),
        }),
    }
}
