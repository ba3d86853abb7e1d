//! The shardai server: configuration, the listener, connections and command dispatch.
//!
//! # Layout
//! - [`acl`]: users, passwords, command categories and key patterns; the per-request check
//!   and the denial log.
//! - [`config`]: flags, environment and config file.
//! - [`cluster`]: cluster mode: identity, the shard's Raft group, request routing.
//! - [`admin`]: `shardai cluster create|add-node|del-node`, the operator's commands.
//! - [`cert`]: `shardai cert`, certificates for the cluster bus's mutual TLS.
//! - [`server`]: the listener, connection limit, background tasks and shutdown.
//! - [`recover`]: restarts the node once its disk takes writes again after a failed one.
//! - [`standalone`]: the default node's data: a Raft group of one member in `--dir`.
//! - [`conn`]: one connection's read–route–dispatch–write loop.
//! - [`client`]: one connection's state (RESP version, READONLY, ASKING, client info), which
//!   the loop and the handlers share without importing each other.
//! - [`dispatch`]: the handler registry and the handlers, one file per command family.
//! - [`resp`]: the one RESP reply reader, for the node's own outbound calls (admin, MIGRATE).
//! - [`tls`]: the client port's TLS settings (rustls).
//! - [`state`]: what connections share (proposer, engine, settings, statistics, clients).
//! - [`tx_gate`]: the gate EXEC holds alone and every other command shared.
//!
//! Business logic lives in `shardai-protocol` and `shardai-engine`; this crate wires them to
//! sockets.

pub mod acl;
pub mod admin;
pub mod cert;
pub mod client;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod dispatch;
pub mod memory;
pub mod ops;
pub mod output_limit;
pub mod pipeline;
pub mod recover;
pub mod resp;
pub mod server;
pub mod standalone;
pub mod state;
pub mod tls;
pub mod tx_gate;
