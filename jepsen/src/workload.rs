//! The client workers of a run and the history they record: registers (INT64 scalar
//! tensors written with AI.TENSORSET and read with AI.TENSORGET, a few keys at a time, each
//! key retired after a bounded number of operations so that its history stays checkable),
//! unique adds for the set check, executions of a model ([`crate::models`]) and READONLY
//! follower reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::{Rng, SeedableRng, rngs::StdRng};
use redis::Value;

use crate::client::{Client, Reply};
use crate::history::{Kind, Op, Outcome};

/// What the workers share.
pub(crate) struct Shared {
    pub(crate) start: Instant,
    pub(crate) ops: Mutex<Vec<Op>>,
    pub(crate) stop: AtomicBool,
    /// The client addresses of the nodes (they keep them across restarts).
    pub(crate) addrs: Vec<String>,
    next_value: AtomicI64,
    key_ops: Vec<AtomicU64>,
    ops_per_key: u64,
    timeout: Duration,
}

impl Shared {
    pub(crate) fn new(
        addrs: Vec<String>,
        keys: usize,
        ops_per_key: u64,
        timeout: Duration,
    ) -> Shared {
        Shared {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            addrs,
            next_value: AtomicI64::new(1),
            key_ops: (0..keys).map(|_| AtomicU64::new(0)).collect(),
            ops_per_key,
            timeout,
        }
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// A register key for the next operation: one of the live ones, each replaced by a
    /// fresh key after `ops_per_key` operations.
    fn register(&self, rng: &mut StdRng) -> String {
        let j = rng.gen_range(0..self.key_ops.len());
        let n = self.key_ops[j].fetch_add(1, Ordering::Relaxed);
        format!("r{j}.{}", n / self.ops_per_key)
    }
}

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Reads and writes registers on leaders.
    Registers,
    /// Unique adds.
    Adds,
    /// Reads registers on any node with READONLY.
    FollowerReads,
    /// Executes the model, each time into an output key of its own.
    Models,
}

fn tensorset(key: &str, v: i64) -> redis::Cmd {
    let mut c = redis::cmd("AI.TENSORSET");
    c.arg(key).arg("INT64").arg(1).arg("VALUES").arg(v);
    c
}

fn tensorget(key: &str) -> redis::Cmd {
    let mut c = redis::cmd("AI.TENSORGET");
    c.arg(key).arg("VALUES");
    c
}

/// The value of an AI.TENSORGET ... VALUES reply of one INT64.
fn scalar(v: &Value) -> Option<i64> {
    match v {
        Value::Array(a) if a.len() == 1 => match &a[0] {
            Value::Int(i) => Some(*i),
            Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// How a write ended. Only errors that come before a write is proposed prove it did
/// nothing; any other error may follow a proposal that still commits.
fn write_outcome(r: &Reply) -> (Outcome, String) {
    match r {
        Reply::Value(_, at) => (Outcome::Ok, at.clone()),
        Reply::NotSent(e) => (Outcome::Fail, e.clone()),
        Reply::Error(e, at) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => {
            (Outcome::Fail, format!("{at}: {e}"))
        }
        Reply::Error(e, at) => (Outcome::Info, format!("{at}: {e}")),
        Reply::Unknown(e) => (Outcome::Info, e.clone()),
    }
}

/// How a read ended, and the value it saw.
fn read_outcome(r: &Reply) -> (Outcome, Option<i64>, String) {
    match r {
        Reply::Value(v, at) => match scalar(v) {
            Some(x) => (Outcome::Ok, Some(x), at.clone()),
            None => (Outcome::Fail, None, format!("{at}: unexpected reply {v:?}")),
        },
        Reply::Error(e, at) if e.contains("tensor key is empty") => (Outcome::Ok, None, at.clone()),
        Reply::Error(e, at) => (Outcome::Fail, None, format!("{at}: {e}")),
        Reply::Unknown(e) | Reply::NotSent(e) => (Outcome::Fail, None, e.clone()),
    }
}

/// Runs one worker until `shared.stop`.
pub(crate) async fn run(id: usize, role: Role, shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9e37_79b9));
    let mut client = Client::new(shared.timeout, role == Role::FollowerReads);
    let mut node = shared.addrs[rng.gen_range(0..shared.addrs.len())].clone();
    while !shared.stop.load(Ordering::Relaxed) {
        // Half the operations start at a random node (following its MOVED), so that a new
        // leader gets traffic as soon as the others know it, and an old one still does.
        if role == Role::FollowerReads || rng.gen_bool(0.5) {
            node = shared.addrs[rng.gen_range(0..shared.addrs.len())].clone();
        }
        let invoke_us = shared.now_us();
        let (kind, key, value, reply) = match role {
            Role::Registers if rng.gen_bool(0.5) => {
                let key = shared.register(&mut rng);
                let v = shared.next_value.fetch_add(1, Ordering::Relaxed);
                let r = client.call(&node, &tensorset(&key, v)).await;
                (Kind::Write, key, Some(v), r)
            }
            Role::Registers | Role::FollowerReads => {
                let key = shared.register(&mut rng);
                let r = client.call(&node, &tensorget(&key)).await;
                (Kind::Read, key, None, r)
            }
            Role::Adds => {
                let v = shared.next_value.fetch_add(1, Ordering::Relaxed);
                let key = format!("s{v}");
                let r = client.call(&node, &tensorset(&key, v)).await;
                (Kind::Add, key, Some(v), r)
            }
            Role::Models => {
                let v = shared.next_value.fetch_add(1, Ordering::Relaxed);
                let r = crate::models::execute(&mut client, &node, v, rng.gen_bool(0.5)).await;
                (
                    Kind::Model,
                    crate::models::output_key(v),
                    Some(crate::models::input_of(v)),
                    r,
                )
            }
        };
        let complete_us = shared.now_us();
        let (outcome, value, note) = if kind == Kind::Read {
            read_outcome(&reply)
        } else {
            let (o, n) = write_outcome(&reply);
            (o, value, n)
        };
        match &reply {
            // Stay with the node that answered (the leader, after MOVED).
            Reply::Value(_, at) => node = at.clone(),
            _ => {
                node = shared.addrs[rng.gen_range(0..shared.addrs.len())].clone();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        shared.ops.lock().push(Op {
            worker: id,
            kind,
            key,
            value,
            invoke_us,
            complete_us,
            outcome,
            note,
            follower: role == Role::FollowerReads,
        });
    }
}

/// Reads every added key once the faults have healed (retrying each until it answers or
/// `within` passes): the keys found, with their values, and those that never answered.
pub(crate) async fn final_read(
    shared: &Shared,
    keys: &[String],
    within: Duration,
) -> (std::collections::BTreeMap<String, i64>, Vec<String>) {
    let end = Instant::now() + within;
    let mut client = Client::new(shared.timeout, false);
    let mut found = std::collections::BTreeMap::new();
    let mut unread = Vec::new();
    let mut n = 0usize;
    for k in keys {
        loop {
            let node = &shared.addrs[n % shared.addrs.len()];
            let (o, v, _) = read_outcome(&client.call(node, &tensorget(k)).await);
            if o == Outcome::Ok {
                if let Some(v) = v {
                    found.insert(k.clone(), v);
                }
                break;
            }
            n += 1;
            if Instant::now() > end {
                unread.push(k.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (found, unread)
}
