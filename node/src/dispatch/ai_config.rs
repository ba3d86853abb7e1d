//! AI.CONFIG: BACKENDSPATH, LOADBACKEND, MODEL_CHUNK_SIZE and GET.

use std::{path::PathBuf, sync::atomic::Ordering};

use bytes::Bytes;
use shardai_protocol::{Error, Reply, command::AiConfig};
use tracing::{info, warn};

use crate::state::Shared;

pub(super) fn ai_config(c: AiConfig, shared: &Shared) -> Reply {
    let rt = &shared.runtime;
    match c {
        AiConfig::BackendsPath(p) => {
            let path = PathBuf::from(String::from_utf8_lossy(&p).into_owned());
            info!(path = %path.display(), "AI.CONFIG BACKENDSPATH set");
            *rt.backends_path.lock() = Some(path);
            Reply::OK
        }
        AiConfig::LoadBackend { backend, path } => {
            let path = PathBuf::from(String::from_utf8_lossy(&path).into_owned());
            let full = match (&*rt.backends_path.lock(), path.is_absolute()) {
                (Some(base), false) => base.join(&path),
                _ => path,
            };
            warn!(backend, path = %full.display(),
                  "AI.CONFIG LOADBACKEND refused: this build has no {backend} backend yet");
            Reply::Error(Error::ErrorLoadingBackend(format!(
                "{backend} is not built into this shardai yet (model backends arrive in a \
                 later release)"
            )))
        }
        AiConfig::ModelChunkSize(n) => {
            rt.model_chunk_size.store(n as usize, Ordering::Relaxed);
            info!(bytes = n, "AI.CONFIG MODEL_CHUNK_SIZE set");
            Reply::OK
        }
        AiConfig::Get(name) => match name.as_str() {
            "backendspath" => match &*rt.backends_path.lock() {
                Some(p) => Reply::Bulk(Bytes::from(p.display().to_string())),
                None => Reply::Nil,
            },
            "model_chunk_size" => Reply::Int(rt.model_chunk_size.load(Ordering::Relaxed) as i64),
            _ => Reply::Error(Error::UnsupportedConfigName),
        },
    }
}
