//! AI.MODELSTORE / MODELSET, MODELGET, MODELDEL, MODELEXECUTE / MODELRUN, AI._MODELSCAN.
//!
//! This build has no model backend yet (they arrive with the models issue), so storing a
//! model answers what RedisAI answers when a backend's library cannot be loaded, and no key
//! can hold a model: MODELGET, MODELDEL and MODELEXECUTE find either no key or a key of
//! another type. Arguments are fully parsed and checked first, with RedisAI's texts.

use shardai_protocol::{
    Error, Reply,
    command::{ModelExecute, ModelStore},
};
use tracing::warn;

use crate::state::Shared;

pub(super) fn modelstore(m: ModelStore, _shared: &Shared) -> Reply {
    warn!(
        backend = m.backend.name(),
        key = %shardai_protocol::error::Lossy(&m.key),
        "AI.MODELSTORE refused: the {} backend is not built into this shardai yet",
        m.backend.name()
    );
    Reply::Error(Error::CouldNotLoadBackend)
}

/// The error for a key that should hold a model: none exists, or it holds something else.
fn no_model(key: &[u8], shared: &Shared) -> Reply {
    match shared.store().get(key) {
        Some(_) => Reply::Error(Error::WrongType),
        None => Reply::Error(Error::ModelKeyEmpty),
    }
}

pub(super) fn modelget(key: &[u8], shared: &Shared) -> Reply {
    no_model(key, shared)
}

pub(super) fn modeldel(key: &[u8], shared: &Shared) -> Reply {
    no_model(key, shared)
}

pub(super) fn modelexecute(e: ModelExecute, shared: &Shared) -> Reply {
    no_model(&e.key, shared)
}

pub(super) fn modelscan() -> Reply {
    Reply::Array(Vec::new())
}
