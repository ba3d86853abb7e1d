//! Golden-bytes fixtures: the formats as earlier builds wrote them, kept under
//! `raft/tests/golden/`, so that a change that makes old data unreadable fails here.
//!
//! `write_fixtures` (ignored; run it by name) writes the fixtures of this build's formats.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use bytes::Bytes;
use openraft::{
    Membership, StoredMembership,
    alias::EntryOf,
    entry::RaftEntry,
    raft::VoteRequest,
    storage::{IOFlushed, RaftLogStorage},
    testing::log_id,
};
use shardai_engine::{Deadline, Mutation, Tensor, Value};
use shardai_protocol::DType;

use crate::{
    log_store::LogStore,
    network::frame::{BusRequest, write_frame},
    snapshot::{self, Meta},
    types::{Cmd, ShardNode, TypeConfig as C},
};

/// Where the fixtures live.
fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

/// Clock of every fixture entry (2023-11-14T22:13:20Z).
const AT: u64 = 1_700_000_000_000;

fn node(n: u16) -> ShardNode {
    ShardNode {
        raft_addr: format!("10.0.0.{n}:16379"),
        client_addr: format!("10.0.0.{n}:6379"),
    }
}

fn membership() -> Membership<u64, ShardNode> {
    Membership::new(
        vec![[1, 2].into_iter().collect()],
        BTreeMap::from([(1, node(1)), (2, node(2))]),
    )
    .unwrap()
}

fn tensor() -> Arc<Tensor> {
    Arc::new(
        Tensor::from_blob(
            DType::Float,
            vec![2],
            Bytes::from_static(&[0, 0, 128, 63, 0, 0, 0, 64]),
        )
        .unwrap(),
    )
}

/// The fixture log's entries: 1 a tensor set, 2 a string SET with expiry, 3 a Del,
/// 4 a membership change, 5 a blank.
fn entries() -> Vec<EntryOf<C>> {
    let cmd = |seq, m: Mutation| Cmd::of(&m, AT + seq, 1, seq);
    vec![
        EntryOf::<C>::new_normal(
            log_id::<C>(1, 1, 1),
            cmd(
                1,
                Mutation::SetTensor {
                    key: Bytes::from_static(b"t"),
                    tensor: tensor(),
                },
            ),
        ),
        EntryOf::<C>::new_normal(
            log_id::<C>(1, 1, 2),
            cmd(
                2,
                Mutation::Set {
                    key: Bytes::from_static(b"s"),
                    value: Bytes::from_static(b"v"),
                    cond: None,
                    get: false,
                    deadline: Deadline::At(AT + 60_000),
                },
            ),
        ),
        EntryOf::<C>::new_normal(
            log_id::<C>(1, 1, 3),
            cmd(3, Mutation::Del(vec![Bytes::from_static(b"s")])),
        ),
        EntryOf::<C>::new_membership(log_id::<C>(2, 1, 4), membership()),
        EntryOf::<C>::new_blank(log_id::<C>(2, 1, 5)),
    ]
}

/// The snapshot fixture's metadata.
fn snapshot_meta() -> Meta {
    Meta {
        last_log_id: Some(log_id::<C>(2, 1, 5)),
        last_membership: StoredMembership::new(Some(log_id::<C>(2, 1, 4)), membership()),
    }
}

/// A segment's bytes without the zeros allocated after its records (walks the record
/// headers: a record's own bytes may end in zeros).
fn trimmed(b: Vec<u8>, mut off: usize) -> Vec<u8> {
    while let Some(h) = b.get(off..off + 4) {
        let len = u32::from_le_bytes(h.try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        off += 8 + len;
    }
    b[..off].to_vec()
}

#[tokio::test]
#[ignore = "writes the fixtures; run by name when a format version is added"]
async fn write_fixtures() {
    let out = dir();
    std::fs::create_dir_all(out).unwrap();
    let v = "v1";

    // A log segment, its meta (vote, last purged) and its commit hint.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(entries(), IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    ls.save_vote(&openraft::impls::Vote::new_committed(2, 1))
        .await
        .unwrap();
    ls.save_committed(Some(log_id::<C>(2, 1, 4))).await.unwrap();
    ls.purge(log_id::<C>(1, 1, 0)).await.unwrap();
    drop(ls);
    let seg = std::fs::read(d.path().join("log-00000000000000000000.seg")).unwrap();
    std::fs::write(out.join(format!("log-{v}.seg")), trimmed(seg, 0)).unwrap();
    std::fs::copy(d.path().join("meta"), out.join(format!("meta-{v}"))).unwrap();
    std::fs::copy(
        d.path().join("committed"),
        out.join(format!("committed-{v}")),
    )
    .unwrap();

    // A snapshot of a string with an expiry and a tensor.
    let items = vec![
        (
            Bytes::from_static(b"s"),
            Value::Str(Bytes::from_static(b"v")),
            Some(AT + 60_000),
        ),
        (Bytes::from_static(b"t"), Value::Tensor(tensor()), None),
    ];
    snapshot::write(
        &out.join(format!("snapshot-{v}.snap")),
        &snapshot_meta(),
        items,
    )
    .unwrap();

    // DUMP payloads.
    std::fs::write(
        out.join(format!("dump-str-{v}.bin")),
        crate::dump::dump(&Value::Str(Bytes::from_static(b"hello"))),
    )
    .unwrap();
    std::fs::write(
        out.join(format!("dump-tensor-{v}.bin")),
        crate::dump::dump(&Value::Tensor(tensor())),
    )
    .unwrap();

    // Bus frames.
    let mut hello = Vec::new();
    write_frame(
        &mut hello,
        &BusRequest::Hello {
            cluster: "alpha".into(),
            group: "data".into(),
            to: 7,
        },
    )
    .await
    .unwrap();
    std::fs::write(out.join(format!("bus-hello-{v}.bin")), hello).unwrap();
    let mut vote = Vec::new();
    write_frame(
        &mut vote,
        &BusRequest::Vote(VoteRequest::new(
            openraft::impls::Vote::new(3, 2),
            Some(log_id::<C>(2, 1, 5)),
        )),
    )
    .await
    .unwrap();
    std::fs::write(out.join(format!("bus-vote-{v}.bin")), vote).unwrap();
}
