//! Cluster-wide AI.CONFIG settings: BACKENDSPATH, LOADBACKEND, MODEL_CHUNK_SIZE,
//! BACKEND_MEMORY_LIMIT and BATCH_QUEUE_DELAY_US given on any node are applied there, then
//! written to the metadata group as `aiconfig:<option>` records
//! (`aiconfig:loadbackend:<BACKEND>` per backend). Every node applies the records it has not applied yet, in a fixed order (the backends
//! path before the libraries it holds), so the settings reach every node, survive restarts
//! (the metadata group's log and snapshots hold them) and reach nodes added later.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use shardai_protocol::{
    Error,
    command::{AiConfig, Backend},
};

use super::Cluster;

/// The prefix of the settings' metadata records.
pub const PREFIX: &str = "aiconfig:";

/// The record a setting is kept as; `None` for AI.CONFIG GET.
pub fn record_of(c: &AiConfig) -> Option<(String, String)> {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    Some(match c {
        AiConfig::BackendsPath(p) => (format!("{PREFIX}backendspath"), text(p)),
        AiConfig::LoadBackend { backend, path } => {
            (format!("{PREFIX}loadbackend:{backend}"), text(path))
        }
        AiConfig::ModelChunkSize(n) => (format!("{PREFIX}model_chunk_size"), n.to_string()),
        AiConfig::BackendMemoryLimit(n) => (format!("{PREFIX}backend_memory_limit"), n.to_string()),
        AiConfig::BatchQueueDelay(n) => (format!("{PREFIX}batch_queue_delay_us"), n.to_string()),
        AiConfig::Get(_) => return None,
    })
}

/// The setting a record holds, if it reads as one.
pub fn setting_of(key: &str, value: &str) -> Option<AiConfig> {
    let option = key.strip_prefix(PREFIX)?;
    Some(match option {
        "backendspath" => AiConfig::BackendsPath(Bytes::from(value.to_string())),
        "model_chunk_size" => AiConfig::ModelChunkSize(value.parse().ok()?),
        "backend_memory_limit" => AiConfig::BackendMemoryLimit(value.parse().ok()?),
        "batch_queue_delay_us" => AiConfig::BatchQueueDelay(value.parse().ok()?),
        _ => {
            let name = option.strip_prefix("loadbackend:")?;
            let backend = Backend::parse(name.as_bytes())?.name();
            AiConfig::LoadBackend {
                backend,
                path: Bytes::from(value.to_string()),
            }
        }
    })
}

/// The order records apply in: the backends path, then the libraries, then the rest.
fn rank(key: &str) -> u8 {
    match key.strip_prefix(PREFIX) {
        Some("backendspath") => 0,
        Some(o) if o.starts_with("loadbackend:") => 1,
        _ => 2,
    }
}

/// The records in `records` that differ from those in `applied`, in the order they apply.
pub fn pending(
    records: &BTreeMap<String, String>,
    applied: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = records
        .iter()
        .filter(|(k, v)| applied.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort_by_key(|(k, _)| rank(k));
    out
}

impl Cluster {
    /// Writes setting `c` (already applied on this node) for every node.
    pub async fn share_setting(self: &Arc<Self>, c: &AiConfig) -> Result<(), Error> {
        let Some((key, value)) = record_of(c) else {
            return Ok(());
        };
        // Marked first, so that this node does not apply its own setting again when the
        // record arrives; unmarked if the record could not be written, so that the node
        // applies the cluster's record again (when there is one).
        self.settings_applied
            .lock()
            .insert(key.clone(), value.clone());
        let written = self.write_meta(vec![(key.clone(), Some(value))]).await;
        if written.is_err() {
            self.settings_applied.lock().remove(&key);
        }
        written
    }

    /// The cluster's settings this node has not applied yet, in the order they apply. The
    /// caller applies each and then calls [`Cluster::setting_applied`].
    pub fn pending_settings(&self) -> Vec<(String, String)> {
        let now = shardai_engine::now_ms();
        let records: BTreeMap<String, String> = self
            .meta_store
            .keys(format!("{PREFIX}*").as_bytes(), now)
            .into_iter()
            .filter_map(|k| {
                let v = self.meta_string_b(&k)?;
                Some((
                    String::from_utf8(k.to_vec()).ok()?,
                    String::from_utf8(v.to_vec()).ok()?,
                ))
            })
            .collect();
        pending(&records, &self.settings_applied.lock())
    }

    /// Marks a record as applied on this node (also when applying it failed: it is not
    /// retried until it changes).
    pub fn setting_applied(&self, key: String, value: String) {
        self.settings_applied.lock().insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_round_trips_through_its_record() {
        for c in [
            AiConfig::BackendsPath(Bytes::from_static(b"/opt/backends")),
            AiConfig::LoadBackend {
                backend: "TORCH",
                path: Bytes::from_static(b"redisai_torch/redisai_torch.so"),
            },
            AiConfig::ModelChunkSize(1 << 20),
            AiConfig::BackendMemoryLimit(512),
            AiConfig::BatchQueueDelay(2000),
        ] {
            let (k, v) = record_of(&c).unwrap();
            assert_eq!(setting_of(&k, &v), Some(c));
        }
        assert_eq!(record_of(&AiConfig::Get("backendspath".into())), None);
        assert_eq!(setting_of("aiconfig:nope", "1"), None);
        assert_eq!(setting_of("aiconfig:model_chunk_size", "x"), None);
    }

    #[test]
    fn the_path_applies_before_the_libraries_and_applied_records_are_skipped() {
        let records: BTreeMap<String, String> = [
            ("aiconfig:model_chunk_size", "10"),
            ("aiconfig:loadbackend:ONNX", "o.so"),
            ("aiconfig:backendspath", "/b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let order: Vec<String> = pending(&records, &BTreeMap::new())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            order,
            [
                "aiconfig:backendspath",
                "aiconfig:loadbackend:ONNX",
                "aiconfig:model_chunk_size"
            ]
        );
        let mut applied = records.clone();
        applied.insert("aiconfig:model_chunk_size".into(), "9".into());
        assert_eq!(
            pending(&records, &applied),
            [("aiconfig:model_chunk_size".to_string(), "10".to_string())]
        );
    }
}
