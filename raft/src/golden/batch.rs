//! Golden fixtures of the transaction variants: `Op::Batch` (`log-ops-batch-v2.seg`, right
//! after the hash and list variants; it holds ops of the kinds before it) and
//! `ApplyResult::Batch` (`bus-replies-batch-v2.bin`, holding a result of each earlier kind).

use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// The `Op` variants appended after `collection_ops()`'s, in variant index order.
fn batch_ops() -> Vec<Op> {
    vec![Op::Batch(vec![
        Op::Set {
            key: b("k"),
            value: b("v"),
            cond: 1,
            get: false,
            deadline: (0, 0),
        },
        Op::IncrBy(b("n"), 2),
        Op::HSet(b("h"), vec![(b("f"), b("v"))]),
        Op::Del(vec![b("k")]),
    ])]
}

fn batch_result() -> ApplyResult {
    ApplyResult::Batch(vec![
        ApplyResult::Ok,
        ApplyResult::Int(3),
        ApplyResult::Set {
            written: false,
            old: None,
        },
        ApplyResult::Err("WRONGTYPE no".into()),
        ApplyResult::Values(Some(vec![b("a")])),
    ])
}

/// This build's fixtures of the transaction formats.
pub(super) async fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "log-ops-batch-v2.seg",
            segment_of(op_entries(batch_ops())).await,
        ),
        (
            "bus-replies-batch-v2.bin",
            frames(&[BusReply::Propose(Ok(batch_result()))]).await,
        ),
    ]
}

#[tokio::test]
async fn a_batch_op_decodes_from_a_log_segment() {
    let seg = include_bytes!("../../tests/golden/log-ops-batch-v2.seg");
    let ops = ops_of_segment(seg).await;
    let [Op::Batch(inner)] = &ops[..] else {
        panic!("{ops:?}")
    };
    let [set, incr, hset, del] = &inner[..] else {
        panic!("{inner:?}")
    };
    assert!(
        matches!(set, Op::Set { key, value, cond: 1, get: false, deadline: (0, 0) }
            if key == "k" && value == "v"),
        "{set:?}"
    );
    assert!(matches!(incr, Op::IncrBy(k, 2) if k == "n"), "{incr:?}");
    assert!(
        matches!(hset, Op::HSet(k, p) if k == "h" && *p == [(b("f"), b("v"))]),
        "{hset:?}"
    );
    assert!(matches!(del, Op::Del(k) if k == &["k"]), "{del:?}");
    assert_eq!(
        variant_of(&batch_ops()[0]),
        (every_op().len() + script_ops().len() + collections::collection_ops().len()) as u32,
        "Batch comes right after SetList"
    );
    assert!(!ops[0].loads_model());
}

#[tokio::test]
async fn the_batch_apply_result_decodes() {
    let bytes = include_bytes!("../../tests/golden/bus-replies-batch-v2.bin");
    let mut r = &bytes[..];
    match read_frame::<BusReply>(&mut r).await.unwrap() {
        BusReply::Propose(got) => assert_eq!(got, Ok(batch_result())),
        other => panic!("{other:?}"),
    }
    assert!(r.is_empty());
    // The Propose reply, then `ApplyResult::Batch`, the variant after `Values`.
    let propose = variant_indexes(bytes)[0];
    let inner = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    assert_eq!((propose, inner), (7, 5));
}
