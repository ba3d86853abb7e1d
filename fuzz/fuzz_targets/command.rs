//! Every command parser (DAGs and tensors included) and the key finders.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_protocol::fuzz::command(data));
