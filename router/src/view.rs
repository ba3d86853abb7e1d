//! A node's routing view: the topology, the owner of every slot (the topology's ranges with
//! the slots moved since applied over them), slots being migrated, each shard's leader, and
//! the decision for a command's keys (serve on this shard, MOVED, ASK, TRYAGAIN, CROSSSLOT,
//! CLUSTERDOWN), with Redis Cluster's rules for a migrating slot: the source serves keys it
//! still has and sends the rest to the target with ASK; the target serves a migrating slot
//! only to a connection that sent ASKING. Whether this node may serve a key of its own shard
//! (leader, READONLY follower) is the shard group's call.

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
    /// The slot is migrating away from this node's shard: serve only the keys still here
    /// (see [`View::migrating_keys`]), checked under the node's migration lock.
    Migrating(u16),
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
    migrations: BTreeMap<u16, Migration>,
}

/// A slot on its way from one shard to another (`CLUSTER SETSLOT ... MIGRATING/IMPORTING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The shard that owns the slot until `CLUSTER SETSLOT ... NODE`.
    pub from: u32,
    /// The shard receiving its keys.
    pub to: u32,
}

/// Redis's text for a multi-key command on a slot split between two shards.
pub fn try_again() -> Error {
    Error::TryAgain("Multiple keys request during rehashing of slot".into())
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
            migrations: BTreeMap::new(),
        }
    }

    /// Applies slots moved since the topology was laid out (`slot → shard`) and the open
    /// migrations. A migration whose source no longer owns the slot is dropped.
    pub fn with_slots(
        mut self,
        moved: &BTreeMap<u16, u32>,
        migrations: &BTreeMap<u16, Migration>,
    ) -> View {
        for (slot, shard) in moved {
            if let Some(o) = self.owner.get_mut(usize::from(*slot))
                && self.topology.shards.contains_key(shard)
            {
                *o = Some(*shard);
            }
        }
        self.migrations = migrations
            .iter()
            .filter(|(slot, m)| {
                self.owner(**slot) == Some(m.from) && self.topology.shards.contains_key(&m.to)
            })
            .map(|(s, m)| (*s, *m))
            .collect();
        self
    }

    /// The open migration of `slot`.
    pub fn migration(&self, slot: u16) -> Option<Migration> {
        self.migrations.get(&slot).copied()
    }

    /// All open migrations.
    pub fn migrations(&self) -> &BTreeMap<u16, Migration> {
        &self.migrations
    }

    /// The slot ranges `shard` owns now, in order.
    pub fn ranges(&self, shard: u32) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (i, o) in self.owner.iter().enumerate() {
            if *o != Some(shard) {
                continue;
            }
            let i = i as u16;
            match out.last_mut() {
                Some((_, b)) if *b + 1 == i => *b = i,
                _ => out.push((i, i)),
            }
        }
        out
    }

    /// Number of slots owned by some shard.
    pub fn assigned(&self) -> usize {
        self.owner.iter().filter(|o| o.is_some()).count()
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

    /// The decision for a command whose keys are `keys`; `asking`: the connection sent
    /// ASKING just before (or the command is RESTORE-ASKING).
    pub fn decide<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>, asking: bool) -> Decision {
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
        let mine = self.my_shard();
        let migration = self.migration(slot);
        if Some(shard) == mine {
            return match migration {
                Some(m) if Some(m.to) != mine => Decision::Migrating(slot),
                _ => Decision::Mine(slot),
            };
        }
        if asking && migration.is_some_and(|m| Some(m.to) == mine) {
            // Keys of an importing slot arrive one MIGRATE batch at a time: a multi-key
            // command may find only some of them here (see `importing_keys`).
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

impl View {
    /// For a slot migrating away from this shard: `None` to serve the command here (every
    /// key is still here), else ASK to the target (no key here) or TRYAGAIN (some).
    pub fn migrating_keys<'a>(
        &self,
        slot: u16,
        keys: impl IntoIterator<Item = &'a [u8]>,
        here: impl Fn(&[u8]) -> bool,
    ) -> Option<Error> {
        let (mut present, mut absent) = (0, 0);
        for k in keys {
            if here(k) {
                present += 1;
            } else {
                absent += 1;
            }
        }
        if absent == 0 {
            return None;
        }
        if present > 0 {
            return Some(try_again());
        }
        let to = self.migration(slot)?.to;
        Some(match self.entry(to) {
            Some(n) => Error::Ask {
                slot,
                addr: n.client_addr.clone(),
            },
            None => not_served(),
        })
    }

    /// For an importing slot served after ASKING: TRYAGAIN when a multi-key command finds
    /// only some of its keys here.
    pub fn importing_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
        here: impl Fn(&[u8]) -> bool,
    ) -> Option<Error> {
        let (mut n, mut present) = (0, 0);
        for k in keys {
            n += 1;
            present += usize::from(here(k));
        }
        (n > 1 && present > 0 && present < n).then(try_again)
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

    impl View {
        fn decide_plain<'a>(&self, k: impl IntoIterator<Item = &'a [u8]>) -> Decision {
            self.decide(k, false)
        }
    }

    fn keys(k: &[&'static str]) -> Vec<&'static [u8]> {
        k.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn routes_by_slot_owner() {
        let v = view(1);
        // "foo" is slot 12182: shard 2, which has published no leader: its first node.
        assert_eq!(
            v.decide_plain(keys(&["foo"])),
            Decision::Refuse(Error::Moved {
                slot: 12182,
                addr: "127.0.0.1:7007".into()
            })
        );
        // "bar" is slot 5061: this node's shard.
        assert_eq!(v.decide_plain(keys(&["bar"])), Decision::Mine(5061));
        // "hello" is slot 866: this shard too.
        assert_eq!(v.decide_plain(keys(&["hello"])), Decision::Mine(866));
        assert_eq!(v.decide_plain(keys(&[])), Decision::Anywhere);
    }

    #[test]
    fn moved_names_the_published_leader() {
        let v = view(1);
        let slot = key_slot(b"{c}");
        assert_eq!(v.owner(slot), Some(1));
        assert_eq!(
            v.decide_plain(keys(&["{c}"])),
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
            v.decide_plain(keys(&["a", "b"])),
            Decision::Refuse(Error::CrossSlot)
        );
        let same = v.decide_plain(keys(&["{user1000}.following", "{user1000}.followers"]));
        assert!(!matches!(same, Decision::Refuse(Error::CrossSlot)));
    }

    #[test]
    fn unassigned_slots_are_not_served() {
        let mut v = view(1);
        v.topology.shards.get_mut(&2).unwrap().slots.clear();
        let v = View::new(v.topology, BTreeMap::new(), 1);
        assert_eq!(
            v.decide_plain(keys(&["foo"])),
            Decision::Refuse(not_served())
        );
    }

    #[test]
    fn migrating_slots_ask_and_try_again() {
        let slot = key_slot(b"bar"); // shard 0, this node's
        let v = view(1).with_slots(
            &BTreeMap::new(),
            &[(slot, Migration { from: 0, to: 1 })].into(),
        );
        assert_eq!(v.decide(keys(&["bar"]), false), Decision::Migrating(slot));
        assert_eq!(v.migrating_keys(slot, keys(&["bar"]), |_| true), None);
        assert_eq!(
            v.migrating_keys(slot, keys(&["bar"]), |_| false),
            Some(Error::Ask {
                slot,
                addr: "127.0.0.1:7004".into()
            })
        );
        assert_eq!(
            v.migrating_keys(slot, keys(&["{bar}1", "{bar}2"]), |k| k == b"{bar}1"),
            Some(try_again())
        );
        // On the target: MOVED to the owner unless the client sent ASKING.
        let t = view(4).with_slots(
            &BTreeMap::new(),
            &[(slot, Migration { from: 0, to: 1 })].into(),
        );
        assert!(matches!(
            t.decide(keys(&["bar"]), false),
            Decision::Refuse(Error::Moved { .. })
        ));
        assert_eq!(t.decide(keys(&["bar"]), true), Decision::Mine(slot));
        assert_eq!(
            t.importing_keys(keys(&["a", "b"]), |k| k == b"a"),
            Some(try_again())
        );
        // A third shard's node knows nothing of ASKING for this slot.
        let o = view(7).with_slots(
            &BTreeMap::new(),
            &[(slot, Migration { from: 0, to: 1 })].into(),
        );
        assert!(matches!(
            o.decide(keys(&["bar"]), true),
            Decision::Refuse(Error::Moved { .. })
        ));
    }

    #[test]
    fn moved_slots_change_owners_and_ranges() {
        let v = view(1).with_slots(&[(0, 2), (5460, 1)].into(), &BTreeMap::new());
        assert_eq!(v.owner(0), Some(2));
        assert_eq!(v.ranges(0), vec![(1, 5459)]);
        assert_eq!(v.ranges(1), vec![(5460, 10922)]);
        assert_eq!(v.ranges(2), vec![(0, 0), (10923, 16383)]);
        // A migration whose source lost the slot is over.
        let v = v.with_slots(
            &BTreeMap::new(),
            &[(0, Migration { from: 0, to: 1 })].into(),
        );
        assert_eq!(v.migration(0), None);
    }
}
