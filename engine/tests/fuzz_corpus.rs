//! Replays the tensor fuzz target's corpus kept in `fuzz/corpus/tensor` (and any crash inputs
//! saved in `fuzz/artifacts/tensor`): every input found once stays a test.

#[test]
fn the_tensor_corpus_replays() {
    shardai_protocol::fuzz::replay("tensor", shardai_engine::fuzz::tensor);
}
