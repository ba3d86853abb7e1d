//! Pipelined writes of one connection. A client that sends many writes (AI.TENSORSET, SET,
//! INCR, HSET, LPUSH, DEL, ...: those `crate::dispatch::writes` builds) without waiting
//! for their replies (a pipeline, `redis-cli --pipe`) has each handed to the shard's
//! proposal queue as soon as it is read, without waiting for the one before to commit, and
//! answered in order once each applies. The queue takes them in the order the
//! client sent them, so they enter the log and apply in that order
//! ([`shardai_raft::ShardGroup::submit`]).
//!
//! Any other command of the connection first waits for the writes in flight and writes
//! their replies, so it sees them (a read after a write in the same pipeline reads what the
//! write stored) and its own reply comes after theirs. A write in flight holds the
//! transaction gate shared, as a command that runs does, so no EXEC of another client runs
//! between its proposal and its apply; a connection that finds the gate wanted by an EXEC
//! first answers its writes in flight, so it never waits for the gate while holding it.

use std::{collections::VecDeque, future::Future, pin::Pin, time::Instant};

use bytes::Bytes;
use shardai_protocol::{Reply, WriteBuf, table::CommandSpec};

use crate::{client::ConnState, state::Shared};

/// The most writes one connection keeps in flight; the next waits for them.
pub const MAX_IN_FLIGHT: usize = 256;
/// The largest request (all its arguments) a write in flight carries, so one connection
/// holds at most `MAX_IN_FLIGHT` × this in flight; a larger one waits for its commit.
pub const MAX_DEFERRED_BLOB: usize = 64 * 1024;

/// A write proposed and not answered yet.
pub struct Deferred {
    reply: Pin<Box<dyn Future<Output = Reply> + Send>>,
    /// The command's place in the table, its spec and what SLOWLOG holds of it.
    seen: Option<(usize, &'static CommandSpec, Option<usize>)>,
    held: Vec<Bytes>,
    started: Instant,
}

impl Deferred {
    /// A write whose `reply` comes when it applies (the future holds what the write holds
    /// until then: the transaction gate).
    pub fn new(
        reply: impl Future<Output = Reply> + Send + 'static,
        seen: Option<(usize, &'static CommandSpec, Option<usize>)>,
        held: Vec<Bytes>,
        started: Instant,
    ) -> Deferred {
        Deferred {
            reply: Box::pin(reply),
            seen,
            held,
            started,
        }
    }
}

/// The connection's writes in flight, oldest first.
#[derive(Default)]
pub struct InFlight(VecDeque<Deferred>);

impl InFlight {
    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether another write may be put in flight.
    pub fn has_room(&self) -> bool {
        self.0.len() < MAX_IN_FLIGHT
    }

    /// Adds a started write.
    pub fn push(&mut self, d: Deferred) {
        self.0.push_back(d);
    }

    /// Waits for every write in flight, in order, and writes their replies to `out`.
    pub async fn drain(&mut self, shared: &Shared, state: &mut ConnState, out: &mut WriteBuf) {
        while let Some(mut d) = self.0.pop_front() {
            let reply = d.reply.as_mut().await;
            if let Some((index, spec, argc)) = d.seen {
                let failed = matches!(reply, Reply::Error(_));
                shared.ops.after(
                    index,
                    spec,
                    d.started.elapsed(),
                    failed,
                    argc,
                    &mut d.held,
                    &state.info,
                );
            }
            out.push(&reply, state.resp);
        }
    }
}
