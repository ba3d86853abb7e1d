//! CLUSTER (MYID, INFO, KEYSLOT and the internal SHARDAI-* subcommands that
//! `shardai cluster create/add-node/del-node` send), ROLE, and INFO replication.

use bytes::Bytes;
use shardai_protocol::{Error, Reply, slot::key_slot};
use shardai_raft::{RoleInfo, ShardGroup};

use crate::{cluster::Cluster, state::Shared};

fn cluster_of(shared: &Shared) -> Result<&Cluster, Error> {
    shared
        .cluster
        .as_deref()
        .ok_or_else(|| Error::Verbatim("ERR This instance has cluster support disabled".into()))
}

fn group_of(shared: &Shared) -> Result<std::sync::Arc<ShardGroup>, Error> {
    cluster_of(shared)?
        .group()
        .ok_or_else(|| Error::ClusterDown("this node has not joined a cluster".into()))
}

/// Redis prints node ids as 40 hex characters.
pub(super) fn node_name(id: u64) -> String {
    format!("{id:040x}")
}

fn s(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Redirects an admin request to the leader.
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
/// `CLUSTER MYID | INFO | KEYSLOT key | SHARDAI-JOIN cluster node addr | SHARDAI-INIT
/// (id addr bus)... | SHARDAI-ADDNODE id addr bus | SHARDAI-DELNODE id | SHARDAI-STATE`
pub(super) async fn cluster(args: Vec<Bytes>, shared: &Shared) -> Reply {
    match cluster_cmd(args, shared).await {
        Ok(r) => r,
        Err(e) => Reply::Error(e),
    }
}

async fn cluster_cmd(args: Vec<Bytes>, shared: &Shared) -> Result<Reply, Error> {
    let sub = args[0].to_ascii_lowercase();
    let rest = &args[1..];
    let arity = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(Error::WrongArity(format!(
                "cluster|{}",
                s(&args[0]).to_lowercase()
            )))
        }
    };
    match &sub[..] {
        b"keyslot" => {
            arity(1)?;
            Ok(Reply::Int(key_slot(&rest[0]) as i64))
        }
        b"myid" => {
            arity(0)?;
            let c = cluster_of(shared)?;
            Ok(Reply::bulk(
                c.identity()
                    .map_or_else(|| node_name(0), |i| node_name(i.node)),
            ))
        }
        b"info" => {
            arity(0)?;
            let c = cluster_of(shared)?;
            let role = c.group().map(|g| g.role());
            let ok = role.as_ref().is_some_and(|r| r.leader.is_some());
            let known = role.as_ref().map_or(1, |r| r.members.len());
            let text = format!(
                "cluster_state:{}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\n\
                 cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{known}\r\n\
                 cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
                if ok { "ok" } else { "fail" },
                if role.is_some() { 16384 } else { 0 },
                if ok { 16384 } else { 0 },
                usize::from(role.is_some()),
                role.as_ref().map_or(0, |r| r.term),
                role.as_ref().map_or(0, |r| r.term),
            );
            Ok(Reply::Verbatim(text))
        }
        b"shardai-join" => {
            arity(3)?;
            let c = cluster_of(shared)?;
            let node: u64 = s(&rest[1]).parse().map_err(|_| Error::NotInteger)?;
            let bus = c.join(&s(&rest[0]), node, &s(&rest[2])).await?;
            Ok(Reply::bulk(bus))
        }
        b"shardai-init" => {
            let members = Cluster::parse_members(rest)?;
            let g = group_of(shared)?;
            g.initialize(members).await?;
            Ok(Reply::OK)
        }
        b"shardai-addnode" => {
            let members = Cluster::parse_members(rest)?;
            let g = group_of(shared)?;
            leader_only(&g)?;
            for (id, node) in members {
                g.add_node(id, node).await?;
            }
            Ok(Reply::OK)
        }
        b"shardai-delnode" => {
            arity(1)?;
            let id: u64 = s(&rest[0]).parse().map_err(|_| Error::NotInteger)?;
            let g = group_of(shared)?;
            leader_only(&g)?;
            g.del_node(id).await?;
            Ok(Reply::OK)
        }
        b"shardai-state" => {
            arity(0)?;
            let c = cluster_of(shared)?;
            let Some(id) = c.identity() else {
                return Ok(Reply::Array(vec![]));
            };
            let role = group_of(shared)?.role();
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
        b"help" => Ok(Reply::Array(
            [
                "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "INFO",
                "    Return information about the cluster.",
                "KEYSLOT <key>",
                "    Return the hash slot for <key>.",
                "MYID",
                "    Return the node id.",
                "HELP",
                "    Print this help.",
            ]
            .into_iter()
            .map(|l| Reply::StatusOwned(l.into()))
            .collect(),
        )),
        _ => Err(Error::UnknownSubcommand {
            cmd: "CLUSTER",
            sub: s(&args[0]),
        }),
    }
}

fn host_port(addr: &str) -> (String, i64) {
    match addr.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (addr.to_string(), 0),
    }
}

/// # Format
/// `ROLE` → `master offset [[host port offset]...]` or `slave host port state offset`
/// (offsets are Raft log indexes).
pub(super) fn role(shared: &Shared) -> Reply {
    let Some(g) = shared.cluster.as_ref().and_then(|c| c.group()) else {
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
pub(super) fn replication_info(shared: &Shared) -> Vec<(String, String)> {
    let Some(g) = shared.cluster.as_ref().and_then(|c| c.group()) else {
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
