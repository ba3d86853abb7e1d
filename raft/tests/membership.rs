//! Membership changes over the real bus: a change asked of a leader elected a moment ago
//! (before it committed the membership it inherited) waits for that commit instead of
//! failing, as `shardai cluster create` asks right after a group forms.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use openraft::ServerState;
use shardai_engine::{Store, backend::Backends};
use shardai_protocol::Error;
use shardai_raft::{BusSecurity, GroupConfig, ShardGroup, ShardNode, TargetSlot};
use tokio::time::Instant;

const CLUSTER: &str = "membership-test";

/// Node `me` of group "data", serving its own bus on a free loopback port; not initialized.
async fn start(me: u64, dir: &std::path::Path) -> (Arc<ShardGroup>, ShardNode) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bus = listener.local_addr().unwrap().to_string();
    let sec = BusSecurity::new(Some(b"membership-secret"), None).unwrap();
    let slot = TargetSlot::default();
    tokio::spawn(shardai_raft::network::serve(
        listener,
        slot.clone(),
        sec.clone(),
    ));
    let dir = dir.join(me.to_string());
    let group = ShardGroup::start(
        GroupConfig {
            cluster: CLUSTER.into(),
            group: "data".into(),
            me,
            dir: dir.clone(),
            heartbeat_ms: 50,
            election_ms: (200, 400),
            snapshot_every: 1000,
            bus: sec,
            limits: Default::default(),
            fsync: Default::default(),
            reads: shardai_raft::ReadCheck::ReadIndex,
        },
        Arc::new(Store::new()),
        Arc::new(Backends::new(None)),
    )
    .await
    .unwrap();
    slot.write()
        .insert("data".into(), group.target(dir.join("snapshots")));
    let node = ShardNode {
        raft_addr: bus,
        client_addr: format!("127.0.0.1:{}", 1000 + me),
    };
    (group, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_added_as_soon_as_a_leader_is_elected_joins() {
    // Three formations: each asks from the first moment a node leads, when the leader's
    // blank entry (which commits the membership) is still on its way to the followers.
    for round in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let mut voters = Vec::new();
        let mut members = BTreeMap::new();
        for id in 1..=3 {
            let (g, n) = start(id, tmp.path()).await;
            members.insert(id, n);
            voters.push(g);
        }
        let (learner, learner_node) = start(4, tmp.path()).await;
        voters[0].initialize(members).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        'ask: loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: no leader took the learner"
            );
            for g in &voters {
                match g.add_learner(4, learner_node.clone()).await {
                    Ok(()) => break 'ask,
                    // Not the leader (yet): ask the next one.
                    Err(Error::ClusterDown(_) | Error::TryAgain(_)) => {}
                    Err(e) => panic!("round {round}: adding a learner failed: {e:?}"),
                }
            }
            tokio::task::yield_now().await;
        }
        let role = voters
            .iter()
            .map(|g| g.role())
            .find(|r| r.state == ServerState::Leader)
            .expect("a leader");
        assert!(
            role.members.iter().any(|m| m.0 == 4 && !m.2),
            "round {round}: node 4 is not a learner: {:?}",
            role.members
        );
        for g in voters.iter().chain([&learner]) {
            g.raft.shutdown().await.unwrap();
        }
    }
}
