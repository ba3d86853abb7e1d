//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz) and of the corpus replay test
//! (`raft/tests/fuzz_corpus.rs`) for what this crate reads from disk and from other nodes:
//! each takes arbitrary bytes and must never panic (nor allocate what the bytes only claim).

use bytes::Bytes;
use shardai_protocol::Error;

/// A RESTORE payload: decoded, and restored as a key when it decodes (models not loaded).
pub fn dump_payload(data: &[u8]) {
    if let Ok(p) = crate::dump::decode(data) {
        let _ = p.restore(
            Bytes::from_static(b"k"),
            None,
            |_| Err(Error::Syntax),
            |_| Err(Error::Syntax),
        );
    }
}

/// A Raft log segment file, as the log reads it at start-up.
pub fn log_segment(data: &[u8]) {
    crate::log_store::fuzz_segment(data);
}

/// A snapshot file, as a node reads it when it starts or installs it.
pub fn snapshot(data: &[u8]) {
    crate::snapshot::fuzz_read(data);
}

/// What a node reads from a cluster bus connection: its opening and frames of every kind.
pub fn bus_frames(data: &[u8]) {
    crate::network::frame::fuzz_frames(data);
}
