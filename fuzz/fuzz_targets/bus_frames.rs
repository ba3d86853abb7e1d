//! Fuzz target: What a node reads from a cluster bus connection (see `shardai_raft::fuzz::bus_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_raft::fuzz::bus_frames(data));
