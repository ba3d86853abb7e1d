//! A node's routing view: the topology, the owner of every slot, each shard's leader, and
//! the decision for a command's keys (serve on this shard, MOVED, CROSSSLOT, CLUSTERDOWN).
//! Whether this node may serve a key of its own shard (leader, READONLY follower) is the
//! shard group's call, made by the node with the group's fresher view of its own leader.

use std::collections::BTreeMap;

use shardai_protocol::Error;

use crate::{
    key_slot,
    topology::{Leader, NodeInfo, Topology},
};

/// Where a command's keys send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No keys: any node serves it.
    Anywhere,
    /// The keys' slot belongs to this node's shard.
    Mine(u16),
    /// Refuse with this error (MOVED, CROSSSLOT, CLUSTERDOWN).
    Refuse(Error),
}

/// The routing view built from the metadata group's state.
#[derive(Debug, Clone)]
pub struct View {
    /// The topology.
    pub topology: Topology,
    /// This node.
    pub me: u64,
    owner: Vec<Option<u32>>,
    leaders: BTreeMap<u32, Leader>,
}

/// The error for a slot no shard owns.
pub fn not_served() -> Error {
    Error::ClusterDown("Hash slot not served".into())
}

impl View {
    /// A view of `topology` from node `me`, with the shards' published leaders.
    pub fn new(topology: Topology, leaders: BTreeMap<u32, Leader>, me: u64) -> View {
        View {
            owner: topology.owners(),
            topology,
            me,
            leaders,
        }
    }

    /// This node's shard.
    pub fn my_shard(&self) -> Option<u32> {
        self.topology.nodes.get(&self.me).map(|n| n.shard)
    }

    /// The shard owning `slot`.
    pub fn owner(&self, slot: u16) -> Option<u32> {
        self.owner.get(usize::from(slot)).copied().flatten()
    }

    /// The leader of `shard` as published (`None` when unknown or not a member any more).
    pub fn leader(&self, shard: u32) -> Option<&NodeInfo> {
        let (id, _) = self.leaders.get(&shard)?;
        self.topology.nodes.get(id).filter(|n| n.shard == shard)
    }

    /// The published leader record of `shard`.
    pub fn leader_record(&self, shard: u32) -> Option<Leader> {
        self.leaders.get(&shard).copied()
    }

    /// Where `shard`'s clients should go: its leader, else its first node (which redirects
    /// further once it knows the leader).
    pub fn entry(&self, shard: u32) -> Option<&NodeInfo> {
        self.leader(shard).or_else(|| {
            let s = self.topology.shards.get(&shard)?;
            s.nodes.iter().find_map(|id| self.topology.nodes.get(id))
        })
    }

    /// The decision for a command whose keys are `keys`.
    pub fn decide<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> Decision {
        let mut slot = None;
        for k in keys {
            let s = key_slot(k);
            match slot {
                None => slot = Some(s),
                Some(prev) if prev != s => return Decision::Refuse(Error::CrossSlot),
                Some(_) => {}
            }
        }
        let Some(slot) = slot else {
            return Decision::Anywhere;
        };
        let Some(shard) = self.owner(slot) else {
            return Decision::Refuse(not_served());
        };
        if Some(shard) == self.my_shard() {
            return Decision::Mine(slot);
        }
        match self.entry(shard) {
            Some(n) => Decision::Refuse(Error::Moved {
                slot,
                addr: n.client_addr.clone(),
            }),
            None => Decision::Refuse(not_served()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(me: u64) -> View {
        let nodes: Vec<_> = (1..=9u64)
            .map(|i| {
                (
                    i,
                    format!("127.0.0.1:{}", 7000 + i),
                    format!("127.0.0.1:{}", 17000 + i),
                )
            })
            .collect();
        let t = Topology::layout(&nodes, 2).unwrap();
        View::new(t, [(0, (2, 5)), (1, (4, 1))].into(), me)
    }

    fn keys(k: &[&'static str]) -> Vec<&'static [u8]> {
        k.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn routes_by_slot_owner() {
        let v = view(1);
        // "foo" is slot 12182: shard 2, which has published no leader: its first node.
        assert_eq!(
            v.decide(keys(&["foo"])),
            Decision::Refuse(Error::Moved {
                slot: 12182,
                addr: "127.0.0.1:7007".into()
            })
        );
        // "bar" is slot 5061: this node's shard.
        assert_eq!(v.decide(keys(&["bar"])), Decision::Mine(5061));
        // "hello" is slot 866: this shard too.
        assert_eq!(v.decide(keys(&["hello"])), Decision::Mine(866));
        assert_eq!(v.decide(keys(&[])), Decision::Anywhere);
    }

    #[test]
    fn moved_names_the_published_leader() {
        let v = view(1);
        let slot = key_slot(b"{c}");
        assert_eq!(v.owner(slot), Some(1));
        assert_eq!(
            v.decide(keys(&["{c}"])),
            Decision::Refuse(Error::Moved {
                slot,
                addr: "127.0.0.1:7004".into()
            })
        );
        // A leader record naming a node of another shard is ignored.
        let t = v.topology.clone();
        let v = View::new(t, [(1, (1, 9))].into(), 1);
        assert_eq!(v.leader(1), None);
        assert_eq!(v.entry(1).unwrap().id, 4);
    }

    #[test]
    fn cross_slot_and_hash_tags() {
        let v = view(1);
        assert_eq!(
            v.decide(keys(&["a", "b"])),
            Decision::Refuse(Error::CrossSlot)
        );
        let same = v.decide(keys(&["{user1000}.following", "{user1000}.followers"]));
        assert!(!matches!(same, Decision::Refuse(Error::CrossSlot)));
    }

    #[test]
    fn unassigned_slots_are_not_served() {
        let mut v = view(1);
        v.topology.shards.get_mut(&2).unwrap().slots.clear();
        let v = View::new(v.topology, BTreeMap::new(), 1);
        assert_eq!(v.decide(keys(&["foo"])), Decision::Refuse(not_served()));
    }
}
