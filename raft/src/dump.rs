//! DUMP / RESTORE payloads (what MIGRATE carries from one shard to another): one value in
//! the log's wire form (`Op`), framed with a magic, a version and a CRC32, so a payload
//! from elsewhere (Redis's RDB format, a truncated copy) is refused rather than misread.
//!
//! # Format
//!
//! `SHARDAI` (7 bytes), the format version (one byte: 1, the only one so far), the CRC32 of
//! the body (u32 LE), then the body: bincode of an [`Op`] (`Set` for a string, `SetTensor`,
//! `SetModel`, `SetScript`, `SetHash`, `SetList`) with an empty key. A payload of another version is refused with Redis's
//! text (`ERR DUMP payload version or checksum are wrong`) and its version is logged.

use bytes::Bytes;
use shardai_engine::{Deadline, Mutation, Value, model::Model, script::Script};
use shardai_protocol::Error;

use crate::{
    types::{Cmd, Op, WireModel, WireScript},
    version::refused,
};

/// What a payload starts with, before its version byte.
const MAGIC: &[u8; 7] = b"SHARDAI";
/// The format this build writes.
const VERSION: u8 = 1;
/// The formats this build reads.
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;
/// Bytes before the body: magic, version, CRC32.
const HEAD: usize = MAGIC.len() + 1 + 4;

/// Why a payload is refused (all answer the same client-visible text; see [`bad_payload`]).
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Not a shardai payload (too short, or another magic).
    Foreign,
    /// A shardai payload of a format version this build does not read.
    Version(u8),
    /// The CRC does not match (a damaged copy).
    Checksum,
    /// The checksum holds but the body does not decode.
    Body,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Foreign => f.write_str("not a shardai DUMP payload"),
            Refusal::Version(v) => f.write_str(&refused("DUMP payload", (*v).into(), &VERSIONS)),
            Refusal::Checksum => f.write_str("DUMP payload checksum mismatch"),
            Refusal::Body => f.write_str("DUMP payload body does not decode"),
        }
    }
}

fn bad_payload() -> Error {
    Error::Verbatim("ERR DUMP payload version or checksum are wrong".into())
}

/// The payload of `value` (without a TTL: RESTORE's argument carries it, as in Redis).
pub fn dump(value: &Value) -> Vec<u8> {
    let key = Bytes::new();
    let m = match value {
        Value::Str(b) => Mutation::Set {
            key,
            value: b.to_bytes(),
            cond: None,
            get: false,
            deadline: Deadline::None,
        },
        Value::Tensor(t) => Mutation::SetTensor {
            key,
            tensor: t.clone(),
        },
        Value::Model(m) => Mutation::SetModel {
            key,
            model: m.clone(),
        },
        Value::Script(s) => Mutation::SetScript {
            key,
            script: s.clone(),
        },
        Value::Hash(h) => Mutation::SetHash {
            key,
            hash: h.clone(),
        },
        Value::List(l) => Mutation::SetList {
            key,
            list: l.clone(),
        },
    };
    let body = bincode::serialize(&Cmd::of(&m, 0, 0, 0).op).expect("ops always encode");
    let mut out = Vec::with_capacity(body.len() + HEAD);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A checked DUMP payload, decoded once: the value it carries, in the log's wire form.
#[derive(Debug)]
pub struct DumpPayload(Op);

impl DumpPayload {
    /// True when restoring it loads a model (a backend call: run it on a blocking thread).
    pub fn loads_model(&self) -> bool {
        self.0.loads_model()
    }

    /// The mutation that stores the value under `key`, a string expiring at `deadline`
    /// (Unix ms) if given; `load` loads a model into the backends, `compile` compiles a
    /// script.
    pub fn restore(
        self,
        key: Bytes,
        deadline: Option<u64>,
        load: impl FnOnce(WireModel) -> Result<Model, Error>,
        compile: impl FnOnce(WireScript) -> Result<Script, Error>,
    ) -> Result<Mutation, Error> {
        let op = match self.0 {
            Op::Set { value, .. } => Op::Set {
                key,
                value,
                cond: 0,
                get: false,
                deadline: deadline.map_or((0, 0), |t| (2, t)),
            },
            Op::SetTensor(_, t) => Op::SetTensor(key, t),
            Op::SetModel(_, m) => Op::SetModel(key, m),
            Op::SetScript(_, sc) => Op::SetScript(key, sc),
            // An empty hash or list is no value (a crafted payload).
            Op::SetHash(_, h) if !h.is_empty() => Op::SetHash(key, h),
            Op::SetList(_, l) if !l.is_empty() => Op::SetList(key, l),
            Op::SetHash(..) | Op::SetList(..) => return Err(bad_payload()),
            // Not values: `dump` never writes them (listed, not `_`, so that a new `Op`
            // has to be placed here or above).
            Op::SetTensors(_)
            | Op::DelModel(_)
            | Op::MSet(_)
            | Op::IncrBy(..)
            | Op::Del(_)
            | Op::Flush
            | Op::ExpireDue
            | Op::DelScript(_)
            | Op::HSet(..)
            | Op::HDel(..)
            | Op::Push { .. }
            | Op::Pop { .. }
            | Op::Batch(_)
            | Op::Expire(..)
            | Op::Rename(..)
            | Op::Copy(..)
            | Op::GetDel(_)
            | Op::WriteRange(..)
            | Op::MSetNx(_)
            | Op::IncrByFloat(..)
            | Op::GetEx(..) => return Err(bad_payload()),
        };
        // Only a string's op carries a deadline: the others get theirs in the same entry.
        let deadline = deadline.filter(|_| !matches!(op, Op::Set { .. }));
        // One value: each closure is called at most once.
        let (mut load, mut compile) = (Some(load), Some(compile));
        let m = Cmd {
            at_ms: 0,
            origin: 0,
            seq: 0,
            op,
        }
        .mutation(
            |_, w| load.take().map_or_else(|| Err(bad_payload()), |f| f(w)),
            |_, s| compile.take().map_or_else(|| Err(bad_payload()), |f| f(s)),
        )?;
        Ok(match (deadline, m.first_key().cloned()) {
            (Some(t), Some(key)) => Mutation::Batch(vec![
                m,
                Mutation::Expire {
                    key,
                    at: Some(i64::try_from(t).unwrap_or(i64::MAX)),
                    cond: Default::default(),
                },
            ]),
            _ => m,
        })
    }
}

/// Checks the magic, version and CRC of `payload` and decodes it.
fn check(payload: &[u8]) -> Result<Op, Refusal> {
    if payload.len() < HEAD || &payload[..MAGIC.len()] != MAGIC {
        return Err(Refusal::Foreign);
    }
    let version = payload[MAGIC.len()];
    if !VERSIONS.contains(&version.into()) {
        return Err(Refusal::Version(version));
    }
    let crc = u32::from_le_bytes(payload[MAGIC.len() + 1..HEAD].try_into().expect("4 bytes"));
    if crc32fast::hash(&payload[HEAD..]) != crc {
        return Err(Refusal::Checksum);
    }
    bincode::deserialize(&payload[HEAD..]).map_err(|_| Refusal::Body)
}

/// Checks the magic, version and CRC of `payload` and decodes it. Every refusal answers
/// Redis's text; a payload of an unknown version (from a newer build) is also logged.
pub fn decode(payload: &[u8]) -> Result<DumpPayload, Error> {
    check(payload).map(DumpPayload).map_err(|r| {
        if let Refusal::Version(_) = r {
            tracing::warn!(reason = %r, "RESTORE refused a payload");
        }
        bad_payload()
    })
}

/// `decode` then `DumpPayload::restore`.
pub fn restore(
    payload: &[u8],
    key: Bytes,
    deadline: Option<u64>,
    load: impl FnOnce(WireModel) -> Result<Model, Error>,
    compile: impl FnOnce(WireScript) -> Result<Script, Error>,
) -> Result<Mutation, Error> {
    decode(payload)?.restore(key, deadline, load, compile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_tensors_round_trip() {
        let p = dump(&Value::Str("hello".into()));
        let m = restore(
            &p,
            Bytes::from("k2"),
            Some(99),
            |_| Err(Error::Syntax),
            |_| Err(Error::Syntax),
        )
        .unwrap();
        assert!(matches!(
            m,
            Mutation::Set { ref key, ref value, deadline: Deadline::At(99), .. }
                if key == "k2" && value == "hello"
        ));
        assert!(!decode(&p).unwrap().loads_model());
        let t = shardai_engine::Tensor::from_values(
            shardai_protocol::dtype::DType::Int32,
            vec![2],
            &[Bytes::from("1"), Bytes::from("-2")],
        )
        .unwrap();
        let p = dump(&Value::Tensor(t.clone()));
        let Mutation::SetTensor { key, tensor } = restore(
            &p,
            Bytes::from("t"),
            None,
            |_| Err(Error::Syntax),
            |_| Err(Error::Syntax),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((key, tensor), (Bytes::from("t"), t));
    }

    #[test]
    fn foreign_or_damaged_payloads_are_refused() {
        let mut p = dump(&Value::Str("x".into()));
        let last = p.len() - 1;
        p[last] ^= 1;
        let e = restore(
            &p,
            Bytes::new(),
            None,
            |_| Err(Error::Syntax),
            |_| Err(Error::Syntax),
        )
        .unwrap_err();
        assert_eq!(
            e.wire_text(),
            "ERR DUMP payload version or checksum are wrong"
        );
        // A payload of a later format version: Redis's text to the client, the version in
        // the log.
        let mut p = dump(&Value::Str("x".into()));
        p[MAGIC.len()] = 7;
        assert_eq!(check(&p).unwrap_err(), Refusal::Version(7));
        assert_eq!(
            Refusal::Version(7).to_string(),
            "DUMP payload has format version 7; this build reads version 1"
        );
        let e = restore(
            &p,
            Bytes::new(),
            None,
            |_| Err(Error::Syntax),
            |_| Err(Error::Syntax),
        )
        .unwrap_err();
        assert_eq!(
            e.wire_text(),
            "ERR DUMP payload version or checksum are wrong"
        );
        // A Redis RDB payload (string "x", RDB version 10, CRC64).
        let rdb = b"\x00\x01x\n\x00\xa5\x04\xf8\x8c\xf3\x86\x91\xb8";
        assert!(
            restore(
                rdb,
                Bytes::new(),
                None,
                |_| Err(Error::Syntax),
                |_| Err(Error::Syntax)
            )
            .is_err()
        );
    }
}
