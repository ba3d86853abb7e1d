//! AI.CONFIG: BACKENDSPATH, LOADBACKEND, MODEL_CHUNK_SIZE, BACKEND_MEMORY_LIMIT,
//! BATCH_QUEUE_DELAY_US and GET.
//!
//! Loading a backend runs a library's native code in the server, so LOADBACKEND opens only
//! files inside the backends path (relative paths resolve there, as in RedisAI), and
//! `--enable-backend-loading no` refuses LOADBACKEND and BACKENDSPATH altogether. Both are
//! `@admin` commands for ACL users. Both load again the replicated models this node kept
//! without their backend. In a cluster, a setting given on any node applies to every node.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use bytes::Bytes;
use shardai_engine::{Store, backend::Backends, queue::RunQueues};
use shardai_protocol::{
    Error, Reply,
    command::{AiConfig, Backend},
};
use tracing::{info, warn};

use crate::{
    cluster::Cluster,
    state::{Runtime, Shared},
};

const LOADING_DISABLED: &str = "AI.CONFIG LOADBACKEND and BACKENDSPATH are not allowed on this \
                                server: start it with --enable-backend-loading yes to allow them";

/// The library `path` names, if it is a file inside the backends path `base`: relative paths
/// resolve against `base`; links are followed before the check, so none leads outside.
pub(super) fn confine(base: Option<&Path>, path: &Path) -> Result<PathBuf, String> {
    let Some(base) = base else {
        return Err("no backends path is set (--backends-path or AI.CONFIG BACKENDSPATH)".into());
    };
    let base = base
        .canonicalize()
        .map_err(|e| format!("backends path {}: {e}", base.display()))?;
    let full = base.join(path);
    let outside = || {
        format!(
            "{} is outside the backends path {}",
            path.display(),
            base.display()
        )
    };
    // Refuse a path that leaves the base by its own `..` before asking the disk, so the answer
    // does not depend on what exists out there.
    if !lexically_under(&base, &full) {
        return Err(outside());
    }
    let real = full
        .canonicalize()
        .map_err(|e| format!("{}: {e}", full.display()))?;
    if !real.starts_with(&base) {
        return Err(outside());
    }
    if !real.is_file() {
        return Err(format!("{} is not a file", real.display()));
    }
    Ok(real)
}

/// Whether `full`, with its `.` and `..` resolved by name only, stays inside `base`.
fn lexically_under(base: &Path, full: &Path) -> bool {
    use std::path::Component;
    let mut parts: Vec<Component> = Vec::new();
    for c in full.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(parts.last(), Some(Component::Normal(_))) {
                    parts.pop();
                } else {
                    parts.push(c);
                }
            }
            _ => parts.push(c),
        }
    }
    parts.iter().collect::<PathBuf>().starts_with(base)
}

/// Loads the replicated models this node kept without their backend (in the shard's store
/// and among the cluster-wide objects), now that one may be available (off the async
/// workers: backend calls).
async fn reload(stores: &Stores<'_>, backends: &Arc<Backends>) {
    if shardai_engine::backend::models_not_loaded() == 0 {
        return;
    }
    let stores: Vec<Arc<Store>> = std::iter::once(stores.0.clone())
        .chain(stores.1.cloned())
        .collect();
    let backends = backends.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for store in &stores {
            shardai_engine::model::reload_models(store, &backends);
        }
    })
    .await;
}

/// The shard's store and, in a cluster, the cluster-wide objects.
pub(super) type Stores<'a> = (&'a Arc<Store>, Option<&'a Arc<Store>>);

/// AI.CONFIG on this node; in a cluster a setting that took effect here is then shared
/// with every node ([`crate::cluster::settings`]).
pub(super) async fn ai_config(
    c: AiConfig,
    rt: &Runtime,
    stores: Stores<'_>,
    (backends, queues): (&Arc<Backends>, &RunQueues),
    allow_loading: bool,
    cluster: Option<&Arc<Cluster>>,
) -> Reply {
    let shared = cluster
        .filter(|_| !matches!(c, AiConfig::Get(_)))
        .map(|cl| (cl, c.clone()));
    let reply = apply(c, rt, stores, (backends, queues), allow_loading).await;
    if let (Reply::Status(_), Some((cluster, c))) = (&reply, shared)
        && let Err(e) = cluster.share_setting(&c).await
    {
        return Reply::Error(Error::Verbatim(format!(
            "ERR the setting could not be shared with the other nodes: {}",
            e.wire_text().trim_start_matches("ERR ")
        )));
    }
    reply
}

/// Applies the cluster's settings this node has not applied yet, as they arrive (every
/// 100 ms), until the server stops.
pub async fn follow_cluster_settings(shared: std::sync::Weak<Shared>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(cluster) = shared.cluster.clone() else {
            return;
        };
        for (key, value) in cluster.pending_settings() {
            let Some(c) = crate::cluster::settings::setting_of(&key, &value) else {
                warn!(record = %key, "a cluster setting this node cannot read was skipped");
                cluster.setting_applied(key, value);
                continue;
            };
            let allow = shared.config.enable_backend_loading;
            let stores = (shared.store(), shared.engine.objects.get());
            let engine = (&shared.engine.backends, &shared.engine.queues);
            let reply = apply(c, &shared.runtime, stores, engine, allow).await;
            match reply {
                Reply::Error(e) => warn!(
                    setting = %key, value = %value, error = %e.wire_text(),
                    "a cluster-wide AI.CONFIG setting could not be applied on this node"
                ),
                _ => {
                    info!(setting = %key, value = %value, "cluster-wide AI.CONFIG setting applied")
                }
            }
            cluster.setting_applied(key, value);
        }
    }
}

async fn apply(
    c: AiConfig,
    rt: &Runtime,
    stores: Stores<'_>,
    (backends, queues): (&Arc<Backends>, &RunQueues),
    allow_loading: bool,
) -> Reply {
    match c {
        AiConfig::BackendsPath(_) | AiConfig::LoadBackend { .. } if !allow_loading => {
            Reply::Error(Error::Unavailable(LOADING_DISABLED.into()))
        }
        AiConfig::BackendsPath(p) => {
            let path = PathBuf::from(String::from_utf8_lossy(&p).into_owned());
            info!(path = %path.display(), "AI.CONFIG BACKENDSPATH set");
            backends.set_path(path);
            reload(&stores, backends).await;
            Reply::OK
        }
        AiConfig::LoadBackend { backend, path } => {
            let Some(kind) = Backend::parse(backend.as_bytes()) else {
                return Reply::Error(Error::UnsupportedBackend);
            };
            let path = PathBuf::from(String::from_utf8_lossy(&path).into_owned());
            // Checking the path and loading the library touch the disk and run the library's
            // initialisers: keep them off the async workers.
            let b = backends.clone();
            let asked = path.clone();
            let r = tokio::task::spawn_blocking(move || {
                let full = confine(b.path().as_deref(), &asked)?;
                b.load_from(kind, &full).map(|()| full)
            })
            .await;
            match r {
                Ok(Ok(full)) => {
                    info!(backend, path = %full.display(), "backend loaded");
                    reload(&stores, backends).await;
                    Reply::OK
                }
                Ok(Err(why)) => {
                    warn!(backend, path = %path.display(), reason = %why, "AI.CONFIG LOADBACKEND refused");
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
        AiConfig::BackendMemoryLimit(mb) => {
            rt.backend_memory_limit.store(mb, Ordering::Relaxed);
            shardai_engine::backend::onnx_memory::set_limit_mb(mb);
            info!(mb, "AI.CONFIG BACKEND_MEMORY_LIMIT set");
            Reply::OK
        }
        AiConfig::BatchQueueDelay(us) => {
            queues.set_queue_delay(std::time::Duration::from_micros(us));
            info!(us, "AI.CONFIG BATCH_QUEUE_DELAY_US set");
            Reply::OK
        }
        AiConfig::Get(name) => match name.as_str() {
            "backendspath" => match backends.path() {
                Some(p) => Reply::Bulk(Bytes::from(p.display().to_string())),
                None => Reply::Nil,
            },
            "model_chunk_size" => Reply::Int(rt.model_chunk_size.load(Ordering::Relaxed) as i64),
            "backend_memory_limit" => {
                Reply::Int(rt.backend_memory_limit.load(Ordering::Relaxed) as i64)
            }
            "batch_queue_delay_us" => Reply::Int(queues.queue_delay().as_micros() as i64),
            _ => Reply::Error(Error::UnsupportedConfigName),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_load_only_from_inside_the_backends_path() {
        let dir = std::env::temp_dir().join(format!("shardai-confine-{}", std::process::id()));
        let base = dir.join("backends");
        std::fs::create_dir_all(base.join("onnx")).unwrap();
        std::fs::write(base.join("onnx/lib.so"), b"x").unwrap();
        std::fs::write(dir.join("outside.so"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("outside.so"), base.join("link.so")).unwrap();
        let real = base.canonicalize().unwrap().join("onnx/lib.so");
        assert_eq!(
            confine(Some(&base), Path::new("onnx/lib.so")),
            Ok(real.clone())
        );
        assert_eq!(confine(Some(&base), &real), Ok(real));
        for bad in ["../outside.so", "link.so", "nope.so", "onnx"] {
            assert!(confine(Some(&base), Path::new(bad)).is_err(), "{bad}");
        }
        assert!(confine(Some(&base), &dir.join("outside.so")).is_err());
        // Escaping by `..` is refused as outside whatever lies there, existing or not.
        let deep = "../".repeat(40) + "bin/true";
        for bad in [deep.as_str(), "onnx/../../no/such.so"] {
            let e = confine(Some(&base), Path::new(bad)).unwrap_err();
            assert!(e.contains("outside the backends path"), "{e}");
        }
        assert!(confine(None, Path::new("onnx/lib.so")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
