//! CLUSTER SETSLOT: opening, closing and completing a slot's migration between shards, as
//! `redis-cli --cluster reshard` and `shardai cluster reshard` drive it. The slot states are
//! cluster-wide records in the metadata group (not per node as in Redis), so IMPORTING on
//! the target and MIGRATING on the source open the same migration, and NODE on any master
//! moves the slot for every node. Each call returns once this node routes by the change.
//! What a call writes is decided by the pure [`plan`].

use std::sync::Arc;

use shardai_engine::Store;
use shardai_protocol::{Error, Reply, command::SetSlotAction};
use shardai_router::{View, replies::parse_node_name};

use crate::cluster::{
    Cluster,
    meta::{migration_key, slot_key},
};

fn err(text: String) -> Error {
    Error::Verbatim(format!("ERR {text}"))
}

/// The metadata records (key, new value or `None` to remove) that `SETSLOT slot action`
/// writes, as decided by node `view.me`, the leader of its shard when `leader`. `holds_keys`
/// tells whether this shard still holds keys of the slot (asked only for `NODE`).
pub(crate) fn plan(
    view: &View,
    leader: bool,
    slot: u16,
    action: &SetSlotAction,
    holds_keys: impl FnOnce() -> bool,
) -> Result<Vec<(String, Option<String>)>, Error> {
    if !leader {
        return Err(err("Please use SETSLOT only with masters.".into()));
    }
    let mine = view
        .my_shard()
        .ok_or_else(|| err("this node has no shard".into()))?;
    let owner = view.owner(slot);
    let node_shard = |name: &str| -> Result<u32, Error> {
        parse_node_name(name)
            .and_then(|id| view.topology.nodes.get(&id))
            .map(|n| n.shard)
            .ok_or_else(|| err(format!("I don't know about node {name}")))
    };
    Ok(match action {
        SetSlotAction::Migrating(node) => {
            if owner != Some(mine) {
                return Err(err(format!("I'm not the owner of hash slot {slot}")));
            }
            let to = node_shard(node)?;
            if to == mine {
                return Err(err("Target node is not a master of another shard".into()));
            }
            vec![(migration_key(slot), Some(format!("{mine} {to}")))]
        }
        SetSlotAction::Importing(node) => {
            if owner == Some(mine) {
                return Err(err(format!("I'm already the owner of hash slot {slot}")));
            }
            node_shard(node)?;
            let from = owner.ok_or_else(|| err(format!("Slot {slot} has no owner")))?;
            vec![(migration_key(slot), Some(format!("{from} {mine}")))]
        }
        SetSlotAction::Stable => vec![(migration_key(slot), None)],
        SetSlotAction::Node(node) => {
            let to = node_shard(node)?;
            if owner == Some(mine) && to != mine && holds_keys() {
                return Err(err(format!(
                    "Can't assign hashslot {slot} to a different node while I still hold \
                     keys for this hash slot."
                )));
            }
            vec![
                (slot_key(slot), Some(to.to_string())),
                (migration_key(slot), None),
            ]
        }
    })
}

/// `CLUSTER SETSLOT slot IMPORTING node | MIGRATING node | NODE node | STABLE`
pub(super) async fn setslot(
    slot: u16,
    action: SetSlotAction,
    cluster: Option<&Arc<Cluster>>,
    store: &Store,
) -> Result<Reply, Error> {
    let c = cluster.ok_or_else(|| err("This instance has cluster support disabled".into()))?;
    // NODE on the slot's owner: no command routed here runs from the check that no key is
    // left until this node routes by the new owner (the connection holds no other lock).
    let _handing_over = match action {
        SetSlotAction::Node(_) if c.owns(slot) => Some(c.settle_slot_held(slot).await?),
        _ => None,
    };
    let view = c
        .view()
        .ok_or_else(|| Error::ClusterDown("the cluster topology is not known yet".into()))?;
    let leader = c.group().is_some_and(|g| g.is_leader());
    let records = plan(&view, leader, slot, &action, || {
        store.count_in_slot(slot, shardai_engine::now_ms()) > 0
    })?;
    c.write_meta(records).await?;
    Ok(Reply::OK)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shardai_router::{Topology, replies::node_name, view::Migration};

    use super::*;

    /// Two shards of three nodes (1-3 own slots 0-8191, 4-6 own 8192-16383), seen from `me`.
    fn view(me: u64) -> View {
        let nodes: Vec<_> = (1..=6u64)
            .map(|i| (i, format!("10.0.0.{i}:6379"), format!("10.0.0.{i}:16379")))
            .collect();
        let t = Topology::layout(&nodes, 2).unwrap();
        View::new(t, BTreeMap::new(), me)
            .with_slots(&BTreeMap::new(), &BTreeMap::<u16, Migration>::new())
    }

    fn text(r: Result<Vec<(String, Option<String>)>, Error>) -> String {
        r.unwrap_err().wire_text()
    }

    #[test]
    fn migrating_from_the_owner_to_another_shard() {
        let to = SetSlotAction::Migrating(node_name(4));
        assert_eq!(
            plan(&view(1), true, 5, &to, || false).unwrap(),
            vec![(migration_key(5), Some("0 1".into()))]
        );
        assert_eq!(
            text(plan(&view(4), true, 5, &to, || false)),
            "ERR I'm not the owner of hash slot 5"
        );
        let same = SetSlotAction::Migrating(node_name(2));
        assert_eq!(
            text(plan(&view(1), true, 5, &same, || false)),
            "ERR Target node is not a master of another shard"
        );
    }

    #[test]
    fn importing_into_a_shard_that_does_not_own_it() {
        let from = SetSlotAction::Importing(node_name(1));
        assert_eq!(
            plan(&view(4), true, 5, &from, || false).unwrap(),
            vec![(migration_key(5), Some("0 1".into()))]
        );
        assert_eq!(
            text(plan(&view(1), true, 5, &from, || false)),
            "ERR I'm already the owner of hash slot 5"
        );
    }

    #[test]
    fn node_refuses_while_keys_remain() {
        let to = SetSlotAction::Node(node_name(4));
        assert!(
            text(plan(&view(1), true, 5, &to, || true))
                .starts_with("ERR Can't assign hashslot 5 to a different node")
        );
        assert_eq!(
            plan(&view(1), true, 5, &to, || false).unwrap(),
            vec![(slot_key(5), Some("1".into())), (migration_key(5), None)]
        );
        // The target may claim the slot whatever the source still holds.
        assert!(plan(&view(4), true, 5, &to, || panic!("not asked")).is_ok());
    }

    #[test]
    fn followers_and_strangers_are_refused() {
        assert_eq!(
            text(plan(&view(2), false, 5, &SetSlotAction::Stable, || false)),
            "ERR Please use SETSLOT only with masters."
        );
        assert_eq!(
            text(plan(
                &view(1),
                true,
                5,
                &SetSlotAction::Node("f".repeat(40)),
                || false
            )),
            format!("ERR I don't know about node {}", "f".repeat(40))
        );
        assert_eq!(
            plan(&view(1), true, 5, &SetSlotAction::Stable, || false).unwrap(),
            vec![(migration_key(5), None)]
        );
    }
}
