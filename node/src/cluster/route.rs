//! The routing decision for one request, as a pure function ([`route`]) of the command's
//! table entry, its keys, the routing view and this replica's role, plus the I/O around it
//! ([`Cluster::admit`]): the migration lock, the leader's read gate and the key checks of a
//! migrating or importing slot.
//!
//! Within this node's shard, the leader serves every command; whatever reads stored state
//! outside the log (reads, keyless reads, writes that read before proposing) passes the
//! lease-read gate first. A follower redirects to its leader, except reads on a connection that sent
//! READONLY, which are served from this replica's applied state.

use bytes::Bytes;
use shardai_protocol::{Error, table::CommandSpec};
use shardai_router::{Decision, View, view::not_served};
use tokio::sync::OwnedRwLockReadGuard;

use super::Cluster;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Serve it here without further checks.
    Local,
    /// Serve it here once the leader's read gate passes for this slot.
    LeaderRead(u16),
    /// This leader's slot is migrating away: under the migration lock, serve the keys still
    /// here ([`View::migrating_keys`]), send the others on with ASK.
    Migrating(u16),
    /// A slot being imported, after ASKING: serve, unless only some keys are here yet.
    Importing(u16),
    /// Answer with this error.
    Refuse(Error),
}

/// This node's place in its shard's Raft group, as routing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The shard's leader.
    Leader,
    /// A follower; `leader` is the leader's client address when one is known.
    Follower {
        /// The leader's client address.
        leader: Option<String>,
    },
}

/// True when the command holds the migration lock (shared) from its routing decision to its
/// reply: every keyed command but MIGRATE, which takes it exclusively itself.
pub fn holds_migration_lock(spec: &CommandSpec) -> bool {
    (spec.first_key > 0 || spec.has_movable_keys()) && spec.name != "migrate"
}

/// True when the command reads stored data outside the Raft log: every read, and the writes
/// that read keys before they propose (AI.DAGEXECUTE, AI.MODELEXECUTE, MIGRATE: the
/// movable-key writes). A leader serves these only behind its read gate, so a deposed
/// leader never answers from its stale state.
pub fn reads_state(spec: &CommandSpec) -> bool {
    !spec.is_write() || spec.has_movable_keys()
}

/// True for a command that reads the keyspace without naming keys (DBSIZE, KEYS, SCAN,
/// RANDOMKEY, AI._MODELSCAN): on a leader it passes the read gate as keyed reads do.
pub fn is_keyless_read(spec: &CommandSpec) -> bool {
    spec.acl.contains(&"@read") && spec.first_key == 0 && !spec.has_movable_keys()
}

/// True when the command is routed as after ASKING: the connection sent ASKING just
/// before, or the command is RESTORE-ASKING.
pub fn is_asking(spec: &CommandSpec, sent_asking: bool) -> bool {
    sent_asking || spec.name == "restore-asking"
}

/// Where a command with table entry `spec` and keys `keys` goes. `view`: the routing view
/// (`None` until the topology is known); `role`: this node's role in its shard (`None`
/// before it joined one); `readonly_conn`: the connection sent READONLY.
pub fn route<K: AsRef<[u8]>>(
    spec: &CommandSpec,
    keys: &[K],
    view: Option<&View>,
    role: Option<&Role>,
    readonly_conn: bool,
    asking: bool,
) -> Route {
    if keys.is_empty() {
        return Route::Local;
    }
    let Some(view) = view else {
        return Route::Refuse(not_served());
    };
    let (slot, migrating) = match view.decide(keys.iter().map(AsRef::as_ref), asking) {
        Decision::Anywhere => return Route::Local,
        Decision::Refuse(e) => return Route::Refuse(e),
        Decision::Mine(slot) => (slot, false),
        Decision::Migrating(slot) => (slot, true),
    };
    let Some(role) = role else {
        return Route::Refuse(not_served());
    };
    match role {
        Role::Leader => {
            // MIGRATE takes the migration lock itself, exclusively.
            if migrating && spec.name != "migrate" {
                Route::Migrating(slot)
            } else if view.migration(slot).is_some() && keys.len() > 1 {
                Route::Importing(slot)
            } else if reads_state(spec) {
                Route::LeaderRead(slot)
            } else {
                Route::Local
            }
        }
        Role::Follower { .. } if readonly_conn && !spec.is_write() => Route::Local,
        Role::Follower { leader: Some(addr) } => Route::Refuse(Error::Moved {
            slot,
            addr: addr.clone(),
        }),
        // An election is under way: the write path waits for its outcome.
        Role::Follower { leader: None } if !reads_state(spec) => Route::Local,
        Role::Follower { leader: None } => Route::LeaderRead(slot),
    }
}

/// A slot this node's shard owns: a keyless read's MOVED names it.
fn first_slot_of_mine(view: &View) -> Option<u16> {
    view.ranges(view.my_shard()?).first().map(|r| r.0)
}

impl Cluster {
    /// This node's role in its shard, if it joined one.
    pub fn role(&self) -> Option<Role> {
        let g = self.group()?;
        Some(if g.is_leader() {
            Role::Leader
        } else {
            Role::Follower {
                leader: g.leader_addr(),
            }
        })
    }

    /// As [`Cluster::role`], the leader named as `view` names it to its client (a TLS
    /// client's view gives the leader's TLS port).
    fn role_in(&self, view: Option<&View>) -> Option<Role> {
        let g = self.group()?;
        if g.is_leader() {
            return Some(Role::Leader);
        }
        let leader = g
            .role()
            .leader
            .filter(|(id, _)| *id != g.me)
            .map(|(id, n)| {
                view.and_then(|v| v.topology.nodes.get(&id))
                    .map_or(n.client_addr, |info| info.client_addr.clone())
            });
        Some(Role::Follower { leader })
    }

    /// Decides whether this node serves a request (see [`route`]) and runs the checks the
    /// decision calls for. `Ok` carries the migration lock to hold until the reply is built
    /// (so MIGRATE never moves a key while a command routed here is still writing it);
    /// `Err` is the reply (MOVED, ASK, TRYAGAIN, CROSSSLOT, CLUSTERDOWN).
    pub async fn admit(
        &self,
        spec: &CommandSpec,
        argv: &[Bytes],
        readonly_conn: bool,
        asking: bool,
        tls: bool,
    ) -> Result<Option<OwnedRwLockReadGuard<()>>, Error> {
        let guard = if holds_migration_lock(spec) {
            Some(self.migration.clone().read_owned().await)
        } else {
            None
        };
        // Keys a parser would refuse are routed here, and the parser answers.
        let keys = spec.slot_keys(argv).unwrap_or_default();
        match super::objects::admission(spec, &keys) {
            super::objects::Admission::Keys => {}
            super::objects::Admission::Here => return Ok(guard),
            super::objects::Admission::Refuse(e) => return Err(e),
        }
        let view = self.view_for(tls);
        let role = self.role_in(view.as_deref());
        if keys.is_empty() {
            if is_keyless_read(spec)
                && role == Some(Role::Leader)
                && let Some(slot) = view.as_deref().and_then(first_slot_of_mine)
                && let Some(e) = self.read_gate(slot).await
            {
                return Err(e);
            }
            return Ok(guard);
        }
        let here = |k: &[u8]| self.store.get(k).is_some();
        let refuse = match route(
            spec,
            &keys,
            view.as_deref(),
            role.as_ref(),
            readonly_conn,
            asking,
        ) {
            Route::Local => None,
            Route::LeaderRead(slot) => self.read_gate(slot).await,
            Route::Migrating(slot) => {
                match view
                    .as_ref()
                    .and_then(|v| v.migrating_keys(slot, keys.iter().map(|k| &k[..]), here))
                {
                    Some(e) => Some(e),
                    None if reads_state(spec) => self.read_gate(slot).await,
                    None => None,
                }
            }
            Route::Importing(_) => view
                .as_ref()
                .and_then(|v| v.importing_keys(keys.iter().map(|k| &k[..]), here)),
            Route::Refuse(e) => Some(e),
        };
        match refuse {
            Some(e) => Err(e),
            None => Ok(guard),
        }
    }

    /// Admits an EXEC whose transaction names `keys` (`writes`: one of its commands writes),
    /// as [`Cluster::admit`] admits one multi-key request of them (a DEL when it writes, an
    /// EXISTS when it only reads): one slot or CROSSSLOT, MOVED/ASK/TRYAGAIN when the slot is
    /// elsewhere or moving, and the migration lock held while it runs. On a leader it also
    /// passes the read gate: EXEC reads its keys before it proposes its writes.
    pub async fn admit_exec(
        &self,
        keys: &[Bytes],
        writes: bool,
        readonly_conn: bool,
        asking: bool,
        tls: bool,
    ) -> Result<Option<OwnedRwLockReadGuard<()>>, Error> {
        let name: &'static [u8] = if writes { b"del" } else { b"exists" };
        let Some(spec) = shardai_protocol::table::lookup(name) else {
            return Err(not_served());
        };
        let argv: Vec<Bytes> = std::iter::once(Bytes::from_static(name))
            .chain(keys.iter().cloned())
            .collect();
        let guard = self.admit(spec, &argv, readonly_conn, asking, tls).await?;
        if writes
            && self.role() == Some(Role::Leader)
            && let Some(k) = keys.first()
            && let Some(e) = self.read_gate(shardai_protocol::slot::key_slot(k)).await
        {
            return Err(e);
        }
        Ok(guard)
    }

    /// Makes what this node's store says about `slot`'s keys final for a migration: waits
    /// for every keyed command admitted before (a write of a new key routed while the slot
    /// was not yet migrating may still be in flight, and would land after the slot moved),
    /// and on the leader passes the read gate. Commands admitted after see the migration
    /// and send new keys on with ASK. The caller holds neither the migration lock nor the
    /// transaction gate.
    pub async fn settle_slot(&self, slot: u16) -> Result<(), Error> {
        // Only this shard's slots take writes here.
        if self.owns(slot) {
            drop(self.settle_slot_held(slot).await?);
        }
        Ok(())
    }

    /// Whether this node's shard owns `slot`.
    pub fn owns(&self, slot: u16) -> bool {
        self.view()
            .is_some_and(|v| v.my_shard().is_some() && v.owner(slot) == v.my_shard())
    }

    /// As [`Cluster::settle_slot`], holding the migration lock until the guard drops.
    pub async fn settle_slot_held(
        &self,
        slot: u16,
    ) -> Result<tokio::sync::OwnedRwLockWriteGuard<()>, Error> {
        let guard = self.migration.clone().write_owned().await;
        if self.role() == Some(Role::Leader)
            && let Some(e) = self.read_gate(slot).await
        {
            return Err(e);
        }
        Ok(guard)
    }

    /// The read gate for a read of this shard's `slot` (its MOVED names `slot` when another
    /// node leads now).
    async fn read_gate(&self, slot: u16) -> Option<Error> {
        self.group()?.read_gate(slot).await.err()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use shardai_protocol::{slot::key_slot, table::lookup};
    use shardai_router::{Topology, view::Migration};

    use super::*;

    /// Two shards of three nodes (1-3 own slots 0-8191, 4-6 own 8192-16383), seen from `me`.
    fn view(me: u64, migrations: &[(u16, u32, u32)]) -> View {
        let nodes: Vec<_> = (1..=6u64)
            .map(|i| (i, format!("10.0.0.{i}:6379"), format!("10.0.0.{i}:16379")))
            .collect();
        let t = Topology::layout(&nodes, 2).unwrap();
        let m: BTreeMap<u16, Migration> = migrations
            .iter()
            .map(|&(s, from, to)| (s, Migration { from, to }))
            .collect();
        View::new(t, BTreeMap::new(), me).with_slots(&BTreeMap::new(), &m)
    }

    /// A key of shard 0 ("b", slot 3300) and of shard 1 ("a", slot 15495).
    const MINE: &[u8] = b"b";
    const THEIRS: &[u8] = b"a";

    fn go(cmd: &str, keys: &[&[u8]], v: &View, role: &Role, ro: bool, asking: bool) -> Route {
        route(
            lookup(cmd.as_bytes()).unwrap(),
            keys,
            Some(v),
            Some(role),
            ro,
            asking,
        )
    }

    fn follower(leader: Option<&str>) -> Role {
        Role::Follower {
            leader: leader.map(String::from),
        }
    }

    #[test]
    fn keyless_commands_run_anywhere() {
        let spec = lookup(b"PING").unwrap();
        assert_eq!(
            route::<&[u8]>(spec, &[], None, None, false, false),
            Route::Local
        );
    }

    #[test]
    fn no_view_or_no_shard_is_clusterdown() {
        let spec = lookup(b"GET").unwrap();
        assert_eq!(
            route(spec, &[MINE], None, Some(&Role::Leader), false, false),
            Route::Refuse(not_served())
        );
        assert_eq!(
            route(spec, &[MINE], Some(&view(1, &[])), None, false, false),
            Route::Refuse(not_served())
        );
    }

    #[test]
    fn leader_serves_writes_and_gates_reads() {
        let v = view(1, &[]);
        let slot = key_slot(MINE);
        assert_eq!(
            go("SET", &[MINE], &v, &Role::Leader, false, false),
            Route::Local
        );
        // Writes that read keys before proposing are reads first.
        for cmd in ["AI.DAGEXECUTE", "AI.MODELEXECUTE", "MIGRATE"] {
            assert_eq!(
                go(cmd, &[MINE], &v, &Role::Leader, false, false),
                Route::LeaderRead(slot),
                "{cmd}"
            );
        }
        assert_eq!(
            go("GET", &[MINE], &v, &Role::Leader, false, false),
            Route::LeaderRead(slot)
        );
        assert_eq!(
            go("AI.TENSORGET", &[MINE], &v, &Role::Leader, true, false),
            Route::LeaderRead(slot)
        );
    }

    #[test]
    fn other_shards_keys_are_moved() {
        let v = view(1, &[]);
        match go("GET", &[THEIRS], &v, &Role::Leader, false, false) {
            Route::Refuse(Error::Moved { slot, addr }) => {
                assert_eq!(slot, key_slot(THEIRS));
                assert!(addr.starts_with("10.0.0."), "{addr}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keys_of_two_slots_are_crossslot() {
        let v = view(1, &[]);
        assert_eq!(
            go("MGET", &[MINE, b"c"], &v, &Role::Leader, false, false),
            Route::Refuse(Error::CrossSlot)
        );
    }

    #[test]
    fn followers_redirect_unless_readonly_read() {
        let v = view(2, &[]);
        let slot = key_slot(MINE);
        let f = follower(Some("10.0.0.1:6379"));
        let moved = Route::Refuse(Error::Moved {
            slot,
            addr: "10.0.0.1:6379".into(),
        });
        assert_eq!(go("SET", &[MINE], &v, &f, false, false), moved);
        assert_eq!(go("GET", &[MINE], &v, &f, false, false), moved);
        assert_eq!(go("SET", &[MINE], &v, &f, true, false), moved);
        assert_eq!(go("GET", &[MINE], &v, &f, true, false), Route::Local);
        assert_eq!(
            go("AI.DAGEXECUTE_RO", &[MINE], &v, &f, true, false),
            Route::Local
        );
    }

    #[test]
    fn followers_without_a_leader_wait_for_the_election() {
        let v = view(2, &[]);
        let f = follower(None);
        assert_eq!(go("SET", &[MINE], &v, &f, false, false), Route::Local);
        assert_eq!(
            go("GET", &[MINE], &v, &f, false, false),
            Route::LeaderRead(key_slot(MINE))
        );
        assert_eq!(
            go("AI.DAGEXECUTE", &[MINE], &v, &f, false, false),
            Route::LeaderRead(key_slot(MINE))
        );
    }

    #[test]
    fn keyless_reads_are_known() {
        for name in ["DBSIZE", "KEYS", "SCAN", "RANDOMKEY", "AI._MODELSCAN"] {
            assert!(is_keyless_read(lookup(name.as_bytes()).unwrap()), "{name}");
        }
        for name in [
            "PING",
            "INFO",
            "FLUSHALL",
            "GET",
            "AI.DAGEXECUTE_RO",
            "CLUSTER",
        ] {
            assert!(!is_keyless_read(lookup(name.as_bytes()).unwrap()), "{name}");
        }
        assert_eq!(first_slot_of_mine(&view(1, &[])), Some(0));
        assert_eq!(first_slot_of_mine(&view(5, &[])), Some(8192));
    }

    #[test]
    fn migrating_slots_are_checked_key_by_key() {
        let slot = key_slot(MINE);
        let v = view(1, &[(slot, 0, 1)]);
        assert_eq!(
            go("GET", &[MINE], &v, &Role::Leader, false, false),
            Route::Migrating(slot)
        );
        assert_eq!(
            go("SET", &[MINE], &v, &Role::Leader, false, false),
            Route::Migrating(slot)
        );
        // MIGRATE itself moves the keys: it is not held back by its own migration, only
        // by the read gate.
        assert_eq!(
            go("MIGRATE", &[MINE], &v, &Role::Leader, false, false),
            Route::LeaderRead(slot)
        );
    }

    #[test]
    fn importing_slots_serve_after_asking_only() {
        let slot = key_slot(MINE);
        // Node 4 leads shard 1, which imports the slot from shard 0.
        let v = view(4, &[(slot, 0, 1)]);
        assert!(matches!(
            go("GET", &[MINE], &v, &Role::Leader, false, false),
            Route::Refuse(Error::Moved { .. })
        ));
        assert_eq!(
            go("SET", &[MINE], &v, &Role::Leader, false, true),
            Route::Local
        );
        assert_eq!(
            go("MGET", &[MINE, MINE], &v, &Role::Leader, false, true),
            Route::Importing(slot)
        );
    }

    #[test]
    fn who_holds_the_migration_lock() {
        let holds = |n: &str| holds_migration_lock(lookup(n.as_bytes()).unwrap());
        assert!(holds("GET") && holds("AI.TENSORSET") && holds("AI.MODELEXECUTE"));
        assert!(holds("AI.DAGEXECUTE_RO") && holds("RESTORE-ASKING"));
        assert!(!holds("MIGRATE") && !holds("PING") && !holds("CLUSTER"));
    }

    #[test]
    fn restore_asking_is_always_asking() {
        let r = lookup(b"RESTORE-ASKING").unwrap();
        let g = lookup(b"GET").unwrap();
        assert!(is_asking(r, false) && is_asking(g, true) && !is_asking(g, false));
    }
}
