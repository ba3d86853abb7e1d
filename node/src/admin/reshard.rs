//! `shardai cluster add-shard / reshard / rebalance`: growing the cluster by a shard and
//! moving slots between shards while they serve, with the same CLUSTER SETSLOT /
//! GETKEYSINSLOT / MIGRATE sequence `redis-cli --cluster reshard` sends, and progress lines
//! while it runs. Which slots move where is decided by the pure functions in
//! [`super::plan`].

use std::{
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use shardai_router::{NodeInfo, ShardInfo};

use super::{
    Conn, Val, call_strs, member_args,
    plan::{self, Master, Shape},
    random_u64, state, topology, wait_for_ok,
};

fn shape(addr: &str) -> Result<Shape, String> {
    Ok(Shape::parse(
        &Conn::open(addr)?.ok(&["CLUSTER", "NODES"])?.text(),
    ))
}

/// Connections kept open for the whole run.
#[derive(Default)]
struct Conns(HashMap<String, Conn>);

impl Conns {
    fn ok(&mut self, addr: &str, args: &[&str]) -> Result<Val, String> {
        if !self.0.contains_key(addr) {
            self.0.insert(addr.to_string(), Conn::open(addr)?);
        }
        let c = self.0.get_mut(addr).expect("inserted");
        let r = c.ok(args);
        if r.is_err() {
            self.0.remove(addr);
        }
        r
    }
}

/// Moves one slot's keys from `src` to `dst` and hands the slot over; returns the number of
/// keys moved.
fn move_slot(
    conns: &mut Conns,
    src: &Master,
    dst: &Master,
    slot: u16,
    pipeline: usize,
) -> Result<usize, String> {
    let slot_s = slot.to_string();
    conns.ok(
        &dst.addr,
        &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &src.id],
    )?;
    conns.ok(
        &src.addr,
        &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &dst.id],
    )?;
    let (host, port) = dst.addr.rsplit_once(':').ok_or("bad address")?;
    let mut moved = 0;
    loop {
        let keys = match conns.ok(
            &src.addr,
            &["CLUSTER", "GETKEYSINSLOT", &slot_s, &pipeline.to_string()],
        )? {
            Val::Arr(k) => k.iter().map(Val::text).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        if keys.is_empty() {
            break;
        }
        let auth = super::conn::migrate_auth();
        let mut args = vec!["MIGRATE", host, port, "", "0", "60000"];
        args.extend(auth.iter().map(String::as_str));
        args.push("KEYS");
        args.extend(keys.iter().map(String::as_str));
        conns.ok(&src.addr, &args)?;
        moved += keys.len();
    }
    // The source first: its leader refuses while it still holds keys of the slot (a write
    // still in flight when GETKEYSINSLOT answered), so the slot never moves without them.
    conns.ok(&src.addr, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &dst.id])?;
    conns.ok(&dst.addr, &["CLUSTER", "SETSLOT", &slot_s, "NODE", &dst.id])?;
    Ok(moved)
}

/// Moves `plan` (slot, source master id, target master id) with `parallel` workers,
/// re-reading the masters and retrying a slot when a shard's leader changed meanwhile;
/// prints progress every second.
fn run_plan(
    existing: &str,
    plan: Vec<(u16, String, String)>,
    pipeline: usize,
    parallel: usize,
) -> Result<(), String> {
    let started = Instant::now();
    let total = plan.len();
    let done = AtomicUsize::new(0);
    let keys = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<String>);
    let first = shape(existing)?;
    let workers = parallel.clamp(1, 64);
    let progress = |final_line: bool| {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let (d, k) = (done.load(Ordering::Relaxed), keys.load(Ordering::Relaxed));
        if final_line || d < total {
            println!(
                ">>> {d}/{total} slots moved, {k} keys, {secs:.1} s, {:.0} keys/s, {:.0} slots/s",
                k as f64 / secs,
                d as f64 / secs
            );
        }
    };
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (plan, done, keys, failed) = (&plan, &done, &keys, &failed);
            let mut cur = first.clone();
            scope.spawn(move || {
                let mut conns = Conns::default();
                for (slot, src, dst) in plan.iter().skip(w).step_by(workers) {
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let mut tries = 0;
                    loop {
                        let attempt = (|| {
                            let s = cur.master(src)?.clone();
                            let d = cur.master(dst)?.clone();
                            move_slot(&mut conns, &s, &d, *slot, pipeline)
                        })();
                        match attempt {
                            Ok(n) => {
                                keys.fetch_add(n, Ordering::Relaxed);
                                done.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) if tries < 10 => {
                                tries += 1;
                                eprintln!("[WARN] slot {slot}: {e}; retrying");
                                std::thread::sleep(Duration::from_millis(500));
                                if let Ok(s) = shape(existing) {
                                    cur = s;
                                }
                            }
                            Err(e) => {
                                if let Ok(mut f) = failed.lock() {
                                    f.get_or_insert(format!("slot {slot}: {e}"));
                                }
                                return;
                            }
                        }
                    }
                }
            });
        }
        let mut last = Instant::now();
        while done.load(Ordering::Relaxed) < total
            && failed.lock().map(|f| f.is_none()).unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(50));
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                progress(false);
            }
        }
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    progress(true);
    wait_shown(existing, &plan)?;
    println!(
        "[OK] moved {total} slots ({} keys)",
        keys.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Waits until `existing` shows every slot of `moves` on its target. Each move is committed
/// through the shards it leaves and joins; `existing` learns it from the metadata group a
/// moment later. Waiting means that once a command says OK, the next one started from the
/// same node (a `rebalance` after a `reshard`) plans from the moved slots.
fn wait_shown(existing: &str, moves: &[plan::Move]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = match shape(existing) {
            Ok(s) => match plan::not_shown(&s, moves) {
                0 => return Ok(()),
                left => format!("it still shows {left} moved slot(s) off their new shard"),
            },
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "every slot moved, but {existing} did not show it within 30 s ({last}): check \
                 with shardai cluster info"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `shardai cluster reshard EXISTING --from X --to Y --slots N`.
pub(super) fn reshard(
    existing: String,
    from: String,
    to: String,
    slots: usize,
    pipeline: usize,
    parallel: usize,
) -> Result<(), String> {
    let s = shape(&existing)?;
    let dst = s.master(&to)?.clone();
    let (plan, sources) = plan::reshard(&s, &from, &dst, slots)?;
    println!(
        ">>> moving {} slots to {} ({}) from {} shard(s)",
        plan.len(),
        dst.addr,
        dst.id,
        sources
    );
    run_plan(&existing, plan, pipeline, parallel)
}

/// `shardai cluster rebalance EXISTING`: even slot counts over every shard.
pub(super) fn rebalance(existing: String, pipeline: usize, parallel: usize) -> Result<(), String> {
    let s = shape(&existing)?;
    let n = s.masters.len();
    if n == 0 {
        return Err("no shard has a leader".into());
    }
    let plan = plan::rebalance(&s.masters);
    if plan.is_empty() {
        println!("[OK] the slots are already spread evenly over {n} shards");
        return Ok(());
    }
    println!(
        ">>> rebalancing: moving {} slots over {n} shards",
        plan.len()
    );
    run_plan(&existing, plan, pipeline, parallel)
}

/// `shardai cluster add-shard EXISTING NEW...`: the new nodes (empty, --cluster-enabled
/// yes) form a new shard without slots; `rebalance` or `reshard` then gives it some.
pub(super) fn add_shard(existing: String, new: Vec<String>) -> Result<(), String> {
    let Some((cluster, ..)) = state(&existing)? else {
        return Err(format!("{existing} is not part of a cluster"));
    };
    for n in &new {
        if let Some((c, ..)) = state(n)? {
            return Err(format!("{n} already belongs to cluster {c}"));
        }
    }
    let mut t = topology(&existing)?;
    let shard = t.shards.keys().max().map_or(0, |m| m + 1);
    let mut ids = Vec::new();
    for n in &new {
        let id = random_u64();
        let bus = Conn::open(n)?
            .ok(&["CLUSTER", "SHARDAI-JOIN", &cluster, &id.to_string(), n])?
            .text();
        t.nodes.insert(
            id,
            NodeInfo {
                tls_port: super::conn::tls_port(n)?,
                id,
                client_addr: n.clone(),
                bus_addr: bus,
                shard,
            },
        );
        ids.push(id);
    }
    let mut init = vec!["CLUSTER".into(), "SHARDAI-INIT".into(), "data".into()];
    init.extend(member_args(&t, &ids));
    call_strs(&new[0], &init, false)?;
    for id in &ids {
        let mut add: Vec<String> = ["CLUSTER", "SHARDAI-ADDNODE", "meta", "learner"]
            .map(String::from)
            .to_vec();
        add.extend(member_args(&t, &[*id]));
        call_strs(&existing, &add, true)?;
    }
    t.epoch += 1;
    t.shards.insert(
        shard,
        ShardInfo {
            id: shard,
            nodes: ids.clone(),
            slots: Vec::new(),
        },
    );
    call_strs(
        &existing,
        &["CLUSTER".into(), "SHARDAI-SETTOPOLOGY".into(), t.encode()],
        false,
    )?;
    let all: Vec<String> = t.nodes.values().map(|n| n.client_addr.clone()).collect();
    wait_for_ok(&all, Duration::from_secs(30))?;
    // Wait until the new shard's leader is known to the existing node.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = shape(&existing)?;
        if let Some(m) = s
            .masters
            .iter()
            .find(|m| ids.iter().any(|id| format!("{id:040x}") == m.id))
        {
            println!(
                "[OK] shard {shard} ({} nodes) joined cluster {cluster}; leader {} ({}). \
                 Give it slots with `shardai cluster rebalance {existing}`",
                ids.len(),
                m.addr,
                m.id
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err("the new shard elected no leader in time".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
