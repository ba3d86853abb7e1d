//! shardai's wire layer: RESP framing, typed commands, the command table and error texts.
//!
//! # Layout
//! - [`frame`]: bytes from the socket into argument vectors (multibulk and inline), with
//!   Redis's limits and protocol error texts.
//! - [`command`]: [`Command`], parsed once from the arguments; one file per command family.
//! - [`cluster_wide`]: the naming rule of cluster-wide models and scripts.
//! - [`table`]: the command table (name, arity, flags, key positions) that parsing,
//!   `COMMAND` and routing read.
//! - [`reply`]: [`Reply`] values and their RESP2/RESP3 encoding.
//! - [`error`]: every error a client can receive, with its exact text.
//! - [`dtype`]: tensor element types as RedisAI names them.
//! - `fuzz`: the fuzz targets' entry points (see `fuzz/`).
//!
//! This crate does no I/O and knows nothing of Raft or backends.

pub mod cluster_wide;
pub mod command;
pub mod dtype;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzz;
pub mod reply;
pub mod slot;
pub mod table;

pub use command::Command;
pub use dtype::DType;
pub use error::Error;
pub use reply::{Reply, WriteBuf};
