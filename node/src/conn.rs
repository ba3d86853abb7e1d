//! One client connection: read requests, route them (in cluster mode), dispatch them in
//! order, write replies. The connection's own state is a [`ConnState`]; the loop knows the
//! handlers only through [`dispatch::execute`] (and [`dispatch::check_order`] for the error a
//! failed parse answers, [`dispatch::transaction::staged_keys`] for the keys a queued command
//! names).
//!
//! Requests are decoded as they complete, so pipelined requests are answered in one write;
//! pipelined writes (AI.TENSORSET, SET, INCR, HSET, ...) are put in flight together
//! (`crate::pipeline`).
//! A large request gets a read buffer of exactly its size, so its BLOB becomes a stored
//! tensor without a copy and without holding a larger allocation alive. A protocol error is
//! answered and the connection closed, as Redis does.

use std::{
    io::{self, IoSlice},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes, BytesMut};
use shardai_protocol::{
    Command, Error, Reply, WriteBuf,
    command::{ClusterCmd, SetSlotAction},
    frame::{Decoded, RequestDecoder},
    table,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::watch,
};
use tracing::{debug, warn};

use crate::{
    client::{ClientInfo, ConnState},
    cluster::route,
    dispatch::{self, Flow, check_order, transaction, writes::Built},
    memory,
    output_limit::{self, OutputLimit},
    pipeline::{self, Deferred, InFlight},
    state::Shared,
};

/// Requests larger than this get a read buffer of their own, sized exactly. Smaller
/// arguments are copied out when stored (engine's `COMPACT_BELOW`), so the read buffer is
/// reused.
const BIG_REQUEST: usize = shardai_engine::tensor::COMPACT_BELOW;
/// Read buffer size for ordinary traffic.
pub(crate) const READ_CHUNK: usize = 64 * 1024;
/// Flush replies once this many bytes are waiting, even inside a long pipeline.
const FLUSH_AT: usize = 256 * 1024;

/// A client connection's byte stream: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Serves one connection (`tls`: it came through the TLS port) until the client leaves, a
/// protocol error, or shutdown.
pub async fn serve<S: Stream>(
    mut sock: S,
    tls: bool,
    shared: Arc<Shared>,
    info: Arc<ClientInfo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = info.id;
    let peer = info.addr;
    let (user, generation) = shared.acl.initial_user();
    let mut state = ConnState::new(info, user, generation);
    state.tls = tls;
    // The connection slot returns however the task ends, a panic included.
    let _slot = Slot {
        shared: &shared,
        id,
    };
    match run(&mut sock, &shared, &mut state, &mut shutdown).await {
        Ok(why) => debug!(id, %peer, reason = %why, "connection closed"),
        Err(e) if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::Other => {
            warn!(id, %peer, reason = %e, "client closed by the server")
        }
        Err(e) => debug!(id, %peer, reason = %format!("i/o error: {e}"), "connection closed"),
    }
}

/// A registered connection; dropping it unregisters it.
struct Slot<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared.unregister(self.id);
    }
}

async fn run<S: Stream>(
    sock: &mut S,
    shared: &Arc<Shared>,
    state: &mut ConnState,
    shutdown: &mut watch::Receiver<bool>,
) -> io::Result<String> {
    let mut decoder = RequestDecoder::default();
    let mut rbuf = BytesMut::new();
    let mut out = WriteBuf::new();
    // Writes of this connection proposed and not answered yet (see `crate::pipeline`).
    let mut inflight = InFlight::default();
    loop {
        let max_bulk = shared.runtime.max_bulk.load(Ordering::Relaxed);
        if decoder.max_bulk() != max_bulk {
            decoder.set_max_bulk(max_bulk);
        }
        // Answer every complete request in the buffer.
        let info = &state.info;
        info.last_ms
            .store(info.since.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut handled = 0u64;
        let need = loop {
            match decoder.decode(&mut rbuf) {
                Ok(Decoded::Request(argv)) => {
                    handled += 1;
                    if handle(argv, shared, state, &mut out, &mut inflight).await == Flow::Close {
                        shared.stats.commands.fetch_add(handled, Ordering::Relaxed);
                        flush(sock, &mut out, shared).await?;
                        return Ok("client quit".into());
                    }
                    if out.len() >= FLUSH_AT {
                        // Not while holding the transaction gate for writes in flight: a
                        // client slow to read would hold up every EXEC.
                        inflight.drain(shared, state, &mut out).await;
                        flush(sock, &mut out, shared).await?;
                    }
                }
                Ok(Decoded::Empty) => {}
                Ok(Decoded::Incomplete { need }) => {
                    // The requests read so far are answered before more are read.
                    inflight.drain(shared, state, &mut out).await;
                    break need;
                }
                Err(e) => {
                    shared.stats.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    debug!(id = state.info.id, error = %e, "protocol error");
                    inflight.drain(shared, state, &mut out).await;
                    out.push(&Reply::Error(e.clone()), state.resp);
                    flush(sock, &mut out, shared).await?;
                    return Ok(e.wire_text());
                }
            }
        };
        if handled > 0 {
            shared.stats.commands.fetch_add(handled, Ordering::Relaxed);
        }
        if state.info.monitor.load(Ordering::Relaxed) {
            // Listening before the OK goes out: the client sees every command after it.
            let listener = shared.ops.monitors.listen();
            flush(sock, &mut out, shared).await?;
            return crate::ops::monitor::serve(
                sock,
                shared,
                state,
                shutdown,
                listener,
                &mut decoder,
                &mut rbuf,
            )
            .await;
        }
        flush(sock, &mut out, shared).await?;
        if rbuf.is_empty() && rbuf.capacity() > READ_CHUNK {
            // Done with a big request: give its buffer back.
            rbuf = BytesMut::new();
        }
        make_room(&mut rbuf, need, decoder.pending_payload());
        // read_buf, unlike readable() + try_read, knows that a short read drained the socket
        // and saves the extra read that would return EAGAIN.
        let idle = idle_for(&shared.runtime.idle_timeout, Instant::now());
        let n = tokio::select! {
            r = sock.read_buf(&mut rbuf) => r?,
            _ = shutdown.changed() => return Ok("server shutting down".into()),
            _ = idle => return Ok("idle longer than timeout".into()),
            _ = state.info.kill.notified() => return Ok("killed by CLIENT KILL".into()),
        };
        if n == 0 {
            return Ok(if rbuf.is_empty() {
                "client closed"
            } else {
                "client closed mid-request"
            }
            .into());
        }
        shared.stats.net_in.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Alignment given to a big request's last payload (a tensor's BLOB), so that backends can
/// read its elements in place.
const PAYLOAD_ALIGN: usize = 64;

/// Ensures the read buffer can take the rest of a request of `need` bytes. A big request
/// gets a buffer of exactly its size, so the arguments split from it (a tensor's BLOB) own an
/// allocation no larger than themselves; the payload being waited for (at `payload_at`)
/// starts on a 64-byte boundary.
fn make_room(rbuf: &mut BytesMut, need: usize, payload_at: Option<usize>) {
    if need > BIG_REQUEST && rbuf.capacity() < need {
        let mut exact = BytesMut::with_capacity(need + PAYLOAD_ALIGN);
        if let Some(at) = payload_at {
            let pad =
                (PAYLOAD_ALIGN - (exact.as_ptr() as usize + at) % PAYLOAD_ALIGN) % PAYLOAD_ALIGN;
            exact.resize(pad, 0);
            exact.advance(pad);
        }
        exact.extend_from_slice(rbuf);
        *rbuf = exact;
    } else if rbuf.capacity() - rbuf.len() < 4096 {
        rbuf.reserve(READ_CHUNK.max(need.saturating_sub(rbuf.len())));
    }
}

/// What [`handle_inner`] did with a request.
enum Handled {
    /// Answered: the reply goes out after those of the writes in flight.
    Now(Reply, Flow),
    /// A write put in flight (see `crate::pipeline`): answered later, in order.
    Later,
}

/// Handles one request; its reply (or those of the writes in flight before it, then its
/// own) goes to `out` in the order the client sent them.
async fn handle(
    argv: Vec<Bytes>,
    shared: &Arc<Shared>,
    state: &mut ConnState,
    out: &mut WriteBuf,
    inflight: &mut InFlight,
) -> Flow {
    // A write may join the writes in flight; any other command runs after them, and a
    // refusal is answered after theirs (`handle_inner` answers them before it reads the
    // keyspace or runs a command).
    match handle_inner(argv, shared, state, out, inflight).await {
        Handled::Now(_, Flow::Shutdown) => {
            inflight.drain(shared, state, out).await;
            Flow::Close
        }
        Handled::Now(reply, flow) => {
            inflight.drain(shared, state, out).await;
            out.push(&reply, state.resp);
            flow
        }
        Handled::Later => Flow::Continue,
    }
}

/// The slot whose keys `cmd` reads to move it to another shard: CLUSTER GETKEYSINSLOT and
/// COUNTKEYSINSLOT (a resharding tool moves the slot once they answer no key).
fn settles_slot(cmd: &Command) -> Option<u16> {
    match cmd {
        Command::Cluster(
            ClusterCmd::GetKeysInSlot { slot, .. } | ClusterCmd::CountKeysInSlot(slot),
        ) => Some(*slot),
        _ => None,
    }
}

/// CLUSTER SETSLOT NODE, which holds the migration lock exclusively while it checks that no
/// key of the slot is left and hands the slot over (see `dispatch::setslot`).
fn hands_over_slot(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Cluster(ClusterCmd::SetSlot {
            action: SetSlotAction::Node(_),
            ..
        })
    )
}

/// Commands refused after MULTI (`ERR Command not allowed inside a transaction`).
fn not_in_multi(cmd: &Command) -> bool {
    matches!(cmd, Command::Shutdown { .. } | Command::DebugSleep(_))
        || settles_slot(cmd).is_some()
        || hands_over_slot(cmd)
}

/// Whether a write may be put in flight without waiting for its commit: on a node outside
/// a cluster, outside a transaction, with no maxmemory check pending (`admitted` holds no
/// reservation), its request at most [`pipeline::MAX_DEFERRED_BLOB`] bytes and the
/// connection's in-flight writes not at their limit. Which commands are writes that can be is
/// `dispatch::writes::of`'s to say.
fn may_defer(
    shared: &Shared,
    state: &ConnState,
    inflight: &InFlight,
    admitted: &Result<Option<memory::Admitted<'_>>, Error>,
    request_len: usize,
) -> bool {
    // A node outside a cluster has its data log as `standalone`; a cluster node has none.
    matches!(admitted, Ok(None))
        && request_len <= pipeline::MAX_DEFERRED_BLOB
        && shared.standalone.is_some()
        && state.tx.is_none()
        && inflight.has_room()
}

/// [`handle`]'s work. The connection's writes in flight are answered before the command
/// reads the keyspace or runs, unless it joins them.
async fn handle_inner(
    argv: Vec<Bytes>,
    shared: &Arc<Shared>,
    state: &mut ConnState,
    out: &mut WriteBuf,
    inflight: &mut InFlight,
) -> Handled {
    let started = Instant::now();
    // The command, once admitted, and whether SLOWLOG holds its arguments (their count).
    let mut seen: Option<(usize, &'static table::CommandSpec, Option<usize>)> = None;
    // Held until the reply is built (see `Cluster::admit`).
    let mut migration_guard = None;
    // ASKING just before MULTI holds until EXEC.
    let mut asking_multi = false;
    let parsed = match table::lookup_indexed(&argv[0]) {
        Some((i, spec)) => {
            state.info.last_cmd.store(i, Ordering::Relaxed);
            // ASKING holds for the one command after it (and through a transaction it opens).
            let asking = route::is_asking(spec, std::mem::take(&mut state.asking))
                || state.tx.as_ref().is_some_and(|tx| tx.asking);
            asking_multi = asking && spec.name == "multi";
            // As Redis: arity first (a wrong count is answered by the parser, before any
            // routing), then authentication and permissions, then routing.
            if spec.arity_ok(argv.len()) {
                if let Err((e, flow)) = access(shared, state, i, spec, &argv) {
                    refused_in_transaction(state);
                    return Handled::Now(Reply::Error(e), flow);
                }
                if let Some(cluster) = &shared.cluster {
                    let admitted = match state
                        .tx
                        .as_ref()
                        .filter(|tx| spec.name == "exec" && !tx.failed && !tx.keys.is_empty())
                    {
                        // EXEC is routed by its transaction's keys, as one request.
                        Some(tx) => {
                            cluster
                                .admit_exec(&tx.keys, tx.writes, state.readonly, asking, state.tls)
                                .await
                        }
                        None => {
                            cluster
                                .admit(spec, &argv, state.readonly, asking, state.tls)
                                .await
                        }
                    };
                    // A transaction runs on a copy of the shard's keys: the cluster's objects
                    // are not among them.
                    let admitted = admitted.and_then(|guard| {
                        let by_name = state.tx.is_some()
                            && crate::cluster::objects::addresses_object(spec, &argv);
                        match by_name {
                            true => Err(Error::Verbatim(
                                "ERR cluster-wide models and scripts cannot be stored, read or \
                                 deleted inside MULTI"
                                    .into(),
                            )),
                            false => Ok(guard),
                        }
                    });
                    match admitted {
                        Ok(guard) => migration_guard = guard,
                        Err(e) => {
                            let redirects = match &e {
                                Error::Moved { .. } => Some(&shared.stats.moved),
                                Error::Ask { .. } => Some(&shared.stats.ask),
                                _ => None,
                            };
                            if let Some(n) = redirects {
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                            // As Redis: a refused EXEC discards its transaction.
                            if spec.name == "exec" {
                                state.tx = None;
                                state.watched.clear();
                            }
                            refused_in_transaction(state);
                            return Handled::Now(Reply::Error(e), Flow::Continue);
                        }
                    }
                }
                let held = shared
                    .ops
                    .before(i, spec, &argv, &state.info, &mut state.held);
                seen = Some((i, spec, held));
            }
            // Only writes under a maxmemory limit need their size.
            let limited = spec.flags.contains(&"denyoom")
                && shared.runtime.maxmemory.load(Ordering::Relaxed) > 0;
            let request_len: usize = argv.iter().map(Bytes::len).sum();
            let request_bytes = limited.then_some(request_len);
            // Kept for RedisAI's order of checks, should the parse fail.
            let kept = spec.arity_ok(argv.len())
                && check_order::keep_arguments(spec.name, &argv, &mut state.kept);
            // After MULTI: the keys the command names, for EXEC.
            let queued = state
                .tx
                .is_some()
                .then(|| (transaction::staged_keys(spec, &argv), spec.is_write()));
            // The kept arguments are let go at once: they hold on to the read buffer.
            let kept = kept.then(|| std::mem::take(&mut state.kept));
            match (Command::parse_for(spec, argv), kept) {
                (Ok(cmd), kept) => {
                    if let Some(kept) = kept {
                        state.kept = check_order::emptied(kept);
                    }
                    Ok((cmd, request_bytes, queued, request_len))
                }
                (Err(e), None) => Err(e),
                // The keyspace error RedisAI meets first: read after the writes in flight.
                (Err(e), Some(argv)) => {
                    inflight.drain(shared, state, out).await;
                    let store = shared.store();
                    let engine = &shared.engine;
                    let e = check_order::parse_error(spec.name, &argv, e, store, engine);
                    state.kept = check_order::emptied(argv);
                    Err(e)
                }
            }
        }
        None => Err(Error::unknown_command(&argv[0], &argv[1..])),
    };
    let rt = &shared.runtime;
    let (reply, flow) = match parsed {
        Ok((cmd, request_bytes, queued, request_len)) => {
            // maxmemory: writes that grow the dataset (Redis's `denyoom`) must fit, counted
            // after the writes in flight before them (a DEL among them frees memory). Such a
            // write gets a reservation, so it is never put in flight itself.
            if request_bytes.is_some() {
                inflight.drain(shared, state, out).await;
            }
            let admitted = match request_bytes {
                Some(n) => memory::admit(
                    shared.store().used_bytes(),
                    &rt.in_flight,
                    memory::growth(&cmd, n),
                    rt.maxmemory.load(Ordering::Relaxed),
                ),
                None => Ok(None),
            };
            // A write put in flight is answered later, with the writes around it.
            let write = seen.is_some_and(|(_, spec, _)| spec.is_write());
            let cmd = match shared.standalone.as_ref() {
                Some(group)
                    if write && may_defer(shared, state, inflight, &admitted, request_len) =>
                {
                    let max_bulk = rt.max_bulk.load(Ordering::Relaxed);
                    match dispatch::writes::of(cmd, max_bulk) {
                        Built::Other(cmd) => cmd,
                        Built::Write(w) => {
                            let deferred = match w {
                                Ok(w) => defer(w, group, shared, state, out, inflight).await,
                                Err(e) => Err(e),
                            };
                            let reply = match deferred {
                                Ok(reply) => reply,
                                Err(e) => {
                                    return answered(
                                        shared,
                                        state,
                                        seen,
                                        started,
                                        Reply::Error(e),
                                        Flow::Continue,
                                    );
                                }
                            };
                            let held = std::mem::take(&mut state.held);
                            inflight.push(Deferred::new(reply, seen, held, started));
                            return Handled::Later;
                        }
                    }
                }
                _ => cmd,
            };
            match admitted {
                // As Redis's `no_multi` commands; also those that wait for other clients'
                // commands, which a transaction holds up, and DEBUG SLEEP, which would hold
                // up every client.
                Ok(_) if state.tx.is_some() && not_in_multi(&cmd) => {
                    refused_in_transaction(state);
                    let e = Error::Verbatim("ERR Command not allowed inside a transaction".into());
                    (Reply::Error(e), Flow::Continue)
                }
                // After MULTI, commands are queued for EXEC.
                Ok(_) if state.tx.is_some() && queues(&cmd) => {
                    if let (Some(tx), Some((keys, write))) = (state.tx.as_mut(), queued) {
                        tx.queue(cmd, keys, write);
                    }
                    (Reply::Status("QUEUED"), Flow::Continue)
                }
                Ok(admitted) => {
                    // The writes in flight apply first: this command sees them.
                    inflight.drain(shared, state, out).await;
                    // EXEC runs with no other client's command on this node. In a cluster
                    // MIGRATE takes no part: it takes the migration lock exclusively, which
                    // an EXEC of keys holds shared (taking the gate too would order the two
                    // locks both ways).
                    // A slot's keys, read for a migration, count the writes still in
                    // flight (see `Cluster::settle_slot`); settled before the gate, as
                    // MIGRATE, so the two locks are never taken in both orders.
                    let settled = match (&shared.cluster, settles_slot(&cmd)) {
                        (Some(c), Some(slot)) => c.settle_slot(slot).await,
                        _ => Ok(()),
                    };
                    let _gate = if cmd == Command::Exec {
                        Gate::Exclusive(shared.tx_gate.exclusive().await)
                    } else if matches!(cmd, Command::Migrate(_)) && shared.cluster.is_some()
                        // Waiting on time or on replicas, touching no key: EXECs go on.
                        || matches!(cmd, Command::Wait { .. } | Command::DebugSleep(_))
                        // They take the migration lock exclusively (see `settles_slot`).
                        || (settles_slot(&cmd).is_some() || hands_over_slot(&cmd))
                            && shared.cluster.is_some()
                    {
                        Gate::None
                    } else {
                        Gate::Shared(shared.tx_gate.shared().await)
                    };
                    let done = match settled {
                        Ok(()) => dispatch::execute(cmd, shared, state).await,
                        Err(e) => (Reply::Error(e), Flow::Continue),
                    };
                    drop(admitted);
                    if asking_multi && let Some(tx) = state.tx.as_mut() {
                        tx.asking = true;
                    }
                    done
                }
                Err(e) => {
                    refused_in_transaction(state);
                    (Reply::Error(e), Flow::Continue)
                }
            }
        }
        Err(e) => {
            refused_in_transaction(state);
            (Reply::Error(e), Flow::Continue)
        }
    };
    drop(migration_guard);
    answered(shared, state, seen, started, reply, flow)
}

/// A command answered now: its statistics and SLOWLOG entry (when it was admitted) recorded.
fn answered(
    shared: &Shared,
    state: &mut ConnState,
    seen: Option<(usize, &'static table::CommandSpec, Option<usize>)>,
    started: Instant,
    reply: Reply,
    flow: Flow,
) -> Handled {
    if let Some((index, spec, argc)) = seen {
        let failed = matches!(reply, Reply::Error(_));
        let took = started.elapsed();
        let ops = &shared.ops;
        ops.after(
            index,
            spec,
            took,
            failed,
            argc,
            &mut state.held,
            &state.info,
        );
    }
    Handled::Now(reply, flow)
}

/// Puts `w` in flight: takes the transaction gate shared (answering this connection's
/// writes in flight first if an EXEC wants the gate, so that it never waits while holding
/// it) and hands the write to `group`'s proposal queue. The future of its reply, which holds
/// the gate until it applies; or the error that refused it.
async fn defer(
    w: dispatch::writes::Write,
    group: &Arc<shardai_raft::ShardGroup>,
    shared: &Shared,
    state: &mut ConnState,
    out: &mut WriteBuf,
    inflight: &mut InFlight,
) -> Result<impl Future<Output = Reply> + Send + 'static, Error> {
    let gate = match shared.tx_gate.try_shared_owned() {
        Some(g) => g,
        None => {
            inflight.drain(shared, state, out).await;
            shared.tx_gate.clone().shared_owned().await
        }
    };
    let outcome = group.submit(w.mutation).await?;
    let finish = w.finish;
    Ok(async move {
        let reply = finish.reply(outcome.await);
        drop(gate);
        reply
    })
}

/// Held while a command runs: EXEC holds `Shared::tx_gate` exclusively, others shared.
enum Gate<'a> {
    Exclusive(#[allow(dead_code)] crate::tx_gate::ExclusiveGuard<'a>),
    Shared(#[allow(dead_code)] crate::tx_gate::SharedGuard<&'a crate::tx_gate::TxGate>),
    /// MIGRATE in a cluster (see `handle`).
    None,
}

/// True for the commands queued after MULTI (all but those that end or shape it).
fn queues(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::Exec
            | Command::Discard
            | Command::Multi
            | Command::Watch(_)
            | Command::Quit
            | Command::Monitor
    )
}

/// A command refused while a transaction is being queued makes EXEC answer EXECABORT.
fn refused_in_transaction(state: &mut ConnState) {
    if let Some(tx) = state.tx.as_mut() {
        tx.failed = true;
    }
}

/// Checks that the connection may run the request: it has authenticated (or the command
/// needs no authentication), and its user may run the command and touch its keys. A user
/// changed since the last command is re-read first; a deleted user's connection is closed.
fn access(
    shared: &Shared,
    state: &mut ConnState,
    index: usize,
    spec: &'static table::CommandSpec,
    argv: &[Bytes],
) -> Result<(), (Error, Flow)> {
    let acl = &shared.acl;
    let generation = acl.generation();
    if generation != state.acl_generation {
        state.acl_generation = generation;
        if let Some(name) = state.user.as_ref().map(|u| u.name.clone()) {
            match acl.user(&name) {
                Some(u) => state.sign_in(Some(u)),
                None => {
                    debug!(id = state.info.id, user = %name, "user deleted: closing its connection");
                    state.sign_in(None);
                    return Err((Error::NoAuth, Flow::Close));
                }
            }
        }
    }
    let Some(user) = &state.user else {
        if spec.flags.contains(&"no_auth") {
            return Ok(());
        }
        return Err((Error::NoAuth, Flow::Continue));
    };
    acl.check(user, index, spec, argv).map_err(|d| {
        acl.log_denial(&d, &user.name, state.info.line());
        (d.error, Flow::Continue)
    })
}

async fn flush<S: Stream>(sock: &mut S, out: &mut WriteBuf, shared: &Shared) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let total = out.len();
    let limit = shared.runtime.output_limit.get();
    if limit.over_hard(total) {
        out.take();
        return Err(io::Error::other(format!(
            "{total} bytes of replies pass the client-output-buffer-limit hard limit ({})",
            limit.hard
        )));
    }
    let write_timeout = Duration::from_secs(shared.runtime.write_timeout.load(Ordering::Relaxed));
    let chunks = out.take();
    write_all_vectored(sock, &chunks, limit, write_timeout).await?;
    shared
        .stats
        .net_out
        .fetch_add(total as u64, Ordering::Relaxed);
    Ok(())
}

/// Writes every chunk in order with as few system calls as the kernel allows, closing the
/// client (an error) when it reads too slowly for `limit`'s soft limit or reads nothing for
/// `write_timeout`.
async fn write_all_vectored<S: Stream>(
    sock: &mut S,
    chunks: &[Bytes],
    limit: OutputLimit,
    write_timeout: Duration,
) -> io::Result<()> {
    let started = Instant::now();
    let mut pending: usize = chunks.iter().map(Bytes::len).sum();
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < chunks.len() {
        let mut slices = Vec::with_capacity(chunks.len() - idx);
        slices.push(IoSlice::new(&chunks[idx][off..]));
        slices.extend(chunks[idx + 1..].iter().map(|c| IoSlice::new(c)));
        let soft = limit.soft_deadline(pending, started);
        let wait = output_limit::write_wait(Instant::now(), soft, write_timeout);
        let write = sock.write_vectored(&slices);
        let mut n = match wait {
            None => write.await?,
            Some(wait) => match tokio::time::timeout(wait, write).await {
                Ok(r) => r?,
                Err(_) if soft.is_some_and(|d| Instant::now() >= d) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "{pending} bytes of replies stayed above the \
                             client-output-buffer-limit soft limit ({}) for {} s",
                            limit.soft, limit.soft_secs
                        ),
                    ));
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client read none of {pending} bytes of replies for {} s",
                            write_timeout.as_secs()
                        ),
                    ));
                }
            },
        };
        pending -= n;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while idx < chunks.len() && n >= chunks[idx].len() - off {
            n -= chunks[idx].len() - off;
            idx += 1;
            off = 0;
        }
        off += n;
    }
    // TLS streams keep the end of a reply in their own buffer until flushed.
    let flush = sock.flush();
    match output_limit::write_wait(Instant::now(), None, write_timeout) {
        None => flush.await,
        Some(wait) => tokio::time::timeout(wait, flush).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client read none of a reply's end for {} s",
                    write_timeout.as_secs()
                ),
            )
        })?,
    }
}

/// Resolves once the connection has been idle since `since` for longer than the `timeout`
/// setting (seconds, 0: never). The setting is read when the wait starts and again each
/// second while it is not 0, so `CONFIG SET timeout` reaches waiting connections except those
/// that started waiting under `timeout 0` (they take it with their next request: no timer
/// is armed per request while no timeout is set).
async fn idle_for(timeout: &std::sync::atomic::AtomicU64, since: Instant) {
    if timeout.load(Ordering::Relaxed) == 0 {
        return std::future::pending().await;
    }
    loop {
        let limit = Duration::from_secs(timeout.load(Ordering::Relaxed));
        let idle = since.elapsed();
        if !limit.is_zero() && idle >= limit {
            return;
        }
        let step = Duration::from_secs(1);
        let wait = if limit.is_zero() {
            step
        } else {
            (limit - idle).min(step)
        };
        tokio::time::sleep(wait).await;
    }
}

/// The error a connection over the limit receives before it is closed.
pub fn max_clients_reply() -> Vec<u8> {
    error_bytes(Error::MaxClients)
}

/// The error a client from another host receives in protected mode before it is closed.
pub fn denied_reply() -> Vec<u8> {
    error_bytes(Error::Denied)
}

fn error_bytes(e: Error) -> Vec<u8> {
    let mut w = WriteBuf::new();
    w.push(&Reply::Error(e), 2);
    w.take().concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_payloads_land_aligned() {
        for header in 1..70 {
            let mut rbuf = BytesMut::from(&vec![b'h'; header][..]);
            make_room(&mut rbuf, header + (1 << 20) + 2, Some(header));
            assert_eq!(
                (rbuf.as_ptr() as usize + header) % PAYLOAD_ALIGN,
                0,
                "header {header}"
            );
            assert_eq!(&rbuf[..], &vec![b'h'; header][..], "buffered bytes kept");
            assert!(rbuf.capacity() >= header + (1 << 20) + 2);
        }
    }
}
