//! Pure planning for `shardai cluster reshard / rebalance`: reading the shape of the cluster
//! from CLUSTER NODES, and deciding which slots move from which shard to which. No I/O here:
//! [`super::reshard`] runs the plans.

use std::collections::HashMap;

use shardai_router::replies::parse_node_name;

/// One slot to move: (slot, source master id, target master id).
pub(super) type Move = (u16, String, String);

/// A shard's master as CLUSTER NODES shows it.
#[derive(Debug, Clone)]
pub(super) struct Master {
    pub(super) id: String,
    pub(super) addr: String,
    pub(super) slots: Vec<u16>,
}

/// Masters, and which master each node follows.
#[derive(Debug, Default, Clone)]
pub(super) struct Shape {
    pub(super) masters: Vec<Master>,
    master_of: HashMap<String, String>,
    addr_of: HashMap<String, String>,
}

impl Shape {
    /// The shape CLUSTER NODES `text` describes.
    pub(super) fn parse(text: &str) -> Shape {
        let mut s = Shape::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let node_addr = f[1].split('@').next().unwrap_or_default().to_string();
            s.addr_of.insert(f[0].to_string(), node_addr.clone());
            if f[2].split(',').any(|x| x == "master") {
                let mut slots = Vec::new();
                for r in &f[8..] {
                    if r.starts_with('[') {
                        continue;
                    }
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                        slots.extend(a..=b);
                    }
                }
                s.master_of.insert(f[0].to_string(), f[0].to_string());
                s.masters.push(Master {
                    id: f[0].to_string(),
                    addr: node_addr,
                    slots,
                });
            } else {
                s.master_of.insert(f[0].to_string(), f[3].to_string());
            }
        }
        s
    }

    /// The master of the shard that `who` (a node id, or a node's host:port) belongs to.
    pub(super) fn master(&self, who: &str) -> Result<&Master, String> {
        let id = match parse_node_name(who) {
            Some(n) => format!("{n:040x}"),
            None => self
                .addr_of
                .iter()
                .find(|(_, a)| a.as_str() == who)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| format!("no node {who} in the cluster"))?,
        };
        let m = self
            .master_of
            .get(&id)
            .ok_or_else(|| format!("no node {who} in the cluster"))?;
        self.masters
            .iter()
            .find(|x| &x.id == m)
            .ok_or_else(|| format!("the shard of {who} has no leader right now"))
    }
}

/// `reshard --from FROM --to DST --slots N`: `N` slots for `dst` from the masters `from`
/// names (comma-separated ids or addresses, or `all`), taken from each in proportion to what
/// it holds, as redis-cli does. Returns the moves and the number of source shards.
pub(super) fn reshard(
    s: &Shape,
    from: &str,
    dst: &Master,
    slots: usize,
) -> Result<(Vec<Move>, usize), String> {
    let sources: Vec<Master> = if from == "all" {
        s.masters
            .iter()
            .filter(|m| m.id != dst.id && !m.slots.is_empty())
            .cloned()
            .collect()
    } else {
        from.split(',')
            .map(|f| s.master(f.trim()).cloned())
            .collect::<Result<_, _>>()?
    };
    if sources.iter().any(|m| m.id == dst.id) {
        return Err("the target shard cannot be a source too".into());
    }
    let available: usize = sources.iter().map(|m| m.slots.len()).sum();
    if slots == 0 || slots > available {
        return Err(format!(
            "--slots must be between 1 and {available} (the sources' slots)"
        ));
    }
    let mut plan = Vec::new();
    for (i, m) in sources.iter().enumerate() {
        let share = if i + 1 == sources.len() {
            slots - plan.len()
        } else {
            (slots as f64 * m.slots.len() as f64 / available as f64).round() as usize
        };
        for slot in m.slots.iter().take(share.min(slots - plan.len())) {
            plan.push((*slot, m.id.clone(), dst.id.clone()));
        }
    }
    Ok((plan, sources.len()))
}

/// `rebalance`: the moves that leave every master with 16384 / n slots (the first 16384 % n
/// of them, largest first, with one more), sorted by slot.
pub(super) fn rebalance(masters: &[Master]) -> Vec<Move> {
    let n = masters.len();
    if n == 0 {
        return Vec::new();
    }
    let mut masters = masters.to_vec();
    masters.sort_by_key(|m| std::cmp::Reverse(m.slots.len()));
    let base = 16384 / n;
    let extra = 16384 % n;
    let want: Vec<usize> = (0..n).map(|i| base + usize::from(i < extra)).collect();
    let mut surplus: Vec<(String, Vec<u16>)> = Vec::new();
    let mut deficit: Vec<(String, usize)> = Vec::new();
    for (m, w) in masters.iter().zip(&want) {
        if m.slots.len() > *w {
            surplus.push((m.id.clone(), m.slots[*w..].to_vec()));
        } else if m.slots.len() < *w {
            deficit.push((m.id.clone(), w - m.slots.len()));
        }
    }
    let mut plan = Vec::new();
    for (dst, mut need) in deficit {
        for (src, slots) in surplus.iter_mut() {
            while need > 0
                && let Some(slot) = slots.pop()
            {
                plan.push((slot, src.clone(), dst.clone()));
                need -= 1;
            }
        }
    }
    plan.sort_by_key(|p| p.0);
    plan
}

/// How many of `moves` the cluster shape `s` does not show on their target shard yet. The
/// target is found by the id the plan named, which leads to that shard's current master
/// when its leader has changed since; a shard without a leader shows nothing.
pub(super) fn not_shown(s: &Shape, moves: &[Move]) -> usize {
    let owner: HashMap<u16, &str> = s
        .masters
        .iter()
        .flat_map(|m| m.slots.iter().map(move |&slot| (slot, m.id.as_str())))
        .collect();
    moves
        .iter()
        .filter(|(slot, _, dst)| {
            let target = s.master(dst).map(|m| m.id.as_str()).ok();
            target.is_none() || owner.get(slot).copied() != target
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> String {
        format!("{n:040x}")
    }

    /// CLUSTER NODES of two shards: 1 (master of 0-8191) with replica 2, 4 (master of
    /// 8192-16383, importing slot 5) with replica 5.
    fn nodes() -> String {
        [
            format!(
                "{} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-8191",
                id(1)
            ),
            format!(
                "{} 10.0.0.2:6379@16379 slave {} 0 0 1 connected",
                id(2),
                id(1)
            ),
            format!(
                "{} 10.0.0.4:6379@16379 master - 0 0 1 connected 8192-16383 [5-<-{}]",
                id(4),
                id(1)
            ),
            format!(
                "{} 10.0.0.5:6379@16379 slave {} 0 0 1 connected",
                id(5),
                id(4)
            ),
        ]
        .join("\n")
    }

    fn master(id: &str, slots: std::ops::Range<u16>) -> Master {
        Master {
            id: id.into(),
            addr: format!("{id}:1"),
            slots: slots.collect(),
        }
    }

    #[test]
    fn shape_from_cluster_nodes() {
        let s = Shape::parse(&nodes());
        assert_eq!(s.masters.len(), 2);
        assert_eq!(s.masters[0].slots.len(), 8192);
        assert_eq!(s.masters[1].slots, (8192..=16383).collect::<Vec<u16>>());
        // A replica, by id or by address, leads to its master.
        assert_eq!(s.master(&id(2)).unwrap().id, id(1));
        assert_eq!(s.master("10.0.0.5:6379").unwrap().id, id(4));
        assert!(s.master("10.0.0.9:6379").is_err());
    }

    #[test]
    fn moves_count_as_shown_once_the_target_shard_holds_the_slot() {
        let s = Shape::parse(&nodes());
        // Planned when 5 led the second shard; 4 leads it now and holds 8192.
        let moved: Move = (8192, id(1), id(5));
        let pending: Move = (100, id(1), id(4));
        assert_eq!(not_shown(&s, std::slice::from_ref(&moved)), 0);
        assert_eq!(not_shown(&s, &[moved.clone(), pending.clone()]), 1);
        // A target the shape does not know shows nothing.
        assert_eq!(not_shown(&s, &[(8192, id(1), id(9))]), 1);
    }

    #[test]
    fn reshard_takes_in_proportion() {
        let s = Shape {
            masters: vec![
                master("a", 0..6000),
                master("b", 6000..8000),
                master("c", 8000..16384),
            ],
            ..Shape::default()
        };
        let dst = s.masters[2].clone();
        let (plan, sources) = reshard(&s, "all", &dst, 800).unwrap();
        assert_eq!((plan.len(), sources), (800, 2));
        assert_eq!(plan.iter().filter(|m| m.1 == "a").count(), 600);
        assert_eq!(plan.iter().filter(|m| m.1 == "b").count(), 200);
        assert!(plan.iter().all(|m| m.2 == "c"));
        assert!(reshard(&s, "all", &dst, 8001).is_err());
        assert!(reshard(&s, "all", &dst, 0).is_err());
    }

    #[test]
    fn reshard_refuses_the_target_as_source() {
        let s = Shape::parse(&nodes());
        let dst = s.masters[0].clone();
        assert_eq!(
            reshard(&s, &id(2), &dst, 1).unwrap_err(),
            "the target shard cannot be a source too"
        );
    }

    #[test]
    fn rebalance_evens_out() {
        let masters = vec![master("a", 0..16384), master("b", 0..0), master("c", 0..0)];
        let plan = rebalance(&masters);
        let to = |d: &str| plan.iter().filter(|m| m.2 == d).count();
        assert_eq!((to("b"), to("c")), (5461, 5461));
        assert!(plan.iter().all(|m| m.1 == "a"));
        assert!(plan.windows(2).all(|w| w[0].0 < w[1].0), "sorted by slot");
        let even = vec![master("a", 0..8192), master("b", 8192..16384)];
        assert!(rebalance(&even).is_empty());
    }
}
