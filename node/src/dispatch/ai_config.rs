//! AI.CONFIG: BACKENDSPATH, LOADBACKEND, MODEL_CHUNK_SIZE and GET.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use bytes::Bytes;
use shardai_engine::backend::Backends;
use shardai_protocol::{
    Error, Reply,
    command::{AiConfig, Backend},
};
use tracing::{info, warn};

use crate::state::Runtime;

pub(super) async fn ai_config(c: AiConfig, rt: &Runtime, backends: &Arc<Backends>) -> Reply {
    match c {
        AiConfig::BackendsPath(p) => {
            let path = PathBuf::from(String::from_utf8_lossy(&p).into_owned());
            info!(path = %path.display(), "AI.CONFIG BACKENDSPATH set");
            backends.set_path(path);
            Reply::OK
        }
        AiConfig::LoadBackend { backend, path } => {
            let Some(kind) = Backend::parse(backend.as_bytes()) else {
                return Reply::Error(Error::UnsupportedBackend);
            };
            let path = PathBuf::from(String::from_utf8_lossy(&path).into_owned());
            let full = match (backends.path(), path.is_absolute()) {
                (Some(base), false) => base.join(&path),
                _ => path,
            };
            // Loading a library is a blocking backend call: keep it off the async workers.
            let backends = backends.clone();
            let lib = full.clone();
            let r = tokio::task::spawn_blocking(move || backends.load_from(kind, &lib)).await;
            match r {
                Ok(Ok(())) => {
                    info!(backend, path = %full.display(), "backend loaded");
                    Reply::OK
                }
                Ok(Err(why)) => {
                    warn!(backend, path = %full.display(), reason = %why, "AI.CONFIG LOADBACKEND failed");
                    Reply::Error(Error::ErrorLoadingBackend(why))
                }
                Err(e) => Reply::Error(Error::ErrorLoadingBackend(e.to_string())),
            }
        }
        AiConfig::ModelChunkSize(n) => {
            rt.model_chunk_size.store(n as usize, Ordering::Relaxed);
            info!(bytes = n, "AI.CONFIG MODEL_CHUNK_SIZE set");
            Reply::OK
        }
        AiConfig::Get(name) => match name.as_str() {
            "backendspath" => match backends.path() {
                Some(p) => Reply::Bulk(Bytes::from(p.display().to_string())),
                None => Reply::Nil,
            },
            "model_chunk_size" => Reply::Int(rt.model_chunk_size.load(Ordering::Relaxed) as i64),
            _ => Reply::Error(Error::UnsupportedConfigName),
        },
    }
}
