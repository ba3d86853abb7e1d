//! The cluster bus over real TCP: a member of the cluster that proves the cluster secret
//! (and, with TLS, presents a certificate of the cluster's CA) gets answers; a peer without
//! the secret, or of another CA, is refused and learns nothing about the cluster; a proved
//! node of another cluster, or a message meant for another node id, is refused before Raft
//! sees it.

use std::{collections::BTreeMap, path::Path};

use openraft::{
    RaftNetworkFactory,
    network::{RPCOption, v2::RaftNetworkV2},
    raft::VoteRequest,
};
use shardai_raft::{BusSecurity, ShardNode, TlsFiles, network::Network};
use support::BusNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

/// The cluster id and node id, distinctive enough to look for in bytes.
const CLUSTER: &str = "alpha-cluster-5f3a";
const ME: u64 = 4_242_424_242;

/// The test certificates, made once per run by `tests/tls/make.sh` (openssl) in cargo's
/// temporary folder for integration tests (under `target/`), so no key is committed.
fn cert_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bus-tls");
        let _ = std::fs::remove_dir_all(&d);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/make.sh");
        let ok = std::process::Command::new("bash")
            .arg(script)
            .arg(&d)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script} failed");
        d
    })
}

fn tls(name: &str) -> TlsFiles {
    let d = cert_dir();
    let ca = if name == "rogue" { "other-ca" } else { "ca" };
    TlsFiles {
        cert: d.join(format!("{name}.crt")),
        key: d.join(format!("{name}.key")),
        ca: d.join(format!("{ca}.crt")),
    }
}

fn secured(secret: Option<&str>, cert: Option<&str>) -> BusSecurity {
    BusSecurity::new(secret.map(str::as_bytes), cert.map(tls).as_ref()).unwrap()
}

/// A one-node group `ME` of `CLUSTER` serving its bus as `sec` says.
async fn start(sec: BusSecurity) -> (BusNode, ShardNode, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let n = BusNode::start(CLUSTER, ME, tmp.path(), sec).await;
    let node = n.node.clone();
    n.group
        .initialize(BTreeMap::from([(ME, node.clone())]))
        .await
        .unwrap();
    (n, node, tmp)
}

/// A vote to `to` at `node` from a client of `cluster`/`group` secured as `sec`: Ok when
/// Raft answered (it refuses the stale vote, but it answers), else the error.
async fn vote(
    node: &ShardNode,
    cluster: &str,
    group: &str,
    to: u64,
    sec: BusSecurity,
) -> Result<(), String> {
    let mut peer = Network::new(cluster, group, sec).new_client(to, node).await;
    let req = VoteRequest::new(openraft::impls::Vote::new(1, 9), None);
    let opt = RPCOption::new(std::time::Duration::from_secs(2));
    let answer = peer.vote(req, opt).await.map_err(|e| e.to_string())?;
    assert!(!answer.vote_granted);
    Ok(())
}

/// What a raw TCP peer without the secret hears after sending `sent`: everything until the
/// server closes.
async fn heard(addr: &str, sent: &[u8]) -> Vec<u8> {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(sent).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        sock.read_to_end(&mut got),
    )
    .await;
    got
}

fn assert_tells_nothing(bytes: &[u8]) {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!has(CLUSTER.as_bytes()), "the cluster id leaked: {bytes:?}");
    assert!(
        !has(ME.to_string().as_bytes()),
        "the node id leaked: {bytes:?}"
    );
    assert!(!has(&ME.to_le_bytes()), "the node id leaked: {bytes:?}");
    assert!(!has(b"data"), "the group leaked: {bytes:?}");
}

/// A bus preamble of `version` (magic and u32 LE).
fn preamble(version: u32) -> Vec<u8> {
    let mut p = b"shardai-bus\n".to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    p
}

/// A bincode frame of a Hello (variant 0) of `cluster`, group "data", to `to`.
fn hello_frame(cluster: &str, to: u64) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    for s in [cluster, "data"] {
        body.extend_from_slice(&(s.len() as u64).to_le_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    body.extend_from_slice(&to.to_le_bytes());
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_secret_is_refused_and_told_nothing() {
    let sec = secured(Some("sesame"), None);
    let (group, node, _tmp) = start(sec.clone()).await;

    // The secret: Raft answers.
    vote(&node, CLUSTER, "data", ME, sec.clone()).await.unwrap();

    // A wrong secret, or none: refused, with no reason given.
    for other in [secured(Some("sesamf"), None), BusSecurity::open()] {
        let err = vote(&node, CLUSTER, "data", ME, other).await.unwrap_err();
        assert!(err.contains("refused us: refused"), "{err}");
        assert!(!err.contains("alpha"), "{err}");
    }

    // What such peers receive, byte for byte, names nothing of the cluster: a version 3
    // peer guessing at a proof (it gets the server's preamble, its nonce and the refusal).
    let mut guess = preamble(3);
    let mut proof = 1u32.to_le_bytes().to_vec();
    proof.extend_from_slice(&[7u8; 64]);
    guess.extend_from_slice(&(proof.len() as u32).to_le_bytes());
    guess.extend_from_slice(&proof);
    let got = heard(&node.raft_addr, &guess).await;
    assert_eq!(got.len(), 16 + 4 + 4 + 32 + 8, "{got:?}");
    assert_eq!(&got[got.len() - 8..], [4, 0, 0, 0, 3, 0, 0, 0]);
    assert_tells_nothing(&got);
    // A version 2 peer sending its Hello at once (of another cluster, to learn which): only
    // our preamble.
    let mut v2 = preamble(2);
    v2.extend_from_slice(&hello_frame("beta", ME + 1));
    let got = heard(&node.raft_addr, &v2).await;
    assert_eq!(got, preamble(3));
    // A version 1 peer (no preamble): nothing at all.
    assert!(
        heard(&node.raft_addr, &hello_frame("beta", ME + 1))
            .await
            .is_empty()
    );

    // Proved peers are told why: another cluster, another node id, another group.
    let err = vote(&node, "beta", "data", ME, sec.clone())
        .await
        .unwrap_err();
    assert!(
        err.contains(&format!("belongs to cluster {CLUSTER}, not beta")),
        "{err}"
    );
    let err = vote(&node, CLUSTER, "data", 8, sec.clone())
        .await
        .unwrap_err();
    assert!(
        err.contains(&format!("this is node {ME}, not node 8")),
        "{err}"
    );
    let err = vote(&node, CLUSTER, "meta", ME, sec).await.unwrap_err();
    assert!(err.contains("runs no Raft group \"meta\""), "{err}");
    group.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_cluster_ca_only() {
    let sec = secured(Some("sesame"), Some("node"));
    let (group, node, _tmp) = start(sec.clone()).await;

    // A certificate of the cluster's CA and the secret: Raft answers, also with a
    // certificate naming another address (names are not checked, as in Redis).
    vote(&node, CLUSTER, "data", ME, sec).await.unwrap();
    let elsewhere = secured(Some("sesame"), Some("elsewhere"));
    vote(&node, CLUSTER, "data", ME, elsewhere).await.unwrap();
    // TLS alone (no secret) where the server also wants the secret: refused.
    let err = vote(&node, CLUSTER, "data", ME, secured(None, Some("node")))
        .await
        .unwrap_err();
    assert!(err.contains("refused us: refused"), "{err}");
    // A certificate of another CA (which, as a server, it would not accept either): the
    // TLS handshake fails.
    let err = vote(
        &node,
        CLUSTER,
        "data",
        ME,
        secured(Some("sesame"), Some("rogue")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("TLS handshake"), "{err}");
    // Plain TCP, even with the secret: the server reads it as a TLS handshake and closes.
    let err = vote(&node, CLUSTER, "data", ME, secured(Some("sesame"), None))
        .await
        .unwrap_err();
    assert!(!err.contains(CLUSTER), "{err}");
    let got = heard(&node.raft_addr, &preamble(3)).await;
    assert_tells_nothing(&got);
    group.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_a_secret_is_a_secured_bus() {
    let sec = secured(None, Some("node"));
    let (group, node, _tmp) = start(sec.clone()).await;
    vote(&node, CLUSTER, "data", ME, sec).await.unwrap();
    let err = vote(&node, CLUSTER, "data", ME, secured(None, Some("rogue")))
        .await
        .unwrap_err();
    assert!(err.contains("TLS handshake"), "{err}");
    group.stop().await;
}
