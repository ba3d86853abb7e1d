//! The metadata group on this node: writing the topology, publishing this shard's leader,
//! and the routing view every request is checked against.
//!
//! The metadata group's state is a small keyspace of its own (a separate `Store`): the
//! topology as JSON under `topology`, each shard's leader as `node term` under
//! `leader:<shard>`, each slot moved by resharding as its new shard under `slot:<n>`, and
//! each open migration as `from to` (shards) under `mig:<n>`. Every record is one key, so
//! concurrent writers (SETSLOT on two nodes, two leaders publishing) never overwrite each
//! other's records by rewriting a shared document. Every node applies it (voters and learners alike). A node that becomes
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
    Migration, Topology, View,
    topology::{Leader, TOPOLOGY_KEY, decode_leader, encode_leader, leader_key},
};
use tracing::{info, warn};

use super::Cluster;

/// How often the routing view is rebuilt from the metadata group's state.
pub const REFRESH: Duration = Duration::from_millis(50);

pub(super) fn set(key: String, value: String) -> Mutation {
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
pub(crate) struct Inputs {
    applied: u64,
    keys: usize,
    local: Option<(u64, u64)>,
    at: Option<std::time::Instant>,
}

/// The metadata key of a slot moved by resharding.
pub fn slot_key(slot: u16) -> String {
    format!("slot:{slot}")
}

/// The metadata key of an open migration.
pub fn migration_key(slot: u16) -> String {
    format!("mig:{slot}")
}

fn parse_suffix(key: &[u8], prefix: &str) -> Option<u16> {
    std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

impl Cluster {
    /// The current routing view (`None` until the topology is known).
    pub fn view(&self) -> Option<Arc<View>> {
        self.view.read().clone()
    }

    /// The routing view for a client: for TLS clients, one naming the nodes' TLS ports (as
    /// Redis does with tls-cluster), when they have them.
    pub fn view_for(&self, tls: bool) -> Option<Arc<View>> {
        if tls && let Some(v) = self.tls_view.read().clone() {
            return Some(v);
        }
        self.view()
    }

    /// Stores `t` as the cluster's topology (through the metadata group's leader).
    pub async fn set_topology(self: &Arc<Self>, t: &Topology) -> Result<(), Error> {
        // Through `write_meta`: the reply waits until this node applied the topology, so an
        // admin command that reads it back from this node next (a `del-node` then an
        // `add-node`) starts from it instead of writing over it.
        self.write_meta(vec![(TOPOLOGY_KEY.into(), Some(t.encode()))])
            .await
    }

    fn meta_string(&self, key: &str) -> Option<Bytes> {
        self.meta_string_b(key.as_bytes())
    }

    /// Writes metadata records (`None` deletes) through the metadata group and waits until
    /// this node applied them and rebuilt its view, so the caller's next request is routed
    /// by them.
    pub async fn write_meta(
        self: &Arc<Self>,
        records: Vec<(String, Option<String>)>,
    ) -> Result<(), Error> {
        let meta = self
            .meta_group()
            .ok_or_else(|| Error::ClusterDown("this node has not joined a cluster".into()))?;
        // Taken before the writes, so that no apply between the writes and the wait is missed.
        let mut changes = meta.changes();
        for (key, value) in &records {
            // Already so here (IMPORTING then MIGRATING open the same record; SETSLOT NODE
            // goes to several masters): nothing to write.
            if self.meta_string(key).as_deref() == value.as_deref().map(str::as_bytes) {
                continue;
            }
            let m = match value {
                Some(v) => set(key.clone(), v.clone()),
                None => Mutation::Del(vec![Bytes::from(key.clone())]),
            };
            meta.propose_anywhere(m).await?;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let done = records
                .iter()
                .all(|(k, v)| self.meta_string(k).as_deref() == v.as_deref().map(str::as_bytes));
            if done {
                break;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(
                    "the change was committed, but this node has not applied it within 10 s \
                     (check with shardai cluster info)"
                        .into(),
                ));
            }
            changes.next(deadline - now).await;
        }
        self.refresh_now();
        Ok(())
    }

    /// Rebuilds the view at once.
    pub fn refresh_now(self: &Arc<Self>) {
        let mut last = self.inputs.lock();
        *last = Inputs::default();
        self.refresh(&mut last);
    }

    /// Rebuilds the view if the metadata changed (or a second passed) and publishes this
    /// node's leadership.
    fn refresh(self: &Arc<Self>, last: &mut Inputs) {
        self.sync_acl();
        self.report_objects();
        let (Some(id), Some(group)) = (self.identity(), self.group()) else {
            return;
        };
        let role = group.role();
        let inputs = Inputs {
            applied: self.meta_store.applied_count(),
            keys: self.meta_store.len(),
            local: role.leader.as_ref().map(|(l, _)| (*l, role.term)),
            at: last.at,
        };
        let stale = last
            .at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if inputs == *last && !stale {
            return;
        }
        let Some(raw) = self.meta_string(TOPOLOGY_KEY) else {
            return;
        };
        let t = match Topology::decode(&raw) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "the metadata group holds a topology this node cannot read");
                return;
            }
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
        let now = shardai_engine::now_ms();
        let moved: BTreeMap<u16, u32> = self
            .meta_store
            .keys(b"slot:*", now)
            .into_iter()
            .filter_map(|k| {
                let slot = parse_suffix(&k, "slot:")?;
                let shard = std::str::from_utf8(&self.meta_string_b(&k)?)
                    .ok()?
                    .parse()
                    .ok()?;
                Some((slot, shard))
            })
            .collect();
        let migrations: BTreeMap<u16, Migration> = self
            .meta_store
            .keys(b"mig:*", now)
            .into_iter()
            .filter_map(|k| {
                let slot = parse_suffix(&k, "mig:")?;
                let v = self.meta_string_b(&k)?;
                let (from, to) = std::str::from_utf8(&v).ok()?.split_once(' ')?;
                Some((
                    slot,
                    Migration {
                        from: from.parse().ok()?,
                        to: to.parse().ok()?,
                    },
                ))
            })
            .collect();
        let current = self.view();
        if current.as_ref().is_none_or(|v| v.topology.epoch != t.epoch) {
            info!(
                epoch = t.epoch,
                shards = t.shards.len(),
                nodes = t.nodes.len(),
                "cluster topology loaded"
            );
        }
        let tls_view = t.has_tls().then(|| {
            let v = View::new(t.for_tls(), leaders.clone(), id.node);
            Arc::new(v.with_slots(&moved, &migrations))
        });
        let view = View::new(t, leaders, id.node).with_slots(&moved, &migrations);
        *self.view.write() = Some(Arc::new(view));
        *self.tls_view.write() = tls_view;
        *last = Inputs {
            at: Some(std::time::Instant::now()),
            ..inputs
        };
    }

    /// Applies the cluster's user records to this node's users now.
    pub fn sync_acl_now(&self) {
        self.acl_applied.store(u64::MAX, Ordering::Release);
        self.sync_acl();
    }

    /// Applies the cluster's user records to this node's users when the metadata changed.
    fn sync_acl(&self) {
        let Some(acl) = self.acl.get() else { return };
        let applied = self.meta_store.applied_count();
        if self.acl_applied.swap(applied, Ordering::AcqRel) == applied {
            return;
        }
        let now = shardai_engine::now_ms();
        let prefix = crate::acl::RECORD_PREFIX;
        let records = self
            .meta_store
            .keys(format!("{prefix}*").as_bytes(), now)
            .into_iter()
            .filter_map(|k| {
                let name = std::str::from_utf8(k.strip_prefix(prefix.as_bytes())?).ok()?;
                let v = self.meta_string_b(&k)?;
                Some((name.to_string(), String::from_utf8(v.to_vec()).ok()?))
            })
            .collect();
        acl.apply_cluster(records);
    }

    pub(super) fn meta_string_b(&self, key: &[u8]) -> Option<Bytes> {
        match self.meta_store.get(key) {
            Some(Value::Str(b)) => Some(b.into_bytes()),
            _ => None,
        }
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
    loop {
        let Some(c) = c.upgrade() else { return };
        {
            let mut last = c.inputs.lock();
            c.refresh(&mut last);
        }
        drop(c);
        tokio::time::sleep(REFRESH).await;
    }
}
