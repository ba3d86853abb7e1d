//! shardai's engine: tensors and the keyspace of one shard, changed only through mutations.
//!
//! # Layout
//! - [`tensor`]: [`Tensor`] (dtype, shape, shared little-endian bytes) and its validation.
//! - [`key`]: [`key::Key`], a stored key, inline when short.
//! - [`string`]: [`string::Str`], a stored Redis string behind one pointer.
//! - [`store`]: [`Store`], the striped keyspace with SCAN, KEYS and expiry-aware reads;
//!   `stripe`: one stripe's map, a dense vector of entries found through a table of
//!   positions.
//! - [`mutation`]: [`Mutation`], every write as a value, and how the store applies it.
//! - [`propose`]: the [`Proposer`] seam and [`LocalApplier`], which applies at once (tests).
//! - [`collections`]: Redis hashes and lists, and how their mutations apply.
//! - [`glob`]: Redis glob patterns.
//! - [`small`]: copies of small buffers in one allocation with their reference count.
//! - [`model`]: [`model::Model`], a stored and loaded model.
//! - [`backend`]: the `Backend` trait and its four implementations, each behind its cargo
//!   feature: ONNX (`onnx`), TORCH (`torch`), TF (`tf`) and TFLITE (`tflite`).
//! - [`script`]: [`script::Script`], a stored TorchScript script, and how a call binds to
//!   a function's parameters.
//! - [`batching`]: the auto-batching policy, and concatenating / splitting batches.
//! - [`dag`]: DAG plans (a pure function of the op list) and their execution.
//! - [`queue`]: per-device run queues whose threads execute models, batched by that policy;
//!   `calls` tracks their backend calls for MODEL_EXECUTION_TIMEOUT.
//! - [`stats`]: AI.INFO run statistics per key.
//! - `fuzz`: the entry point of the tensor decoding fuzz target (`fuzz/`).
//!
//! The engine opens no sockets and knows nothing of Raft or of which node serves a slot: hash
//! slots appear only as the [`Store`]'s stripes and its per-slot key scans.

pub mod backend;
pub mod batching;
mod calls;
pub mod collections;
pub mod dag;
mod expiry;
#[doc(hidden)]
pub mod fuzz;
pub mod glob;
pub mod key;
mod keyops;
pub mod model;
pub mod mutation;
pub mod propose;
pub mod queue;
pub mod script;
mod shape;
pub mod small;
pub mod stats;
pub mod store;
pub mod string;
mod stripe;
pub mod tensor;

pub use mutation::{Applied, Deadline, Mutation};
pub use propose::{LocalApplier, Proposal, Proposer, Staging};
pub use store::{Store, Value};
pub use tensor::Tensor;

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
