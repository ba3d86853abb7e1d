//! `Model`: a stored model — what AI.MODELGET reports, its blob, and the loaded handle that
//! runs it.

use std::sync::Arc;

use bytes::Bytes;
use shardai_protocol::command::{Backend as Kind, BatchOpts};

use crate::{
    backend::{Backends, LoadedModel},
    stats::RunStats,
    store::Store,
};

/// Type name TYPE reports for models (RedisAI's module type name).
pub const MODEL_TYPE: &str = "AI__MODEL";

/// A stored, loaded model.
#[derive(Clone)]
pub struct Model {
    /// The backend.
    pub backend: Kind,
    /// The device as given.
    pub device: String,
    /// TAG.
    pub tag: Bytes,
    /// Batching options.
    pub batch: BatchOpts,
    /// Input node names (TF).
    pub inputs: Vec<Bytes>,
    /// Output node names (TF).
    pub outputs: Vec<Bytes>,
    /// The serialized model as stored.
    pub blob: Bytes,
    /// The model loaded into its backend.
    pub loaded: Arc<dyn LoadedModel>,
    /// Its AI.INFO statistics on this node, zero when stored.
    pub stats: Arc<RunStats>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend)
            .field("device", &self.device)
            .field("blob_len", &self.blob.len())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// This model loaded into `backends` again (one kept without its backend). Blocking: a
    /// backend call.
    pub fn reload(&self, backends: &Backends) -> Result<Model, shardai_protocol::Error> {
        let loaded = backends.load_model(
            self.backend,
            &self.blob,
            &self.device,
            &self.inputs,
            &self.outputs,
        )?;
        Ok(Model {
            loaded,
            ..self.clone()
        })
    }

    /// The blob in chunks of at most `chunk` bytes, as AI.MODELGET BLOB returns it: one
    /// piece when it fits, else `len / chunk + 1` pieces (RedisAI's count, so an exact
    /// multiple ends with an empty chunk).
    pub fn chunks(&self, chunk: usize) -> Vec<Bytes> {
        let chunk = chunk.max(1);
        let n = self.blob.len() / chunk + 1;
        if n == 1 {
            return vec![self.blob.clone()];
        }
        (0..n)
            .map(|i| {
                let start = (i * chunk).min(self.blob.len());
                let end = ((i + 1) * chunk).min(self.blob.len());
                self.blob.slice(start..end)
            })
            .collect()
    }
}

/// Loads again the models of `store` kept without their backend (after a backend was made
/// available): returns how many loaded and how many still cannot. Blocking: backend calls.
pub fn reload_models(store: &Store, backends: &Backends) -> (usize, usize) {
    let (mut loaded, mut left) = (0, 0);
    for (key, old) in store.models_not_loaded() {
        match old.reload(backends) {
            Ok(m) => {
                if store.reload_model(&key, &old, Arc::new(m)) {
                    tracing::info!(key = %String::from_utf8_lossy(&key), "a stored model is loaded now");
                    loaded += 1;
                }
            }
            Err(e) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    error = %e.wire_text(),
                    "a stored model still cannot be loaded on this node"
                );
                left += 1;
            }
        }
    }
    (loaded, left)
}
