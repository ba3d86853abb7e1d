//! Raft replication of a shard (openraft): the log's types, the durable log store, the state
//! machine over the engine's `Store`, snapshots, and the node-to-node transport.

pub mod dump;
pub mod group;
pub mod log_store;
pub mod network;
pub mod snapshot;
pub mod state_machine;
pub mod types;
mod version;

#[cfg(test)]
mod golden;

pub use group::{GroupConfig, RoleInfo, ShardGroup};
pub use network::{ShardRaft, Target, TargetSlot};
pub use types::{ApplyResult, Cmd, ShardNode, TypeConfig};
