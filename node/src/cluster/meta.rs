//! The metadata group on this node: writing the topology, publishing this shard's leader,
//! and the routing view every request is checked against.
//!
//! The metadata group's state is a small keyspace of its own (a separate `Store`): the
//! topology as JSON under `topology`, and each shard's leader as `node term` under
//! `leader:<shard>`. Every node applies it (voters and learners alike). A node that becomes
//! its shard's leader publishes itself there at once, and re-checks every refresh, so a
//! stale record (say an old leader's write that committed late) is corrected within one
//! refresh. The view is rebuilt from that state every [`REFRESH`]; for its own shard a node
//! uses its group's current leader, which is fresher than the published record.

use std::{
    collections::BTreeMap,
    sync::{Arc, Weak, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use shardai_engine::{Deadline, Mutation, store::Value};
use shardai_protocol::Error;
use shardai_router::{
    Topology, View,
    topology::{Leader, TOPOLOGY_KEY, decode_leader, encode_leader, leader_key},
};
use tracing::{info, warn};

use super::Cluster;

/// How often the routing view is rebuilt from the metadata group's state.
pub const REFRESH: Duration = Duration::from_millis(50);

fn set(key: String, value: String) -> Mutation {
    Mutation::Set {
        key: Bytes::from(key),
        value: Bytes::from(value),
        cond: None,
        get: false,
        deadline: Deadline::None,
    }
}

/// What a view was built from, to rebuild only when it changed.
#[derive(Debug, Default, PartialEq)]
struct Inputs {
    topology: Bytes,
    leaders: BTreeMap<u32, Leader>,
}

impl Cluster {
    /// The current routing view (`None` until the topology is known).
    pub fn view(&self) -> Option<Arc<View>> {
        self.view.read().clone()
    }

    /// Stores `t` as the cluster's topology (through the metadata group's leader).
    pub async fn set_topology(&self, t: &Topology) -> Result<(), Error> {
        let meta = self
            .meta_group()
            .ok_or_else(|| Error::ClusterDown("this node has not joined a cluster".into()))?;
        meta.propose_anywhere(set(TOPOLOGY_KEY.into(), t.encode()))
            .await
            .map(|_| ())
    }

    fn meta_string(&self, key: &str) -> Option<Bytes> {
        match self.meta_store.get(key.as_bytes()) {
            Some(Value::Str(b)) => Some(b),
            _ => None,
        }
    }

    /// Rebuilds the view if its inputs changed and publishes this node's leadership.
    fn refresh(self: &Arc<Self>, last: &mut Inputs) {
        let (Some(id), Some(group)) = (self.identity(), self.group()) else {
            return;
        };
        let Some(raw) = self.meta_string(TOPOLOGY_KEY) else {
            return;
        };
        let topology = if raw == last.topology {
            None
        } else {
            match Topology::decode(&raw) {
                Ok(t) => Some(t),
                Err(e) => {
                    warn!(error = %e, "the metadata group holds a topology this node cannot read");
                    return;
                }
            }
        };
        let current = self.view();
        let Some(t) = topology.or_else(|| current.as_ref().map(|v| v.topology.clone())) else {
            return;
        };
        let mut leaders: BTreeMap<u32, Leader> = t
            .shards
            .keys()
            .filter_map(|s| {
                let rec = self.meta_string(&leader_key(*s))?;
                Some((*s, decode_leader(&rec)?))
            })
            .collect();
        let my_shard = t.nodes.get(&id.node).map(|n| n.shard);
        let role = group.role();
        if let Some(shard) = my_shard {
            let published = leaders.get(&shard).copied();
            if let Some((leader, _)) = &role.leader {
                leaders.insert(shard, (*leader, role.term));
            }
            if role.leader.as_ref().is_some_and(|(l, _)| *l == id.node)
                && published != Some((id.node, role.term))
            {
                self.publish_leader(shard, (id.node, role.term));
            }
        }
        let inputs = Inputs {
            topology: raw,
            leaders,
        };
        if current.is_some() && inputs == *last {
            return;
        }
        if current.as_ref().is_none_or(|v| v.topology.epoch != t.epoch) {
            info!(
                epoch = t.epoch,
                shards = t.shards.len(),
                nodes = t.nodes.len(),
                "cluster topology loaded"
            );
        }
        *self.view.write() = Some(Arc::new(View::new(t, inputs.leaders.clone(), id.node)));
        *last = inputs;
    }

    fn publish_leader(self: &Arc<Self>, shard: u32, rec: Leader) {
        if self.publishing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(meta) = self.meta_group() else {
            self.publishing.store(false, Ordering::Release);
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            match meta
                .propose_anywhere(set(leader_key(shard), encode_leader(rec)))
                .await
            {
                Ok(_) => info!(
                    shard,
                    term = rec.1,
                    "published this node as the shard's leader"
                ),
                Err(e) => {
                    warn!(shard, error = %e.wire_text(), "cannot publish the shard's leader yet")
                }
            }
            me.publishing.store(false, Ordering::Release);
        });
    }
}

/// Keeps the view current until the cluster state is dropped.
pub(crate) async fn refresh_loop(c: Weak<Cluster>) {
    let mut last = Inputs::default();
    loop {
        let Some(c) = c.upgrade() else { return };
        c.refresh(&mut last);
        drop(c);
        tokio::time::sleep(REFRESH).await;
    }
}
