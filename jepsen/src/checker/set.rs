//! The set workload's check: after the faults heal, every acknowledged add is read back
//! (none lost) and nothing is read that no one added (no phantoms).

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{Kind, Op, Outcome};

/// What the final read found against the adds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SetResult {
    /// Adds acknowledged.
    pub(crate) acknowledged: usize,
    /// Acknowledged adds the final read did not find.
    pub(crate) lost: Vec<i64>,
    /// Adds of unknown outcome that did take effect.
    pub(crate) recovered: usize,
    /// Values found that no add wrote (or whose add was refused), or under another key.
    pub(crate) phantom: Vec<i64>,
}

/// `ops`: the add operations; `found`: each added key the final read found, with its value.
pub(crate) fn check(ops: &[Op], found: &BTreeMap<String, i64>) -> SetResult {
    let mut res = SetResult::default();
    let mut attempted: BTreeMap<&str, i64> = BTreeMap::new();
    let mut acked = BTreeSet::new();
    for o in ops.iter().filter(|o| o.kind == Kind::Add) {
        let v = o.value.expect("adds carry a value");
        // A refused add that shows up is as wrong as one no one made.
        if o.outcome != Outcome::Fail {
            attempted.insert(&o.key, v);
        }
        match o.outcome {
            Outcome::Ok => {
                res.acknowledged += 1;
                acked.insert(&o.key[..]);
                if !found.contains_key(&o.key) {
                    res.lost.push(v);
                }
            }
            Outcome::Info if found.contains_key(&o.key) => res.recovered += 1,
            _ => {}
        }
    }
    for (k, v) in found {
        if attempted.get(&k[..]) != Some(v) {
            res.phantom.push(*v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(v: i64, outcome: Outcome) -> Op {
        Op::test(Kind::Add, &format!("s{v}"), Some(v), (0, 1), outcome)
    }

    #[test]
    fn lost_and_phantom_adds_are_reported() {
        let ops = [
            add(1, Outcome::Ok),
            add(2, Outcome::Ok),
            add(3, Outcome::Info),
            add(4, Outcome::Fail),
        ];
        let found: BTreeMap<String, i64> =
            [("s1".into(), 1), ("s3".into(), 3), ("s9".into(), 9)].into();
        let r = check(&ops, &found);
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.lost, vec![2]);
        assert_eq!(r.recovered, 1);
        assert_eq!(r.phantom, vec![9]);
    }
}
