//! The checkers of a run's history: per-key linearizability of the registers ([`linear`])
//! lost or phantom adds of the set ([`set`]), the model executions' outputs on every
//! replica ([`models`]) and how stale the follower reads were ([`followers`]).

pub(crate) mod followers;
pub(crate) mod linear;
pub(crate) mod models;
pub(crate) mod set;
