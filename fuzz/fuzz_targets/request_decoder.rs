//! RESP requests (multibulk and inline) read whole and in pieces.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shardai_protocol::fuzz::request_decoder(data));
