//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz) and of the corpus replay test
//! (`protocol/tests/fuzz_corpus.rs`): each takes arbitrary bytes, must never panic, and checks
//! what must hold whatever the input.

use bytes::{Bytes, BytesMut};

use crate::{
    command::Command,
    frame::{Decoded, RequestDecoder, split_args},
    table,
};

/// Runs every input kept for `target` in `fuzz/corpus/` (and any crash input saved in
/// `fuzz/artifacts/`) through `f`: the corpus replay tests of each crate with fuzz targets.
/// Panics when there is none.
pub fn replay(target: &str, f: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.expect("corpus entry").path();
            f(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}

/// Small limits, so that inputs explore the limit checks rather than allocate.
const MAX_BULK: usize = 1 << 16;
const MAX_REQUEST: usize = 1 << 20;

/// Every request `decoder` takes off `buf`, until it wants more or refuses.
fn drain(decoder: &mut RequestDecoder, buf: &mut BytesMut, out: &mut Vec<Vec<Bytes>>) -> bool {
    loop {
        match decoder.decode(buf) {
            Ok(Decoded::Request(argv)) => {
                assert!(!argv.is_empty(), "a request is never empty");
                out.push(argv);
            }
            Ok(Decoded::Empty) => {}
            Ok(Decoded::Incomplete { need }) => {
                assert!(need > buf.len(), "Incomplete must ask for more bytes");
                return true;
            }
            Err(_) => return false,
        }
    }
}

/// The request decoder: the input read at once and read in small pieces (the first byte sets
/// their size) must give the same requests, and the same refusal.
pub fn request_decoder(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let (mut whole, mut pieces) = (Vec::new(), Vec::new());
    let mut d = RequestDecoder::new(MAX_BULK, MAX_REQUEST);
    let mut buf = BytesMut::from(data);
    let whole_ok = drain(&mut d, &mut buf, &mut whole);
    let mut d = RequestDecoder::new(MAX_BULK, MAX_REQUEST);
    let mut buf = BytesMut::new();
    let mut pieces_ok = true;
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        if !drain(&mut d, &mut buf, &mut pieces) {
            pieces_ok = false;
            break;
        }
    }
    assert_eq!(
        whole_ok, pieces_ok,
        "refused read whole but not in pieces, or the reverse"
    );
    if whole_ok {
        assert_eq!(whole, pieces, "requests differ when read in pieces");
    }
}

/// Every command parser, the DAG parser and the key finders: arguments are the input split
/// at 0xFF bytes (the first one the command's name).
pub fn command(data: &[u8]) {
    let _ = split_args(data);
    let argv: Vec<Bytes> = data
        .split(|b| *b == 0xff)
        .map(Bytes::copy_from_slice)
        .collect();
    if argv.is_empty() || argv[0].is_empty() {
        return;
    }
    if let Some(spec) = table::lookup(&argv[0]) {
        let _ = spec.keys(&argv);
    }
    let _ = Command::parse(argv);
}
