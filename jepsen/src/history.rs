//! The history of a run: every operation a client invoked, when, and how it ended, written
//! as JSON lines for a person (and read back by the checkers).

use serde::{Deserialize, Serialize};

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// AI.TENSORSET of a register (an INT64 scalar) to `value`.
    Write,
    /// AI.TENSORGET of a register; `value` is what was read (None: no such key).
    Read,
    /// A unique add of the set workload (AI.TENSORSET of a key of its own).
    Add,
    /// An execution of the ONNX model (AI.MODELEXECUTE, or AI.DAGEXECUTE with PERSIST)
    /// whose output is `key`; `value` is the index of its input.
    Model,
}

/// How an operation ended, as Jepsen names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// It happened (the server acknowledged it).
    Ok,
    /// It certainly did not happen (a read that failed; a write refused before it could be
    /// proposed).
    Fail,
    /// Unknown: a write that timed out or lost its connection may or may not take effect,
    /// at any time after it was invoked.
    Info,
}

/// One operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Op {
    /// The worker that ran it (one operation at a time per worker).
    pub(crate) worker: usize,
    pub(crate) kind: Kind,
    pub(crate) key: String,
    pub(crate) value: Option<i64>,
    /// Microseconds since the run started.
    pub(crate) invoke_us: u64,
    pub(crate) complete_us: u64,
    pub(crate) outcome: Outcome,
    /// The node it was answered by, or the error.
    pub(crate) note: String,
    /// A read served by a follower (READONLY): not held to linearizability unless the run
    /// says so.
    #[serde(default)]
    pub(crate) follower: bool,
}

/// The history as JSON lines.
pub(crate) fn to_json_lines<'a>(ops: impl IntoIterator<Item = &'a Op>) -> String {
    let mut s = String::new();
    for op in ops {
        s.push_str(&serde_json::to_string(op).expect("ops serialize"));
        s.push('\n');
    }
    s
}

#[cfg(test)]
impl Op {
    /// An operation for the checkers' tests: worker 0, not a follower read.
    pub(crate) fn test(
        kind: Kind,
        key: &str,
        value: Option<i64>,
        at: (u64, u64),
        outcome: Outcome,
    ) -> Op {
        Op {
            worker: 0,
            kind,
            key: key.into(),
            value,
            invoke_us: at.0,
            complete_us: at.1,
            outcome,
            note: String::new(),
            follower: false,
        }
    }
}
