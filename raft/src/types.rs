//! The openraft type configuration and the log's data: [`Cmd`] (the wire form of an engine
//! `Mutation`), [`ApplyResult`] (the wire form of its result) and [`ShardNode`] (a replica's
//! addresses).
//!
//! All of these are formats: they are stored in the Raft log and snapshots and sent on the
//! bus (and `Op` in DUMP payloads), as positional bincode. Enum variants are only ever
//! appended at the end (bincode encodes a variant's index), and changing a field, its type
//! or the order of anything means a new format version of every encoding that carries it
//! (see `version.rs`). The golden-bytes tests (`golden.rs`) fail otherwise: every variant of
//! `Op` (with a `WireTensor` and a `WireModel`) and of `ApplyResult` is in a committed fixture,
//! decoded with its content checked, and today's writers must reproduce those bytes exactly.
//!
//! A `Cmd` carries everything a replica needs to apply the mutation by itself: tensors as
//! dtype, shape and bytes, models as their blob and options (each replica loads the model
//! into its own backends when it applies the entry), and the leader's clock (`at_ms`), so
//! that conditions and expiry decided at apply time come out the same everywhere.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shardai_engine::{
    Applied, Deadline, Mutation,
    collections::{Hash, List},
    model::Model,
    script::{NotCompiled, Script, check_entry_points},
    tensor::Tensor,
};
use shardai_protocol::{
    DType, Error,
    command::{Backend as Kind, BatchOpts, ExpireCond, SetCond},
};

/// A replica's addresses. On disk and on the wire (in memberships): a changed field is a
/// new format version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardNode {
    /// host:port of its Raft transport (the cluster bus).
    pub raft_addr: String,
    /// host:port clients use (what MOVED names).
    pub client_addr: String,
}

impl fmt::Display for ShardNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (bus {})", self.client_addr, self.raft_addr)
    }
}

openraft::declare_raft_types!(
    /// shardai's Raft types: `Cmd` entries, `ApplyResult` results, `u64` node ids, and standard
    /// Raft leader ids (at most one leader per term; openraft's default allows several).
    pub TypeConfig:
        D = Cmd,
        R = ApplyResult,
        NodeId = u64,
        Node = ShardNode,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
        Entry = openraft::Entry<
            <Self::LeaderId as openraft::vote::RaftLeaderId>::Committed,
            Self::Payload,
        >,
        Vote = openraft::impls::Vote<Self::LeaderId>,
);

/// A tensor on the wire. On disk and on the wire: a changed field is a new format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireTensor {
    /// Index into `DType::ALL`.
    pub dtype: u8,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub blob: Bytes,
}

impl WireTensor {
    /// The wire form of `t`.
    pub fn of(t: &Tensor) -> Self {
        let dtype = DType::ALL.iter().position(|d| *d == t.dtype()).unwrap_or(0) as u8;
        WireTensor {
            dtype,
            shape: t.shape().to_vec(),
            blob: t.blob(),
        }
    }

    /// Rebuilds the tensor.
    pub fn tensor(self) -> Result<Tensor, Error> {
        let dtype = *DType::ALL
            .get(self.dtype as usize)
            .ok_or(Error::InvalidDataType)?;
        Tensor::from_blob(dtype, self.shape, self.blob)
    }
}

/// A model on the wire: what AI.MODELSTORE was given. On disk and on the wire: a changed
/// field is a new format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireModel {
    /// Index into `Backend::ALL`.
    pub backend: u8,
    /// Device as given.
    pub device: String,
    /// TAG.
    pub tag: Bytes,
    /// BATCHSIZE, MINBATCHSIZE, MINBATCHTIMEOUT.
    pub batch: (u64, u64, u64),
    /// INPUTS.
    pub inputs: Vec<Bytes>,
    /// OUTPUTS.
    pub outputs: Vec<Bytes>,
    /// The serialized model.
    pub blob: Bytes,
}

impl WireModel {
    /// The wire form of `m`.
    pub fn of(m: &Model) -> Self {
        WireModel {
            backend: Kind::ALL.iter().position(|k| *k == m.backend).unwrap_or(0) as u8,
            device: m.device.clone(),
            tag: m.tag.clone(),
            batch: (
                m.batch.batchsize,
                m.batch.minbatchsize,
                m.batch.minbatchtimeout,
            ),
            inputs: m.inputs.clone(),
            outputs: m.outputs.clone(),
            blob: m.blob.clone(),
        }
    }

    /// The backend.
    pub fn kind(&self) -> Result<Kind, Error> {
        Kind::ALL
            .get(self.backend as usize)
            .copied()
            .ok_or(Error::UnsupportedBackend)
    }

    /// Loads the model into `backends` (a backend call: run it on a blocking thread).
    pub fn load(self, backends: &shardai_engine::backend::Backends) -> Result<Model, Error> {
        let kind = self.kind()?;
        let loaded =
            backends.load_model(kind, &self.blob, &self.device, &self.inputs, &self.outputs)?;
        Ok(self.with(kind, loaded))
    }

    /// As [`WireModel::load`] for a replica applying a committed model: one its backend
    /// cannot load here is kept anyway, answering runs with the load error, so that replicas
    /// never silently differ (see `backend::NotLoaded`).
    pub fn load_or_keep(
        self,
        backends: &shardai_engine::backend::Backends,
        key: &[u8],
    ) -> Result<Model, Error> {
        let kind = self.kind()?;
        match backends.load_model(kind, &self.blob, &self.device, &self.inputs, &self.outputs) {
            Ok(loaded) => Ok(self.with(kind, loaded)),
            Err(e) => {
                tracing::error!(
                    key = %String::from_utf8_lossy(key),
                    backend = kind.name(),
                    error = %e.wire_text(),
                    "a replicated model cannot be loaded on this node: it is kept, and its runs \
                     answer this error until its backend is available (AI.CONFIG LOADBACKEND)"
                );
                let not = shardai_engine::backend::NotLoaded::new(e.wire_text());
                Ok(self.with(kind, Arc::new(not)))
            }
        }
    }

    fn with(self, kind: Kind, loaded: Arc<dyn shardai_engine::backend::LoadedModel>) -> Model {
        Model {
            backend: kind,
            device: self.device,
            tag: self.tag,
            batch: BatchOpts {
                batchsize: self.batch.0,
                minbatchsize: self.batch.1,
                minbatchtimeout: self.batch.2,
            },
            inputs: self.inputs,
            outputs: self.outputs,
            blob: self.blob,
            loaded,
            stats: Default::default(),
        }
    }
}

/// A script on the wire: what AI.SCRIPTSTORE was given. On disk and on the wire: a changed
/// field is a new format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireScript {
    /// Device as given.
    pub device: String,
    /// TAG.
    pub tag: Bytes,
    /// ENTRY_POINTS (empty for AI.SCRIPTSET).
    pub entry_points: Vec<Bytes>,
    /// The TorchScript source.
    pub source: Bytes,
}

impl WireScript {
    /// The wire form of `s`.
    pub fn of(s: &Script) -> Self {
        WireScript {
            device: s.device.clone(),
            tag: s.tag.clone(),
            entry_points: s.entry_points.clone(),
            source: s.source.clone(),
        }
    }

    /// Compiles the script and checks its entry points (a backend call: run it on a
    /// blocking thread).
    pub fn compile(self, backends: &shardai_engine::backend::Backends) -> Result<Script, Error> {
        let compiled = backends.compile_script(&self.source, &self.device)?;
        check_entry_points(&*compiled, &self.entry_points)?;
        Ok(self.with(compiled))
    }

    /// As [`WireScript::compile`] for a replica applying a committed script: one that does
    /// not compile here is kept anyway with its source, answering calls with the error, so
    /// that replicas never silently differ.
    pub fn compile_or_keep(
        self,
        backends: &shardai_engine::backend::Backends,
        key: &[u8],
    ) -> Script {
        match self.clone().compile(backends) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(
                    key = %String::from_utf8_lossy(key),
                    error = %e.wire_text(),
                    "a replicated script cannot be compiled on this node: it is kept, and its \
                     calls answer this error"
                );
                self.with(Arc::new(NotCompiled::new(e.wire_text())))
            }
        }
    }

    fn with(self, compiled: Arc<dyn shardai_engine::script::CompiledScript>) -> Script {
        Script {
            device: self.device,
            tag: self.tag,
            entry_points: self.entry_points,
            source: self.source,
            compiled,
            stats: Default::default(),
        }
    }
}

/// A mutation on the wire (log entries, DUMP payloads). On disk and on the wire: variants
/// are only ever appended at the end (bincode encodes the variant's index), and a changed
/// field is a new format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// `Mutation::SetTensor`.
    SetTensor(Bytes, WireTensor),
    /// `Mutation::SetTensors`.
    SetTensors(Vec<(Bytes, WireTensor)>),
    /// `Mutation::SetModel`.
    SetModel(Bytes, WireModel),
    /// `Mutation::DelModel`.
    DelModel(Bytes),
    /// `Mutation::Set`: key, value, cond (0 none, 1 NX, 2 XX), GET, deadline.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// 0 none, 1 NX, 2 XX.
        cond: u8,
        /// GET.
        get: bool,
        /// None, Keep (`Some(None)`)... encoded as (kind, at): 0 none, 1 keep, 2 at.
        deadline: (u8, u64),
    },
    /// `Mutation::MSet`.
    MSet(Vec<(Bytes, Bytes)>),
    /// `Mutation::IncrBy`.
    IncrBy(Bytes, i64),
    /// `Mutation::Del`.
    Del(Vec<Bytes>),
    /// `Mutation::Flush`.
    Flush,
    /// `Mutation::ExpireDue`.
    ExpireDue,
    /// `Mutation::SetScript`.
    SetScript(Bytes, WireScript),
    /// `Mutation::DelScript`.
    DelScript(Bytes),
    /// `Mutation::HSet`: key, fields and values.
    HSet(Bytes, Vec<(Bytes, Bytes)>),
    /// `Mutation::HDel`: key, fields.
    HDel(Bytes, Vec<Bytes>),
    /// `Mutation::Push`.
    Push {
        /// Key.
        key: Bytes,
        /// At the head.
        left: bool,
        /// Elements.
        values: Vec<Bytes>,
        /// Only onto an existing list.
        existing_only: bool,
    },
    /// `Mutation::Pop`.
    Pop {
        /// Key.
        key: Bytes,
        /// From the head.
        left: bool,
        /// At most this many.
        count: u64,
    },
    /// `Mutation::SetHash`: key, fields and values.
    SetHash(Bytes, Vec<(Bytes, Bytes)>),
    /// `Mutation::SetList`: key, elements head first.
    SetList(Bytes, Vec<Bytes>),
    /// `Mutation::Batch`: a transaction's writes, applied in order as one entry.
    Batch(Vec<Op>),
    /// `Mutation::Expire`: key, deadline (Unix ms; `None`: PERSIST), conditions
    /// (`ExpireCond::bits`).
    Expire(Bytes, Option<i64>, u8),
    /// `Mutation::Rename`: from, to, NX.
    Rename(Bytes, Bytes, bool),
    /// `Mutation::Copy`: from, to, REPLACE.
    Copy(Bytes, Bytes, bool),
    /// `Mutation::GetDel`.
    GetDel(Bytes),
    /// `Mutation::WriteRange`: key, offset (`None`: APPEND), bytes.
    WriteRange(Bytes, Option<u64>, Bytes),
    /// `Mutation::MSetNx`.
    MSetNx(Vec<(Bytes, Bytes)>),
    /// `Mutation::IncrByFloat`.
    IncrByFloat(Bytes, f64),
    /// `Mutation::GetEx`: key, change (0 keep, 1 remove, 2 the deadline), deadline.
    GetEx(Bytes, u8, i64),
}

impl Op {
    /// True when applying it needs a backend call (loading a model, compiling a script).
    /// Exhaustive on purpose: a new variant must say whether it loads a model.
    pub fn loads_model(&self) -> bool {
        match self {
            Op::SetModel(..) | Op::SetScript(..) => true,
            Op::Batch(ops) => ops.iter().any(Op::loads_model),
            Op::DelScript(_)
            | Op::HSet(..)
            | Op::HDel(..)
            | Op::Push { .. }
            | Op::Pop { .. }
            | Op::SetHash(..)
            | Op::SetList(..)
            | Op::SetTensor(..)
            | Op::SetTensors(_)
            | Op::DelModel(_)
            | Op::Set { .. }
            | Op::MSet(_)
            | Op::IncrBy(..)
            | Op::Del(_)
            | Op::Flush
            | Op::ExpireDue
            | Op::Expire(..)
            | Op::Rename(..)
            | Op::GetDel(_)
            | Op::WriteRange(..)
            | Op::MSetNx(_)
            | Op::IncrByFloat(..)
            | Op::GetEx(..) => false,
            // A copied model or script shares the loaded one.
            Op::Copy(..) => false,
        }
    }
}

/// One log entry's data: a mutation stamped by the leader that proposed it. On disk and on
/// the wire: a changed field is a new format version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cmd {
    /// The proposing leader's clock, Unix ms.
    pub at_ms: u64,
    /// The proposing node.
    pub origin: u64,
    /// The proposer's sequence number (lets the proposing node apply its own in-memory
    /// mutation instead of decoding the entry and reloading a model it already loaded).
    pub seq: u64,
    /// The mutation.
    pub op: Op,
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, key): (&str, Option<&Bytes>) = match &self.op {
            Op::SetTensor(k, _) => ("SetTensor", Some(k)),
            Op::SetTensors(v) => ("SetTensors", v.first().map(|(k, _)| k)),
            Op::SetModel(k, _) => ("SetModel", Some(k)),
            Op::DelModel(k) => ("DelModel", Some(k)),
            Op::Set { key, .. } => ("Set", Some(key)),
            Op::MSet(v) => ("MSet", v.first().map(|(k, _)| k)),
            Op::IncrBy(k, _) => ("IncrBy", Some(k)),
            Op::Del(v) => ("Del", v.first()),
            Op::Flush => ("Flush", None),
            Op::ExpireDue => ("ExpireDue", None),
            Op::SetScript(k, _) => ("SetScript", Some(k)),
            Op::DelScript(k) => ("DelScript", Some(k)),
            Op::HSet(k, _) => ("HSet", Some(k)),
            Op::HDel(k, _) => ("HDel", Some(k)),
            Op::Push { key, .. } => ("Push", Some(key)),
            Op::Pop { key, .. } => ("Pop", Some(key)),
            Op::SetHash(k, _) => ("SetHash", Some(k)),
            Op::SetList(k, _) => ("SetList", Some(k)),
            Op::Batch(ops) => ("Batch", ops.iter().find_map(Op::first_key)),
            Op::Expire(k, ..) => ("Expire", Some(k)),
            Op::Rename(k, ..) => ("Rename", Some(k)),
            Op::Copy(k, ..) => ("Copy", Some(k)),
            Op::GetDel(k) => ("GetDel", Some(k)),
            Op::WriteRange(k, ..) => ("WriteRange", Some(k)),
            Op::MSetNx(v) => ("MSetNx", v.first().map(|(k, _)| k)),
            Op::IncrByFloat(k, _) => ("IncrByFloat", Some(k)),
            Op::GetEx(k, ..) => ("GetEx", Some(k)),
        };
        match key {
            Some(k) => write!(
                f,
                "{name}({})",
                String::from_utf8_lossy(&k[..k.len().min(64)])
            ),
            None => write!(f, "{name}"),
        }
    }
}

impl Cmd {
    /// The wire form of `m`.
    pub fn of(m: &Mutation, at_ms: u64, origin: u64, seq: u64) -> Cmd {
        Cmd {
            at_ms,
            origin,
            seq,
            op: Op::of(m),
        }
    }

    /// Rebuilds the mutation; `load` turns a wire model stored at a key into a loaded one,
    /// `compile` a wire script into a compiled one.
    pub fn mutation(
        self,
        mut load: impl FnMut(&Bytes, WireModel) -> Result<Model, Error>,
        mut compile: impl FnMut(&Bytes, WireScript) -> Result<Script, Error>,
    ) -> Result<Mutation, Error> {
        self.op.into_mutation(&mut load, &mut compile)
    }

    /// True when applying needs a backend call (loading a model, compiling a script).
    pub fn loads_model(&self) -> bool {
        self.op.loads_model()
    }
}

impl Op {
    /// The key named first (for log lines).
    fn first_key(&self) -> Option<&Bytes> {
        match self {
            Op::SetTensor(k, _)
            | Op::SetModel(k, _)
            | Op::DelModel(k)
            | Op::Set { key: k, .. }
            | Op::IncrBy(k, _)
            | Op::SetScript(k, _)
            | Op::DelScript(k)
            | Op::HSet(k, _)
            | Op::HDel(k, _)
            | Op::Push { key: k, .. }
            | Op::Pop { key: k, .. }
            | Op::SetHash(k, _)
            | Op::SetList(k, _)
            | Op::Expire(k, ..)
            | Op::Rename(k, ..)
            | Op::Copy(k, ..)
            | Op::GetDel(k)
            | Op::WriteRange(k, ..)
            | Op::IncrByFloat(k, _)
            | Op::GetEx(k, ..) => Some(k),
            Op::SetTensors(v) => v.first().map(|(k, _)| k),
            Op::MSet(v) | Op::MSetNx(v) => v.first().map(|(k, _)| k),
            Op::Del(v) => v.first(),
            Op::Batch(ops) => ops.iter().find_map(Op::first_key),
            Op::Flush | Op::ExpireDue => None,
        }
    }

    /// The wire form of `m`.
    pub fn of(m: &Mutation) -> Op {
        match m {
            Mutation::SetTensor { key, tensor } => {
                Op::SetTensor(key.clone(), WireTensor::of(tensor))
            }
            Mutation::SetTensors(v) => Op::SetTensors(
                v.iter()
                    .map(|(k, t)| (k.clone(), WireTensor::of(t)))
                    .collect(),
            ),
            Mutation::SetModel { key, model } => Op::SetModel(key.clone(), WireModel::of(model)),
            Mutation::DelModel(k) => Op::DelModel(k.clone()),
            Mutation::Set {
                key,
                value,
                cond,
                get,
                deadline,
            } => Op::Set {
                key: key.clone(),
                value: value.clone(),
                cond: match cond {
                    None => 0,
                    Some(SetCond::Nx) => 1,
                    Some(SetCond::Xx) => 2,
                },
                get: *get,
                deadline: match deadline {
                    Deadline::None => (0, 0),
                    Deadline::Keep => (1, 0),
                    Deadline::At(t) => (2, *t),
                },
            },
            Mutation::MSet(v) => Op::MSet(v.clone()),
            Mutation::IncrBy { key, delta } => Op::IncrBy(key.clone(), *delta),
            Mutation::Del(v) => Op::Del(v.clone()),
            Mutation::Flush => Op::Flush,
            Mutation::ExpireDue => Op::ExpireDue,
            Mutation::SetScript { key, script } => {
                Op::SetScript(key.clone(), WireScript::of(script))
            }
            Mutation::DelScript(k) => Op::DelScript(k.clone()),
            Mutation::HSet { key, pairs } => Op::HSet(key.clone(), pairs.clone()),
            Mutation::HDel { key, fields } => Op::HDel(key.clone(), fields.clone()),
            Mutation::Push {
                key,
                left,
                values,
                existing_only,
            } => Op::Push {
                key: key.clone(),
                left: *left,
                values: values.clone(),
                existing_only: *existing_only,
            },
            Mutation::Pop { key, left, count } => Op::Pop {
                key: key.clone(),
                left: *left,
                count: *count as u64,
            },
            Mutation::SetHash { key, hash } => Op::SetHash(
                key.clone(),
                hash.iter().map(|(f, v)| (f.clone(), v.clone())).collect(),
            ),
            Mutation::SetList { key, list } => {
                Op::SetList(key.clone(), list.iter().cloned().collect())
            }
            Mutation::Batch(ms) => Op::Batch(ms.iter().map(Op::of).collect()),
            Mutation::Expire { key, at, cond } => Op::Expire(key.clone(), *at, cond.bits()),
            Mutation::Rename { from, to, nx } => Op::Rename(from.clone(), to.clone(), *nx),
            Mutation::Copy { from, to, replace } => Op::Copy(from.clone(), to.clone(), *replace),
            Mutation::GetDel(k) => Op::GetDel(k.clone()),
            Mutation::WriteRange { key, offset, value } => {
                Op::WriteRange(key.clone(), *offset, value.clone())
            }
            Mutation::MSetNx(v) => Op::MSetNx(v.clone()),
            Mutation::IncrByFloat { key, delta } => Op::IncrByFloat(key.clone(), *delta),
            Mutation::GetEx { key, change } => match change {
                None => Op::GetEx(key.clone(), 0, 0),
                Some(None) => Op::GetEx(key.clone(), 1, 0),
                Some(Some(t)) => Op::GetEx(key.clone(), 2, *t),
            },
        }
    }

    /// Rebuilds the mutation (see [`Cmd::mutation`]).
    fn into_mutation(
        self,
        load: &mut impl FnMut(&Bytes, WireModel) -> Result<Model, Error>,
        compile: &mut impl FnMut(&Bytes, WireScript) -> Result<Script, Error>,
    ) -> Result<Mutation, Error> {
        Ok(match self {
            Op::SetTensor(key, t) => Mutation::SetTensor {
                key,
                tensor: t.tensor()?,
            },
            Op::SetTensors(v) => Mutation::SetTensors(
                v.into_iter()
                    .map(|(k, t)| Ok((k, t.tensor()?)))
                    .collect::<Result<_, Error>>()?,
            ),
            Op::SetModel(key, m) => Mutation::SetModel {
                model: Arc::new(load(&key, m)?),
                key,
            },
            Op::DelModel(k) => Mutation::DelModel(k),
            Op::Set {
                key,
                value,
                cond,
                get,
                deadline,
            } => Mutation::Set {
                key,
                value,
                cond: match cond {
                    1 => Some(SetCond::Nx),
                    2 => Some(SetCond::Xx),
                    _ => None,
                },
                get,
                deadline: match deadline {
                    (1, _) => Deadline::Keep,
                    (2, t) => Deadline::At(t),
                    _ => Deadline::None,
                },
            },
            Op::MSet(v) => Mutation::MSet(v),
            Op::IncrBy(key, delta) => Mutation::IncrBy { key, delta },
            Op::Del(v) => Mutation::Del(v),
            Op::Flush => Mutation::Flush,
            Op::ExpireDue => Mutation::ExpireDue,
            Op::SetScript(key, s) => Mutation::SetScript {
                script: Arc::new(compile(&key, s)?),
                key,
            },
            Op::DelScript(k) => Mutation::DelScript(k),
            Op::HSet(key, pairs) => Mutation::HSet { key, pairs },
            Op::HDel(key, fields) => Mutation::HDel { key, fields },
            Op::Push {
                key,
                left,
                values,
                existing_only,
            } => Mutation::Push {
                key,
                left,
                values,
                existing_only,
            },
            Op::Pop { key, left, count } => Mutation::Pop {
                key,
                left,
                count: usize::try_from(count).unwrap_or(usize::MAX),
            },
            Op::SetHash(key, pairs) => Mutation::SetHash {
                key,
                hash: Arc::new(Hash::from_pairs(pairs)),
            },
            Op::SetList(key, items) => Mutation::SetList {
                key,
                list: Arc::new(List::from_items(items)),
            },
            Op::Batch(ops) => Mutation::Batch(
                ops.into_iter()
                    .map(|op| op.into_mutation(load, compile))
                    .collect::<Result<_, Error>>()?,
            ),
            Op::Expire(key, at, cond) => Mutation::Expire {
                key,
                at,
                cond: ExpireCond::from_bits(cond),
            },
            Op::Rename(from, to, nx) => Mutation::Rename { from, to, nx },
            Op::Copy(from, to, replace) => Mutation::Copy { from, to, replace },
            Op::GetDel(k) => Mutation::GetDel(k),
            Op::WriteRange(key, offset, value) => Mutation::WriteRange { key, offset, value },
            Op::MSetNx(v) => Mutation::MSetNx(v),
            Op::IncrByFloat(key, delta) => Mutation::IncrByFloat { key, delta },
            Op::GetEx(key, kind, t) => Mutation::GetEx {
                key,
                change: match kind {
                    0 => None,
                    1 => Some(None),
                    _ => Some(Some(t)),
                },
            },
        })
    }
}

/// The result of applying one entry: the engine's `Applied`, or the error's wire text. On
/// the bus (a forwarded write's answer): variants are only ever appended at the end, and a
/// changed field is a new bus version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyResult {
    /// `Applied::Ok` (also the result of blank and membership entries).
    Ok,
    /// `Applied::Int`.
    Int(i64),
    /// `Applied::Set`.
    Set {
        /// Written.
        written: bool,
        /// Old value.
        old: Option<Bytes>,
    },
    /// The apply failed; the error as it goes on the wire.
    Err(String),
    /// `Applied::Values`.
    Values(Option<Vec<Bytes>>),
    /// `Applied::Batch`: one result per mutation of the batch.
    Batch(Vec<ApplyResult>),
    /// `Applied::Value`.
    Value(Option<Bytes>),
}

impl From<Result<Applied, Error>> for ApplyResult {
    fn from(r: Result<Applied, Error>) -> Self {
        match r {
            Ok(Applied::Ok) => ApplyResult::Ok,
            Ok(Applied::Int(n)) => ApplyResult::Int(n),
            Ok(Applied::Set { written, old }) => ApplyResult::Set { written, old },
            Ok(Applied::Values(v)) => ApplyResult::Values(v),
            Ok(Applied::Batch(v)) => ApplyResult::Batch(v.into_iter().map(Into::into).collect()),
            Ok(Applied::Value(v)) => ApplyResult::Value(v),
            Err(e) => ApplyResult::Err(e.wire_text()),
        }
    }
}

impl ApplyResult {
    /// Back to the engine's result.
    pub fn into_result(self) -> Result<Applied, Error> {
        match self {
            ApplyResult::Ok => Ok(Applied::Ok),
            ApplyResult::Int(n) => Ok(Applied::Int(n)),
            ApplyResult::Set { written, old } => Ok(Applied::Set { written, old }),
            ApplyResult::Err(text) => Err(Error::Verbatim(text)),
            ApplyResult::Values(v) => Ok(Applied::Values(v)),
            ApplyResult::Value(v) => Ok(Applied::Value(v)),
            ApplyResult::Batch(v) => Ok(Applied::Batch(
                v.into_iter().map(ApplyResult::into_result).collect(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_round_trip_through_the_wire_form() {
        let t = Tensor::from_blob(
            DType::Float,
            vec![2],
            Bytes::from_static(&[0, 0, 128, 63, 0, 0, 0, 64]),
        )
        .unwrap();
        let muts = vec![
            Mutation::SetTensor {
                key: Bytes::from_static(b"t"),
                tensor: t.clone(),
            },
            Mutation::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                cond: Some(SetCond::Xx),
                get: true,
                deadline: Deadline::At(77),
            },
            Mutation::IncrBy {
                key: Bytes::from_static(b"n"),
                delta: -3,
            },
            Mutation::Del(vec![Bytes::from_static(b"a")]),
            Mutation::Flush,
            Mutation::Batch(vec![
                Mutation::set(Bytes::from_static(b"k"), Bytes::from_static(b"v")),
                Mutation::Del(vec![Bytes::from_static(b"k")]),
            ]),
        ];
        for m in muts {
            let cmd = Cmd::of(&m, 5, 1, 2);
            let bytes = bincode::serialize(&cmd).unwrap();
            let back: Cmd = bincode::deserialize(&bytes).unwrap();
            let m2 = back
                .mutation(|_, _| unreachable!(), |_, _| unreachable!())
                .unwrap();
            assert_eq!(format!("{m:?}"), format!("{m2:?}"));
        }
    }

    #[test]
    fn a_batch_result_round_trips() {
        let r: ApplyResult = Ok(Applied::Batch(vec![
            Ok(Applied::Int(2)),
            Err(Error::WrongType),
        ]))
        .into();
        assert_eq!(
            r,
            ApplyResult::Batch(vec![
                ApplyResult::Int(2),
                ApplyResult::Err(Error::WrongType.wire_text())
            ])
        );
        let Ok(Applied::Batch(back)) = r.into_result() else {
            panic!()
        };
        assert_eq!(back[0], Ok(Applied::Int(2)));
        assert_eq!(
            back[1].as_ref().unwrap_err().wire_text(),
            Error::WrongType.wire_text()
        );
    }

    #[test]
    fn errors_keep_their_wire_text() {
        let r: ApplyResult = Err(Error::WrongType).into();
        assert_eq!(
            r.into_result().unwrap_err().wire_text(),
            Error::WrongType.wire_text()
        );
    }
}
