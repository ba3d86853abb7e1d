//! shardai's engine: tensors and the keyspace of one shard, changed only through mutations.
//!
//! # Layout
//! - [`tensor`]: [`Tensor`] (dtype, shape, shared little-endian bytes) and its validation.
//! - [`store`]: [`Store`], the striped keyspace with SCAN, KEYS and expiry-aware reads.
//! - [`mutation`]: [`Mutation`], every write as a value, and how the store applies it.
//! - [`propose`]: the [`Proposer`] seam and the single-node [`LocalApplier`].
//! - [`glob`]: Redis glob patterns.
//!
//! The engine opens no sockets and knows nothing of slots or Raft. Backends, run queues,
//! batching and DAGs arrive with the models and execution issues.

pub mod glob;
pub mod mutation;
pub mod propose;
pub mod store;
pub mod tensor;

pub use mutation::{Applied, Deadline, Mutation};
pub use propose::{LocalApplier, Proposal, Proposer};
pub use store::{Store, Value};
pub use tensor::Tensor;

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
