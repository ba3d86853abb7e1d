//! Replays the corpus of the fuzz targets for this crate's formats, kept in `fuzz/corpus/`
//! (and any crash inputs saved in `fuzz/artifacts/`): every input found once stays a test.

use shardai_protocol::fuzz::replay;
use shardai_raft::fuzz::{bus_frames, dump_payload, log_segment, snapshot};

#[test]
fn the_dump_payload_corpus_replays() {
    replay("dump_payload", dump_payload);
}

#[test]
fn the_log_segment_corpus_replays() {
    replay("log_segment", log_segment);
}

#[test]
fn the_snapshot_corpus_replays() {
    replay("snapshot", snapshot);
}

#[test]
fn the_bus_frames_corpus_replays() {
    replay("bus_frames", bus_frames);
}
