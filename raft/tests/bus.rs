//! The cluster bus over real TCP: a member of the cluster gets answers; a node of another
//! cluster, or a message meant for another node id, is refused before Raft sees it.

use std::{collections::BTreeMap, sync::Arc};

use openraft::{
    RaftNetworkFactory,
    network::{RPCOption, v2::RaftNetworkV2},
    raft::VoteRequest,
};
use shardai_engine::{Store, backend::Backends};
use shardai_raft::{GroupConfig, ShardGroup, ShardNode, TargetSlot, network::Network};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_refuses_other_clusters_and_other_node_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bus = listener.local_addr().unwrap().to_string();
    let slot = TargetSlot::default();
    tokio::spawn(shardai_raft::network::serve(listener, slot.clone()));
    let group = ShardGroup::start(
        GroupConfig {
            cluster: "alpha".into(),
            group: "data".into(),
            me: 7,
            dir: tmp.path().to_path_buf(),
            heartbeat_ms: 50,
            election_ms: (200, 400),
            snapshot_every: 1000,
        },
        Arc::new(Store::new()),
        Arc::new(Backends::new(None)),
    )
    .await
    .unwrap();
    slot.write()
        .insert("data".into(), group.target(tmp.path().join("snapshots")));
    let node = ShardNode {
        raft_addr: bus.clone(),
        client_addr: "127.0.0.1:1".into(),
    };
    group
        .initialize(BTreeMap::from([(7, node.clone())]))
        .await
        .unwrap();

    let vote = || VoteRequest::new(openraft::impls::Vote::new(1, 9), None);
    let opt = RPCOption::new(std::time::Duration::from_secs(2));

    // Same cluster, right node: Raft answers (it refuses the stale vote, but it answers).
    let mut same = Network::new("alpha", "data").new_client(7, &node).await;
    let answer = same.vote(vote(), opt.clone()).await.unwrap();
    assert!(!answer.vote_granted);

    // Another cluster: refused at the handshake.
    let mut other = Network::new("beta", "data").new_client(7, &node).await;
    let err = other
        .vote(vote(), opt.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("belongs to cluster alpha, not beta"), "{err}");

    // The right cluster but another node id (a stale address): refused too.
    let mut wrong = Network::new("alpha", "data").new_client(8, &node).await;
    let err = wrong
        .vote(vote(), opt.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("this is node 7, not node 8"), "{err}");

    // The right cluster and node, but a group this node does not run.
    let mut meta = Network::new("alpha", "meta").new_client(7, &node).await;
    let err = meta.vote(vote(), opt).await.unwrap_err().to_string();
    assert!(err.contains("runs no Raft group \"meta\""), "{err}");
    group.raft.shutdown().await.unwrap();
}
