//! CLUSTER SETSLOT: opening, closing and completing a slot's migration between shards, as
//! `redis-cli --cluster reshard` and `shardai cluster reshard` drive it. The slot states are
//! cluster-wide records in the metadata group (not per node as in Redis), so IMPORTING on
//! the target and MIGRATING on the source open the same migration, and NODE on any master
//! moves the slot for every node. Each call returns once this node routes by the change.

use bytes::Bytes;
use shardai_protocol::{Error, Reply};
use shardai_router::{SLOTS, replies::parse_node_name};

use crate::{
    cluster::meta::{migration_key, slot_key},
    state::Shared,
};

fn err(text: String) -> Error {
    Error::Verbatim(format!("ERR {text}"))
}

/// `CLUSTER SETSLOT slot IMPORTING node | MIGRATING node | NODE node | STABLE`
pub(super) async fn setslot(args: &[Bytes], shared: &Shared) -> Result<Reply, Error> {
    let c = shared
        .cluster
        .as_ref()
        .ok_or_else(|| err("This instance has cluster support disabled".into()))?;
    if args.len() < 3 {
        return Err(Error::WrongArity("cluster|setslot".into()));
    }
    let s = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let slot: u16 = s(&args[1])
        .parse()
        .ok()
        .filter(|n| *n < SLOTS)
        .ok_or_else(|| err("Invalid or out of range slot".into()))?;
    let view = c
        .view()
        .ok_or_else(|| Error::ClusterDown("the cluster topology is not known yet".into()))?;
    if !c.group().is_some_and(|g| g.is_leader()) {
        return Err(err("Please use SETSLOT only with masters.".into()));
    }
    let mine = view
        .my_shard()
        .ok_or_else(|| err("this node has no shard".into()))?;
    let owner = view.owner(slot);
    let action = args[2].to_ascii_lowercase();
    let node_shard = |i: usize| -> Result<u32, Error> {
        let name = args.get(i).map(s).unwrap_or_default();
        parse_node_name(&name)
            .and_then(|id| view.topology.nodes.get(&id))
            .map(|n| n.shard)
            .ok_or_else(|| err(format!("I don't know about node {name}")))
    };
    let bad = || err("Invalid CLUSTER SETSLOT action or number of arguments".into());
    let records = match (&action[..], args.len()) {
        (b"migrating", 4) => {
            if owner != Some(mine) {
                return Err(err(format!("I'm not the owner of hash slot {slot}")));
            }
            let to = node_shard(3)?;
            if to == mine {
                return Err(err("Target node is not a master of another shard".into()));
            }
            vec![(migration_key(slot), Some(format!("{mine} {to}")))]
        }
        (b"importing", 4) => {
            if owner == Some(mine) {
                return Err(err(format!("I'm already the owner of hash slot {slot}")));
            }
            node_shard(3)?;
            let from = owner.ok_or_else(|| err(format!("Slot {slot} has no owner")))?;
            vec![(migration_key(slot), Some(format!("{from} {mine}")))]
        }
        (b"stable", 3) => vec![(migration_key(slot), None)],
        (b"node", 4) => {
            let to = node_shard(3)?;
            if owner == Some(mine) && to != mine {
                let now = shardai_engine::now_ms();
                let held = shared.store().count_in_slot(slot, now) > 0;
                if held {
                    return Err(err(format!(
                        "Can't assign hashslot {slot} to a different node while I still hold \
                         keys for this hash slot."
                    )));
                }
            }
            vec![
                (slot_key(slot), Some(to.to_string())),
                (migration_key(slot), None),
            ]
        }
        _ => return Err(bad()),
    };
    c.write_meta(records).await?;
    Ok(Reply::OK)
}
