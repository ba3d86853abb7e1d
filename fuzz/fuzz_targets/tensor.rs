//! Fuzz target: AI.TENSORSET's BLOB and VALUES decoding (see `shardai_engine::fuzz::tensor`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_engine::fuzz::tensor(data));
