//! Replays the corpus of the fuzz targets for this crate's formats, kept in `fuzz/corpus/`
//! (and any crash inputs saved in `fuzz/artifacts/`): every input found once stays a test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            f(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn the_dump_payload_corpus_replays() {
    replay("dump_payload", shardai_raft::fuzz::dump_payload);
}

#[test]
fn the_log_segment_corpus_replays() {
    replay("log_segment", shardai_raft::fuzz::log_segment);
}

#[test]
fn the_snapshot_corpus_replays() {
    replay("snapshot", shardai_raft::fuzz::snapshot);
}

#[test]
fn the_bus_frames_corpus_replays() {
    replay("bus_frames", shardai_raft::fuzz::bus_frames);
}
