//! AI.MODELSTORE / AI.MODELSET, AI.MODELGET, AI.MODELDEL, AI.MODELEXECUTE / AI.MODELRUN
//! arguments, checked in RedisAI 1.2's order with its texts (see
//! `docs/redisai-model-commands.md`). Checks that need the stored model (its input and output
//! counts) happen when the command runs.

use bytes::Bytes;

use super::{Command, Cursor};
use crate::{error::Error, frame::parse_i64};

/// A model backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// TensorFlow (frozen GraphDef).
    Tf,
    /// TensorFlow Lite.
    TfLite,
    /// PyTorch (TorchScript).
    Torch,
    /// ONNX Runtime.
    Onnx,
}

impl Backend {
    /// Every backend, in RedisAI's order.
    pub const ALL: [Backend; 4] = [Backend::Tf, Backend::TfLite, Backend::Torch, Backend::Onnx];

    /// Parses a backend name, case-insensitively.
    pub fn parse(name: &[u8]) -> Option<Backend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The name RedisAI uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Tf => "TF",
            Backend::TfLite => "TFLITE",
            Backend::Torch => "TORCH",
            Backend::Onnx => "ONNX",
        }
    }
}

/// BATCHSIZE, MINBATCHSIZE and MINBATCHTIMEOUT (0 means unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOpts {
    /// Largest batch auto-batching builds.
    pub batchsize: u64,
    /// Smallest batch auto-batching waits for.
    pub minbatchsize: u64,
    /// Longest wait for MINBATCHSIZE, in ms.
    pub minbatchtimeout: u64,
}

/// `AI.MODELSTORE key backend device [TAG tag] [BATCHSIZE n [MINBATCHSIZE m
/// [MINBATCHTIMEOUT t]]] [INPUTS n name...] [OUTPUTS m name...] BLOB chunk...` (and the
/// deprecated AI.MODELSET, whose INPUTS/OUTPUTS have no counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    /// The key.
    pub key: Bytes,
    /// The backend.
    pub backend: Backend,
    /// The device as given (`CPU`, `GPU`, `GPU:1`).
    pub device: String,
    /// TAG, empty when absent.
    pub tag: Bytes,
    /// Batching options.
    pub batch: BatchOpts,
    /// Input node names (TF only).
    pub inputs: Vec<Bytes>,
    /// Output node names (TF only).
    pub outputs: Vec<Bytes>,
    /// The serialized model, in the chunks it arrived in.
    pub blob: Vec<Bytes>,
}

fn err(text: &str) -> Error {
    Error::Verbatim(text.to_string())
}

pub(super) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn valid_device(d: &[u8]) -> bool {
    if is(d, "CPU") || is(d, "GPU") {
        return true;
    }
    let upper = d.to_ascii_uppercase();
    (upper.starts_with(b"GPU:") || upper.starts_with(b"CPU:"))
        && d.len() > 4
        && d.len() < 10
        && d[4..].iter().all(u8::is_ascii_digit)
}

fn unsigned(v: Option<Bytes>, what: &str) -> Result<u64, Error> {
    v.and_then(|b| parse_i64(&b))
        .filter(|n| *n >= 0)
        .map(|n| n as u64)
        .ok_or_else(|| err(&format!("ERR Invalid argument for {what}")))
}

/// Parses AI.MODELSTORE (`deprecated` false) or AI.MODELSET (`deprecated` true).
pub(super) fn parse_modelstore(c: &mut Cursor, deprecated: bool) -> Result<ModelStore, Error> {
    let key = c.next_bytes()?;
    let backend = Backend::parse(&c.next_bytes()?).ok_or(Error::UnsupportedBackend)?;
    let device = c.next_bytes()?;
    if !valid_device(&device) {
        return Err(err("ERR Invalid DEVICE"));
    }
    let device = String::from_utf8_lossy(&device).into_owned();
    let mut m = ModelStore {
        key,
        backend,
        device,
        tag: Bytes::new(),
        batch: BatchOpts::default(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        blob: Vec::new(),
    };
    if c.eat("TAG") {
        m.tag = c.next_opt().unwrap_or_default();
    }
    if c.eat("BATCHSIZE") {
        if backend == Backend::TfLite {
            return Err(err("ERR Auto-batching not supported by the TFLITE backend"));
        }
        m.batch.batchsize = unsigned(c.next_opt(), "BATCHSIZE")?;
        if c.eat("MINBATCHSIZE") {
            if m.batch.batchsize == 0 {
                return Err(err("ERR MINBATCHSIZE specified without BATCHSIZE"));
            }
            m.batch.minbatchsize = unsigned(c.next_opt(), "MINBATCHSIZE")?;
            if c.eat("MINBATCHTIMEOUT") {
                if m.batch.minbatchsize == 0 {
                    return Err(err("ERR MINBATCHTIMEOUT specified without MINBATCHSIZE"));
                }
                m.batch.minbatchtimeout = unsigned(c.next_opt(), "MINBATCHTIMEOUT")?;
            }
        }
    }
    if c.peek().is_some_and(|a| is(a, "MINBATCHSIZE")) {
        return Err(err("ERR MINBATCHSIZE specified without BATCHSIZE"));
    }
    if c.peek().is_some_and(|a| is(a, "MINBATCHTIMEOUT")) {
        return Err(err("ERR MINBATCHTIMEOUT specified without MINBATCHSIZE"));
    }
    if c.remaining() == 0 {
        return Err(err("ERR Insufficient arguments, missing model BLOB"));
    }
    if deprecated {
        parse_io_without_counts(c, &mut m)?;
    } else {
        parse_io_with_counts(c, &mut m)?;
        if !c.eat("BLOB") {
            return Err(err("ERR Invalid argument, expected BLOB"));
        }
    }
    m.blob = c.rest();
    if m.blob.is_empty() {
        return Err(err("ERR Insufficient arguments, missing model BLOB"));
    }
    Ok(m)
}

/// MODELSTORE's `INPUTS n name... OUTPUTS m name...`, required for TF and refused otherwise.
fn parse_io_with_counts(c: &mut Cursor, m: &mut ModelStore) -> Result<(), Error> {
    if m.backend != Backend::Tf {
        if c.peek().is_some_and(|a| is(a, "INPUTS")) {
            return Err(err(
                "ERR INPUTS argument should not be specified for this backend",
            ));
        }
        return Ok(());
    }
    for (word, what, names) in [
        ("INPUTS", "input", &mut m.inputs),
        ("OUTPUTS", "output", &mut m.outputs),
    ] {
        if !c.eat(word) {
            return Err(err(&format!("ERR {word} not specified for TF")));
        }
        let n = c
            .next_opt()
            .and_then(|b| parse_i64(&b))
            .filter(|n| *n > 0)
            .ok_or_else(|| err(&format!("ERR Invalid argument for {what}_count")))?
            as usize;
        if c.remaining() < n {
            return Err(err(&format!(
                "ERR number of model {what}s does not match the number of given arguments"
            )));
        }
        for _ in 0..n {
            names.push(c.next_bytes()?);
        }
    }
    Ok(())
}

/// MODELSET's `[INPUTS name...] [OUTPUTS name...] BLOB`: TF needs both; other backends
/// ignore whatever stands before BLOB, as RedisAI did.
fn parse_io_without_counts(c: &mut Cursor, m: &mut ModelStore) -> Result<(), Error> {
    let mut opts = Vec::new();
    while let Some(a) = c.next_opt() {
        if is(&a, "BLOB") {
            if m.backend == Backend::Tf {
                split_io(&opts, m)?;
            }
            return Ok(());
        }
        opts.push(a);
    }
    Err(err("ERR Insufficient arguments, missing model BLOB"))
}

fn split_io(opts: &[Bytes], m: &mut ModelStore) -> Result<(), Error> {
    if opts.is_empty() {
        return Err(err(
            "ERR Insufficient arguments, INPUTS and OUTPUTS not specified",
        ));
    }
    if !is(&opts[0], "INPUTS") {
        return Err(err("ERR INPUTS not specified"));
    }
    let out = opts
        .iter()
        .position(|a| is(a, "OUTPUTS"))
        .ok_or_else(|| err("ERR OUTPUTS not specified"))?;
    m.inputs = opts[1..out].to_vec();
    m.outputs = opts[out + 1..].to_vec();
    Ok(())
}

/// `AI.MODELGET key [META] [BLOB]`: BLOB alone returns the blob, META alone the metadata,
/// both or neither the metadata and the blob (other words are ignored, as in RedisAI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGet {
    /// The key.
    pub key: Bytes,
    /// META was given.
    pub meta: bool,
    /// BLOB was given.
    pub blob: bool,
}

pub(super) fn parse_modelget(c: &mut Cursor) -> Result<ModelGet, Error> {
    if c.remaining() > 3 {
        return Err(c.arity_error());
    }
    let key = c.next_bytes()?;
    let (mut meta, mut blob) = (false, false);
    for a in c.rest() {
        meta |= is(&a, "META");
        blob |= is(&a, "BLOB");
    }
    Ok(ModelGet { key, meta, blob })
}

/// `AI.MODELEXECUTE key INPUTS n key... OUTPUTS m key... [TIMEOUT ms]` and the deprecated
/// `AI.MODELRUN key [TIMEOUT ms] INPUTS key... OUTPUTS key...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelExecute {
    /// The model's key.
    pub key: Bytes,
    /// Input tensor keys.
    pub inputs: Vec<Bytes>,
    /// Output tensor keys.
    pub outputs: Vec<Bytes>,
    /// Longest wait in the run queue, in ms.
    pub timeout_ms: Option<u64>,
}

fn timeout(v: Option<Bytes>) -> Result<u64, Error> {
    let v = v.ok_or_else(|| err("ERR No value provided for TIMEOUT"))?;
    parse_i64(&v)
        .filter(|n| *n > 0)
        .map(|n| n as u64)
        .ok_or_else(|| err("ERR Invalid value for TIMEOUT"))
}

/// The INPUTS count of an AI.MODELEXECUTE `argv` (name first) when it is a positive integer
/// right after `INPUTS`: RedisAI compares it with the model's inputs before it parses the rest.
pub fn modelexecute_input_count(argv: &[Bytes]) -> Option<usize> {
    if !argv.get(2).is_some_and(|a| is(a, "INPUTS")) {
        return None;
    }
    parse_i64(argv.get(3)?)
        .filter(|n| *n > 0)
        .map(|n| n as usize)
}

pub(super) fn parse_modelexecute(c: &mut Cursor) -> Result<ModelExecute, Error> {
    let key = c.next_bytes()?;
    let mut lists: [Vec<Bytes>; 2] = [Vec::new(), Vec::new()];
    for (i, (word, what)) in [("INPUTS", "input"), ("OUTPUTS", "output")]
        .into_iter()
        .enumerate()
    {
        if !c.eat(word) {
            return Err(err(&format!("ERR {word} not specified")));
        }
        let n = c
            .next_opt()
            .and_then(|b| parse_i64(&b))
            .ok_or_else(|| err(&format!("ERR Invalid argument for {what}_count")))?;
        if n <= 0 {
            let cap = if i == 0 { "Input" } else { "Output" };
            return Err(err(&format!("ERR {cap} count must be a positive integer")));
        }
        if c.remaining() < n as usize {
            return Err(err(&format!(
                "ERR number of {what} keys to AI.MODELEXECUTE command does not match the number \
                 of given arguments"
            )));
        }
        for _ in 0..n {
            lists[i].push(c.next_bytes()?);
        }
    }
    let mut timeout_ms = None;
    if let Some(a) = c.next_opt() {
        if !is(&a, "TIMEOUT") {
            return Err(err(&format!(
                "Invalid argument: {}",
                String::from_utf8_lossy(&a)
            )));
        }
        timeout_ms = Some(timeout(c.next_opt())?);
        if let Some(extra) = c.next_opt() {
            return Err(err(&format!(
                "Invalid argument: {}",
                String::from_utf8_lossy(&extra)
            )));
        }
    }
    let [inputs, outputs] = lists;
    Ok(ModelExecute {
        key,
        inputs,
        outputs,
        timeout_ms,
    })
}

pub(super) fn parse_modelrun(c: &mut Cursor) -> Result<ModelExecute, Error> {
    let key = c.next_bytes()?;
    let mut timeout_ms = None;
    if c.eat("TIMEOUT") {
        timeout_ms = Some(timeout(c.next_opt())?);
    }
    if !c.eat("INPUTS") {
        return Err(err("ERR INPUTS not specified"));
    }
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    let mut in_outputs = false;
    for a in c.rest() {
        if !in_outputs && is(&a, "OUTPUTS") {
            in_outputs = true;
        } else if in_outputs {
            outputs.push(a);
        } else {
            inputs.push(a);
        }
    }
    Ok(ModelExecute {
        key,
        inputs,
        outputs,
        timeout_ms,
    })
}

// Registry parsers (see `crate::table`).

/// `AI.MODELSTORE ...`
pub(crate) fn modelstore(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelStore(parse_modelstore(c, false)?))
}

/// `AI.MODELSET ...` (deprecated)
pub(crate) fn modelset(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelStore(parse_modelstore(c, true)?))
}

/// `AI.MODELGET ...`
pub(crate) fn modelget(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelGet(parse_modelget(c)?))
}

/// `AI.MODELDEL key`
pub(crate) fn modeldel(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelDel(c.next_bytes()?))
}

/// `AI.MODELEXECUTE ...`
pub(crate) fn modelexecute(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelExecute(parse_modelexecute(c)?))
}

/// `AI.MODELRUN ...` (deprecated)
pub(crate) fn modelrun(c: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelExecute(parse_modelrun(c)?))
}

/// `AI._MODELSCAN`
pub(crate) fn modelscan(_: &mut Cursor) -> Result<Command, Error> {
    Ok(Command::ModelScan)
}

/// `AI.INFO key [RESETSTAT]`
pub(crate) fn ai_info(c: &mut Cursor) -> Result<Command, Error> {
    if c.remaining() > 2 {
        return Err(c.arity_error());
    }
    let key = c.next_bytes()?;
    // RedisAI ignores a third argument other than RESETSTAT.
    let reset = c
        .next_opt()
        .is_some_and(|a| a.eq_ignore_ascii_case(b"RESETSTAT"));
    Ok(Command::AiInfo { key, reset })
}

#[cfg(test)]
mod tests {
    use super::super::{Command, tests::parse};
    use super::*;

    fn store(s: &str) -> Result<ModelStore, Error> {
        match parse(s)? {
            Command::ModelStore(m) => Ok(m),
            other => panic!("{other:?}"),
        }
    }

    fn text(s: &str) -> String {
        parse(s).unwrap_err().wire_text()
    }

    #[test]
    fn modelstore_forms() {
        let m = store("AI.MODELSTORE m TF CPU TAG v1 BATCHSIZE 8 MINBATCHSIZE 2 MINBATCHTIMEOUT 5 INPUTS 2 a b OUTPUTS 1 c BLOB x y").unwrap();
        assert_eq!(m.backend, Backend::Tf);
        assert_eq!(m.device, "CPU");
        assert_eq!(&m.tag[..], b"v1");
        assert_eq!(
            m.batch,
            BatchOpts {
                batchsize: 8,
                minbatchsize: 2,
                minbatchtimeout: 5
            }
        );
        assert_eq!(m.inputs.len(), 2);
        assert_eq!(m.outputs.len(), 1);
        assert_eq!(
            m.blob,
            vec![Bytes::from_static(b"x"), Bytes::from_static(b"y")]
        );
        let m = store("ai.modelstore m onnx gpu:1 BLOB x").unwrap();
        assert_eq!((m.backend, m.device.as_str()), (Backend::Onnx, "gpu:1"));
        let m = store("AI.MODELSET m TF CPU INPUTS a b OUTPUTS c BLOB x").unwrap();
        assert_eq!((m.inputs.len(), m.outputs.len()), (2, 1));
        let m = store("AI.MODELSET m TORCH CPU INPUTS a BLOB x").unwrap();
        assert!(
            m.inputs.is_empty(),
            "non-TF MODELSET ignores names, as RedisAI did"
        );
    }

    #[test]
    fn modelstore_errors_in_redisai_order() {
        let cases = [
            (
                "AI.MODELSTORE m TORCH BLOB x",
                "ERR wrong number of arguments for 'AI.MODELSTORE' command",
            ),
            (
                "AI.MODELSTORE m CAFFE CPU BLOB x",
                "ERR unsupported backend",
            ),
            ("AI.MODELSTORE m TORCH TPU BLOB x", "ERR Invalid DEVICE"),
            ("AI.MODELSTORE m TORCH GPU:x BLOB x", "ERR Invalid DEVICE"),
            ("AI.MODELSTORE m TORCH CPU:1.8 BLOB x", "ERR Invalid DEVICE"),
            (
                "AI.MODELSTORE m TORCH CPU:123456 BLOB x",
                "ERR Invalid DEVICE",
            ),
            ("AI.MODELSTORE m TORCH GPU:-1 BLOB x", "ERR Invalid DEVICE"),
            (
                "AI.MODELSTORE m TFLITE CPU BATCHSIZE 2 BLOB x",
                "ERR Auto-batching not supported by the TFLITE backend",
            ),
            (
                "AI.MODELSTORE m TORCH CPU BATCHSIZE -1 BLOB x",
                "ERR Invalid argument for BATCHSIZE",
            ),
            (
                "AI.MODELSTORE m TORCH CPU BATCHSIZE 0 MINBATCHSIZE 2 BLOB x",
                "ERR MINBATCHSIZE specified without BATCHSIZE",
            ),
            (
                "AI.MODELSTORE m TORCH CPU MINBATCHSIZE 2 BLOB x",
                "ERR MINBATCHSIZE specified without BATCHSIZE",
            ),
            (
                "AI.MODELSTORE m TORCH CPU BATCHSIZE 2 MINBATCHSIZE x BLOB x",
                "ERR Invalid argument for MINBATCHSIZE",
            ),
            (
                "AI.MODELSTORE m TORCH CPU BATCHSIZE 2 MINBATCHSIZE 0 MINBATCHTIMEOUT 5 BLOB",
                "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE",
            ),
            (
                "AI.MODELSTORE m TORCH CPU BATCHSIZE 2 MINBATCHSIZE 1 MINBATCHTIMEOUT x BLOB",
                "ERR Invalid argument for MINBATCHTIMEOUT",
            ),
            (
                "AI.MODELSTORE m TORCH CPU TAG v1 BATCHSIZE 2",
                "ERR Insufficient arguments, missing model BLOB",
            ),
            (
                "AI.MODELSTORE m TF CPU BLOB x",
                "ERR INPUTS not specified for TF",
            ),
            (
                "AI.MODELSTORE m TF CPU INPUTS 0 BLOB x",
                "ERR Invalid argument for input_count",
            ),
            (
                "AI.MODELSTORE m TF CPU INPUTS 3 a b",
                "ERR number of model inputs does not match the number of given arguments",
            ),
            (
                "AI.MODELSTORE m TF CPU INPUTS 1 a BLOB x",
                "ERR OUTPUTS not specified for TF",
            ),
            (
                "AI.MODELSTORE m TF CPU INPUTS 1 a OUTPUTS x c BLOB x",
                "ERR Invalid argument for output_count",
            ),
            (
                "AI.MODELSTORE m TF CPU INPUTS 1 a OUTPUTS 1 c",
                "ERR Invalid argument, expected BLOB",
            ),
            (
                "AI.MODELSTORE m ONNX CPU INPUTS 1 a BLOB x",
                "ERR INPUTS argument should not be specified for this backend",
            ),
            (
                "AI.MODELSTORE m ONNX CPU OUTPUTS 1 a BLOB x",
                "ERR Invalid argument, expected BLOB",
            ),
            (
                "AI.MODELSTORE m ONNX CPU TAG t BLOB",
                "ERR Insufficient arguments, missing model BLOB",
            ),
            (
                "AI.MODELSET m TF CPU BLOB x",
                "ERR Insufficient arguments, INPUTS and OUTPUTS not specified",
            ),
            (
                "AI.MODELSET m TF CPU OUTPUTS a BLOB x",
                "ERR INPUTS not specified",
            ),
            (
                "AI.MODELSET m TF CPU INPUTS a BLOB x",
                "ERR OUTPUTS not specified",
            ),
            (
                "AI.MODELSET m TF CPU INPUTS a OUTPUTS b",
                "ERR Insufficient arguments, missing model BLOB",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(text(cmd), want, "{cmd}");
        }
    }

    #[test]
    fn modelget() {
        assert_eq!(
            parse("AI.MODELGET m META BLOB").unwrap(),
            Command::ModelGet(ModelGet {
                key: Bytes::from_static(b"m"),
                meta: true,
                blob: true
            })
        );
        let neither = Command::ModelGet(ModelGet {
            key: Bytes::from_static(b"m"),
            meta: false,
            blob: false,
        });
        assert_eq!(parse("AI.MODELGET m").unwrap(), neither);
        assert_eq!(parse("AI.MODELGET m JSON").unwrap(), neither);
        assert_eq!(
            text("AI.MODELGET m META BLOB x y"),
            "ERR wrong number of arguments for 'AI.MODELGET' command"
        );
    }

    #[test]
    fn modelexecute() {
        let Command::ModelExecute(e) =
            parse("AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 50").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (e.inputs.len(), e.outputs.len(), e.timeout_ms),
            (2, 1, Some(50))
        );
        let cases = [
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS",
                "ERR wrong number of arguments for 'AI.MODELEXECUTE' command",
            ),
            (
                "AI.MODELEXECUTE m TIMEOUT 5 INPUTS 1 a OUTPUTS 1 b",
                "ERR INPUTS not specified",
            ),
            (
                "AI.MODELEXECUTE m INPUTS x a OUTPUTS 1 b",
                "ERR Invalid argument for input_count",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 0 a OUTPUTS 1 b",
                "ERR Input count must be a positive integer",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 9 a OUTPUTS 1 b",
                "ERR number of input keys to AI.MODELEXECUTE command does not match the number of given arguments",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUT 1 b",
                "ERR OUTPUTS not specified",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS -1 b",
                "ERR Output count must be a positive integer",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 3 b c",
                "ERR number of output keys to AI.MODELEXECUTE command does not match the number of given arguments",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b EXTRA",
                "Invalid argument: EXTRA",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT",
                "ERR No value provided for TIMEOUT",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 0",
                "ERR Invalid value for TIMEOUT",
            ),
            (
                "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 5 x",
                "Invalid argument: x",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(text(cmd), want, "{cmd}");
        }
        let Command::ModelExecute(r) =
            parse("AI.MODELRUN m TIMEOUT 5 INPUTS a b OUTPUTS c").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.inputs.len(), r.outputs.len(), r.timeout_ms),
            (2, 1, Some(5))
        );
        assert_eq!(
            text("AI.MODELRUN m OUTPUTS a b c"),
            "ERR INPUTS not specified"
        );
    }
}
