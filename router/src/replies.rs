//! CLUSTER SLOTS, SHARDS, NODES and INFO in Redis 7's formats, built from a routing view.
//! A shard's leader is reported as the "master", its other nodes as replicas; node ids are
//! printed as 40 hex characters, as Redis names nodes.

use shardai_protocol::Reply;

use crate::{
    SLOTS,
    topology::{NodeInfo, ShardInfo},
    view::View,
};

/// Redis prints node ids as 40 hex characters.
pub fn node_name(id: u64) -> String {
    format!("{id:040x}")
}

/// Parses a node id given as decimal or as its 40-hex name.
pub fn parse_node_name(s: &str) -> Option<u64> {
    if s.len() == 40 {
        u64::from_str_radix(s.trim_start_matches('0'), 16)
            .ok()
            .or((s.bytes().all(|b| b == b'0')).then_some(0))
    } else {
        s.parse().ok()
    }
}

/// The shard's master (its leader, else its first node) and its replicas.
fn members<'a>(v: &'a View, s: &ShardInfo) -> (Option<&'a NodeInfo>, Vec<&'a NodeInfo>) {
    let master = v.entry(s.id);
    let replicas = s
        .nodes
        .iter()
        .filter(|id| Some(**id) != master.map(|m| m.id))
        .filter_map(|id| v.topology.nodes.get(id))
        .collect();
    (master, replicas)
}

fn slots_node(n: &NodeInfo) -> Reply {
    let (host, port) = n.host_port();
    Reply::Array(vec![
        Reply::bulk(host),
        Reply::Int(i64::from(port)),
        Reply::bulk(node_name(n.id)),
        Reply::Map(vec![]),
    ])
}

/// `CLUSTER SLOTS`: one entry per slot range, ordered by slot.
pub fn cluster_slots(v: &View) -> Reply {
    let mut ranges: Vec<(u16, u16, &ShardInfo)> = v
        .topology
        .shards
        .values()
        .flat_map(|s| v.ranges(s.id).into_iter().map(move |(a, b)| (a, b, s)))
        .collect();
    ranges.sort_by_key(|r| r.0);
    Reply::Array(
        ranges
            .into_iter()
            .filter_map(|(a, b, s)| {
                let (master, replicas) = members(v, s);
                let mut e = vec![
                    Reply::Int(i64::from(a)),
                    Reply::Int(i64::from(b)),
                    slots_node(master?),
                ];
                e.extend(replicas.into_iter().map(slots_node));
                Some(Reply::Array(e))
            })
            .collect(),
    )
}

/// `CLUSTER SHARDS`: per shard, its slots and its nodes with their role.
pub fn cluster_shards(v: &View, offset: &dyn Fn(u64) -> i64) -> Reply {
    let shard = |s: &ShardInfo| {
        let (master, replicas) = members(v, s);
        let slots = v
            .ranges(s.id)
            .into_iter()
            .flat_map(|(a, b)| [Reply::Int(i64::from(a)), Reply::Int(i64::from(b))])
            .collect();
        let node = |n: &NodeInfo, role: &'static str| {
            let (host, port) = n.host_port();
            Reply::Map(vec![
                (Reply::bulk("id"), Reply::bulk(node_name(n.id))),
                (Reply::bulk("port"), Reply::Int(i64::from(port))),
                (Reply::bulk("ip"), Reply::bulk(host.clone())),
                (Reply::bulk("endpoint"), Reply::bulk(host)),
                (Reply::bulk("role"), Reply::bulk(role)),
                (Reply::bulk("replication-offset"), Reply::Int(offset(n.id))),
                (Reply::bulk("health"), Reply::bulk("online")),
            ])
        };
        let nodes = master
            .map(|m| node(m, "master"))
            .into_iter()
            .chain(replicas.into_iter().map(|r| node(r, "replica")))
            .collect();
        Reply::Map(vec![
            (Reply::bulk("slots"), Reply::Array(slots)),
            (Reply::bulk("nodes"), Reply::Array(nodes)),
        ])
    };
    Reply::Array(v.topology.shards.values().map(shard).collect())
}

/// `CLUSTER NODES`: one line per node, Redis 7's columns.
pub fn cluster_nodes(v: &View, now_ms: u64) -> String {
    let mut out = String::new();
    for n in v.topology.nodes.values() {
        let Some(s) = v.topology.shards.get(&n.shard) else {
            continue;
        };
        let (master, _) = members(v, s);
        let is_master = master.is_some_and(|m| m.id == n.id);
        let flags = match (n.id == v.me, is_master) {
            (true, true) => "myself,master",
            (true, false) => "myself,slave",
            (false, true) => "master",
            (false, false) => "slave",
        };
        let of = if is_master {
            "-".to_string()
        } else {
            master.map_or("-".into(), |m| node_name(m.id))
        };
        let epoch = v.leader_record(n.shard).map_or(0, |l| l.1);
        let pong = if n.id == v.me { 0 } else { now_ms };
        out.push_str(&format!(
            "{} {}@{} {flags} {of} 0 {pong} {epoch} connected",
            node_name(n.id),
            n.client_addr,
            n.bus_port()
        ));
        if is_master {
            for (a, b) in v.ranges(s.id) {
                if a == b {
                    out.push_str(&format!(" {a}"));
                } else {
                    out.push_str(&format!(" {a}-{b}"));
                }
            }
        }
        // Open slots, as Redis shows them on its own line: `[slot->-target]` on the
        // source, `[slot-<-source]` on the target.
        if n.id == v.me && is_master {
            for (slot, m) in v.migrations() {
                let name = |shard| v.entry(shard).map_or("-".into(), |x| node_name(x.id));
                if m.from == n.shard {
                    out.push_str(&format!(" [{slot}->-{}]", name(m.to)));
                } else if m.to == n.shard {
                    out.push_str(&format!(" [{slot}-<-{}]", name(m.from)));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// `CLUSTER INFO`. The state is `ok` once every slot is assigned and every shard's leader
/// is known.
pub fn cluster_info(v: &View) -> String {
    let assigned = v.assigned();
    let served: usize = v
        .topology
        .shards
        .values()
        .filter(|s| v.leader(s.id).is_some())
        .flat_map(|s| v.ranges(s.id))
        .map(|(a, b)| usize::from(b - a) + 1)
        .sum();
    let ok = assigned == usize::from(SLOTS) && served == assigned;
    let size = v
        .topology
        .shards
        .values()
        .filter(|s| !v.ranges(s.id).is_empty())
        .count();
    let current = v
        .topology
        .shards
        .keys()
        .filter_map(|s| v.leader_record(*s))
        .map(|l| l.1)
        .max()
        .unwrap_or(0);
    let mine = v
        .my_shard()
        .and_then(|s| v.leader_record(s))
        .map_or(0, |l| l.1);
    format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{served}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{size}\r\ncluster_current_epoch:{current}\r\ncluster_my_epoch:{mine}\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n",
        if ok { "ok" } else { "fail" },
        v.topology.nodes.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Topology;

    fn view() -> View {
        let nodes: Vec<_> = (1..=6u64)
            .map(|i| {
                (
                    i,
                    format!("127.0.0.1:{}", 30000 + i),
                    format!("127.0.0.1:{}", 40000 + i),
                )
            })
            .collect();
        View::new(
            Topology::layout(&nodes, 1).unwrap(),
            [(0, (2, 4)), (1, (3, 1)), (2, (5, 2))].into(),
            3,
        )
    }

    #[test]
    fn names() {
        assert_eq!(node_name(255), format!("{}ff", "0".repeat(38)));
        assert_eq!(parse_node_name(&node_name(255)), Some(255));
        assert_eq!(parse_node_name(&node_name(0)), Some(0));
        assert_eq!(parse_node_name("17"), Some(17));
        assert_eq!(parse_node_name("x"), None);
    }

    #[test]
    fn nodes_lines() {
        let text = cluster_nodes(&view(), 1234);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(
            lines[1],
            format!(
                "{} 127.0.0.1:30002@40002 master - 0 1234 4 connected 0-5460",
                node_name(2)
            )
        );
        assert_eq!(
            lines[0],
            format!(
                "{} 127.0.0.1:30001@40001 slave {} 0 1234 4 connected",
                node_name(1),
                node_name(2)
            )
        );
        assert!(lines[2].contains(" myself,master - 0 0 1 connected 5461-10922"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn slots_entries() {
        let Reply::Array(e) = cluster_slots(&view()) else {
            panic!()
        };
        assert_eq!(e.len(), 3);
        let Reply::Array(first) = &e[0] else { panic!() };
        assert_eq!(first[0], Reply::Int(0));
        assert_eq!(first[1], Reply::Int(5460));
        assert_eq!(
            first[2],
            Reply::Array(vec![
                Reply::bulk("127.0.0.1"),
                Reply::Int(30002),
                Reply::bulk(node_name(2)),
                Reply::Map(vec![])
            ])
        );
        assert_eq!(first.len(), 4);
    }

    #[test]
    fn info_state() {
        let text = cluster_info(&view());
        assert!(text.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"));
        assert!(text.contains("cluster_known_nodes:6\r\ncluster_size:3\r\n"));
        assert!(text.contains("cluster_current_epoch:4\r\ncluster_my_epoch:1\r\n"));
        let Reply::Array(shards) = cluster_shards(&view(), &|_| 0) else {
            panic!()
        };
        assert_eq!(shards.len(), 3);
    }
}
