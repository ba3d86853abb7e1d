//! Linearizability of one register's history: the Wing–Gong search with Lowe's
//! memoization of (linearized set, state) pairs ("Testing for linearizability", 2017) and
//! Horn–Kroening's lifting of linearized operations out of a doubly linked list of call and
//! return events ("Faster linearizability checking via P-compositionality", 2015); the
//! history of each key is checked on its own (P-compositionality: a history of independent
//! registers is linearizable iff each register's is).
//!
//! Indeterminate operations are treated as Jepsen treats them: a write that timed out may
//! take effect at any time after its invocation or never (its return is at infinity and it
//! need not be linearized); a failed operation, or a read that did not complete, did
//! nothing and is left out.

use std::collections::HashSet;

use crate::history::{Kind, Op, Outcome};

/// The verdict for one key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Linearizable,
    /// No order of the operations explains what the reads saw.
    Violation,
    /// The search passed its step budget (a key with too many concurrent unknown writes).
    Unknown,
}

/// A register: its value, None before the first write.
type State = Option<i64>;

/// One step of the register model: the state after `op`, or None when `op` cannot happen
/// in `state` (a read of another value).
fn step(state: State, op: &Op) -> Option<State> {
    match op.kind {
        // Only register writes and reads reach the search; the others would act as writes.
        Kind::Write | Kind::Add | Kind::Model => Some(op.value),
        Kind::Read => (op.value == state).then_some(state),
    }
}

/// The operations of a history the search takes: completed ones and unknown writes.
fn relevant(op: &Op) -> bool {
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Info => op.kind != Kind::Read,
        Outcome::Fail => false,
    }
}

struct Event {
    op: usize,
    call: bool,
    /// The return event of a call event.
    ret: usize,
    prev: usize,
    next: usize,
}

/// Checks one key's operations (those of other keys must not be mixed in).
pub(crate) fn check(ops: &[Op], max_steps: u64) -> Verdict {
    let ops: Vec<&Op> = ops.iter().filter(|o| relevant(o)).collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    let end = |o: &Op| match o.outcome {
        Outcome::Info => u64::MAX,
        _ => o.complete_us,
    };
    // Time order; at equal times calls first, so that touching operations count as
    // concurrent (the reading that finds fewer violations).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        order.push((o.invoke_us, false, i));
        order.push((end(o), true, i));
    }
    order.sort();
    // Events 1..=2n in time order; 0 is the head, 2n+1 the tail.
    let (head, tail) = (0, 2 * n + 1);
    let mut ev: Vec<Event> = (0..=tail)
        .map(|i| Event {
            op: usize::MAX,
            call: false,
            ret: 0,
            prev: i.saturating_sub(1),
            next: i + 1,
        })
        .collect();
    let mut ret_of = vec![0usize; n];
    for (pos, &(_, is_ret, op)) in order.iter().enumerate() {
        let e = &mut ev[pos + 1];
        e.op = op;
        e.call = !is_ret;
        if is_ret {
            ret_of[op] = pos + 1;
        }
    }
    for e in ev.iter_mut().skip(1).take(2 * n) {
        if e.call {
            e.ret = ret_of[e.op];
        }
    }
    let unlink = |ev: &mut Vec<Event>, i: usize| {
        let (p, nx) = (ev[i].prev, ev[i].next);
        ev[p].next = nx;
        ev[nx].prev = p;
    };
    let relink = |ev: &mut Vec<Event>, i: usize| {
        let (p, nx) = (ev[i].prev, ev[i].next);
        ev[p].next = i;
        ev[nx].prev = i;
    };
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state: State = None;
    let mut i = ev[head].next;
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > max_steps {
            return Verdict::Unknown;
        }
        if i == tail {
            return Verdict::Linearizable;
        }
        let e = &ev[i];
        let op = ops[e.op];
        if e.call {
            if let Some(next) = step(state, op) {
                let bit = (e.op / 64, 1u64 << (e.op % 64));
                done[bit.0] |= bit.1;
                if seen.insert((done.clone(), next)) {
                    stack.push((i, state));
                    state = next;
                    let r = e.ret;
                    unlink(&mut ev, i);
                    unlink(&mut ev, r);
                    i = ev[head].next;
                    continue;
                }
                done[bit.0] &= !bit.1;
            }
            i = ev[i].next;
        } else if op.outcome == Outcome::Info {
            // Only unknown writes are left, none of which has to happen.
            return Verdict::Linearizable;
        } else {
            // An operation that returned here was not linearized before it: undo the last
            // choice and try the next one.
            let Some((c, prev)) = stack.pop() else {
                return Verdict::Violation;
            };
            let r = ev[c].ret;
            relink(&mut ev, r);
            relink(&mut ev, c);
            let o = ev[c].op;
            done[o / 64] &= !(1u64 << (o % 64));
            state = prev;
            i = ev[c].next;
        }
    }
}

/// A smallest failing part of a non-linearizable history: operations are dropped one at a
/// time while the rest still fails (what a person reads to see the bug). A write whose
/// value a kept read saw stays, so the core never blames a read for a value it was given.
pub(crate) fn minimize(ops: &[Op], max_steps: u64) -> Vec<Op> {
    let mut keep: Vec<Op> = ops.iter().filter(|o| relevant(o)).cloned().collect();
    // Until a pass drops nothing: a write kept for a read may be dropped once the read is.
    let mut before = usize::MAX;
    while keep.len() < before {
        before = keep.len();
        drop_one_by_one(&mut keep, max_steps);
    }
    keep
}

fn drop_one_by_one(keep: &mut Vec<Op>, max_steps: u64) {
    let mut i = 0;
    while i < keep.len() {
        let o = &keep[i];
        let read = |v| keep.iter().any(|r| r.kind == Kind::Read && r.value == v);
        if o.kind != Kind::Read && read(o.value) {
            i += 1;
            continue;
        }
        let mut fewer = keep.clone();
        fewer.remove(i);
        if check(&fewer, max_steps) == Verdict::Violation {
            *keep = fewer;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 1_000_000;

    fn op(worker: usize, kind: Kind, value: Option<i64>, t: (u64, u64), outcome: Outcome) -> Op {
        Op {
            worker,
            ..Op::test(kind, "k", value, t, outcome)
        }
    }
    fn w(p: usize, v: i64, t: (u64, u64)) -> Op {
        op(p, Kind::Write, Some(v), t, Outcome::Ok)
    }
    fn r(p: usize, v: Option<i64>, t: (u64, u64)) -> Op {
        op(p, Kind::Read, v, t, Outcome::Ok)
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [r(0, None, (0, 1)), w(0, 1, (2, 3)), r(1, Some(1), (4, 5))];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn stale_read_after_a_completed_write_is_a_violation() {
        // The write of 2 finished before the read began: reading 1 is stale.
        let h = [w(0, 1, (0, 1)), w(0, 2, (2, 3)), r(1, Some(1), (4, 5))];
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn a_value_never_written_is_a_violation() {
        let h = [w(0, 1, (0, 1)), r(1, Some(7), (2, 3))];
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        let h = [
            w(0, 1, (0, 1)),
            w(0, 2, (2, 10)),
            r(1, Some(1), (3, 4)),
            r(2, Some(2), (5, 6)),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        // ... but once a read saw the new value, a later read may not see the old one.
        let h = [
            w(0, 1, (0, 1)),
            w(0, 2, (2, 10)),
            r(1, Some(2), (3, 4)),
            r(2, Some(1), (5, 6)),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn an_unknown_write_may_happen_late_or_never() {
        let lost = op(0, Kind::Write, Some(2), (2, 3), Outcome::Info);
        // Seen long after it timed out: allowed (it took effect late).
        let h = [
            w(1, 1, (0, 1)),
            lost.clone(),
            r(1, Some(1), (4, 5)),
            r(1, Some(2), (6, 7)),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        // Never seen: allowed.
        let h = [w(1, 1, (0, 1)), lost.clone(), r(1, Some(1), (4, 5))];
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        // Seen and then unseen: not allowed.
        let h = [
            w(1, 1, (0, 1)),
            lost,
            r(1, Some(2), (4, 5)),
            r(1, Some(1), (6, 7)),
        ];
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn failed_operations_did_nothing() {
        let failed = op(0, Kind::Write, Some(2), (2, 3), Outcome::Fail);
        let h = [w(1, 1, (0, 1)), failed, r(1, Some(2), (4, 5))];
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn many_concurrent_writers_are_checked_quickly() {
        // 8 writers overlapping, then reads of the last-finishing value.
        let mut h: Vec<Op> = (0..8).map(|p| w(p, p as i64, (0, 100))).collect();
        h.push(r(9, Some(5), (101, 102)));
        h.push(r(9, Some(5), (103, 104)));
        assert_eq!(check(&h, BUDGET), Verdict::Linearizable);
        h.push(r(9, Some(3), (105, 106)));
        assert_eq!(check(&h, BUDGET), Verdict::Violation);
    }

    #[test]
    fn a_failing_history_shrinks_to_its_core() {
        let mut h: Vec<Op> = (0..20)
            .map(|i| w(0, i, (10 * i as u64, 10 * i as u64 + 1)))
            .collect();
        h.push(r(1, Some(3), (1000, 1001)));
        let small = minimize(&h, BUDGET);
        assert_eq!(check(&small, BUDGET), Verdict::Violation);
        assert_eq!(small.len(), 3, "{small:?}");
    }
}
