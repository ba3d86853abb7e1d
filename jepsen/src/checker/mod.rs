//! The checkers of a run's history: per-key linearizability of the registers ([`linear`])
//! lost or phantom adds of the set ([`set`]) and the model executions' outputs on every
//! replica ([`models`]).

pub(crate) mod linear;
pub(crate) mod models;
pub(crate) mod set;
