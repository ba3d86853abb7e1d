//! Raft replication of a shard (openraft): the log's types, the durable log store, the state
//! machine over the engine's `Store`, snapshots, and the node-to-node transport.
//!
//! # Layout
//!
//! - [`types`]: the openraft type config and the log's data ([`Cmd`], [`ApplyResult`],
//!   [`ShardNode`], the wire forms of tensors and models).
//! - [`group`]: one replica of a Raft group ([`ShardGroup`]): start, propose, membership.
//! - [`log_store`]: the durable log and vote (`segment`, `meta`, `open`, `sync`).
//! - [`state_machine`]: applies entries to the `Store`; builds and installs snapshots.
//! - [`snapshot`]: snapshot files.
//! - [`network`]: the cluster bus (`frame`, `server`, `client`, `pool`, `security`, `tls`,
//!   `stream`).
//! - [`dump`]: DUMP / RESTORE payloads.
//! - `fuzz`: entry points of the fuzz targets (`fuzz/`) for every format read from disk or
//!   the bus.
//! - `version`: the format versions of everything above that is stored or sent, and the
//!   rules for changing them (variants only appended; a changed field is a new version).
//! - `golden` (tests): golden-bytes fixtures of every version, in `raft/tests/golden/`.

pub mod dump;
#[doc(hidden)]
pub mod fuzz;
pub mod group;
pub mod log_store;
pub mod network;
pub mod progress;
pub mod snapshot;
pub mod state_machine;
pub mod stats;
pub mod types;
mod version;

#[cfg(test)]
mod golden;

pub use group::{GroupConfig, MAX_ENTRY_BYTES, ReadCheck, RoleInfo, ShardGroup, WriteLimits};
pub use network::{BusSecurity, ShardRaft, Target, TargetSlot, TlsFiles};
pub use openraft::ServerState;
pub use types::{ApplyResult, Cmd, ShardNode, TypeConfig};
