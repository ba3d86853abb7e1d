//! Replays the tensor fuzz target's corpus kept in `fuzz/corpus/tensor` (and any crash inputs
//! saved in `fuzz/artifacts/tensor`): every input found once stays a test.

use std::path::Path;

#[test]
fn the_tensor_corpus_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("tensor")) else {
            continue;
        };
        for e in entries {
            shardai_engine::fuzz::tensor(&std::fs::read(e.unwrap().path()).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for the tensor target");
}
