//! Fuzz target: Snapshot files as read at start-up or install (see `shardai_raft::fuzz::snapshot`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_raft::fuzz::snapshot(data));
