//! Pipelined writes of one connection. A client that sends many AI.TENSORSETs without
//! waiting for their replies (a pipeline, `redis-cli --pipe`) has each proposed as soon as
//! it is read, without waiting for the one before to commit, and answered in order once
//! each applies. The proposals enter the log in the order the client sent them, so they
//! apply in that order too: each is polled once when it is read, which hands it to the
//! group's proposal queue (that poll runs outside tokio's cooperative budget, which could
//! otherwise stop it short; a full queue takes senders in the order they came).
//!
//! Any other command of the connection first waits for the writes in flight and writes
//! their replies, so it sees them (a read after a write in the same pipeline reads what the
//! write stored) and its own reply comes after theirs. A write in flight holds the
//! transaction gate shared, as a command that runs does, so no EXEC of another client runs
//! between its proposal and its apply.

use std::{collections::VecDeque, future::Future, pin::Pin, task::Poll, time::Instant};

use bytes::Bytes;
use shardai_protocol::{Reply, WriteBuf, table::CommandSpec};

use crate::{client::ConnState, state::Shared};

/// The most writes one connection keeps in flight; the next waits for them.
pub const MAX_IN_FLIGHT: usize = 256;
/// The largest BLOB a write in flight carries (so one connection holds at most
/// `MAX_IN_FLIGHT` × this in flight); a larger one waits for its commit, as it did alone.
pub const MAX_DEFERRED_BLOB: usize = 64 * 1024;

/// A write proposed and not answered yet.
pub struct Deferred {
    reply: Pin<Box<dyn Future<Output = Reply> + Send>>,
    /// The command's place in the table, its spec and what SLOWLOG holds of it.
    seen: Option<(usize, &'static CommandSpec, Option<usize>)>,
    held: Vec<Bytes>,
    started: Instant,
    _gate: tokio::sync::OwnedRwLockReadGuard<()>,
}

impl Deferred {
    /// Starts `reply` (its first poll makes the proposal) and keeps what answering it later
    /// needs. `Err` with the reply when it is already done.
    pub async fn start(
        reply: impl Future<Output = Reply> + Send + 'static,
        gate: tokio::sync::OwnedRwLockReadGuard<()>,
        seen: Option<(usize, &'static CommandSpec, Option<usize>)>,
        held: Vec<Bytes>,
        started: Instant,
    ) -> Result<Deferred, (Reply, Vec<Bytes>)> {
        let mut reply: Pin<Box<dyn Future<Output = Reply> + Send>> = Box::pin(reply);
        // Polled once here, with this connection's task as the waker: the proposal is made
        // now, in the order the client sent it.
        let first = std::future::poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(r) => Err((r, held)),
            Poll::Pending => Ok(Deferred {
                reply,
                seen,
                held,
                started,
                _gate: gate,
            }),
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
