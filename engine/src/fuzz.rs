//! Entry point of the tensor fuzz target in `fuzz/` (cargo-fuzz) and of the corpus replay test
//! (`engine/tests/fuzz_corpus.rs`): AI.TENSORSET's BLOB and VALUES decoding on arbitrary
//! bytes must never panic, and what it accepts must hold together.

use bytes::Bytes;
use shardai_protocol::DType;

use crate::Tensor;

/// The first byte picks the type, the second the rank (0 to 3), then one byte per dimension;
/// the rest is a BLOB, and also VALUES split at 0xFF bytes.
pub fn tensor(data: &[u8]) {
    let [d, rank, rest @ ..] = data else {
        return;
    };
    let dtype = DType::ALL[usize::from(*d) % DType::ALL.len()];
    let rank = usize::from(rank % 4).min(rest.len());
    let (dims, body) = rest.split_at(rank);
    let shape: Vec<usize> = dims.iter().map(|&b| usize::from(b)).collect();
    if let Ok(t) = Tensor::from_blob(dtype, shape.clone(), Bytes::copy_from_slice(body)) {
        check(&t);
    }
    let values: Vec<Bytes> = body
        .split(|b| *b == 0xff)
        .map(Bytes::copy_from_slice)
        .collect();
    if let Ok(t) = Tensor::from_values(dtype, shape, &values) {
        check(&t);
    }
}

/// An accepted tensor holds as many elements as its shape says and reads back.
fn check(t: &Tensor) {
    let n: usize = t.shape().iter().product();
    if let Some(size) = t.dtype().size() {
        assert_eq!(t.data().len(), n * size, "blob length and shape disagree");
    }
    let _ = t.values();
}
