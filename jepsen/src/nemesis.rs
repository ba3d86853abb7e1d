//! The faults of a run, on a schedule: a heal phase, then a fault held for a while, then
//! the heal (links restored, paused nodes continued, killed nodes restarted from their
//! folders), again and again. Which fault comes next is drawn from the run's seed, so a
//! seed repeats a schedule.

use std::time::Duration;

use anyhow::Result;
use rand::{Rng, rngs::StdRng, seq::SliceRandom};

use crate::db::Db;
use crate::net::Net;

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The leader cut off from every other node.
    PartitionLeader,
    /// A random minority cut off from the majority.
    PartitionHalves,
    /// Two halves that cannot reach each other, and one node that reaches both.
    PartitionBridge,
    /// Random sides of any sizes.
    PartitionRandom,
    /// kill -9 of random nodes, fewer than half a shard.
    Kill,
    /// kill -9 of the leader.
    KillLeader,
    /// SIGSTOP of a random node.
    Pause,
    /// SIGSTOP of the leader (it must not serve after it wakes).
    PauseLeader,
    /// Every follower's clocks run 1.5-3 times as fast as the leader's (libfaketime; the
    /// followers restart a minority at a time to take it), then the leader is cut off: its
    /// lease, counted on its slower clock, must end before the followers, counting on
    /// theirs, elect a new leader that takes writes. The lease read's stated assumption is
    /// a bounded clock-rate difference: this is that assumption broken on purpose.
    ClockSkew,
    /// A follower removed from the cluster (`shardai cluster del-node`), killed and its
    /// folder emptied; at the heal it starts empty and joins again (`add-node`), catching
    /// up from the others.
    Membership,
    /// Slots moved, with their keys, from one shard to another (`shardai cluster
    /// reshard`) while the workers go on; needs two shards or more.
    Reshard,
}

impl Fault {
    pub(crate) const ALL: [Fault; 11] = [
        Fault::PartitionLeader,
        Fault::PartitionHalves,
        Fault::PartitionBridge,
        Fault::PartitionRandom,
        Fault::Kill,
        Fault::KillLeader,
        Fault::Pause,
        Fault::PauseLeader,
        Fault::ClockSkew,
        Fault::Membership,
        Fault::Reshard,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::PartitionLeader => "partition-leader",
            Fault::PartitionHalves => "partition-halves",
            Fault::PartitionBridge => "partition-bridge",
            Fault::PartitionRandom => "partition-random",
            Fault::Kill => "kill",
            Fault::KillLeader => "kill-leader",
            Fault::Pause => "pause",
            Fault::PauseLeader => "pause-leader",
            Fault::ClockSkew => "clock-skew",
            Fault::Membership => "membership",
            Fault::Reshard => "reshard",
        }
    }

    /// The faults a `--nemesis` word names: `all`, `none`, a family (`partition`, `kill`,
    /// `pause`, `clock`) or one fault. `all` has `reshard` only for `shards` of two or
    /// more; naming it for one shard is an error.
    pub(crate) fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let before = out.len();
            for f in Fault::ALL {
                let family = f.name().split('-').next().unwrap_or_default();
                if w == "all" || w == f.name() || w == family {
                    out.push(f);
                }
            }
            if out.len() == before && w != "none" {
                let names: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                return Err(format!(
                    "unknown nemesis {w:?}: use all, none, partition, kill, pause, clock, membership, reshard or one of {}",
                    names.join(", ")
                ));
            }
        }
        out.dedup();
        Ok(out)
    }
}

/// A fault's time in the run, in microseconds since its start.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub(crate) fault: Fault,
    /// What was done, for the report (which nodes).
    pub(crate) detail: String,
    pub(crate) start_us: u64,
    pub(crate) end_us: u64,
}

/// The faults in place now, to heal.
#[derive(Default)]
pub(crate) struct Applied {
    killed: Vec<usize>,
    paused: Vec<usize>,
    skewed: Vec<usize>,
    cut: bool,
    /// Removed from the cluster and emptied: to start and add again.
    removed: Vec<usize>,
    /// The node the last membership fault removed (it came back a learner of the metadata
    /// group: removing it again keeps the metadata group's voters).
    last_removed: Option<usize>,
    /// A reshard under way.
    reshard: Option<tokio::task::JoinHandle<Result<String>>>,
}

/// Some leader (the first shard's when several lead), or a random node when none does.
async fn a_leader(db: &mut Db, rng: &mut StdRng) -> usize {
    match db.leaders().await.first() {
        Some(&l) => l,
        None => rng.gen_range(0..db.nodes.len()),
    }
}

/// Applies `fault`; says what it did.
pub(crate) async fn apply(
    fault: Fault,
    db: &mut Db,
    net: &Net,
    shard_size: usize,
    rng: &mut StdRng,
    applied: &mut Applied,
) -> Result<String> {
    let n = db.nodes.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Ok(match fault {
        Fault::PartitionLeader => {
            let l = a_leader(db, rng).await;
            net.isolate(&[l])?;
            applied.cut = true;
            format!("n{l} alone")
        }
        Fault::PartitionHalves => {
            let side = &order[..n / 2];
            net.isolate(side)?;
            applied.cut = true;
            format!("{side:?} | rest")
        }
        Fault::PartitionBridge => {
            let (a, b) = order[1..].split_at((n - 1) / 2);
            net.cut(a, b)?;
            applied.cut = true;
            format!("{a:?} | {b:?}, n{} sees both", order[0])
        }
        Fault::PartitionRandom => {
            let k = rng.gen_range(1..n);
            let side = &order[..k];
            net.isolate(side)?;
            applied.cut = true;
            format!("{side:?} | rest")
        }
        Fault::Kill => {
            // At most a minority of a shard, whichever shards the victims are in.
            let k = rng.gen_range(1..=((shard_size - 1) / 2).max(1));
            for &i in &order[..k] {
                db.nodes[i].kill();
                applied.killed.push(i);
            }
            format!("killed {:?}", &order[..k])
        }
        Fault::KillLeader => {
            let l = a_leader(db, rng).await;
            db.nodes[l].kill();
            applied.killed.push(l);
            format!("killed n{l}")
        }
        Fault::Pause => {
            let i = order[0];
            db.nodes[i].pause();
            applied.paused.push(i);
            format!("paused n{i}")
        }
        Fault::PauseLeader => {
            let l = a_leader(db, rng).await;
            db.nodes[l].pause();
            applied.paused.push(l);
            format!("paused n{l}")
        }
        Fault::ClockSkew => {
            if !std::path::Path::new(crate::db::FAKETIME_LIB).exists() {
                anyhow::bail!(
                    "clock-skew needs libfaketime ({}): apt-get install faketime",
                    crate::db::FAKETIME_LIB
                );
            }
            let l = a_leader(db, rng).await;
            let rate = [1.5, 2.0, 3.0][rng.gen_range(0..3)];
            let followers: Vec<usize> = (0..n).filter(|&i| i != l).collect();
            restart_in_turns(db, &followers, Some(rate)).await?;
            applied.skewed.extend(&followers);
            // Whoever leads now (the restarts may have moved leadership) is cut off.
            let l = a_leader(db, rng).await;
            net.isolate(&[l])?;
            applied.cut = true;
            format!("followers' clocks x{rate}, then n{l} alone")
        }
        Fault::Membership => {
            let leaders = db.leaders().await;
            let Some(v) = applied
                .last_removed
                .filter(|v| !leaders.contains(v))
                .or_else(|| order.iter().copied().find(|i| !leaders.contains(i)))
            else {
                return Ok("no follower to remove".into());
            };
            let id = db.node_id(v).await?;
            let via = a_member(db, v, &leaders).await;
            retry(db, vec!["del-node".into(), via, id]).await?;
            db.wipe(v)?;
            applied.removed.push(v);
            applied.last_removed = Some(v);
            format!("n{v} removed (del-node), its folder emptied")
        }
        Fault::Reshard => {
            let shards = n / shard_size;
            if shards < 2 {
                anyhow::bail!("reshard needs two shards or more (--nodes 6 --replicas 2)");
            }
            let from = rng.gen_range(0..shards);
            let to = (from + rng.gen_range(1..shards)) % shards;
            let slots = rng.gen_range(500..=2000);
            let (a, b) = (
                db.nodes[from * shard_size].addr(),
                db.nodes[to * shard_size].addr(),
            );
            let args = vec![
                "reshard".to_string(),
                a.clone(),
                "--from".into(),
                a,
                "--to".into(),
                b,
                "--slots".into(),
                slots.to_string(),
            ];
            let cli = db.cli();
            applied.reshard = Some(tokio::spawn(async move { cli.run(args).await }));
            format!("{slots} slots from shard {from} to shard {to}")
        }
    })
}

/// Another node of `v`'s shard, its leader when one is known.
async fn a_member(db: &mut Db, v: usize, leaders: &[usize]) -> String {
    let shard = db.shard_of(v);
    let i = leaders
        .iter()
        .copied()
        .find(|l| shard.contains(l))
        .unwrap_or(if shard.start == v { v + 1 } else { shard.start });
    db.nodes[i].addr()
}

/// Runs `shardai cluster ARGS...` up to three times, a second apart, until it succeeds.
async fn retry(db: &Db, args: Vec<String>) -> Result<String> {
    let mut last = None;
    for _ in 0..3 {
        match db.cluster(args.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last.expect("tried at least once"))
}

/// Restarts `nodes` with the clock rate `rate` (None: real time), a minority of a shard at
/// a time, each group caught up before the next goes down.
async fn restart_in_turns(db: &mut Db, nodes: &[usize], rate: Option<f64>) -> Result<()> {
    let group = (db.shard_size - 1) / 2;
    for turn in nodes.chunks(group.max(1)) {
        for &i in turn {
            db.nodes[i].clock_rate = rate;
            db.spawn(i)?;
        }
        for &i in turn {
            db.wait_node(i, Duration::from_secs(30)).await?;
        }
        // Time to rejoin and catch up (a snapshot at most) before the next turn.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}

/// Undoes every fault in place; says what the heal found (a reshard's outcome).
pub(crate) async fn heal(db: &mut Db, net: &Net, applied: &mut Applied) -> Result<String> {
    let mut found = String::new();
    if let Some(r) = applied.reshard.take() {
        found = match r.await? {
            Ok(out) => out.lines().last().unwrap_or_default().to_string(),
            Err(e) => format!("reshard failed: {e:#}"),
        };
    }
    if applied.cut {
        net.heal()?;
        applied.cut = false;
    }
    for i in applied.paused.drain(..) {
        db.nodes[i].resume();
    }
    for i in applied.killed.drain(..) {
        db.spawn(i)?;
    }
    let skewed: Vec<usize> = applied.skewed.drain(..).collect();
    restart_in_turns(db, &skewed, None).await?;
    for v in applied.removed.drain(..) {
        db.spawn(v)?;
        db.wait_node(v, Duration::from_secs(30)).await?;
        let leaders = db.leaders().await;
        let via = a_member(db, v, &leaders).await;
        let new = db.nodes[v].addr();
        retry(db, vec!["add-node".into(), new, via]).await?;
    }
    Ok(found)
}

/// How long each fault is held and each heal phase lasts.
pub(crate) fn phases(run: Duration) -> (Duration, Duration) {
    // At least two faults in a short run; 5 s faults and 3 s heals in a long one.
    let fault = (run / 5).clamp(Duration::from_secs(2), Duration::from_secs(5));
    let heal = (run / 8).clamp(Duration::from_secs(1), Duration::from_secs(3));
    (fault, heal)
}
