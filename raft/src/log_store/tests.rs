//! Log store tests on real files: durability across reopen, truncate, purge, torn tails.

use openraft::{
    storage::{IOFlushed, RaftLogStorage},
    testing::{blank_ent, log_id},
};

use super::{segment::crc_record, *};

async fn append(ls: &mut LogStore, range: std::ops::Range<u64>, term: u64) {
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    let entries: Vec<Entry> = range.map(|i| blank_ent::<C>(term, 1, i)).collect();
    ls.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

/// Where each record of a segment file starts and ends (the rest is allocated, zero space).
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let (_, mut off) = segment::segment_format(bytes, std::path::Path::new("seg")).unwrap();
    let mut out = Vec::new();
    while let Some((_, next)) = parse_record(bytes, off) {
        out.push((off, next));
        off = next;
    }
    out
}

/// End of the records in a segment file.
fn records_end(bytes: &[u8]) -> usize {
    records(bytes)
        .last()
        .map_or(segment::SEGMENT_HEADER, |r| r.1)
}

/// Rewrites `range` of the first segment with `f` applied to its bytes.
fn rewrite(dir: &std::path::Path, range: std::ops::Range<usize>, f: impl Fn(&mut [u8])) {
    let seg = dir.join(seg_name(0));
    let mut b = fs::read(&seg).unwrap()[range.clone()].to_vec();
    f(&mut b);
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&b, range.start as u64)
        .unwrap();
}

/// A crash mid-write of record `n` of the first segment: the sector holding its last bytes
/// never reached the disk, so they read as the allocated zeros.
fn tear_record(dir: &std::path::Path, n: usize) {
    let b = fs::read(dir.join(seg_name(0))).unwrap();
    let (off, end) = records(&b)[n];
    let from = ((end - 1) / 512 * 512).max(off);
    rewrite(dir, from..end, |b| b.fill(0));
}

/// A crash mid-write of the first segment's last record.
fn tear_last_record(dir: &std::path::Path) {
    let n = records(&fs::read(dir.join(seg_name(0))).unwrap()).len();
    tear_record(dir, n - 1);
}

async fn indexes(ls: &mut LogStore) -> Vec<(u64, u64)> {
    ls.try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.log_id.index, e.log_id.leader_id.term))
        .collect()
}

#[tokio::test]
async fn appended_entries_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..10, 1).await;
    ls.save_vote(&openraft::impls::Vote::new(3, 2))
        .await
        .unwrap();
    ls.save_committed(Some(log_id::<C>(1, 1, 7))).await.unwrap();
    // The file is allocated ahead of its records; they end where the zeros begin.
    let seg = fs::read(d.path().join(seg_name(0))).unwrap();
    assert!(seg.len() as u64 >= PREALLOC_BYTES);
    let end = records_end(&seg);
    assert!(end > 0 && seg[end..].iter().all(|b| *b == 0));
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 10);
    assert_eq!(
        ls.get_log_state().await.unwrap().last_log_id.unwrap().index,
        9
    );
    // Appends continue at the end of the records, not at the end of the file.
    append(&mut ls, 10..12, 1).await;
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 12);
    assert_eq!(
        ls.read_vote().await.unwrap(),
        Some(openraft::impls::Vote::new(3, 2))
    );
    assert_eq!(ls.read_committed().await.unwrap().unwrap().index, 7);
}

#[tokio::test]
async fn truncate_then_append_replaces_the_tail() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..11, 1).await;
    ls.truncate_after(Some(log_id::<C>(1, 1, 5))).await.unwrap();
    append(&mut ls, 6..9, 2).await;
    let want: Vec<(u64, u64)> = (0..6)
        .map(|i| (i, 1))
        .chain((6..9).map(|i| (i, 2)))
        .collect();
    assert_eq!(indexes(&mut ls).await, want);
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await, want);
}

#[tokio::test]
async fn purge_drops_the_head_durably() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..21, 1).await;
    ls.purge(log_id::<C>(1, 1, 12)).await.unwrap();
    assert_eq!(indexes(&mut ls).await.first(), Some(&(13, 1)));
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    let st = ls.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.unwrap().index, 12);
    assert_eq!(indexes(&mut ls).await.len(), 8);
    // Purging past the end (a snapshot was installed) leaves an empty log that continues.
    ls.purge(log_id::<C>(1, 1, 30)).await.unwrap();
    append(&mut ls, 31..33, 1).await;
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await, vec![(31, 1), (32, 1)]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    drop(ls);
    tear_last_record(d.path());
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 5);
    append(&mut ls, 5..7, 2).await;
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 7);
}

#[tokio::test]
async fn after_a_failed_fsync_nothing_more_is_acknowledged() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..3, 1).await;
    ls.fail_syncs_for_tests();
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(vec![blank_ent::<C>(1, 1, 3)], IOFlushed::signal(tx))
        .await
        .unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    // Nothing later is acknowledged either, even a vote (fsyncgate: a failed fsync may have
    // dropped dirty pages, so no later fsync proves anything).
    assert!(
        ls.save_vote(&openraft::impls::Vote::new(2, 1))
            .await
            .is_err()
    );
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(vec![blank_ent::<C>(1, 1, 4)], IOFlushed::signal(tx))
        .await
        .unwrap();
    assert!(rx.await.unwrap().is_err());
}

/// Appends `index` and says whether it was acknowledged.
async fn try_append(ls: &mut LogStore, index: u64) -> bool {
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(vec![blank_ent::<C>(1, 1, index)], IOFlushed::signal(tx))
        .await
        .unwrap();
    rx.await.unwrap().is_ok()
}

#[tokio::test]
async fn everysec_acknowledges_before_its_fsync_and_stops_after_a_failed_one() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    ls.set_fsync(Fsync::EverySec);
    assert_eq!(ls.fsync(), Fsync::EverySec);
    append(&mut ls, 0..3, 1).await;
    // The disk fails: the next append is still acknowledged (its fsync comes later) ...
    ls.fail_syncs_for_tests();
    assert!(try_append(&mut ls, 3).await);
    // ... and within about a second the background fsync fails, after which nothing is.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut i = 4;
    while try_append(&mut ls, i).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed fsync went unnoticed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        i += 1;
    }
    // Every acknowledged entry was written to the file: a crash of the process loses none.
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len() as u64, i + 1);
}

#[tokio::test]
async fn a_lazy_append_with_nothing_queued_acknowledges_itself_and_is_fsyncd_within_a_second() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    let flags = ls.inner.flags.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // Under always, each append goes through the sync thread, which finishes it.
    append(&mut ls, 0..2, 1).await;
    while flags.queued.load(Ordering::SeqCst) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync thread kept a request"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ls.set_fsync(Fsync::EverySec);
    // Acknowledged by the appender itself, before `append` returns ...
    let (tx, mut rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append(vec![blank_ent::<C>(1, 1, 2)], IOFlushed::signal(tx))
        .await
        .unwrap();
    assert!(
        matches!(rx.try_recv(), Ok(Ok(()))),
        "not acknowledged at once"
    );
    // ... its file taken by the thread's next tick to be fsync'd (that a failing fsync there
    // is seen: `everysec_acknowledges_before_its_fsync_and_stops_after_a_failed_one`).
    while !flags.written.lock().is_empty() {
        assert!(std::time::Instant::now() < deadline, "never fsync'd");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 3);
}

#[tokio::test]
async fn no_fsync_acknowledges_without_fsyncing_and_a_barrier_still_syncs() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    ls.set_fsync(Fsync::No);
    append(&mut ls, 0..3, 1).await;
    ls.fail_syncs_for_tests();
    // Appends never wait for an fsync, so a failing disk goes unnoticed by them ...
    for i in 3..6 {
        assert!(try_append(&mut ls, i).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert!(try_append(&mut ls, 6).await);
    // ... until something that must be durable (a vote) fsyncs everything before it.
    assert!(
        ls.save_vote(&openraft::impls::Vote::new(2, 1))
            .await
            .is_err()
    );
    assert!(!try_append(&mut ls, 7).await);
    // Back to always: an append is acknowledged only after its own fsync.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    ls.set_fsync(Fsync::No);
    append(&mut ls, 0..2, 1).await;
    ls.set_fsync(Fsync::Always);
    ls.fail_syncs_for_tests();
    assert!(!try_append(&mut ls, 2).await);
}

#[tokio::test]
async fn a_committed_hint_past_a_torn_tail_is_clamped_to_the_log() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    ls.save_committed(Some(log_id::<C>(1, 1, 5))).await.unwrap();
    drop(ls);
    tear_last_record(d.path());
    let mut ls = LogStore::open(d.path()).unwrap();
    // Re-applying up to 5 would "apply" an entry the log no longer has.
    assert_eq!(ls.read_committed().await.unwrap().unwrap().index, 4);
}

#[tokio::test]
async fn corruption_before_the_tail_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    drop(ls);
    // A second segment holding the next entry makes the first one "not the tail".
    let next = bincode::serialize(&blank_ent::<C>(1, 1, 6)).unwrap();
    fs::write(d.path().join(seg_name(6)), crc_record(&next)).unwrap();
    let seg = d.path().join(seg_name(0));
    let mut b = fs::read(&seg).unwrap();
    b[segment::SEGMENT_HEADER + HEADER + 2] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let err = LogStore::open(d.path()).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[tokio::test]
async fn an_empty_segment_after_a_torn_tail_is_removed() {
    // A crash just after a roll: the new segment is empty and the old one's tail is torn.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    drop(ls);
    tear_last_record(d.path());
    fs::write(d.path().join(seg_name(6)), b"").unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 5);
    assert!(!d.path().join(seg_name(6)).exists());
    append(&mut ls, 5..8, 2).await;
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 8);
}

#[tokio::test]
async fn a_truncated_tail_stays_gone_in_allocated_space() {
    // Entries cut by truncate_after must not come back at the next open, even where a shorter
    // new entry leaves an old record's bytes behind it.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..10, 1).await;
    ls.truncate_after(Some(log_id::<C>(1, 1, 4))).await.unwrap();
    append(&mut ls, 5..6, 2).await;
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    let want: Vec<(u64, u64)> = (0..5).map(|i| (i, 1)).chain([(5, 2)]).collect();
    assert_eq!(indexes(&mut ls).await, want);
}

#[tokio::test]
async fn bytes_after_counts_the_records_after_an_index() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..10, 1).await;
    let all = ls.bytes_after(None);
    let end = records_end(&fs::read(d.path().join(seg_name(0))).unwrap());
    assert_eq!(all, (end - segment::SEGMENT_HEADER) as u64);
    assert_eq!(ls.bytes_after(Some(9)), 0);
    assert!(ls.bytes_after(Some(4)) > 0 && ls.bytes_after(Some(4)) < all);
}

#[tokio::test]
async fn an_intact_record_that_does_not_decode_refuses_to_start() {
    // Not a torn write (its checksum holds): nothing may be cut or removed because of it.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..3, 1).await;
    drop(ls);
    fs::write(d.path().join(seg_name(3)), crc_record(b"not an entry")).unwrap();
    let err = LogStore::open(d.path()).unwrap_err();
    assert!(err.to_string().contains("does not decode"), "{err}");
    assert!(d.path().join(seg_name(3)).exists());
}

#[tokio::test]
async fn a_read_racing_a_truncation_answers_as_of_after_the_cut() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..10, 1).await;
    drop(ls);
    // Reopened: nothing cached, reads go to the file.
    let mut ls = LogStore::open(d.path()).unwrap();
    let (old6, file) = {
        let st = ls.inner.st.lock();
        (st.locs[6].clone(), st.segs[&0].file.clone())
    };
    assert_eq!(read_entry(&file, &old6).unwrap().log_id, old6.log_id);
    // A new leader's entries replace 6.. at the same offsets: the old location now holds
    // another entry, which the read must not return as the old one.
    ls.truncate_after(Some(log_id::<C>(1, 1, 5))).await.unwrap();
    append(&mut ls, 6..10, 2).await;
    let e = read_entry(&file, &old6).unwrap_err();
    assert!(e.to_string().contains("not where the index says"), "{e}");
    let now6 = ls.inner.st.lock().locs[6].clone();
    assert_eq!(
        read_entry(&file, &now6).unwrap().log_id,
        log_id::<C>(2, 1, 6)
    );
    assert_eq!(
        indexes(&mut ls).await,
        [
            (0, 1),
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 2),
            (7, 2),
            (8, 2),
            (9, 2)
        ]
    );
}

#[tokio::test]
async fn a_new_data_folder_is_created() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("a").join("raft");
    let mut ls = LogStore::open(&dir).unwrap();
    append(&mut ls, 0..3, 1).await;
    drop(ls);
    let mut ls = LogStore::open(&dir).unwrap();
    assert_eq!(indexes(&mut ls).await, [(0, 1), (1, 1), (2, 1)]);
}

#[tokio::test]
async fn segments_roll_and_survive_reopen_truncate_and_purge() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    for b in 0..30 {
        append(&mut ls, b * 100..(b + 1) * 100, 1).await;
    }
    let segs = |d: &std::path::Path| {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        v.sort();
        v
    };
    let rolled = segs(d.path());
    assert!(rolled.len() >= 2, "{rolled:?}");
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    let all = indexes(&mut ls).await;
    assert_eq!(all.len(), 3000);
    assert!(all.iter().enumerate().all(|(i, e)| *e == (i as u64, 1)));
    // Back into the first segment: the later ones go, new entries follow the cut.
    ls.truncate_after(Some(log_id::<C>(1, 1, 99)))
        .await
        .unwrap();
    assert_eq!(segs(d.path()).len(), 1);
    append(&mut ls, 100..3000, 2).await;
    ls.purge(log_id::<C>(2, 1, 2500)).await.unwrap();
    drop(ls);
    let mut ls = LogStore::open(d.path()).unwrap();
    let left = indexes(&mut ls).await;
    assert_eq!(left.first(), Some(&(2501, 2)));
    assert_eq!(left.last(), Some(&(2999, 2)));
    assert_eq!(left.len(), 499);
    assert!(segs(d.path()).len() < rolled.len());
}

#[tokio::test]
async fn a_damaged_segment_header_before_intact_records_refuses_to_start() {
    // Read as a version 1 segment, its records would be a torn tail and be cut.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..3, 1).await;
    drop(ls);
    let seg = d.path().join(seg_name(0));
    let mut b = fs::read(&seg).unwrap();
    b[1] ^= 0xff;
    fs::write(&seg, &b).unwrap();
    let err = LogStore::open(d.path()).unwrap_err();
    assert!(err.to_string().contains("damaged header"), "{err}");
    assert_eq!(fs::read(&seg).unwrap(), b);
}

#[tokio::test]
async fn an_empty_version_1_segment_starts_again_with_a_header() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join(seg_name(0)), b"").unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..3, 1).await;
    drop(ls);
    let b = fs::read(d.path().join(seg_name(0))).unwrap();
    assert_eq!(&b[..segment::SEGMENT_HEADER], segment::segment_header());
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await, [(0, 1), (1, 1), (2, 1)]);
}

#[tokio::test]
async fn a_torn_write_with_later_pages_on_disk_is_cut_there() {
    // One batch, one write: the kernel may have written a later page of it and not an
    // earlier one. Nothing of the batch was acknowledged, so all of it from the hole is cut.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..3, 1).await;
    let big = |i| {
        let op = crate::types::Op::MSet(vec![(
            bytes::Bytes::from_static(b"k"),
            bytes::Bytes::from(vec![7u8; 3000]),
        )]);
        let cmd = crate::types::Cmd {
            at_ms: 0,
            origin: 1,
            seq: i,
            op,
        };
        <Entry as openraft::entry::RaftEntry>::new_normal(log_id::<C>(1, 1, i), cmd)
    };
    let (tx, rx) = <C as openraft::type_config::TypeConfigExt>::oneshot();
    ls.append((3..8).map(big), IOFlushed::signal(tx))
        .await
        .unwrap();
    rx.await.unwrap().unwrap();
    drop(ls);
    // A whole sector in the middle of entry 4 never reached the disk; 5..7 did.
    let b = fs::read(d.path().join(seg_name(0))).unwrap();
    let (off, _) = records(&b)[4];
    let sector = (off / 512 + 2) * 512;
    rewrite(d.path(), sector..sector + 512, |b| b.fill(0));
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 4);
}

#[tokio::test]
async fn a_flipped_bit_in_the_last_segment_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    drop(ls);
    let seg = d.path().join(seg_name(0));
    let all = records(&fs::read(&seg).unwrap());
    // In a payload, with intact records after it.
    let (off, end) = all[2];
    rewrite(d.path(), off..end, |b| b[HEADER + 3] ^= 0x10);
    let err = LogStore::open(d.path()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("corrupt at byte {off}")) && err.contains("after entry 1"),
        "{err}"
    );
    rewrite(d.path(), off..end, |b| b[HEADER + 3] ^= 0x10);
    // In the last record's length: a record written whole, whatever follows it.
    let (off, end) = all[5];
    rewrite(d.path(), off..end, |b| b[1] ^= 0x01);
    let err = LogStore::open(d.path()).unwrap_err().to_string();
    assert!(err.contains("not a torn write"), "{err}");
    // In the last record's payload.
    rewrite(d.path(), off..end, |b| {
        b[1] ^= 0x01;
        b[HEADER] ^= 0x80;
    });
    assert!(LogStore::open(d.path()).is_err());
    // Nothing was cut while refusing: put back, every entry is there.
    rewrite(d.path(), off..end, |b| b[HEADER] ^= 0x80);
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 6);
}

#[tokio::test]
async fn a_file_ending_inside_its_last_record_is_a_torn_tail() {
    // Where the file system cannot allocate ahead, a lost write leaves the file short.
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..6, 1).await;
    drop(ls);
    let seg = d.path().join(seg_name(0));
    let (_, end) = *records(&fs::read(&seg).unwrap()).last().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(end as u64 - 2)
        .unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut ls).await.len(), 5);
}

#[test]
fn sectors_of_zeros_tell_a_torn_record_from_a_damaged_one() {
    use super::open::{Tail, tail_at};
    let payload = vec![1u8; 1500];
    let rec = crc_record(&payload);
    let mut b = vec![0u8; 100];
    b.extend_from_slice(&rec);
    b.resize(4096, 0);
    let whole = b.clone();
    assert!(parse_record(&whole, 100).is_some());
    // A sector of the record that never reached the disk.
    let mut torn = whole.clone();
    torn[512..1024].fill(0);
    assert_eq!(tail_at(&torn, 100), Tail::Torn);
    // The part of the first sector it shares with earlier data.
    let mut torn = whole.clone();
    torn[100..512].fill(0);
    assert_eq!(tail_at(&torn, 100), Tail::Torn);
    // The file ends inside it.
    assert_eq!(tail_at(&whole[..1000], 100), Tail::Torn);
    assert_eq!(tail_at(&whole[..104], 100), Tail::Torn);
    // A flipped bit anywhere in it, length included.
    for at in [100, 101, 103, 104, 108, 700, 1607] {
        let mut bad = whole.clone();
        bad[at] ^= 0x04;
        assert_eq!(tail_at(&bad, 100), Tail::Damaged, "byte {at}");
    }
    // A record whose own bytes end in zeros past a sector boundary, followed by another
    // record: damaged, not torn (the sector holds the next record's bytes).
    let mut payload = vec![1u8; 700];
    payload.extend([0u8; 400]);
    let mut b = vec![0u8; 100];
    b.extend_from_slice(&crc_record(&payload));
    b.extend_from_slice(&crc_record(&[9u8; 50]));
    b.resize(4096, 0);
    assert!(parse_record(&b, 100).is_some());
    let mut bad = b.clone();
    bad[300] ^= 0x01;
    assert_eq!(tail_at(&bad, 100), Tail::Damaged);
    // Short bits of zeros inside a sector of the record are data, not a lost sector.
    let mut payload = vec![1u8; 1500];
    payload[600..610].fill(0);
    let mut b = vec![0u8; 100];
    b.extend_from_slice(&crc_record(&payload));
    b.resize(4096, 0);
    b[1000] ^= 0x01;
    assert_eq!(tail_at(&b, 100), Tail::Damaged);
}

#[test]
fn a_record_written_in_place_is_the_record_of_its_payload() {
    let e: Entry = blank_ent::<C>(3, 1, 7);
    let mut buf = vec![5u8; 3];
    let len = super::segment::append_record(&mut buf, &e).unwrap();
    let payload = bincode::serialize(&e).unwrap();
    assert_eq!(&buf[..3], &[5, 5, 5]);
    assert_eq!(&buf[3..], &crc_record(&payload)[..]);
    assert_eq!(len, buf.len() - 3);
    assert_eq!(
        parse_record(&buf, 3).map(|(p, _)| p.to_vec()),
        Some(payload)
    );
}

#[tokio::test]
async fn a_group_alone_uncaches_applied_entries_and_reads_them_from_the_file() {
    let d = tempfile::tempdir().unwrap();
    let mut ls = LogStore::open(d.path()).unwrap();
    append(&mut ls, 0..20, 1).await;
    assert_eq!(ls.inner.st.lock().cache.len(), 20);
    let applied = Arc::new(AtomicU64::new(0));
    ls.uncache_applied(applied.clone());
    applied.store(24, Ordering::Release);
    // Entries leave the cache as appends come once they are applied; the rest stay.
    append(&mut ls, 20..30, 1).await;
    {
        let st = ls.inner.st.lock();
        let cached: Vec<u64> = st.cache.keys().copied().collect();
        assert_eq!(cached, (24..30).collect::<Vec<_>>());
        let held: usize = st.cache.values().map(|(_, s)| s).sum();
        assert_eq!(st.cache_bytes, held);
    }
    // Every entry still reads, the uncached ones from their segment.
    let want: Vec<(u64, u64)> = (0..30).map(|i| (i, 1)).collect();
    assert_eq!(indexes(&mut ls).await, want);
}
