//! Routing in a shardai cluster: which shard owns a hash slot, the cluster topology (nodes,
//! shards, slot ranges, shard leaders) as the metadata Raft group stores it, the routing
//! decision for a parsed command, and the CLUSTER SLOTS / SHARDS / NODES / INFO replies.
//!
//! Hash slots themselves (CRC16 XMODEM mod 16384 with `{hash tags}`) live in
//! `shardai_protocol::slot`, because the Raft layer names slots in its MOVED errors too;
//! they are re-exported here.

pub mod replies;
pub mod topology;
pub mod view;

pub use shardai_protocol::slot::{SLOTS, key_slot};
pub use topology::{NodeInfo, ShardInfo, Topology};
pub use view::{Decision, Migration, View};
