//! The checkers of a run's history: per-key linearizability of the registers ([`linear`])
//! and lost or phantom adds of the set ([`set`]).

pub(crate) mod linear;
pub(crate) mod set;
