//! The faults of a run, on a schedule: a heal phase, then a fault held for a while, then
//! the heal (a reshard waited for, links restored, paused nodes continued, killed nodes
//! restarted from their folders, removed nodes started empty and added again), again and
//! again. Which fault comes next is drawn from the run's seed, so a
//! seed repeats a schedule.

use std::{ops::Range, time::Duration};

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
    /// `pause`, `clock`) or one fault.
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

/// A reshard's move: from shard, to shard, slots.
type Move = (usize, usize, usize);

/// The faults in place now, to heal.
#[derive(Default)]
pub(crate) struct Applied {
    killed: Vec<usize>,
    paused: Vec<usize>,
    skewed: Vec<usize>,
    cut: bool,
    /// Removed from the cluster and emptied: to start and add again.
    removed: Vec<usize>,
    /// Every node a membership fault has removed in this run (each came back a learner of
    /// the metadata group).
    removed_before: Vec<usize>,
    /// A reshard under way: the command, and the move it makes (from, to, slots).
    reshard: Option<(tokio::task::JoinHandle<Result<String>>, Move)>,
    /// Slots each shard owns (as the harness has moved them).
    owned: Vec<usize>,
}

impl Drop for Applied {
    fn drop(&mut self) {
        // A reshard still under way when a run ends early: its command is killed.
        if let Some((h, _)) = self.reshard.take() {
            h.abort();
        }
    }
}

/// The follower a membership fault removes: one removed before when one does not lead (it
/// came back a learner of the metadata group, so removing it again costs that group no
/// voter), else the first of `order` that does not lead.
fn membership_victim(
    order: &[usize],
    leaders: &[usize],
    removed_before: &[usize],
) -> Option<usize> {
    removed_before
        .iter()
        .chain(order)
        .copied()
        .find(|v| !leaders.contains(v))
}

/// A reshard's move: from the shard that owns the most slots (the first on a tie: it owns
/// slot 0, the model workload's) to the one that owns the fewest (the last on a tie), at
/// most `want` slots and never the source's last one. So reshards go back and forth and
/// each moves slot 0. None when no shard can give a slot.
pub(crate) fn plan_reshard(owned: &[usize], want: usize) -> Option<Move> {
    use std::cmp::Reverse;
    let from = (0..owned.len()).max_by_key(|&i| (owned[i], Reverse(i)))?;
    let to = (0..owned.len())
        .filter(|&i| i != from)
        .min_by_key(|&i| (owned[i], Reverse(i)))?;
    let slots = want.min(owned[from].saturating_sub(1));
    (slots > 0).then_some((from, to, slots))
}

/// Some shard's leader (at random where several lead), among `among` when given; a random
/// node (of `among`) when none leads. One leader is taken without a draw, so a one-shard
/// seed replays the same schedule.
async fn a_leader(db: &mut Db, rng: &mut StdRng, among: Option<Range<usize>>) -> usize {
    let among = among.unwrap_or(0..db.nodes.len());
    let leaders: Vec<usize> = db
        .leaders()
        .await
        .into_iter()
        .filter(|l| among.contains(l))
        .collect();
    match leaders.as_slice() {
        [] => rng.gen_range(among),
        [l] => *l,
        many => many[rng.gen_range(0..many.len())],
    }
}

/// Applies `fault`; says what it did.
pub(crate) async fn apply(
    fault: Fault,
    db: &mut Db,
    net: &Net,
    rng: &mut StdRng,
    applied: &mut Applied,
) -> Result<String> {
    let n = db.nodes.len();
    let shard_size = db.shard_size;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    Ok(match fault {
        Fault::PartitionLeader => {
            let l = a_leader(db, rng, None).await;
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
            let l = a_leader(db, rng, None).await;
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
            let l = a_leader(db, rng, None).await;
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
            let l = a_leader(db, rng, None).await;
            let rate = [1.5, 2.0, 3.0][rng.gen_range(0..3)];
            let followers: Vec<usize> = (0..n).filter(|&i| i != l).collect();
            restart_in_turns(db, &followers, Some(rate)).await?;
            applied.skewed.extend(&followers);
            // Whoever leads that shard now (the restarts may have moved its leadership).
            let l = a_leader(db, rng, Some(db.shard_of(l))).await;
            net.isolate(&[l])?;
            applied.cut = true;
            format!("followers' clocks x{rate}, then n{l} alone")
        }
        Fault::Membership => {
            let leaders = db.leaders().await;
            let Some(v) = membership_victim(&order, &leaders, &applied.removed_before) else {
                return Ok("no follower to remove".into());
            };
            let id = db.node_id(v).await?;
            let via = a_member(db, v, &leaders)?;
            let out = db
                .cluster(vec!["del-node".into(), via, id], CLI_TIMEOUT)
                .await?;
            if let Some(warn) = out.lines().find(|l| l.contains("[WARN]")) {
                anyhow::bail!("shardai cluster del-node of n{v}: {warn}");
            }
            db.wipe(v)?;
            applied.removed.push(v);
            if !applied.removed_before.contains(&v) {
                applied.removed_before.push(v);
            }
            format!("n{v} removed (del-node), its folder emptied")
        }
        Fault::Reshard => {
            let shards = n / shard_size;
            if shards < 2 {
                anyhow::bail!("reshard needs two shards or more (--nodes 6 --replicas 2)");
            }
            if applied.owned.is_empty() {
                // As `cluster create` spreads them.
                applied.owned = (0..shards)
                    .map(|s| 16384 / shards + usize::from(s < 16384 % shards))
                    .collect();
            }
            let Some((from, to, slots)) = plan_reshard(&applied.owned, rng.gen_range(500..=2000))
            else {
                return Ok("no shard has a slot to give".into());
            };
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
            let task = tokio::spawn(async move { cli.run(args, RESHARD_TIMEOUT).await });
            applied.reshard = Some((task, (from, to, slots)));
            format!("{slots} slots from shard {from} to shard {to}")
        }
    })
}

/// How long `shardai cluster del-node` or `add-node` may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `shardai cluster reshard` may take.
const RESHARD_TIMEOUT: Duration = Duration::from_secs(180);

/// The address of another node of `v`'s shard: its leader when one is known and is not `v`.
fn a_member(db: &Db, v: usize, leaders: &[usize]) -> Result<String> {
    let mut shard = db.shard_of(v);
    let i = leaders
        .iter()
        .copied()
        .find(|&l| shard.contains(&l) && l != v)
        .or_else(|| shard.find(|&i| i != v))
        .ok_or_else(|| anyhow::anyhow!("n{v} is its shard's only node"))?;
    Ok(db.nodes[i].addr())
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

/// Undoes every fault in place (a reshard is waited for); says how a reshard ended. A
/// reshard that failed is an error, after the rest is healed.
pub(crate) async fn heal(db: &mut Db, net: &Net, applied: &mut Applied) -> Result<String> {
    let reshard = match applied.reshard.take() {
        Some((task, plan)) => Some((task.await?, plan)),
        None => None,
    };
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
        let via = a_member(db, v, &leaders)?;
        let new = db.nodes[v].addr();
        db.cluster(vec!["add-node".into(), new, via], CLI_TIMEOUT)
            .await?;
    }
    match reshard {
        None => Ok(String::new()),
        Some((Err(e), _)) => Err(e),
        Some((Ok(out), (from, to, slots))) => {
            applied.owned[from] -= slots;
            applied.owned[to] += slots;
            Ok(out
                .lines()
                .rfind(|l| l.starts_with("[OK]"))
                .unwrap_or_default()
                .to_string())
        }
    }
}

/// How long each fault is held and each heal phase lasts.
pub(crate) fn phases(run: Duration) -> (Duration, Duration) {
    // At least two faults in a short run; 5 s faults and 3 s heals in a long one.
    let fault = (run / 5).clamp(Duration::from_secs(2), Duration::from_secs(5));
    let heal = (run / 8).clamp(Duration::from_secs(1), Duration::from_secs(3));
    (fault, heal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshards_go_back_and_forth_through_slot_zero() {
        // Even: the first shard (slot 0's) gives.
        assert_eq!(plan_reshard(&[8192, 8192], 1000), Some((0, 1, 1000)));
        // Then the other gives back (its lowest slots, slot 0 among them).
        assert_eq!(plan_reshard(&[7192, 9192], 700), Some((1, 0, 700)));
        // Three shards: the richest to the poorest, the last on a tie.
        assert_eq!(plan_reshard(&[5462, 5461, 5461], 100), Some((0, 2, 100)));
        // Never the source's last slot, never from nothing.
        assert_eq!(plan_reshard(&[3, 16381], 2000), Some((1, 0, 2000)));
        assert_eq!(plan_reshard(&[1, 1], 2000), None);
        assert_eq!(plan_reshard(&[16384], 10), None);
    }

    #[test]
    fn membership_removes_a_node_removed_before_unless_it_leads() {
        let order = [3, 0, 1, 4, 2];
        assert_eq!(membership_victim(&order, &[3], &[]), Some(0));
        assert_eq!(membership_victim(&order, &[0], &[2]), Some(2));
        assert_eq!(membership_victim(&order, &[2], &[2]), Some(3));
        assert_eq!(membership_victim(&[0], &[0], &[]), None);
    }
}
