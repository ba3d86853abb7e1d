//! Fuzz target: RESTORE payloads (see `shardai_raft::fuzz::dump_payload`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_raft::fuzz::dump_payload(data));
