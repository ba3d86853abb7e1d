//! The shardai server: configuration, the listener, connections and command dispatch.
//!
//! # Layout
//! - [`config`]: flags, environment and config file.
//! - [`cluster`]: cluster mode: identity, the shard's Raft group, request routing.
//! - [`admin`]: `shardai cluster create|add-node|del-node`, the operator's commands.
//! - [`server`]: the listener, connection limit, background tasks and shutdown.
//! - [`conn`]: one connection's read–dispatch–write loop.
//! - [`dispatch`]: commands against the shard, one file per family.
//! - [`state`]: what connections share (proposer, settings, statistics, clients).
//!
//! Business logic lives in `shardai-protocol` and `shardai-engine`; this crate wires them to
//! sockets.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod server;
pub mod state;
