//! Golden-bytes tests: fixtures of every format version ever written, kept under
//! `raft/tests/golden/` (`*-v1*`: written by the build before format versions), decoded
//! here by this build; the current writers must still produce the current fixtures byte
//! for byte; and data of an unknown version is refused, naming it.
//!
//! Every variant of every enum in these formats is in a fixture, decoded with its content
//! checked: `Op` (`log-ops-v2.seg`, one entry per variant in index order up to `ExpireDue`,
//! then `log-ops-script-v2.seg` for the script variants appended since; `SetModel` also in
//! `dump-model-v1.bin`, `SetScript` in `dump-script-v1.bin`), the snapshot's `ItemValue`
//! (`snapshot-v1.snap`: a string and a tensor; `snapshot-model-v1.snap`: a model;
//! `snapshot-script-v1.snap`: a script; hashes and lists and their ops in the fixtures of
//! `golden/collections.rs`; transactions' batches in those of `golden/batch.rs`), `BusRequest` and `BusReply`
//! (`bus-requests-v2.bin`, `bus-replies-v2.bin`: one frame per variant in index order, the
//! replies then ending with a `Propose` answer of every `ApplyResult`), `Handshake`
//! (`bus-handshakes-v3.bin`, the proofs made with a fixed secret and nonces, so a change
//! to what a proof covers fails too). Those fixtures were
//! written by the build that added them, but version 2 of the log and the bus only added a
//! header and a preamble (checked below: `*-v1` files are the `*-v2` ones without them), so
//! their records and frames are also version 1's. Models are fixtures' blobs and options
//! only: never loaded.
//!
//! When a format changes: add a version (see `version.rs`), keep the old fixtures and their
//! tests, and run the ignored `write_fixtures` (after bumping the names it writes) to add
//! the new version's fixtures.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use bytes::Bytes;
use openraft::{
    EntryPayload, Membership, RaftLogReader, StoredMembership,
    alias::EntryOf,
    entry::RaftEntry,
    impls::Vote,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
    },
    storage::{IOFlushed, RaftLogStorage},
    testing::log_id,
};
use serde::Serialize;
use shardai_engine::{
    Deadline, Mutation, Tensor, Value,
    backend::{Backends, LoadedModel},
    collections::{Hash, List},
    model::Model,
    script::{NotCompiled, Script},
};
use shardai_protocol::{
    DType, Error,
    command::{Backend as Kind, BatchOpts},
};

use crate::{
    log_store::LogStore,
    network::{
        BusSecurity,
        frame::{
            BusReply, BusRequest, Handshake, Opening, preamble, read_frame, read_opening,
            write_frame,
        },
        security::{NONCE, Side},
    },
    snapshot::{self, ItemValue, Meta},
    types::{ApplyResult, Cmd, Op, ShardNode, TypeConfig as C, WireModel, WireScript, WireTensor},
};

mod batch;
mod collections;
mod keys;

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

fn tensor() -> Tensor {
    Tensor::from_blob(
        DType::Float,
        vec![2],
        Bytes::from_static(&[0, 0, 128, 63, 0, 0, 0, 64]),
    )
    .unwrap()
}

/// A second tensor (another dtype, two dimensions).
fn tensor_i8() -> Tensor {
    Tensor::from_blob(DType::Int8, vec![2, 1], Bytes::from_static(&[1, 255])).unwrap()
}

/// Checks a decoded wire tensor: dtype index (into `DType::ALL`), shape and bytes.
fn assert_tensor(t: &WireTensor, dtype: u8, shape: &[usize], blob: &[u8]) {
    assert_eq!((t.dtype, &t.shape[..], &t.blob[..]), (dtype, shape, blob));
}

/// Checks a decoded `tensor()`: Float (index 0), shape [2], 1.0 and 2.0.
fn assert_tensor_f(t: &WireTensor) {
    assert_tensor(t, 0, &[2], &[0, 0, 128, 63, 0, 0, 0, 64]);
}

/// A model that is never run: fixtures carry a model's blob and options only.
struct NotLoaded;

impl LoadedModel for NotLoaded {
    fn num_inputs(&self) -> Option<usize> {
        None
    }

    fn num_outputs(&self) -> Option<usize> {
        None
    }

    fn run(&self, _: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        unreachable!("a fixture's model is never run")
    }
}

/// The fixtures' model: an ONNX model whose blob is not a model (never loaded).
fn model() -> Arc<Model> {
    Arc::new(Model {
        backend: Kind::Onnx,
        device: "CPU".into(),
        tag: Bytes::from_static(b"v7"),
        batch: BatchOpts {
            batchsize: 4,
            minbatchsize: 2,
            minbatchtimeout: 10,
        },
        inputs: vec![Bytes::from_static(b"in")],
        outputs: vec![Bytes::from_static(b"out0"), Bytes::from_static(b"out1")],
        blob: Bytes::from_static(b"not a real model"),
        loaded: Arc::new(NotLoaded),
        stats: Default::default(),
    })
}

/// Checks a decoded `model()`, field by field.
fn assert_model(m: &WireModel) {
    assert_eq!(m.backend, 3, "index into Backend::ALL");
    assert_eq!(m.kind().unwrap(), Kind::Onnx);
    assert_eq!(m.device, "CPU");
    assert_eq!(m.tag, "v7");
    assert_eq!(m.batch, (4, 2, 10));
    assert_eq!(m.inputs, ["in"]);
    assert_eq!(m.outputs, ["out0", "out1"]);
    assert_eq!(m.blob, "not a real model");
}

/// The fixtures' script: its source is not compiled (fixtures carry source and options only).
fn script() -> Arc<Script> {
    Arc::new(Script {
        device: "CPU".into(),
        tag: Bytes::from_static(b"s1"),
        entry_points: vec![Bytes::from_static(b"pre"), Bytes::from_static(b"post")],
        source: Bytes::from_static(b"def pre(t: List[Tensor], k: List[str], a: List[str]):\n"),
        compiled: Arc::new(NotCompiled::new("never compiled".into())),
        stats: Default::default(),
    })
}

/// Checks a decoded `script()`, field by field.
fn assert_script(s: &WireScript) {
    assert_eq!(s.device, "CPU");
    assert_eq!(s.tag, "s1");
    assert_eq!(s.entry_points, ["pre", "post"]);
    assert_eq!(
        s.source,
        "def pre(t: List[Tensor], k: List[str], a: List[str]):\n"
    );
}

/// The `Op` variants appended after `every_op()`'s (scripts), in variant index order.
fn script_ops() -> Vec<Op> {
    vec![
        Op::SetScript(Bytes::from_static(b"s"), WireScript::of(&script())),
        Op::DelScript(Bytes::from_static(b"s")),
    ]
}

/// Checks decoded ops against `script_ops()`.
fn assert_script_ops(ops: &[&Op]) {
    let [set_script, del_script] = ops else {
        panic!("{} ops: {ops:?}", ops.len())
    };
    match set_script {
        Op::SetScript(k, s) => {
            assert_eq!(k, "s");
            assert_script(s);
        }
        op => panic!("10: {op:?}"),
    }
    assert!(
        matches!(del_script, Op::DelScript(k) if k == "s"),
        "11: {del_script:?}"
    );
}

/// One `Op` of every variant up to `ExpireDue`, in variant index order (later variants are in
/// `script_ops()`).
fn every_op() -> Vec<Op> {
    let b = Bytes::from_static;
    vec![
        Op::SetTensor(b(b"t"), WireTensor::of(&tensor())),
        Op::SetTensors(vec![
            (b(b"a"), WireTensor::of(&tensor())),
            (b(b"b"), WireTensor::of(&tensor_i8())),
        ]),
        Op::SetModel(b(b"m"), WireModel::of(&model())),
        Op::DelModel(b(b"m")),
        Op::Set {
            key: b(b"s"),
            value: b(b"v"),
            cond: 1,
            get: true,
            deadline: (1, 0),
        },
        Op::MSet(vec![(b(b"a"), b(b"1")), (b(b"b"), b(b"2"))]),
        Op::IncrBy(b(b"n"), -3),
        Op::Del(vec![b(b"a"), b(b"b")]),
        Op::Flush,
        Op::ExpireDue,
    ]
}

/// Checks decoded ops against `every_op()`, variant by variant and field by field.
fn assert_every_op(ops: &[&Op]) {
    let [
        set_tensor,
        set_tensors,
        set_model,
        del_model,
        set,
        mset,
        incr_by,
        del,
        flush,
        expire_due,
    ] = ops
    else {
        panic!("{} ops: {ops:?}", ops.len())
    };
    match set_tensor {
        Op::SetTensor(k, t) => {
            assert_eq!(k, "t");
            assert_tensor_f(t);
        }
        op => panic!("0: {op:?}"),
    }
    match set_tensors {
        Op::SetTensors(v) => {
            assert_eq!(v.len(), 2);
            assert_eq!((&v[0].0, &v[1].0), (&Bytes::from("a"), &Bytes::from("b")));
            assert_tensor_f(&v[0].1);
            assert_tensor(&v[1].1, 2, &[2, 1], &[1, 255]);
        }
        op => panic!("1: {op:?}"),
    }
    match set_model {
        Op::SetModel(k, m) => {
            assert_eq!(k, "m");
            assert_model(m);
        }
        op => panic!("2: {op:?}"),
    }
    assert!(
        matches!(del_model, Op::DelModel(k) if k == "m"),
        "3: {del_model:?}"
    );
    match set {
        Op::Set {
            key,
            value,
            cond,
            get,
            deadline,
        } => assert_eq!(
            (&key[..], &value[..], *cond, *get, *deadline),
            (&b"s"[..], &b"v"[..], 1, true, (1, 0))
        ),
        op => panic!("4: {op:?}"),
    }
    match mset {
        Op::MSet(v) => assert_eq!(
            v,
            &[
                (Bytes::from("a"), Bytes::from("1")),
                (Bytes::from("b"), Bytes::from("2"))
            ]
        ),
        op => panic!("5: {op:?}"),
    }
    assert!(
        matches!(incr_by, Op::IncrBy(k, -3) if k == "n"),
        "6: {incr_by:?}"
    );
    assert!(matches!(del, Op::Del(v) if v == &["a", "b"]), "7: {del:?}");
    assert!(matches!(flush, Op::Flush), "8: {flush:?}");
    assert!(matches!(expire_due, Op::ExpireDue), "9: {expire_due:?}");
}

/// The ops fixture's entries: `ops` as entries 1 to n of term 3 (leader 2).
fn op_entries(ops: Vec<Op>) -> Vec<EntryOf<C>> {
    ops.into_iter()
        .zip(1u64..)
        .map(|(op, i)| {
            let cmd = Cmd {
                at_ms: AT + i,
                origin: 2,
                seq: i,
                op,
            };
            EntryOf::<C>::new_normal(log_id::<C>(3, 2, i), cmd)
        })
        .collect()
}

/// One `BusRequest` of every variant, in variant index order.
fn every_request() -> Vec<BusRequest> {
    vec![
        hello_req(),
        BusRequest::Propose(Cmd {
            at_ms: AT,
            origin: 2,
            seq: 9,
            op: Op::IncrBy(Bytes::from_static(b"n"), 5),
        }),
        BusRequest::Append(AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id::<C>(2, 1, 5)),
            entries: vec![EntryOf::<C>::new_blank(log_id::<C>(2, 1, 6))],
            leader_commit: Some(log_id::<C>(2, 1, 4)),
        }),
        vote_req(),
        BusRequest::SnapBegin {
            vote: Vote::new_committed(2, 1),
            meta: snapshot_meta(),
        },
        BusRequest::SnapChunk(Bytes::from_static(b"chunk")),
        BusRequest::SnapEnd,
        BusRequest::StreamBegin,
        BusRequest::StreamEnd,
    ]
}

/// One `BusReply` of every variant, in variant index order, then a `Propose` answer of
/// every other `ApplyResult` and an error.
fn every_reply() -> Vec<BusReply> {
    vec![
        BusReply::Welcome,
        BusReply::Refused("no".into()),
        BusReply::Append(Ok(AppendEntriesResponse::Success)),
        BusReply::Vote(Ok(VoteResponse::new(
            Vote::new(3, 2),
            Some(log_id::<C>(2, 1, 5)),
            true,
        ))),
        BusReply::Snap(Ok(SnapshotResponse::new(Vote::new_committed(2, 1)))),
        BusReply::Stream(Ok(Ok(Some(log_id::<C>(2, 1, 6))))),
        BusReply::StreamEnd,
        BusReply::Propose(Ok(ApplyResult::Ok)),
        BusReply::Propose(Ok(ApplyResult::Int(-7))),
        BusReply::Propose(Ok(ApplyResult::Set {
            written: true,
            old: Some(Bytes::from_static(b"old")),
        })),
        BusReply::Propose(Ok(ApplyResult::Err("ERR no".into()))),
        BusReply::Propose(Err("not the leader".into())),
    ]
}

/// `msgs` as consecutive bus frames.
async fn frames<T: Serialize>(msgs: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        write_frame(&mut out, m).await.unwrap();
    }
    out
}

/// The variant index of each frame of `bytes` (the u32 LE that starts its bincode body).
fn variant_indexes(mut bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        out.push(u32::from_le_bytes(bytes[4..8].try_into().unwrap()));
        bytes = &bytes[4 + len..];
    }
    out
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
/// headers from `off`: a record's own bytes may end in zeros).
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

/// The first segment written by a new log store given `entries`, without its trailing zeros.
async fn segment_of(entries: Vec<EntryOf<C>>) -> Vec<u8> {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    drop(ls);
    let seg = std::fs::read(d.path().join("log-00000000000000000000.seg")).unwrap();
    trimmed(seg, 16)
}

/// The fixtures of this build's formats, by file name, as this build writes them.
async fn current_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    // A log segment, its meta (vote, last purged) and its commit hint.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(entries(), IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
    ls.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    ls.save_committed(Some(log_id::<C>(2, 1, 4))).await.unwrap();
    ls.purge(log_id::<C>(1, 1, 0)).await.unwrap();
    drop(ls);
    let seg = std::fs::read(d.path().join("log-00000000000000000000.seg")).unwrap();
    out.push(("log-v2.seg", trimmed(seg, 16)));
    out.push(("meta-v2", std::fs::read(d.path().join("meta")).unwrap()));
    let committed = std::fs::read(d.path().join("committed")).unwrap();
    out.push(("committed-v2", committed));

    // A snapshot of a string with an expiry and a tensor.
    let items = vec![
        (
            Bytes::from_static(b"s"),
            Value::Str("v".into()),
            Some(AT + 60_000),
        ),
        (Bytes::from_static(b"t"), Value::Tensor(tensor()), None),
    ];
    let snap = d.path().join("s.snap");
    snapshot::write(&snap, &snapshot_meta(), items).unwrap();
    out.push(("snapshot-v1.snap", std::fs::read(&snap).unwrap()));
    // A snapshot of a model with an expiry.
    let items = vec![(
        Bytes::from_static(b"m"),
        Value::Model(model()),
        Some(AT + 1),
    )];
    snapshot::write(&snap, &snapshot_meta(), items).unwrap();
    out.push(("snapshot-model-v1.snap", std::fs::read(&snap).unwrap()));

    // A log segment holding every `Op`.
    out.push(("log-ops-v2.seg", segment_of(op_entries(every_op())).await));
    // ... and one holding the variants added since (scripts).
    out.push((
        "log-ops-script-v2.seg",
        segment_of(op_entries(script_ops())).await,
    ));
    // A snapshot of a script.
    let items = vec![(Bytes::from_static(b"s"), Value::Script(script()), None)];
    snapshot::write(&snap, &snapshot_meta(), items).unwrap();
    out.push(("snapshot-script-v1.snap", std::fs::read(&snap).unwrap()));

    // Hashes and lists.
    out.extend(collections::fixtures(d.path()).await);
    // Transactions.
    out.extend(batch::fixtures().await);
    // Expiry, keys and strings.
    out.extend(keys::fixtures().await);

    // DUMP payloads.
    let hello = Value::Str("hello".into());
    out.push(("dump-str-v1.bin", crate::dump::dump(&hello)));
    out.push((
        "dump-tensor-v1.bin",
        crate::dump::dump(&Value::Tensor(tensor())),
    ));
    let m = crate::dump::dump(&Value::Model(model()));
    out.push(("dump-model-v1.bin", m));
    let sc = crate::dump::dump(&Value::Script(script()));
    out.push(("dump-script-v1.bin", sc));

    // A bus connection's first bytes: preamble, Hello, then a Vote request.
    let mut bus = preamble(2).to_vec();
    write_frame(&mut bus, &hello_req()).await.unwrap();
    write_frame(&mut bus, &vote_req()).await.unwrap();
    out.push(("bus-v2.bin", bus));
    // Every request and every reply, as frames (after the handshake).
    out.push(("bus-requests-v2.bin", frames(&every_request()).await));
    out.push(("bus-replies-v2.bin", frames(&every_reply()).await));
    // Version 3: every handshake frame, and a client's first bytes: preamble, its proof,
    // Hello, then a Vote request.
    out.push(("bus-handshakes-v3.bin", frames(&every_handshake()).await));
    let mut bus = preamble(3).to_vec();
    write_frame(&mut bus, &every_handshake()[1]).await.unwrap();
    write_frame(&mut bus, &hello_req()).await.unwrap();
    write_frame(&mut bus, &vote_req()).await.unwrap();
    out.push(("bus-v3.bin", bus));
    out
}

/// The fixtures' cluster secret and nonces.
const SECRET: &[u8] = b"golden secret";
const SERVER_NONCE: [u8; NONCE] = [0x22; NONCE];
const CLIENT_NONCE: [u8; NONCE] = [0x11; NONCE];

fn golden_security() -> BusSecurity {
    BusSecurity::new(Some(SECRET), None).unwrap()
}

/// One `Handshake` of every variant, in variant index order: a version 3 connection's
/// proofs with the fixtures' secret and nonces, then a refusal.
fn every_handshake() -> Vec<Handshake> {
    let sec = golden_security();
    vec![
        Handshake::Challenge(SERVER_NONCE),
        Handshake::ClientProof {
            nonce: CLIENT_NONCE,
            proof: sec.prove(Side::Client, 3, &SERVER_NONCE, &CLIENT_NONCE),
        },
        Handshake::ServerProof(sec.prove(Side::Server, 3, &SERVER_NONCE, &CLIENT_NONCE)),
        Handshake::Refused,
    ]
}

fn hello_req() -> BusRequest {
    BusRequest::Hello {
        cluster: "alpha".into(),
        group: "data".into(),
        to: 7,
    }
}

fn vote_req() -> BusRequest {
    BusRequest::Vote(VoteRequest::new(
        Vote::new(3, 2),
        Some(log_id::<C>(2, 1, 5)),
    ))
}

#[tokio::test]
#[ignore = "writes the fixtures; run by name when a format version is added"]
async fn write_fixtures() {
    for (name, bytes) in current_fixtures().await {
        std::fs::write(dir().join(name), bytes).unwrap();
    }
}

#[tokio::test]
async fn the_writers_still_write_the_current_fixtures_byte_for_byte() {
    for (name, bytes) in current_fixtures().await {
        let fixture = std::fs::read(dir().join(name)).unwrap();
        assert!(
            fixture == bytes,
            "{name}: this build writes other bytes than the committed fixture; a format \
             change needs a new version (see version.rs)"
        );
    }
}

/// A log folder holding one segment (first index 0), `meta` and `committed`.
fn log_dir(seg: &[u8], meta: &[u8], committed: &[u8]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("log-00000000000000000000.seg"), seg).unwrap();
    std::fs::write(d.path().join("meta"), meta).unwrap();
    std::fs::write(d.path().join("committed"), committed).unwrap();
    d
}

/// Checks that `ls` starts with the fixture log: its entries, vote, purge point and commit hint.
async fn assert_fixture_log(ls: &mut LogStore) {
    let got = ls.try_get_log_entries(..).await.unwrap();
    let ids: Vec<(u64, u64)> = got
        .iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect();
    // Five entries, and any appended after them.
    assert_eq!(ids[..5], [(1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
    let cmd = |i: usize| match &got[i].payload {
        EntryPayload::Normal(c) => c.clone(),
        other => panic!("entry {i}: {other:?}"),
    };
    let c = cmd(0);
    assert_eq!((c.at_ms, c.origin, c.seq), (AT + 1, 1, 1));
    match c
        .mutation(|_, _| unreachable!(), |_, _| unreachable!())
        .unwrap()
    {
        Mutation::SetTensor { key, tensor: t } => {
            assert_eq!((key, t), (Bytes::from_static(b"t"), tensor()))
        }
        m => panic!("{m:?}"),
    }
    match cmd(1).op {
        Op::Set {
            key,
            value,
            cond,
            get,
            deadline,
        } => assert_eq!(
            (key, value, cond, get, deadline),
            (
                Bytes::from_static(b"s"),
                Bytes::from_static(b"v"),
                0,
                false,
                (2, AT + 60_000)
            )
        ),
        op => panic!("{op:?}"),
    }
    match cmd(2).op {
        Op::Del(keys) => assert_eq!(keys, [Bytes::from_static(b"s")]),
        op => panic!("{op:?}"),
    }
    match &got[3].payload {
        EntryPayload::Membership(m) => assert_eq!(m, &membership()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(got[4].payload, EntryPayload::Blank));
    assert_eq!(
        ls.read_vote().await.unwrap(),
        Some(Vote::new_committed(2, 1))
    );
    let state = ls.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id::<C>(1, 1, 0)));
    assert_eq!(
        ls.read_committed().await.unwrap(),
        Some(log_id::<C>(2, 1, 4))
    );
}

async fn append_blank(ls: &mut LogStore, index: u64) {
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    let e = EntryOf::<C>::new_blank(log_id::<C>(2, 1, index));
    ls.append([e], IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_v1_log_segment_meta_and_commit_hint_still_read_and_take_appends() {
    let d = log_dir(
        include_bytes!("../tests/golden/log-v1.seg"),
        include_bytes!("../tests/golden/meta-v1"),
        include_bytes!("../tests/golden/committed-v1"),
    );
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_fixture_log(&mut ls).await;
    // The version 1 segment is still the last one: appends continue in it.
    append_blank(&mut ls, 6).await;
    ls.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(ls.len(), 6);
    assert_fixture_log(&mut ls).await;
    // The vote was rewritten in this build's format.
    let meta = std::fs::read(d.path().join("meta")).unwrap();
    assert_eq!(meta, include_bytes!("../tests/golden/meta-v2"));
}

#[tokio::test]
async fn a_v2_log_segment_meta_and_commit_hint_read() {
    let seg = include_bytes!("../tests/golden/log-v2.seg");
    assert_eq!(&seg[..16], b"shardai-log\n\x02\0\0\0");
    let meta = include_bytes!("../tests/golden/meta-v2");
    assert_eq!(&meta[..16], b"shardai-meta\x02\0\0\0");
    let d = log_dir(seg, meta, include_bytes!("../tests/golden/committed-v2"));
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_fixture_log(&mut ls).await;
    append_blank(&mut ls, 6).await;
    drop(ls);
    let ls = LogStore::open(d.path()).unwrap();
    assert_eq!(ls.len(), 6);
}

/// `bytes` with the u32 LE at `at` replaced by `v`.
fn with_u32(bytes: &[u8], at: usize, v: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    b
}

#[tokio::test]
async fn log_files_of_an_unknown_version_are_refused_naming_it() {
    let seg = include_bytes!("../tests/golden/log-v2.seg");
    let meta = include_bytes!("../tests/golden/meta-v2");
    let committed = include_bytes!("../tests/golden/committed-v2");

    let d = log_dir(&with_u32(seg, 12, 7), meta, committed);
    let err = LogStore::open(d.path()).unwrap_err().to_string();
    assert!(
        err.contains(
            "log-00000000000000000000.seg has format version 7; this build reads \
             versions 1 to 2"
        ),
        "{err}"
    );
    // Nothing was cut or removed.
    let kept = std::fs::read(d.path().join("log-00000000000000000000.seg")).unwrap();
    assert_eq!(kept, with_u32(seg, 12, 7));

    let d = log_dir(seg, &with_u32(meta, 12, 3), committed);
    let err = LogStore::open(d.path()).unwrap_err().to_string();
    assert!(
        err.contains("meta has format version 3; this build reads versions 1 to 2"),
        "{err}"
    );

    // The commit hint is only a hint: one of an unknown version is ignored (and logged).
    let d = log_dir(seg, meta, &with_u32(committed, 12, 9));
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(ls.read_committed().await.unwrap(), None);
    assert_eq!(ls.len(), 5);
}

#[test]
fn a_v1_snapshot_still_reads() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.snap");
    std::fs::write(&path, include_bytes!("../tests/golden/snapshot-v1.snap")).unwrap();
    assert_eq!(snapshot::read_meta(&path).unwrap(), snapshot_meta());
    let (meta, items) = snapshot::read(&path, &Arc::new(Backends::new(None))).unwrap();
    assert_eq!(meta, snapshot_meta());
    assert_eq!(items.len(), 2);
    let (k, v, at) = &items[0];
    assert_eq!((k.as_ref(), at), (&b"s"[..], &Some(AT + 60_000)));
    assert!(matches!(v, Value::Str(b) if *b == "v"));
    let (k, v, at) = &items[1];
    assert_eq!((k.as_ref(), at), (&b"t"[..], &None));
    assert!(matches!(v, Value::Tensor(t) if *t == tensor()));
}

#[test]
fn a_snapshot_of_an_unknown_version_is_refused_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.snap");
    let mut b = include_bytes!("../tests/golden/snapshot-v1.snap").to_vec();
    assert!(b.starts_with(b"shardai-snapshot-v1\n"));
    b.splice(..20, b"shardai-snapshot-v12\n".iter().copied());
    std::fs::write(&path, b).unwrap();
    let err = snapshot::read_meta(&path).unwrap_err().to_string();
    assert!(
        err.contains("s.snap has format version 12; this build reads version 1"),
        "{err}"
    );
}

#[test]
fn v1_dump_payloads_still_restore() {
    let p = include_bytes!("../tests/golden/dump-str-v1.bin");
    assert_eq!(&p[..8], b"SHARDAI\x01");
    let m = crate::dump::restore(
        p,
        Bytes::from_static(b"k"),
        Some(5),
        |_| unreachable!(),
        |_| unreachable!(),
    );
    match m.unwrap() {
        Mutation::Set {
            key,
            value,
            deadline: Deadline::At(5),
            ..
        } => assert_eq!((&key[..], &value[..]), (&b"k"[..], &b"hello"[..])),
        m => panic!("{m:?}"),
    }
    let p = include_bytes!("../tests/golden/dump-tensor-v1.bin");
    assert!(!crate::dump::decode(p).unwrap().loads_model());
    match crate::dump::restore(
        p,
        Bytes::from_static(b"t"),
        None,
        |_| unreachable!(),
        |_| unreachable!(),
    )
    .unwrap()
    {
        Mutation::SetTensor { key, tensor: t } => {
            assert_eq!((key, t), (Bytes::from_static(b"t"), tensor()))
        }
        m => panic!("{m:?}"),
    }
}

#[tokio::test]
async fn v1_bus_frames_still_decode() {
    let mut r = &include_bytes!("../tests/golden/bus-hello-v1.bin")[..];
    // A version 1 peer sends no preamble: its first bytes are the Hello's length.
    let Opening::Legacy(len) = read_opening(&mut r).await.unwrap() else {
        panic!("read as a preamble")
    };
    let hello: BusRequest = crate::network::frame::read_body(&mut r, len, 1 << 16)
        .await
        .unwrap();
    assert!(matches!(
        hello,
        BusRequest::Hello { cluster, group, to: 7 } if cluster == "alpha" && group == "data"
    ));
    let mut r = &include_bytes!("../tests/golden/bus-vote-v1.bin")[..];
    match read_frame::<BusRequest>(&mut r).await.unwrap() {
        BusRequest::Vote(v) => {
            assert_eq!(v.vote, Vote::new(3, 2));
            assert_eq!(v.last_log_id, Some(log_id::<C>(2, 1, 5)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_v2_bus_opening_decodes() {
    let mut r = &include_bytes!("../tests/golden/bus-v2.bin")[..];
    assert_eq!(read_opening(&mut r).await.unwrap(), Opening::Versioned(2));
    assert!(matches!(
        read_frame::<BusRequest>(&mut r).await.unwrap(),
        BusRequest::Hello { to: 7, .. }
    ));
    assert!(matches!(
        read_frame::<BusRequest>(&mut r).await.unwrap(),
        BusRequest::Vote(_)
    ));
    assert!(r.is_empty());
}

#[tokio::test]
async fn every_bus_handshake_decodes_and_its_proofs_hold() {
    let bytes = include_bytes!("../tests/golden/bus-handshakes-v3.bin");
    assert_eq!(variant_indexes(bytes), [0, 1, 2, 3]);
    let mut r = &bytes[..];
    let sec = golden_security();
    let mut next = async || read_frame::<Handshake>(&mut r).await.unwrap();
    assert_eq!(next().await, Handshake::Challenge(SERVER_NONCE));
    match next().await {
        Handshake::ClientProof { nonce, proof } => {
            assert_eq!(nonce, CLIENT_NONCE);
            assert!(sec.holds(Side::Client, 3, &SERVER_NONCE, &nonce, &proof));
        }
        other => panic!("{other:?}"),
    }
    match next().await {
        Handshake::ServerProof(proof) => {
            assert!(sec.holds(Side::Server, 3, &SERVER_NONCE, &CLIENT_NONCE, &proof));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(next().await, Handshake::Refused);
    assert!(r.is_empty());
    // The refusal is these 8 bytes whatever was refused: no text at all.
    assert_eq!(&bytes[bytes.len() - 8..], [4, 0, 0, 0, 3, 0, 0, 0]);
}

#[tokio::test]
async fn a_v3_bus_opening_decodes() {
    let mut r = &include_bytes!("../tests/golden/bus-v3.bin")[..];
    assert_eq!(read_opening(&mut r).await.unwrap(), Opening::Versioned(3));
    assert!(matches!(
        read_frame::<Handshake>(&mut r).await.unwrap(),
        Handshake::ClientProof { nonce, .. } if nonce == CLIENT_NONCE
    ));
    assert!(matches!(
        read_frame::<BusRequest>(&mut r).await.unwrap(),
        BusRequest::Hello { to: 7, .. }
    ));
    assert!(matches!(
        read_frame::<BusRequest>(&mut r).await.unwrap(),
        BusRequest::Vote(_)
    ));
    assert!(r.is_empty());
}

#[tokio::test]
async fn a_v1_peer_without_a_preamble_is_still_served_by_an_open_bus() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::network::serve(
        listener,
        Default::default(),
        BusSecurity::open(),
    ));
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    sock.write_all(include_bytes!("../tests/golden/bus-hello-v1.bin"))
        .await
        .unwrap();
    // No preamble back (a version 1 peer would not expect one), then its answer.
    match read_frame::<BusReply>(&mut sock).await.unwrap() {
        BusReply::Refused(why) => assert_eq!(why, "this node has not joined a cluster"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn version_2_log_files_are_version_1_ones_behind_a_header() {
    // So the records of a version 2 fixture (such as `log-ops-v2.seg`) are version 1's too.
    let v1: [&[u8]; 3] = [
        include_bytes!("../tests/golden/log-v1.seg"),
        include_bytes!("../tests/golden/meta-v1"),
        include_bytes!("../tests/golden/committed-v1"),
    ];
    let v2: [&[u8]; 3] = [
        include_bytes!("../tests/golden/log-v2.seg"),
        include_bytes!("../tests/golden/meta-v2"),
        include_bytes!("../tests/golden/committed-v2"),
    ];
    for (v1, v2) in v1.into_iter().zip(v2) {
        assert_eq!(&v2[16..], v1);
    }
}

#[tokio::test]
async fn every_op_decodes_from_a_log_segment_with_and_without_its_header() {
    let seg = include_bytes!("../tests/golden/log-ops-v2.seg");
    assert_eq!(&seg[..16], b"shardai-log\n\x02\0\0\0");
    for seg in [&seg[..], &seg[16..]] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("log-00000000000000000000.seg"), seg).unwrap();
        let mut ls = LogStore::open(d.path()).unwrap();
        let got = ls.try_get_log_entries(..).await.unwrap();
        let mut ops = Vec::new();
        for (e, i) in got.iter().zip(1u64..) {
            assert_eq!(e.log_id, log_id::<C>(3, 2, i));
            let EntryPayload::Normal(c) = &e.payload else {
                panic!("entry {i}: {:?}", e.payload)
            };
            assert_eq!((c.at_ms, c.origin, c.seq), (AT + i, 2, i));
            ops.push(&c.op);
        }
        assert_every_op(&ops);
    }
}

/// The ops of a log segment fixture (first index 0), in order.
async fn ops_of_segment(seg: &[u8]) -> Vec<Op> {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("log-00000000000000000000.seg"), seg).unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    let got = ls.try_get_log_entries(..).await.unwrap();
    got.into_iter()
        .map(|e| match e.payload {
            EntryPayload::Normal(c) => c.op,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn every_script_op_decodes_from_a_log_segment() {
    let ops = ops_of_segment(include_bytes!("../tests/golden/log-ops-script-v2.seg")).await;
    let ops: Vec<&Op> = ops.iter().collect();
    assert_script_ops(&ops);
    // Variant indexes follow `every_op()`'s.
    assert_eq!(
        variant_of(&script_ops()[0]),
        every_op().len() as u32,
        "SetScript comes right after ExpireDue"
    );
    assert!(ops[0].loads_model() && !ops[1].loads_model());
}

/// The bincode variant index of `op`.
fn variant_of(op: &Op) -> u32 {
    let b = bincode::serialize(op).unwrap();
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

#[test]
fn a_script_in_a_v1_snapshot_and_dump_decodes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.snap");
    std::fs::write(
        &path,
        include_bytes!("../tests/golden/snapshot-script-v1.snap"),
    )
    .unwrap();
    let (meta, items) = snapshot::read_items(&path).unwrap();
    assert_eq!(meta, snapshot_meta());
    let [item] = &items[..] else {
        panic!("{items:?}")
    };
    assert_eq!((&item.key[..], item.expire_at), (&b"s"[..], None));
    match &item.value {
        ItemValue::Script(s) => assert_script(s),
        v => panic!("{v:?}"),
    }
    let p = include_bytes!("../tests/golden/dump-script-v1.bin");
    let payload = crate::dump::decode(p).unwrap();
    assert!(payload.loads_model(), "restoring compiles the script");
    let mut seen = None;
    let r = payload.restore(
        Bytes::from_static(b"k"),
        None,
        |_| unreachable!(),
        |s| {
            seen = Some(s);
            Err(Error::CouldNotLoadBackend)
        },
    );
    assert!(r.is_err());
    assert_script(&seen.expect("restoring asks for the script to be compiled"));
}

#[test]
fn a_model_in_a_v1_snapshot_decodes() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.snap");
    std::fs::write(
        &path,
        include_bytes!("../tests/golden/snapshot-model-v1.snap"),
    )
    .unwrap();
    let (meta, items) = snapshot::read_items(&path).unwrap();
    assert_eq!(meta, snapshot_meta());
    let [item] = &items[..] else {
        panic!("{items:?}")
    };
    assert_eq!((&item.key[..], item.expire_at), (&b"m"[..], Some(AT + 1)));
    match &item.value {
        ItemValue::Model(m) => assert_model(m),
        v => panic!("{v:?}"),
    }
    // The other snapshot's items, as stored: a string, then a tensor.
    std::fs::write(&path, include_bytes!("../tests/golden/snapshot-v1.snap")).unwrap();
    let (_, items) = snapshot::read_items(&path).unwrap();
    assert!(matches!(&items[0].value, ItemValue::Str(v) if v == "v"));
    assert!(matches!(&items[1].value, ItemValue::Tensor(t) if t.shape == [2]));
}

#[test]
fn a_v1_dump_of_a_model_decodes() {
    let p = include_bytes!("../tests/golden/dump-model-v1.bin");
    assert_eq!(&p[..8], b"SHARDAI\x01");
    let payload = crate::dump::decode(p).unwrap();
    assert!(payload.loads_model());
    let mut seen = None;
    let r = payload.restore(
        Bytes::from_static(b"k"),
        None,
        |m| {
            seen = Some(m);
            Err(Error::UnsupportedBackend)
        },
        |_| unreachable!(),
    );
    assert!(r.is_err());
    assert_model(&seen.expect("restoring asks for the model to be loaded"));
}

#[tokio::test]
async fn every_bus_request_decodes() {
    let bytes = include_bytes!("../tests/golden/bus-requests-v2.bin");
    assert_eq!(variant_indexes(bytes), (0..=8).collect::<Vec<_>>());
    let mut r = &bytes[..];
    let mut next = async || read_frame::<BusRequest>(&mut r).await.unwrap();
    assert!(matches!(
        next().await,
        BusRequest::Hello { cluster, group, to: 7 } if cluster == "alpha" && group == "data"
    ));
    match next().await {
        BusRequest::Propose(c) => {
            assert_eq!((c.at_ms, c.origin, c.seq), (AT, 2, 9));
            assert!(matches!(&c.op, Op::IncrBy(k, 5) if k == "n"), "{:?}", c.op);
        }
        other => panic!("{other:?}"),
    }
    match next().await {
        BusRequest::Append(a) => {
            assert_eq!(a.vote, Vote::new_committed(2, 1));
            assert_eq!(a.prev_log_id, Some(log_id::<C>(2, 1, 5)));
            assert_eq!(a.leader_commit, Some(log_id::<C>(2, 1, 4)));
            let [e] = &a.entries[..] else {
                panic!("{:?}", a.entries)
            };
            assert_eq!(e.log_id, log_id::<C>(2, 1, 6));
            assert!(matches!(e.payload, EntryPayload::Blank));
        }
        other => panic!("{other:?}"),
    }
    match next().await {
        BusRequest::Vote(v) => {
            assert_eq!(v.vote, Vote::new(3, 2));
            assert_eq!(v.last_log_id, Some(log_id::<C>(2, 1, 5)));
        }
        other => panic!("{other:?}"),
    }
    match next().await {
        BusRequest::SnapBegin { vote, meta } => {
            assert_eq!(vote, Vote::new_committed(2, 1));
            assert_eq!(meta, snapshot_meta());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(next().await, BusRequest::SnapChunk(c) if c == "chunk"));
    assert!(matches!(next().await, BusRequest::SnapEnd));
    assert!(matches!(next().await, BusRequest::StreamBegin));
    assert!(matches!(next().await, BusRequest::StreamEnd));
    assert!(r.is_empty());
}

#[tokio::test]
async fn every_bus_reply_and_apply_result_decodes() {
    let bytes = include_bytes!("../tests/golden/bus-replies-v2.bin");
    assert_eq!(variant_indexes(bytes), [0, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7, 7]);
    let mut r = &bytes[..];
    let mut next = async || read_frame::<BusReply>(&mut r).await.unwrap();
    assert!(matches!(next().await, BusReply::Welcome));
    assert!(matches!(next().await, BusReply::Refused(why) if why == "no"));
    match next().await {
        BusReply::Append(a) => assert_eq!(a, Ok(AppendEntriesResponse::Success)),
        other => panic!("{other:?}"),
    }
    match next().await {
        BusReply::Vote(v) => assert_eq!(
            v,
            Ok(VoteResponse::new(
                Vote::new(3, 2),
                Some(log_id::<C>(2, 1, 5)),
                true
            ))
        ),
        other => panic!("{other:?}"),
    }
    match next().await {
        BusReply::Snap(s) => assert_eq!(s, Ok(SnapshotResponse::new(Vote::new_committed(2, 1)))),
        other => panic!("{other:?}"),
    }
    match next().await {
        BusReply::Stream(s) => assert_eq!(s, Ok(Ok(Some(log_id::<C>(2, 1, 6))))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next().await, BusReply::StreamEnd));
    let results = [
        Ok(ApplyResult::Ok),
        Ok(ApplyResult::Int(-7)),
        Ok(ApplyResult::Set {
            written: true,
            old: Some(Bytes::from_static(b"old")),
        }),
        Ok(ApplyResult::Err("ERR no".into())),
        Err("not the leader".to_string()),
    ];
    for want in results {
        match next().await {
            BusReply::Propose(got) => assert_eq!(got, want),
            other => panic!("{other:?}"),
        }
    }
    assert!(r.is_empty());
}
