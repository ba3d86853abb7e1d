//! INFO: Redis's sections plus RedisAI's `ai_*` sections.

use std::{fmt::Write, sync::atomic::Ordering};

use shardai_protocol::Reply;

use super::server::REDIS_COMPAT_VERSION;
use crate::state::Shared;

/// Sections in the order INFO prints them, and whether plain `INFO` includes each.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("cluster", true),
    ("keyspace", true),
    ("ai_versions", true),
    ("ai_git", true),
    ("ai_load_time_configs", true),
    ("ai_backends_info", true),
    ("ai_cpu", true),
    ("ai_runs", true),
    ("ai_cluster_wide", true),
];

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2}G", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.2}M", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else {
        format!("{bytes}B")
    }
}

/// Reads a `VmRSS:`-style line of /proc/self/status, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
        * 1024
}

/// User and system CPU seconds of this process, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    (get(11), get(12))
}

fn section(name: &str, shared: &Shared, out: &mut String) {
    let s = &shared.stats;
    let store = shared.store();
    let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(out, "# {}", titled(name));
    let lines: Vec<(String, String)> = match name {
        "server" => vec![
            ("redis_version".into(), REDIS_COMPAT_VERSION.into()),
            ("shardai_version".into(), env!("CARGO_PKG_VERSION").into()),
            ("redis_mode".into(), "standalone".into()),
            ("os".into(), std::env::consts::OS.into()),
            ("arch_bits".into(), "64".into()),
            ("process_id".into(), std::process::id().to_string()),
            ("run_id".into(), shared.run_id.clone()),
            ("tcp_port".into(), shared.config.port.to_string()),
            (
                "uptime_in_seconds".into(),
                shared.started.elapsed().as_secs().to_string(),
            ),
            (
                "uptime_in_days".into(),
                (shared.started.elapsed().as_secs() / 86400).to_string(),
            ),
            (
                "executable".into(),
                std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "config_file".into(),
                shared
                    .config
                    .config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
        ],
        "clients" => vec![
            (
                "connected_clients".into(),
                shared.clients.lock().len().to_string(),
            ),
            (
                "maxclients".into(),
                shared
                    .runtime
                    .maxclients
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            ("blocked_clients".into(), "0".into()),
        ],
        "memory" => {
            let rss = proc_status_bytes("VmRSS:");
            let peak = proc_status_bytes("VmHWM:");
            let used = store.used_bytes() as u64;
            let max = shared.runtime.maxmemory.load(Ordering::Relaxed) as u64;
            vec![
                ("used_memory".into(), used.to_string()),
                ("used_memory_human".into(), human(used)),
                ("used_memory_rss".into(), rss.to_string()),
                ("used_memory_rss_human".into(), human(rss)),
                ("used_memory_peak".into(), peak.to_string()),
                ("used_memory_peak_human".into(), human(peak)),
                ("used_memory_dataset".into(), used.to_string()),
                ("maxmemory".into(), max.to_string()),
                ("maxmemory_human".into(), human(max)),
                ("maxmemory_policy".into(), "noeviction".into()),
            ]
        }
        "persistence" => {
            // The log every write goes to: the standalone node's, or the shard's replica.
            let group = shared.data_group();
            let stopped = group.as_ref().and_then(|g| g.storage_failure());
            let fsync = group.as_ref().map_or("always", |g| g.fsync().name());
            let status = if stopped.is_some() { "err" } else { "ok" };
            let saved = group.as_ref().is_none_or(|g| g.last_save_ok());
            let save_status = if saved { "ok" } else { "err" };
            let saving = group.as_ref().is_some_and(|g| g.saving());
            let changes = group.as_ref().map_or(0, |g| g.changes_since_snapshot());
            vec![
                ("loading".into(), "0".into()),
                ("async_loading".into(), "0".into()),
                ("rdb_changes_since_last_save".into(), changes.to_string()),
                ("rdb_bgsave_in_progress".into(), (saving as u8).to_string()),
                ("rdb_last_bgsave_status".into(), save_status.into()),
                ("aof_enabled".into(), "1".into()),
                ("aof_rewrite_in_progress".into(), "0".into()),
                ("aof_rewrite_scheduled".into(), "0".into()),
                ("aof_last_write_status".into(), status.into()),
                ("shardai_appendfsync".into(), fsync.into()),
                (
                    "shardai_storage".into(),
                    format!("raft log in {}", shared.config.dir.display()),
                ),
            ]
        }
        "stats" => vec![
            (
                "total_connections_received".into(),
                ld(&s.connections).to_string(),
            ),
            (
                "total_commands_processed".into(),
                ld(&s.commands).to_string(),
            ),
            ("total_net_input_bytes".into(), ld(&s.net_in).to_string()),
            ("total_net_output_bytes".into(), ld(&s.net_out).to_string()),
            ("rejected_connections".into(), ld(&s.rejected).to_string()),
            ("expired_keys".into(), ld(&s.expired).to_string()),
            ("keyspace_hits".into(), ld(&s.hits).to_string()),
            ("keyspace_misses".into(), ld(&s.misses).to_string()),
            ("total_error_replies".into(), "0".into()),
            ("protocol_errors".into(), ld(&s.protocol_errors).to_string()),
            (
                "mutations_applied".into(),
                store.applied_count().to_string(),
            ),
        ],
        "replication" => super::cluster::replication_info(shared.cluster.as_deref()),
        "cpu" => {
            let (user, sys) = cpu_seconds();
            vec![
                ("used_cpu_sys".into(), format!("{sys:.6}")),
                ("used_cpu_user".into(), format!("{user:.6}")),
            ]
        }
        "cluster" => vec![(
            "cluster_enabled".into(),
            u8::from(shared.cluster.is_some()).to_string(),
        )],
        "keyspace" => {
            if store.is_empty() {
                vec![]
            } else {
                vec![(
                    "db0".into(),
                    format!(
                        "keys={},expires={},avg_ttl=0",
                        store.len(),
                        store.volatile_len()
                    ),
                )]
            }
        }
        "ai_versions" => vec![
            ("ai_RedisAI_version".into(), "1.2.7".into()),
            ("ai_low_level_API_version".into(), "1".into()),
            ("ai_rdb_version".into(), "4".into()),
            (
                "ai_shardai_version".into(),
                env!("CARGO_PKG_VERSION").into(),
            ),
        ],
        "ai_git" => vec![(
            "ai_git_sha".into(),
            option_env!("SHARDAI_GIT_SHA").unwrap_or("unknown").into(),
        )],
        "ai_load_time_configs" => vec![
            (
                "ai_threads_per_queue".into(),
                shared.config.threads_per_queue.to_string(),
            ),
            (
                "ai_inter_op_parallelism".into(),
                shared.config.inter_op_parallelism.to_string(),
            ),
            (
                "ai_intra_op_parallelism".into(),
                shared.config.intra_op_parallelism.to_string(),
            ),
            (
                "ai_model_execution_timeout".into(),
                shared.config.model_execution_timeout.to_string(),
            ),
            (
                "ai_backend_memory_limit".into(),
                shared
                    .runtime
                    .backend_memory_limit
                    .load(Ordering::Relaxed)
                    .to_string(),
            ),
            (
                "ai_batch_queue_delay_us".into(),
                shared.engine.queues.queue_delay().as_micros().to_string(),
            ),
        ],
        "ai_backends_info" => shared
            .engine
            .backends
            .versions()
            .into_iter()
            .flat_map(|(name, v)| {
                let mut lines = vec![(format!("ai_{name}_version"), v)];
                if name == "onnxruntime" {
                    use shardai_engine::backend::onnx_memory;
                    lines.push((
                        "ai_onnxruntime_memory".into(),
                        onnx_memory::in_use().to_string(),
                    ));
                    lines.push((
                        "ai_onnxruntime_memory_access_num".into(),
                        onnx_memory::accesses().to_string(),
                    ));
                }
                lines
            })
            .collect(),
        "ai_cpu" => {
            let (user, sys) = cpu_seconds();
            vec![
                ("ai_self_used_cpu_sys".into(), format!("{sys:.6}")),
                ("ai_self_used_cpu_user".into(), format!("{user:.6}")),
            ]
        }
        "ai_runs" => vec![
            (
                "ai_abandoned_runs".into(),
                shared.engine.queues.lost_workers().to_string(),
            ),
            (
                "ai_models_not_loaded".into(),
                shardai_engine::backend::models_not_loaded().to_string(),
            ),
        ],
        "ai_cluster_wide" => match &shared.cluster {
            Some(c) => {
                let r = c.local_reports();
                let errors: Vec<String> = r
                    .iter()
                    .filter(|(_, r)| r.state != "loaded")
                    .map(|(n, _)| list_item(n))
                    .collect();
                let loaded: Vec<String> = r
                    .iter()
                    .filter(|(_, r)| r.state == "loaded")
                    .map(|(n, r)| format!("{}@{}", list_item(n), r.version))
                    .collect();
                vec![
                    ("ai_cluster_wide_objects".into(), r.len().to_string()),
                    ("ai_cluster_wide_loaded".into(), loaded.join(",")),
                    ("ai_cluster_wide_not_loaded".into(), errors.join(",")),
                ]
            }
            None => vec![],
        },
        _ => vec![],
    };
    for (k, v) in lines {
        let _ = writeln!(out, "{k}:{v}\r");
    }
}

/// A name as an item of an INFO list: control bytes, quotes, backslashes and commas escaped.
fn list_item(name: &[u8]) -> String {
    name.escape_ascii().to_string().replace(',', "\\x2c")
}

/// Section titles as Redis prints them (`# Server`, `# ai_versions`).
fn titled(name: &str) -> String {
    if name.starts_with("ai_") {
        return name.to_string();
    }
    let mut c = name.chars();
    c.next().map_or(String::new(), |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}

pub(super) fn info(requested: &[String], shared: &Shared) -> Reply {
    let all = requested.is_empty()
        || requested
            .iter()
            .any(|r| r == "all" || r == "everything" || r == "default");
    let modules = requested.iter().any(|r| r == "modules");
    let mut out = String::new();
    for &(name, default) in SECTIONS {
        let wanted = (all && default)
            || requested.iter().any(|r| r == name)
            || (modules && name.starts_with("ai_"));
        // Only a cluster has cluster-wide models.
        let wanted = wanted && (name != "ai_cluster_wide" || shared.cluster.is_some());
        if wanted {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            section(name, shared, &mut out);
        }
    }
    let out = out.replace("\r\n", "\n").replace('\n', "\r\n");
    Reply::Verbatim(out)
}
