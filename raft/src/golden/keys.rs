//! Golden fixtures of the expiry, key and string variants: `Op::Expire` to
//! `Op::GetEx` (`log-ops-keys-v2.seg`, right after `Op::Batch`) and
//! `ApplyResult::Value` (`bus-replies-value-v2.bin`).

use super::*;

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// The `Op` variants appended after `Op::Batch`, in variant index order.
fn key_ops() -> Vec<Op> {
    vec![
        Op::Expire(b("k"), Some(AT as i64), 0b1010),
        Op::Expire(b("k"), None, 0),
        Op::Rename(b("a"), b("b"), true),
        Op::Copy(b("a"), b("c"), false),
        Op::GetDel(b("g")),
        Op::WriteRange(b("s"), Some(3), b("xy")),
        Op::MSetNx(vec![(b("m"), b("1")), (b("n"), b("2"))]),
        Op::IncrByFloat(b("f"), 1.5),
        Op::GetEx(b("g"), 2, AT as i64),
    ]
}

fn replies() -> Vec<BusReply> {
    vec![
        BusReply::Propose(Ok(ApplyResult::Value(Some(b("10.6"))))),
        BusReply::Propose(Ok(ApplyResult::Value(None))),
    ]
}

/// This build's fixtures of the expiry, key and string formats.
pub(super) async fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "log-ops-keys-v2.seg",
            segment_of(op_entries(key_ops())).await,
        ),
        ("bus-replies-value-v2.bin", frames(&replies()).await),
    ]
}

#[tokio::test]
async fn every_key_op_decodes_from_a_log_segment() {
    let seg = include_bytes!("../../tests/golden/log-ops-keys-v2.seg");
    let ops = ops_of_segment(seg).await;
    let [
        expire,
        persist,
        rename,
        copy,
        getdel,
        range,
        msetnx,
        incr,
        getex,
    ] = &ops[..]
    else {
        panic!("{ops:?}")
    };
    assert!(
        matches!(expire, Op::Expire(k, Some(t), 0b1010) if k == "k" && *t == AT as i64),
        "{expire:?}"
    );
    assert!(
        matches!(persist, Op::Expire(k, None, 0) if k == "k"),
        "{persist:?}"
    );
    assert!(
        matches!(rename, Op::Rename(a, b, true) if a == "a" && b == "b"),
        "{rename:?}"
    );
    assert!(
        matches!(copy, Op::Copy(a, c, false) if a == "a" && c == "c"),
        "{copy:?}"
    );
    assert!(matches!(getdel, Op::GetDel(k) if k == "g"), "{getdel:?}");
    assert!(
        matches!(range, Op::WriteRange(k, Some(3), v) if k == "s" && v == "xy"),
        "{range:?}"
    );
    assert!(
        matches!(msetnx, Op::MSetNx(p) if *p == [(b("m"), b("1")), (b("n"), b("2"))]),
        "{msetnx:?}"
    );
    assert!(
        matches!(incr, Op::IncrByFloat(k, d) if k == "f" && *d == 1.5),
        "{incr:?}"
    );
    assert!(
        matches!(getex, Op::GetEx(k, 2, t) if k == "g" && *t == AT as i64),
        "{getex:?}"
    );
    let batch = Op::Batch(Vec::new());
    assert_eq!(
        variant_of(&key_ops()[0]),
        variant_of(&batch) + 1,
        "Expire comes right after Batch"
    );
    assert!(ops.iter().all(|o| !o.loads_model()));
}

#[tokio::test]
async fn the_value_apply_result_decodes() {
    let bytes = include_bytes!("../../tests/golden/bus-replies-value-v2.bin");
    assert_eq!(variant_indexes(bytes), [7, 7]);
    let mut r = &bytes[..];
    for want in [
        ApplyResult::Value(Some(b("10.6"))),
        ApplyResult::Value(None),
    ] {
        match read_frame::<BusReply>(&mut r).await.unwrap() {
            BusReply::Propose(got) => assert_eq!(got, Ok(want)),
            other => panic!("{other:?}"),
        }
    }
    assert!(r.is_empty());
}
