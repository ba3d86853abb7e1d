//! One run: a fresh network and cluster, the workers and the nemesis for the run's time,
//! the heal and a quiet period, the final read, the checks, and what is written for a
//! person (the picture always; the history and each failing key's smallest failing
//! history when a check fails).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

use crate::checker::{followers, linear, models as model_check, set};
use crate::db::Db;
use crate::history::{self, Kind, Op, Outcome};
use crate::models;
use crate::nemesis::{self, Applied, Fault, Window};
use crate::net::Net;
use crate::report::RunResult;
use crate::workload::{self, Role, Shared};

/// How a run is set up.
pub(crate) struct Setup {
    pub(crate) bin: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) nodes: usize,
    pub(crate) replicas: usize,
    pub(crate) time: Duration,
    pub(crate) faults: Vec<Fault>,
    pub(crate) workers: usize,
    /// Hold READONLY follower reads to linearizability (they are not: a run in this mode
    /// must report violations, which proves the checker can fail).
    pub(crate) follower_reads_linearizable: bool,
    pub(crate) server_args: Vec<String>,
    pub(crate) keep: bool,
}

/// Steps of the linearizability search per key before it gives up.
const SEARCH_BUDGET: u64 = 20_000_000;
/// Steps per check while a failing history is shrunk (many checks, each of a part).
const MINIMIZE_BUDGET: u64 = 200_000;
/// Operations per register key.
const OPS_PER_KEY: u64 = 150;

/// `deck`: the faults still to come, shared by the runs of a sweep so that a short sweep
/// goes through every fault once before any comes again.
pub(crate) async fn run(
    setup: &Setup,
    run: usize,
    seed: u64,
    deck: &mut Vec<Fault>,
) -> Result<RunResult> {
    let dir = setup.out.join(format!("run{run}"));
    // Fresh: nodes must not start from an earlier sweep's folders.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let net = Net::create(setup.nodes, rand::random::<u32>())?;
    let mut db = Db::start(&setup.bin, &net.hosts, &dir, &setup.server_args)?;
    db.wait_up(Duration::from_secs(30)).await?;
    db.create(setup.replicas).await?;
    let shards = setup.nodes / (setup.replicas + 1);
    let end = Instant::now() + Duration::from_secs(30);
    while db.leaders().await.len() < shards {
        if Instant::now() > end {
            bail!("the cluster elected no leader in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addrs: Vec<String> = db.nodes.iter().map(|n| n.addr()).collect();
    let expected = models::prepare(&addrs, Duration::from_secs(30)).await?;
    let shared = Arc::new(Shared::new(
        addrs.clone(),
        6,
        OPS_PER_KEY,
        Duration::from_secs(1),
    ));
    let mut roles = vec![Role::Registers; setup.workers];
    roles.extend([
        Role::Adds,
        Role::Adds,
        Role::FollowerReads,
        Role::FollowerReads,
        Role::Models,
        Role::Models,
    ]);
    let workers: Vec<_> = roles
        .iter()
        .enumerate()
        .map(|(i, &role)| tokio::spawn(workload::run(i, role, shared.clone(), seed)))
        .collect();

    // The faults, each followed by its heal.
    let mut rng = StdRng::seed_from_u64(seed);
    let (fault_t, heal_t) = nemesis::phases(setup.time);
    let deadline = Instant::now() + setup.time;
    let mut windows = Vec::new();
    let mut applied = Applied::default();
    // A fault that could not be made or healed ends the faults and fails the run; the
    // history so far is still checked.
    let mut nemesis_errors = Vec::new();
    while Instant::now() + heal_t + fault_t <= deadline
        && !setup.faults.is_empty()
        && nemesis_errors.is_empty()
    {
        tokio::time::sleep(heal_t).await;
        if deck.is_empty() {
            *deck = setup.faults.clone();
            deck.shuffle(&mut rng);
        }
        let fault = deck.pop().expect("refilled");
        let start_us = shared.now_us();
        let detail = match nemesis::apply(fault, &mut db, &net, &mut rng, &mut applied).await {
            Ok(d) => {
                tokio::time::sleep(fault_t).await;
                d
            }
            Err(e) => {
                nemesis_errors.push(format!("{}: {e:#}", fault.name()));
                "could not be made".into()
            }
        };
        let found = match nemesis::heal(&mut db, &net, &mut applied).await {
            Ok(f) => f,
            Err(e) => {
                nemesis_errors.push(format!("healing {}: {e:#}", fault.name()));
                "its heal failed".into()
            }
        };
        windows.push(Window {
            fault,
            detail: if found.is_empty() {
                detail
            } else {
                format!("{detail}: {found}")
            },
            start_us,
            end_us: shared.now_us(),
        });
    }
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    // Quiet: the cluster recovers while the workers go on.
    tokio::time::sleep(Duration::from_secs(10)).await;
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.context("a worker panicked")?;
    }
    let ops: Vec<Op> = std::mem::take(&mut *shared.ops.lock());
    // Refused adds too: one that shows up proves a refusal wrong.
    let added: Vec<String> = ops
        .iter()
        .filter(|o| o.kind == Kind::Add)
        .map(|o| o.key.clone())
        .collect();
    let (found, unread) = workload::final_read(&shared, &added, Duration::from_secs(30)).await;
    let outputs = models::final_read(&addrs, db.shard_size, &ops, Duration::from_secs(30)).await;
    drop(db);
    drop(net);

    let mut res = RunResult {
        run,
        seed,
        ..Default::default()
    };
    res.tally(&ops, &windows);
    res.staleness = followers::staleness(&ops);
    res.nemesis_errors = nemesis_errors;
    res.set = set::check(&ops, &found);
    // An add the final read could not reach is unread (which fails the run), not lost.
    res.set.lost.retain(|v| !unread.contains(&format!("s{v}")));
    res.unread = unread.len();
    match &outputs {
        Ok(seen) => res.models = model_check::check(&ops, &expected, seen, setup.replicas + 1),
        Err(e) => res.model_read_error = Some(format!("{e:#}")),
    }
    let failing = check_registers(&ops, setup.follower_reads_linearizable, &mut res);
    let title = format!(
        "run {run} (seed {seed}): {}",
        windows
            .iter()
            .map(|w| w.fault.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::report::plot(&dir.join("run.svg"), &title, &ops, &windows)?;
    let faults: String = windows
        .iter()
        .map(|w| {
            format!(
                "{:>8.2}s-{:>8.2}s {} ({})\n",
                w.start_us as f64 / 1e6,
                w.end_us as f64 / 1e6,
                w.fault.name(),
                w.detail
            )
        })
        .collect();
    std::fs::write(dir.join("faults.txt"), faults)?;
    if !res.passed() {
        std::fs::write(dir.join("history.jsonl"), history::to_json_lines(&ops))?;
        for (key, core) in failing {
            std::fs::write(
                dir.join(format!("failing-{key}.jsonl")),
                history::to_json_lines(&core),
            )?;
        }
        std::fs::write(
            dir.join("set.txt"),
            format!(
                "lost: {:?}\nphantom: {:?}\nunread: {unread:?}\n",
                res.set.lost, res.set.phantom
            ),
        )?;
        std::fs::write(
            dir.join("models.txt"),
            format!(
                "lost: {:?}\nwrong: {:?}\nphantom: {:?}\nnot read on every replica: {:?}\n\
                 read error: {:?}\n",
                res.models.lost,
                res.models.wrong,
                res.models.phantom,
                res.models.short,
                res.model_read_error
            ),
        )?;
    }
    if !setup.keep {
        remove_data(&dir, setup.nodes);
    }
    Ok(res)
}

/// Checks every register key; returns each failing key's smallest failing history.
fn check_registers(
    ops: &[Op],
    followers_linearizable: bool,
    res: &mut RunResult,
) -> Vec<(String, Vec<Op>)> {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    let mut written: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for o in ops
        .iter()
        .filter(|o| matches!(o.kind, Kind::Write | Kind::Read))
    {
        if o.kind == Kind::Write && o.outcome != Outcome::Fail {
            written.entry(&o.key).or_default().extend(o.value);
        }
        if !o.follower || followers_linearizable {
            by_key.entry(&o.key).or_default().push(o.clone());
        }
    }
    // Follower reads promise a value someone wrote (or none), not the latest one.
    res.follower_phantoms = ops
        .iter()
        .filter(|o| o.follower && o.outcome == Outcome::Ok)
        .filter(|o| {
            o.value
                .is_some_and(|v| !written.get(&o.key[..]).is_some_and(|w| w.contains(&v)))
        })
        .count();
    res.keys = by_key.len();
    let mut failing = Vec::new();
    for (key, h) in by_key {
        match linear::check(&h, SEARCH_BUDGET) {
            linear::Verdict::Linearizable => {}
            linear::Verdict::Unknown => res.undecided += 1,
            linear::Verdict::Violation => {
                res.violations.push(key.to_string());
                if failing.len() < 5 {
                    failing.push((key.to_string(), linear::minimize(&h, MINIMIZE_BUDGET)));
                }
            }
        }
    }
    failing
}

/// Removes the nodes' data folders (their logs stay).
fn remove_data(dir: &Path, nodes: usize) {
    for i in 0..nodes {
        let _ = std::fs::remove_dir_all(dir.join(format!("n{i}")));
    }
}
