//! The model workload's check: after the faults heal, the output of every acknowledged
//! AI.MODELEXECUTE or AI.DAGEXECUTE ... PERSIST is on every replica of its shard, with the
//! bytes the model gives for its input; an execution refused before it could be proposed
//! left no output anywhere; one of unknown outcome left either nothing or the right bytes.

use std::collections::BTreeMap;

use crate::history::{Kind, Op, Outcome};

/// What one node holds under an output key after the heal (None: no such key).
pub(crate) type Seen = Option<Vec<u8>>;

/// What the final reads found against the executions.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ModelResult {
    /// Executions acknowledged.
    pub(crate) acknowledged: usize,
    /// Replicas read per output key (the nodes of its shard).
    pub(crate) replicas: usize,
    /// Output keys not read on every replica of their shard (`key: k of n`).
    pub(crate) short: Vec<String>,
    /// `key@node` of acknowledged outputs missing on a replica.
    pub(crate) lost: Vec<String>,
    /// `key@node` of outputs with bytes the model does not give for the input.
    pub(crate) wrong: Vec<String>,
    /// `key@node` of outputs of executions that were refused.
    pub(crate) phantom: Vec<String>,
}

impl ModelResult {
    pub(crate) fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.wrong.is_empty()
            && self.phantom.is_empty()
            && self.short.is_empty()
    }
}

/// `ops`: the history (only model executions are looked at; their value is the index of
/// their input in `expected`); `seen`: per output key, what each replica of its shard
/// (by name) holds; `replicas`: the nodes of a shard, each of which must have been read.
pub(crate) fn check(
    ops: &[Op],
    expected: &[Vec<u8>],
    seen: &BTreeMap<String, Vec<(String, Seen)>>,
    replicas: usize,
) -> ModelResult {
    let mut res = ModelResult::default();
    for o in ops.iter().filter(|o| o.kind == Kind::Model) {
        let want = o
            .value
            .and_then(|i| expected.get(i as usize))
            .expect("executions carry the index of their input");
        if o.outcome == Outcome::Ok {
            res.acknowledged += 1;
        }
        let read = seen.get(&o.key).map(Vec::as_slice).unwrap_or_default();
        res.replicas = res.replicas.max(read.len());
        if read.len() != replicas {
            res.short
                .push(format!("{}: {} of {replicas}", o.key, read.len()));
        }
        for (node, got) in read {
            let at = format!("{}@{node}", o.key);
            match (o.outcome, got) {
                (Outcome::Ok, None) => res.lost.push(at),
                (Outcome::Fail, Some(_)) => res.phantom.push(at),
                (_, Some(b)) if b != want => res.wrong.push(at),
                _ => {}
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(v: i64, input: i64, outcome: Outcome) -> Op {
        Op::test(Kind::Model, &format!("o{v}"), Some(input), (0, 1), outcome)
    }

    #[test]
    fn missing_wrong_and_refused_outputs_are_reported() {
        let expected = vec![b"zero".to_vec(), b"one".to_vec()];
        let ops = [
            exec(1, 0, Outcome::Ok),
            exec(2, 1, Outcome::Ok),
            exec(3, 1, Outcome::Info),
            exec(4, 0, Outcome::Fail),
            exec(5, 0, Outcome::Info),
        ];
        let both = |a: Seen, b: Seen| vec![("n0".to_string(), a), ("n1".to_string(), b)];
        let seen: BTreeMap<String, Vec<(String, Seen)>> = [
            ("o1".into(), both(Some(b"zero".to_vec()), None)),
            (
                "o2".into(),
                both(Some(b"one".to_vec()), Some(b"zero".to_vec())),
            ),
            (
                "o3".into(),
                both(Some(b"one".to_vec()), Some(b"one".to_vec())),
            ),
            ("o4".into(), both(None, Some(b"zero".to_vec()))),
            ("o5".into(), both(None, None)),
        ]
        .into();
        let r = check(&ops, &expected, &seen, 2);
        assert_eq!(r.acknowledged, 2);
        assert_eq!(r.replicas, 2);
        assert_eq!(r.lost, vec!["o1@n1"]);
        assert_eq!(r.wrong, vec!["o2@n1"]);
        assert_eq!(r.phantom, vec!["o4@n1"]);
        assert!(r.short.is_empty());
        assert!(!r.passed());
    }

    #[test]
    fn outputs_not_read_on_every_replica_fail_the_check() {
        let expected = vec![b"zero".to_vec()];
        let ops = [exec(1, 0, Outcome::Ok), exec(2, 0, Outcome::Ok)];
        let right = || Some(b"zero".to_vec());
        let seen: BTreeMap<String, Vec<(String, Seen)>> = [(
            "o1".into(),
            vec![("n0".to_string(), right()), ("n1".into(), right())],
        )]
        .into();
        let r = check(&ops, &expected, &seen, 3);
        assert_eq!(r.short, vec!["o1: 2 of 3", "o2: 0 of 3"]);
        assert!(r.lost.is_empty());
        assert!(!r.passed());
        assert!(check(&ops[..1], &expected, &seen, 2).passed());
    }
}
