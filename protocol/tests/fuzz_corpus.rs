//! Replays the fuzz corpus kept in `fuzz/corpus/` (and any crash inputs saved in
//! `fuzz/artifacts/`) through the fuzz targets' entry points: every input found once stays a
//! test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            f(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn the_request_decoder_corpus_replays() {
    replay("request_decoder", shardai_protocol::fuzz::request_decoder);
}

#[test]
fn the_command_corpus_replays() {
    replay("command", shardai_protocol::fuzz::command);
}
