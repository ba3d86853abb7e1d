//! Fuzz target: Raft log segment files as read at start-up (see `shardai_raft::fuzz::log_segment`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_raft::fuzz::log_segment(data));
