//! Golden fixtures of the hash and list variants: `Op::HSet` to `Op::SetList`
//! (`log-ops-collections-v2.seg`, right after the script variants), the snapshot's
//! `ItemValue::Hash` and `ItemValue::List` (`snapshot-collections-v1.snap`), their DUMP
//! payloads (`dump-hash-v1.bin`, `dump-list-v1.bin`) and `ApplyResult::Values`
//! (`bus-replies-values-v2.bin`). Hashes in fixtures have one field, so that their bytes do
//! not depend on a map's iteration order.

use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// The `Op` variants appended after `script_ops()`'s, in variant index order.
pub(super) fn collection_ops() -> Vec<Op> {
    vec![
        Op::HSet(b("h"), vec![(b("f"), b("v")), (b("g"), b("w"))]),
        Op::HDel(b("h"), vec![b("f")]),
        Op::Push {
            key: b("l"),
            left: true,
            values: vec![b("a"), b("b")],
            existing_only: true,
        },
        Op::Pop {
            key: b("l"),
            left: false,
            count: 2,
        },
        Op::SetHash(b("h"), vec![(b("f"), b("v"))]),
        Op::SetList(b("l"), vec![b("a"), b("b")]),
    ]
}

fn pair(f: &'static str, v: &'static str) -> (Bytes, Bytes) {
    (b(f), b(v))
}

/// Checks decoded ops against `collection_ops()`.
fn assert_collection_ops(ops: &[&Op]) {
    let [hset, hdel, push, pop, set_hash, set_list] = ops else {
        panic!("{ops:?}")
    };
    assert!(
        matches!(hset, Op::HSet(k, p) if k == "h" && *p == [pair("f", "v"), pair("g", "w")]),
        "{hset:?}"
    );
    assert!(
        matches!(hdel, Op::HDel(k, f) if k == "h" && f == &["f"]),
        "{hdel:?}"
    );
    assert!(
        matches!(push, Op::Push { key, left: true, values, existing_only: true }
            if key == "l" && values == &["a", "b"]),
        "{push:?}"
    );
    assert!(
        matches!(pop, Op::Pop { key, left: false, count: 2 } if key == "l"),
        "{pop:?}"
    );
    assert!(
        matches!(set_hash, Op::SetHash(k, p) if k == "h" && *p == [pair("f", "v")]),
        "{set_hash:?}"
    );
    assert!(
        matches!(set_list, Op::SetList(k, l) if k == "l" && l == &["a", "b"]),
        "{set_list:?}"
    );
}

fn hash() -> Value {
    Value::Hash(Arc::new(Hash::from_pairs([pair("f", "v")])))
}

fn list() -> Value {
    Value::List(Arc::new(List::from_items([b("a"), b("b")])))
}

fn replies() -> Vec<BusReply> {
    vec![
        BusReply::Propose(Ok(ApplyResult::Values(Some(vec![b("a"), b("b")])))),
        BusReply::Propose(Ok(ApplyResult::Values(None))),
    ]
}

/// This build's fixtures of the hash and list formats; `dir` is scratch space.
pub(super) async fn fixtures(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let snap = dir.join("collections.snap");
    let items = vec![(b("h"), hash(), None), (b("l"), list(), Some(AT + 1))];
    snapshot::write(&snap, &snapshot_meta(), items).unwrap();
    vec![
        (
            "log-ops-collections-v2.seg",
            segment_of(op_entries(collection_ops())).await,
        ),
        (
            "snapshot-collections-v1.snap",
            std::fs::read(&snap).unwrap(),
        ),
        ("dump-hash-v1.bin", crate::dump::dump(&hash())),
        ("dump-list-v1.bin", crate::dump::dump(&list())),
        ("bus-replies-values-v2.bin", frames(&replies()).await),
    ]
}

#[tokio::test]
async fn every_collection_op_decodes_from_a_log_segment() {
    let seg = include_bytes!("../../tests/golden/log-ops-collections-v2.seg");
    let ops = ops_of_segment(seg).await;
    let ops: Vec<&Op> = ops.iter().collect();
    assert_collection_ops(&ops);
    assert_eq!(
        variant_of(&collection_ops()[0]),
        (every_op().len() + script_ops().len()) as u32,
        "HSet comes right after DelScript"
    );
    assert!(ops.iter().all(|o| !o.loads_model()));
}

#[test]
fn hashes_and_lists_in_a_v1_snapshot_and_dump_decode() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("s.snap");
    let bytes = include_bytes!("../../tests/golden/snapshot-collections-v1.snap");
    std::fs::write(&path, bytes).unwrap();
    let (meta, items) = snapshot::read_items(&path).unwrap();
    assert_eq!(meta, snapshot_meta());
    let [h, l] = &items[..] else {
        panic!("{items:?}")
    };
    assert!(
        matches!(&h.value, ItemValue::Hash(p) if *p == [pair("f", "v")]) && h.expire_at.is_none(),
        "{h:?}"
    );
    assert!(
        matches!(&l.value, ItemValue::List(v) if v == &["a", "b"]) && l.expire_at == Some(AT + 1),
        "{l:?}"
    );
    let restore = |p: &[u8]| {
        crate::dump::restore(p, b("k"), None, |_| unreachable!(), |_| unreachable!()).unwrap()
    };
    match restore(include_bytes!("../../tests/golden/dump-hash-v1.bin")) {
        Mutation::SetHash { key, hash } => {
            assert_eq!(
                (&key[..], hash.len(), hash.get(b"f")),
                (&b"k"[..], 1, Some(&b("v")))
            )
        }
        m => panic!("{m:?}"),
    }
    match restore(include_bytes!("../../tests/golden/dump-list-v1.bin")) {
        Mutation::SetList { key, list } => {
            assert_eq!(&key[..], b"k");
            assert_eq!(list.range(0, -1), [b("a"), b("b")]);
        }
        m => panic!("{m:?}"),
    }
}

#[tokio::test]
async fn the_values_apply_result_decodes() {
    let bytes = include_bytes!("../../tests/golden/bus-replies-values-v2.bin");
    assert_eq!(variant_indexes(bytes), [7, 7]);
    let mut r = &bytes[..];
    for want in [
        ApplyResult::Values(Some(vec![b("a"), b("b")])),
        ApplyResult::Values(None),
    ] {
        match read_frame::<BusReply>(&mut r).await.unwrap() {
            BusReply::Propose(got) => assert_eq!(got, Ok(want)),
            other => panic!("{other:?}"),
        }
    }
    assert!(r.is_empty());
}
