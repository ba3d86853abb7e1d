//! Membership changes over the real bus: a change asked of a leader elected a moment ago
//! (before it committed the membership it inherited) waits for that commit instead of
//! failing, as `shardai cluster create` asks right after a group forms.

use std::{collections::BTreeMap, time::Duration};

use shardai_protocol::Error;
use shardai_raft::BusSecurity;
use support::BusNode;
use tokio::time::Instant;

mod support;

const CLUSTER: &str = "membership-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_added_as_soon_as_a_leader_is_elected_joins() {
    // Three formations: each asks from the first moment a node leads, when the leader's
    // blank entry (which commits the membership) is still on its way to the followers. The
    // nodes are asked in a tight loop: without the wait, every formation fails here.
    for round in 0..3 {
        let tmp = tempfile::tempdir().unwrap();
        let sec = BusSecurity::new(Some(b"membership-secret"), None).unwrap();
        let mut nodes = Vec::new();
        for id in 1..=4u64 {
            let dir = tmp.path().join(id.to_string());
            nodes.push(BusNode::start(CLUSTER, id, &dir, sec.clone()).await);
        }
        let learner = nodes[3].node.clone();
        let members = nodes[..3]
            .iter()
            .zip(1..)
            .map(|(n, id)| (id, n.node.clone()))
            .collect::<BTreeMap<_, _>>();
        nodes[0].group.initialize(members).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let leader = 'ask: loop {
            assert!(
                Instant::now() < deadline,
                "round {round}: no leader took the learner"
            );
            for n in &nodes[..3] {
                match n.group.add_learner(4, learner.clone()).await {
                    Ok(()) => break 'ask n,
                    Err(Error::ClusterDown(m)) if m.contains("did not commit") => {
                        panic!("round {round}: the leader gave up waiting: {m}")
                    }
                    // Not the leader (yet): ask the next one.
                    Err(Error::ClusterDown(_) | Error::TryAgain(_)) => {}
                    Err(e) => panic!("round {round}: adding a learner failed: {e:?}"),
                }
            }
            tokio::task::yield_now().await;
        };
        let members = leader.group.role().members;
        assert!(
            members.iter().any(|m| m.0 == 4 && !m.2),
            "round {round}: node 4 is not a learner: {members:?}"
        );
        for n in nodes {
            n.stop().await;
        }
    }
}
