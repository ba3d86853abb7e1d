//! CLUSTER: the Redis Cluster subcommands ([`ClusterCmd`]) and shardai's internal
//! `CLUSTER SHARDAI-*` family ([`AdminCmd`]) that `shardai cluster ...` sends to form and
//! change a cluster.

use bytes::Bytes;

use super::{Command, Cursor, lower};
use crate::error::Error;

/// Number of hash slots.
const SLOTS: i64 = 16384;

/// `CLUSTER subcommand ...`
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterCmd {
    /// `CLUSTER KEYSLOT key`
    KeySlot(Bytes),
    /// `CLUSTER MYID`
    MyId,
    /// `CLUSTER INFO`
    Info,
    /// `CLUSTER SLOTS`
    Slots,
    /// `CLUSTER SHARDS`
    Shards,
    /// `CLUSTER NODES`
    Nodes,
    /// `CLUSTER COUNTKEYSINSLOT slot`
    CountKeysInSlot(u16),
    /// `CLUSTER GETKEYSINSLOT slot count`
    GetKeysInSlot {
        /// The slot.
        slot: u16,
        /// At most this many keys.
        count: usize,
    },
    /// `CLUSTER SETSLOT slot IMPORTING node | MIGRATING node | NODE node | STABLE`
    SetSlot {
        /// The slot.
        slot: u16,
        /// What to do with it.
        action: SetSlotAction,
    },
    /// `CLUSTER HELP`
    Help,
    /// `CLUSTER SHARDAI-*`: the operator's tool talking to a node.
    Admin(AdminCmd),
    /// A `SETSLOT` or `SHARDAI-*` request whose arguments are wrong. It is answered with this
    /// error after the cluster-mode check, so a node without cluster support says that first,
    /// as Redis does.
    Malformed(Error),
}

/// The action of `CLUSTER SETSLOT`; node names as sent (40 hex digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetSlotAction {
    /// `IMPORTING node`: this shard receives the slot from its owner.
    Importing(String),
    /// `MIGRATING node`: this shard sends the slot to `node`'s shard.
    Migrating(String),
    /// `NODE node`: the slot now belongs to `node`'s shard.
    Node(String),
    /// `STABLE`: the slot's migration is over (or abandoned).
    Stable,
}

/// A replica named to `SHARDAI-INIT` / `SHARDAI-ADDNODE`: id, client address, bus address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Raft node id.
    pub id: u64,
    /// host:port clients use.
    pub client_addr: String,
    /// host:port of its cluster bus.
    pub bus_addr: String,
}

/// The internal `CLUSTER SHARDAI-*` subcommands. `group` names a Raft group: `data` (this
/// node's shard) or `meta` (the metadata group).
#[derive(Debug, Clone, PartialEq)]
pub enum AdminCmd {
    /// `SHARDAI-JOIN cluster node addr`: become node `node` of cluster `cluster`.
    Join {
        /// Cluster id.
        cluster: String,
        /// This node's id in it.
        node: u64,
        /// host:port clients reach this node at.
        addr: String,
    },
    /// `SHARDAI-INIT group (id addr bus)...`: form a group with these voters.
    Init {
        /// The group.
        group: Bytes,
        /// Its first voters.
        members: Vec<Member>,
    },
    /// `SHARDAI-ADDNODE group voter|learner id addr bus`
    AddNode {
        /// The group.
        group: Bytes,
        /// A voter (else a learner).
        voter: bool,
        /// The new member.
        member: Member,
    },
    /// `SHARDAI-DELNODE group id`
    DelNode {
        /// The group.
        group: Bytes,
        /// The member to remove.
        id: u64,
    },
    /// `SHARDAI-STATE`: cluster id, node id, leader and members of this node's shard.
    State,
    /// `SHARDAI-TOPOLOGY`: the topology as its JSON encoding.
    Topology,
    /// `SHARDAI-SETTOPOLOGY json`
    SetTopology(Bytes),
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A slot number: an integer, then within range.
fn slot(b: &Bytes, out_of_range: impl FnOnce() -> Error) -> Result<u16, Error> {
    let n: i64 = text(b).parse().map_err(|_| Error::NotInteger)?;
    if (0..SLOTS).contains(&n) {
        Ok(n as u16)
    } else {
        Err(out_of_range())
    }
}

fn node_id(b: &Bytes) -> Result<u64, Error> {
    text(b).parse().map_err(|_| Error::NotInteger)
}

/// Members as `(id addr bus)...` triples.
pub fn parse_members(args: &[Bytes]) -> Result<Vec<Member>, Error> {
    if args.is_empty() || !args.len().is_multiple_of(3) {
        return Err(Error::Syntax);
    }
    args.chunks(3)
        .map(|c| {
            Ok(Member {
                id: node_id(&c[0])?,
                client_addr: text(&c[1]),
                bus_addr: text(&c[2]),
            })
        })
        .collect()
}

/// Parses `CLUSTER subcommand ...`.
pub(crate) fn parse(c: &mut Cursor) -> Result<Command, Error> {
    let args = c.rest();
    let sub = lower(&args[0]);
    let rest = &args[1..];
    let arity = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(Error::WrongArity(format!("cluster|{sub}")))
        }
    };
    let cmd = match sub.as_str() {
        "keyslot" => {
            arity(1)?;
            ClusterCmd::KeySlot(rest[0].clone())
        }
        "myid" => arity(0).map(|_| ClusterCmd::MyId)?,
        "info" => arity(0).map(|_| ClusterCmd::Info)?,
        "slots" => arity(0).map(|_| ClusterCmd::Slots)?,
        "shards" => arity(0).map(|_| ClusterCmd::Shards)?,
        "nodes" => arity(0).map(|_| ClusterCmd::Nodes)?,
        "countkeysinslot" => {
            arity(1)?;
            ClusterCmd::CountKeysInSlot(slot(&rest[0], || {
                Error::Verbatim("ERR Invalid slot".into())
            })?)
        }
        "getkeysinslot" => {
            arity(2)?;
            let bad = || Error::Verbatim("ERR Invalid slot or number of keys".into());
            let slot = slot(&rest[0], bad).map_err(|_| bad())?;
            let count = text(&rest[1]).parse().map_err(|_| bad())?;
            ClusterCmd::GetKeysInSlot { slot, count }
        }
        "setslot" => parse_setslot(rest).unwrap_or_else(ClusterCmd::Malformed),
        "help" => ClusterCmd::Help,
        s if s.starts_with("shardai-") => parse_admin(s, &args[0], rest, arity)
            .map_or_else(ClusterCmd::Malformed, ClusterCmd::Admin),
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "CLUSTER",
                sub: text(&args[0]),
            });
        }
    };
    Ok(Command::Cluster(cmd))
}

fn parse_setslot(rest: &[Bytes]) -> Result<ClusterCmd, Error> {
    let err = |t: &str| Error::Verbatim(format!("ERR {t}"));
    if rest.len() < 2 {
        return Err(Error::WrongArity("cluster|setslot".into()));
    }
    let slot = text(&rest[0])
        .parse::<u16>()
        .ok()
        .filter(|n| i64::from(*n) < SLOTS)
        .ok_or_else(|| err("Invalid or out of range slot"))?;
    let node = || text(&rest[2]);
    let action = match (lower(&rest[1]).as_str(), rest.len()) {
        ("migrating", 3) => SetSlotAction::Migrating(node()),
        ("importing", 3) => SetSlotAction::Importing(node()),
        ("node", 3) => SetSlotAction::Node(node()),
        ("stable", 2) => SetSlotAction::Stable,
        _ => return Err(err("Invalid CLUSTER SETSLOT action or number of arguments")),
    };
    Ok(ClusterCmd::SetSlot { slot, action })
}

fn parse_admin(
    sub: &str,
    typed: &Bytes,
    rest: &[Bytes],
    arity: impl Fn(usize) -> Result<(), Error>,
) -> Result<AdminCmd, Error> {
    Ok(match sub {
        "shardai-join" => {
            arity(3)?;
            AdminCmd::Join {
                cluster: text(&rest[0]),
                node: node_id(&rest[1])?,
                addr: text(&rest[2]),
            }
        }
        "shardai-init" => {
            let (group, members) = rest.split_first().ok_or(Error::Syntax)?;
            AdminCmd::Init {
                group: group.clone(),
                members: parse_members(members)?,
            }
        }
        "shardai-addnode" => {
            arity(5)?;
            let voter = match lower(&rest[1]).as_str() {
                "voter" => true,
                "learner" => false,
                _ => return Err(Error::Syntax),
            };
            let mut members = parse_members(&rest[2..])?;
            AdminCmd::AddNode {
                group: rest[0].clone(),
                voter,
                member: members.remove(0),
            }
        }
        "shardai-delnode" => {
            arity(2)?;
            AdminCmd::DelNode {
                group: rest[0].clone(),
                id: node_id(&rest[1])?,
            }
        }
        "shardai-state" => arity(0).map(|_| AdminCmd::State)?,
        "shardai-topology" => arity(0).map(|_| AdminCmd::Topology)?,
        "shardai-settopology" => {
            arity(1)?;
            AdminCmd::SetTopology(rest[0].clone())
        }
        _ => {
            return Err(Error::UnknownSubcommand {
                cmd: "CLUSTER",
                sub: text(typed),
            });
        }
    })
}

/// `READONLY`
pub(crate) fn readonly(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ReadOnly)
}

/// `READWRITE`
pub(crate) fn readwrite(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ReadWrite)
}

/// `ASKING`
pub(crate) fn asking(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::Asking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::parse;

    fn cluster(s: &str) -> ClusterCmd {
        match parse(s).unwrap() {
            Command::Cluster(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subcommands() {
        assert_eq!(cluster("CLUSTER slots"), ClusterCmd::Slots);
        assert_eq!(
            cluster("cluster KEYSLOT k"),
            ClusterCmd::KeySlot("k".into())
        );
        assert_eq!(
            cluster("CLUSTER GETKEYSINSLOT 7 10"),
            ClusterCmd::GetKeysInSlot { slot: 7, count: 10 }
        );
        assert_eq!(
            cluster("CLUSTER SETSLOT 5 node abc"),
            ClusterCmd::SetSlot {
                slot: 5,
                action: SetSlotAction::Node("abc".into())
            }
        );
        assert_eq!(
            cluster("CLUSTER SETSLOT 5 STABLE"),
            ClusterCmd::SetSlot {
                slot: 5,
                action: SetSlotAction::Stable
            }
        );
    }

    #[test]
    fn errors_keep_redis_texts() {
        let e = |s: &str| parse(s).unwrap_err().wire_text();
        let malformed = |s: &str| match cluster(s) {
            ClusterCmd::Malformed(e) => e.wire_text(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e("CLUSTER SLOTS x"),
            "ERR wrong number of arguments for 'cluster|slots' command"
        );
        assert_eq!(e("CLUSTER COUNTKEYSINSLOT 16384"), "ERR Invalid slot");
        assert_eq!(
            e("CLUSTER COUNTKEYSINSLOT x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            e("CLUSTER GETKEYSINSLOT 1 x"),
            "ERR Invalid slot or number of keys"
        );
        assert_eq!(
            malformed("CLUSTER SETSLOT 99999 STABLE"),
            "ERR Invalid or out of range slot"
        );
        assert_eq!(
            malformed("CLUSTER SETSLOT 1 STABLE x"),
            "ERR Invalid CLUSTER SETSLOT action or number of arguments"
        );
        assert_eq!(
            malformed("CLUSTER SETSLOT 1"),
            "ERR wrong number of arguments for 'cluster|setslot' command"
        );
        assert_eq!(
            cluster("CLUSTER COUNTKEYSINSLOT 007"),
            ClusterCmd::CountKeysInSlot(7)
        );
        assert!(e("CLUSTER NOPE").starts_with("ERR unknown subcommand 'NOPE'"));
    }

    #[test]
    fn admin_family() {
        assert_eq!(
            cluster("CLUSTER SHARDAI-JOIN c 7 h:1"),
            ClusterCmd::Admin(AdminCmd::Join {
                cluster: "c".into(),
                node: 7,
                addr: "h:1".into()
            })
        );
        assert_eq!(
            cluster("CLUSTER shardai-addnode meta LEARNER 3 a:1 a:2"),
            ClusterCmd::Admin(AdminCmd::AddNode {
                group: "meta".into(),
                voter: false,
                member: Member {
                    id: 3,
                    client_addr: "a:1".into(),
                    bus_addr: "a:2".into()
                }
            })
        );
        match cluster("CLUSTER SHARDAI-INIT data 1 a:1 a:2 2 b:1 b:2") {
            ClusterCmd::Admin(AdminCmd::Init { members, .. }) => assert_eq!(members.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            cluster("CLUSTER SHARDAI-INIT data 1 a:1"),
            ClusterCmd::Malformed(Error::Syntax)
        );
        assert_eq!(
            cluster("CLUSTER SHARDAI-DELNODE data x"),
            ClusterCmd::Malformed(Error::NotInteger)
        );
    }
}
