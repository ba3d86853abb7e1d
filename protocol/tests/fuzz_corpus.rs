//! Replays the fuzz corpus kept in `fuzz/corpus/` (and any crash inputs saved in
//! `fuzz/artifacts/`) through the fuzz targets' entry points: every input found once stays a
//! test.

use shardai_protocol::fuzz::{command, replay, request_decoder};

#[test]
fn the_request_decoder_corpus_replays() {
    replay("request_decoder", request_decoder);
}

#[test]
fn the_command_corpus_replays() {
    replay("command", command);
}
