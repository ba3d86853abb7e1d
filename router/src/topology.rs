//! The cluster topology: nodes, shards (one Raft group each) and the slot ranges each shard
//! owns, as `shardai cluster create` lays it out and the metadata group stores it (JSON, under
//! one key), plus each shard's last published leader.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::SLOTS;

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its Raft id (the same in its shard group and the metadata group).
    pub id: u64,
    /// Address clients use (`host:port`).
    pub client_addr: String,
    /// Its cluster bus address.
    pub bus_addr: String,
    /// The shard it replicates.
    pub shard: u32,
    /// Its TLS client port (`--tls-port`), announced to TLS clients instead of the plain
    /// port. Absent from the stored JSON when the node has none, so topologies without TLS
    /// read and write as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_port: Option<u16>,
}

impl NodeInfo {
    /// Host and port of the client address.
    pub fn host_port(&self) -> (String, u16) {
        match self.client_addr.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
            None => (self.client_addr.clone(), 0),
        }
    }

    /// The bus port (Redis's "cport").
    pub fn bus_port(&self) -> u16 {
        self.bus_addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }
}

/// One shard: a Raft group and the slots it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Shard number.
    pub id: u32,
    /// Its nodes, in the order they were given.
    pub nodes: Vec<u64>,
    /// Owned slot ranges, inclusive, sorted.
    pub slots: Vec<(u16, u16)>,
}

/// The whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Bumped on every change.
    pub epoch: u64,
    /// Nodes by id.
    pub nodes: BTreeMap<u64, NodeInfo>,
    /// Shards by id.
    pub shards: BTreeMap<u32, ShardInfo>,
}

/// A shard's leader as the metadata group last heard it: `(node, term)`.
pub type Leader = (u64, u64);

/// The metadata key holding the topology.
pub const TOPOLOGY_KEY: &str = "topology";

/// The metadata key holding shard `shard`'s leader.
pub fn leader_key(shard: u32) -> String {
    format!("leader:{shard}")
}

/// Encodes a leader record.
pub fn encode_leader(l: Leader) -> String {
    format!("{} {}", l.0, l.1)
}

/// Decodes a leader record.
pub fn decode_leader(b: &[u8]) -> Option<Leader> {
    let s = std::str::from_utf8(b).ok()?;
    let (n, t) = s.split_once(' ')?;
    Some((n.parse().ok()?, t.parse().ok()?))
}

/// Splits the 16384 slots over `shards` shards the way `redis-cli --cluster create` does.
pub fn spread_slots(shards: usize) -> Vec<(u16, u16)> {
    let total = f64::from(SLOTS);
    let per = total / shards as f64;
    let mut out = Vec::with_capacity(shards);
    let (mut first, mut cursor) = (0i64, 0f64);
    for i in 0..shards {
        let mut last = (cursor + per - 1.0).round() as i64;
        if last > i64::from(SLOTS) || i == shards - 1 {
            last = i64::from(SLOTS) - 1;
        }
        if last < first {
            last = first;
        }
        out.push((first as u16, last as u16));
        first = last + 1;
        cursor += per;
    }
    out
}

/// Why a layout cannot be made.
pub fn layout_error(nodes: usize, replicas: usize) -> Option<String> {
    if nodes == 0 {
        return Some("no nodes given".into());
    }
    if !nodes.is_multiple_of(replicas + 1) {
        return Some(format!(
            "{nodes} nodes cannot form shards of {} (--replicas {replicas} + 1): give a multiple of {}",
            replicas + 1,
            replicas + 1
        ));
    }
    if nodes / (replicas + 1) > usize::from(SLOTS) {
        return Some("more shards than hash slots".into());
    }
    None
}

impl Topology {
    /// Lays out `nodes` (id, client address, bus address) as shards of `replicas + 1`
    /// consecutive nodes, with the slots spread evenly.
    pub fn layout(nodes: &[(u64, String, String)], replicas: usize) -> Result<Topology, String> {
        if let Some(e) = layout_error(nodes.len(), replicas) {
            return Err(e);
        }
        let per = replicas + 1;
        let ranges = spread_slots(nodes.len() / per);
        let mut t = Topology {
            epoch: 1,
            ..Default::default()
        };
        for (i, chunk) in nodes.chunks(per).enumerate() {
            let shard = i as u32;
            for (id, client, bus) in chunk {
                t.nodes.insert(
                    *id,
                    NodeInfo {
                        tls_port: None,
                        id: *id,
                        client_addr: client.clone(),
                        bus_addr: bus.clone(),
                        shard,
                    },
                );
            }
            t.shards.insert(
                shard,
                ShardInfo {
                    id: shard,
                    nodes: chunk.iter().map(|n| n.0).collect(),
                    slots: vec![ranges[i]],
                },
            );
        }
        Ok(t)
    }

    /// The nodes that vote in the metadata group: up to five, taken round-robin over the
    /// shards so that losing one shard's machines leaves a majority.
    pub fn meta_voters(&self) -> Vec<u64> {
        let mut out = Vec::new();
        let deepest = self
            .shards
            .values()
            .map(|s| s.nodes.len())
            .max()
            .unwrap_or(0);
        for depth in 0..deepest {
            for s in self.shards.values() {
                if let Some(n) = s.nodes.get(depth)
                    && out.len() < 5
                {
                    out.push(*n);
                }
            }
        }
        out
    }

    /// The shard that owns each slot (`None`: unassigned).
    pub fn owners(&self) -> Vec<Option<u32>> {
        let mut owner = vec![None; usize::from(SLOTS)];
        for s in self.shards.values() {
            for &(a, b) in &s.slots {
                for slot in a..=b.min(SLOTS - 1) {
                    owner[usize::from(slot)] = Some(s.id);
                }
            }
        }
        owner
    }

    /// Number of slots some shard owns.
    pub fn assigned(&self) -> usize {
        self.owners().iter().filter(|o| o.is_some()).count()
    }

    /// The topology of a node that runs alone, owning every slot.
    pub fn single(id: u64, client_addr: &str, bus_addr: &str) -> Topology {
        Topology::layout(&[(id, client_addr.to_string(), bus_addr.to_string())], 0)
            .expect("one node is a valid layout")
    }

    /// JSON, as stored in the metadata group.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a topology always encodes")
    }

    /// The topology as TLS clients are told it: each node with a TLS port at that port.
    pub fn for_tls(&self) -> Topology {
        let mut t = self.clone();
        for n in t.nodes.values_mut() {
            if let Some(p) = n.tls_port {
                let (host, _) = n.host_port();
                n.client_addr = format!("{host}:{p}");
            }
        }
        t
    }

    /// True when some node has a TLS port.
    pub fn has_tls(&self) -> bool {
        self.nodes.values().any(|n| n.tls_port.is_some())
    }

    /// Parses the stored JSON.
    pub fn decode(b: &[u8]) -> Result<Topology, String> {
        serde_json::from_slice(b).map_err(|e| format!("bad topology: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_ports_are_optional_in_the_stored_json() {
        let nodes = vec![(1, "10.0.0.1:7000".to_string(), "10.0.0.1:17000".to_string())];
        let mut t = Topology::layout(&nodes, 0).unwrap();
        let plain = t.encode();
        assert!(!plain.contains("tls_port"), "{plain}");
        assert_eq!(Topology::decode(plain.as_bytes()).unwrap(), t);
        t.nodes.get_mut(&1).unwrap().tls_port = Some(7443);
        let with_tls = Topology::decode(t.encode().as_bytes()).unwrap();
        assert_eq!(with_tls.nodes[&1].tls_port, Some(7443));
        assert_eq!(with_tls.for_tls().nodes[&1].client_addr, "10.0.0.1:7443");
        assert_eq!(t.nodes[&1].client_addr, "10.0.0.1:7000");
    }

    #[test]
    fn slots_spread_like_redis_cli() {
        assert_eq!(spread_slots(1), vec![(0, 16383)]);
        assert_eq!(
            spread_slots(3),
            vec![(0, 5460), (5461, 10922), (10923, 16383)]
        );
        assert_eq!(spread_slots(2), vec![(0, 8191), (8192, 16383)]);
        let four = spread_slots(4);
        assert_eq!(four.first().unwrap().0, 0);
        assert_eq!(four.last().unwrap().1, 16383);
        for w in four.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
    }

    fn nodes(n: u64) -> Vec<(u64, String, String)> {
        (1..=n)
            .map(|i| {
                (
                    i,
                    format!("127.0.0.1:{}", 7000 + i),
                    format!("127.0.0.1:{}", 17000 + i),
                )
            })
            .collect()
    }

    #[test]
    fn layout_forms_shards_of_consecutive_nodes() {
        let t = Topology::layout(&nodes(9), 2).unwrap();
        assert_eq!(t.shards.len(), 3);
        assert_eq!(t.shards[&1].nodes, vec![4, 5, 6]);
        assert_eq!(t.nodes[&7].shard, 2);
        assert_eq!(t.assigned(), 16384);
        assert_eq!(t.owners()[5461], Some(1));
        assert_eq!(t.meta_voters(), vec![1, 4, 7, 2, 5]);
        assert!(Topology::layout(&nodes(8), 2).is_err());
        assert!(Topology::layout(&[], 0).is_err());
        let back = Topology::decode(t.encode().as_bytes()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn leader_records_round_trip() {
        assert_eq!(
            decode_leader(encode_leader((7, 3)).as_bytes()),
            Some((7, 3))
        );
        assert_eq!(decode_leader(b"x"), None);
        assert_eq!(leader_key(2), "leader:2");
    }
}
