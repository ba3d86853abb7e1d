//! Prometheus metrics, in OpenMetrics text (`/metrics`). Names and labels follow
//! Prometheus's conventions: a `shardai_` prefix, base units (seconds, bytes), `_total`
//! counters.
//!
//! Two kinds of series:
//! - recorded as things happen: per command ([`CommandMetrics`], only with
//!   --metrics-port), per model and script (the engine's run statistics), per Raft group
//!   (its log's append and fsync latency, its snapshots);
//! - read at scrape time ([`Pulled`]): connections, memory, keys, disk, device queues, Raft
//!   roles and indexes, the cluster's slots and migrations, readiness.

use std::{
    sync::{Arc, OnceLock, Weak, atomic::Ordering},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use shardai_engine::{Store, Value};
use shardai_protocol::table::COMMANDS;

use crate::state::Shared;

type CommandLabel = [(&'static str, &'static str); 1];

fn command_histogram() -> Histogram {
    // 10 µs to about 5 s.
    Histogram::new(exponential_buckets(10e-6, 2.0, 20))
}

/// One command's series, made on its first call.
#[derive(Debug)]
struct Series {
    calls: Counter,
    errors: Counter,
    duration: Histogram,
}

/// Calls, errors and latency of every command called since the start.
#[derive(Debug)]
pub struct CommandMetrics {
    calls: Family<CommandLabel, Counter>,
    errors: Family<CommandLabel, Counter>,
    durations: Family<CommandLabel, Histogram, fn() -> Histogram>,
    series: Box<[OnceLock<Series>]>,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        CommandMetrics {
            calls: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(command_histogram),
            series: COMMANDS.iter().map(|_| OnceLock::new()).collect(),
        }
    }
}

impl CommandMetrics {
    /// Records one call of the command at `index` in the command table.
    pub fn observe(&self, index: usize, took: Duration, failed: bool) {
        let Some(slot) = self.series.get(index) else {
            return;
        };
        let s = slot.get_or_init(|| {
            let label = [("command", COMMANDS[index].name)];
            Series {
                calls: self.calls.get_or_create(&label).clone(),
                errors: self.errors.get_or_create(&label).clone(),
                duration: self.durations.get_or_create(&label).clone(),
            }
        });
        s.calls.inc();
        s.duration.observe(took.as_secs_f64());
        if failed {
            s.errors.inc();
        }
    }
}

/// The registry `/metrics` encodes: the command families (when recorded) and a
/// [`Pulled`] collector over `shared`.
pub fn registry(shared: &Arc<Shared>) -> Registry {
    let mut r = Registry::default();
    if let Some(c) = &shared.ops.commands {
        r.register(
            "shardai_commands",
            "Commands processed, by command",
            c.calls.clone(),
        );
        r.register(
            "shardai_command_errors",
            "Commands answered with an error, by command",
            c.errors.clone(),
        );
        r.register(
            "shardai_command_duration_seconds",
            "Time from a command's parse to its reply, by command",
            c.durations.clone(),
        );
    }
    r.register_collector(Box::new(Pulled {
        shared: Arc::downgrade(shared),
    }));
    r
}

/// Encodes `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// `raw` as the text of a label value: the exposition format's escapes (`\\`, `\"`, `\n`),
/// which the encoder leaves to its caller, so that no key can break or forge a series.
pub fn label_value(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in String::from_utf8_lossy(raw).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Series read from the node's state at each scrape.
#[derive(Debug)]
pub struct Pulled {
    shared: Weak<Shared>,
}

/// Writes one unlabelled gauge.
fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes one unlabelled counter (`name` without `_total`).
fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// Writes a labelled family of gauges or counters.
fn family<L: prometheus_client::encoding::EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[(L, f64)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let f = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(f)?,
            _ => ConstGauge::new(*v).encode(f)?,
        }
    }
    Ok(())
}

/// Writes a labelled family of histograms.
fn histograms<L: prometheus_client::encoding::EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(L, &Histogram)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        h.encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Pulled {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        node(&mut e, &shared)?;
        ai(&mut e, &shared)?;
        raft(&mut e, &shared)?;
        cluster(&mut e, &shared)
    }
}

fn node(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
    let mut info = e.encode_descriptor(
        "shardai_build",
        "The running shardai's version",
        None,
        MetricType::Info,
    )?;
    info.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
    let ready = shared.ops.readiness.check(shared).is_ok();
    gauge(
        e,
        "shardai_ready",
        "1 when /readyz answers ready, else 0",
        f64::from(u8::from(ready)),
    )?;
    gauge(
        e,
        "shardai_uptime_seconds",
        "Seconds since the process started",
        shared.started.elapsed().as_secs_f64(),
    )?;
    let st = &shared.stats;
    gauge(
        e,
        "shardai_connected_clients",
        "Client connections open now",
        shared.clients.lock().len() as f64,
    )?;
    counter(
        e,
        "shardai_connections",
        "Client connections accepted",
        st.connections.load(Ordering::Relaxed),
    )?;
    counter(
        e,
        "shardai_rejected_connections",
        "Client connections refused by maxclients",
        st.rejected.load(Ordering::Relaxed),
    )?;
    let store = shared.store();
    gauge(
        e,
        "shardai_memory_used_bytes",
        "Bytes held by the keyspace (as INFO used_memory)",
        store.used_bytes() as f64,
    )?;
    gauge(
        e,
        "shardai_maxmemory_bytes",
        "The maxmemory limit (0: none)",
        shared.runtime.maxmemory.load(Ordering::Relaxed) as f64,
    )?;
    gauge(
        e,
        "shardai_keys",
        "Keys in this node's keyspace",
        store.len() as f64,
    )?;
    if let Ok(fs) = rustix::fs::statvfs(&shared.config.dir) {
        let block = fs.f_frsize as f64;
        gauge(
            e,
            "shardai_disk_free_bytes",
            "Bytes free for unprivileged use on the data folder's filesystem",
            fs.f_bavail as f64 * block,
        )?;
        gauge(
            e,
            "shardai_disk_size_bytes",
            "Size of the data folder's filesystem",
            fs.f_blocks as f64 * block,
        )?;
    }
    Ok(())
}

type AiLabels = [(&'static str, String); 2];

fn ai(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
    let mut stores: Vec<&Arc<Store>> = vec![shared.store()];
    if let Some(o) = shared.engine.objects.get() {
        stores.push(o);
    }
    let mut runs: Vec<(AiLabels, Arc<shardai_engine::stats::RunStats>)> = Vec::new();
    for store in stores {
        for (key, value) in store.runnables() {
            let (kind, stats) = match value {
                Value::Model(m) => ("model", m.stats.clone()),
                Value::Script(s) => ("script", s.stats.clone()),
                _ => continue,
            };
            runs.push((
                [("kind", kind.to_string()), ("key", label_value(&key))],
                stats,
            ));
        }
    }
    let snaps: Vec<_> = runs.iter().map(|(_, s)| s.snapshot()).collect();
    let rows = |f: &dyn Fn(&shardai_engine::stats::StatsSnapshot) -> u64| -> Vec<(AiLabels, f64)> {
        runs.iter()
            .zip(&snaps)
            .map(|((l, _), s)| (l.clone(), f(s) as f64))
            .collect()
    };
    family(
        e,
        "shardai_ai_runs",
        "Runs of a model or script on this node, failed ones included (AI.INFO calls)",
        MetricType::Counter,
        &rows(&|s| s.calls),
    )?;
    family(
        e,
        "shardai_ai_run_errors",
        "Runs of a model or script that failed (AI.INFO errors)",
        MetricType::Counter,
        &rows(&|s| s.errors),
    )?;
    type Pick = fn(&shardai_engine::stats::RunStats) -> &Histogram;
    let dists: [(&str, &str, Pick, bool); 3] = [
        (
            "shardai_ai_run_duration_seconds",
            "Seconds per successful run (a batch counts once)",
            |s| &s.run_seconds,
            false,
        ),
        (
            "shardai_ai_batch_size",
            "Samples per backend call of a model (its batch)",
            |s| &s.batch_size,
            true,
        ),
        (
            "shardai_ai_queue_wait_seconds",
            "Seconds a request waited in its device queue before its run started",
            |s| &s.queue_wait_seconds,
            true,
        ),
    ];
    for (name, help, pick, models_only) in dists {
        let rows: Vec<(AiLabels, &Histogram)> = runs
            .iter()
            .filter(|(l, _)| !models_only || l[0].1 == "model")
            .map(|(l, s)| (l.clone(), pick(s)))
            .collect();
        histograms(e, name, help, &rows)?;
    }
    let loads = shared.engine.queues.loads();
    let dev = |f: &dyn Fn(&shardai_engine::queue::DeviceLoad) -> f64| -> Vec<([(&'static str, String); 1], f64)> {
        loads.iter().map(|l| ([("device", l.device.clone())], f(l))).collect()
    };
    family(
        e,
        "shardai_device_queue_depth",
        "Requests waiting in a device's run queue",
        MetricType::Gauge,
        &dev(&|l| l.waiting as f64),
    )?;
    family(
        e,
        "shardai_device_busy_seconds",
        "Seconds a device queue's workers spent in backend calls",
        MetricType::Counter,
        &dev(&|l| l.busy_seconds),
    )
}

/// The Raft groups this node takes part in, by the `group` label.
pub fn groups(shared: &Shared) -> Vec<(&'static str, Arc<shardai_raft::ShardGroup>)> {
    match &shared.cluster {
        Some(c) => [("data", c.group()), ("meta", c.meta_group())]
            .into_iter()
            .filter_map(|(n, g)| g.map(|g| (n, g)))
            .collect(),
        None => shared
            .standalone
            .iter()
            .map(|g| ("data", g.clone()))
            .collect(),
    }
}

fn raft(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
    let groups = groups(shared);
    if groups.is_empty() {
        return Ok(());
    }
    let roles: Vec<_> = groups.iter().map(|(n, g)| (*n, g.role(), g)).collect();
    let per = |f: &dyn Fn(&shardai_raft::RoleInfo) -> f64| -> Vec<([(&'static str, &'static str); 1], f64)> {
        roles.iter().map(|(n, r, _)| ([("group", *n)], f(r))).collect()
    };
    family(
        e,
        "shardai_raft_term",
        "The group's current term",
        MetricType::Gauge,
        &per(&|r| r.term as f64),
    )?;
    family(
        e,
        "shardai_raft_is_leader",
        "1 when this node leads the group",
        MetricType::Gauge,
        &per(&|r| f64::from(u8::from(is_leader(r)))),
    )?;
    family(
        e,
        "shardai_raft_has_leader",
        "1 when this node knows a leader of the group",
        MetricType::Gauge,
        &per(&|r| f64::from(u8::from(r.leader.is_some() && r.fatal.is_none()))),
    )?;
    family(
        e,
        "shardai_raft_commit_index",
        "The group's commit index as this node knows it",
        MetricType::Gauge,
        &per(&|r| r.committed as f64),
    )?;
    family(
        e,
        "shardai_raft_applied_index",
        "The index this node applied up to",
        MetricType::Gauge,
        &per(&|r| r.applied as f64),
    )?;
    let stats = |f: &dyn Fn(&shardai_raft::stats::GroupStats) -> f64| -> Vec<([(&'static str, &'static str); 1], f64)> {
        roles.iter().map(|(n, _, g)| ([("group", *n)], f(g.stats()))).collect()
    };
    family(
        e,
        "shardai_raft_leader_changes",
        "Times the group's leader changed to another node",
        MetricType::Counter,
        &stats(&|s| s.leader_changes.load(Ordering::Relaxed) as f64),
    )?;
    family(
        e,
        "shardai_raft_snapshots",
        "Snapshots this node built of the group",
        MetricType::Counter,
        &stats(&|s| s.snapshots.load(Ordering::Relaxed) as f64),
    )?;
    family(
        e,
        "shardai_raft_snapshot_bytes",
        "Size of the newest snapshot built",
        MetricType::Gauge,
        &stats(&|s| s.snapshot_bytes.load(Ordering::Relaxed) as f64),
    )?;
    family(
        e,
        "shardai_raft_snapshot_duration_seconds",
        "Time the newest snapshot took to write",
        MetricType::Gauge,
        &stats(&|s| s.snapshot_micros.load(Ordering::Relaxed) as f64 / 1e6),
    )?;
    let append: Vec<_> = roles
        .iter()
        .map(|(n, _, g)| ([("group", *n)], &g.stats().append_seconds))
        .collect();
    histograms(
        e,
        "shardai_raft_append_duration_seconds",
        "Seconds from a log append's start to its entries being durable",
        &append,
    )?;
    let fsync: Vec<_> = roles
        .iter()
        .map(|(n, _, g)| ([("group", *n)], &g.stats().fsync_seconds))
        .collect();
    histograms(
        e,
        "shardai_raft_fsync_duration_seconds",
        "Seconds per fsync of the group's log",
        &fsync,
    )?;
    let mut lag: Vec<([(&'static str, String); 2], f64)> = Vec::new();
    for (n, r, _) in &roles {
        for (id, matched) in &r.matched {
            if *id != r.me {
                lag.push((
                    [("group", n.to_string()), ("follower", id.to_string())],
                    r.last_log.saturating_sub(*matched) as f64,
                ));
            }
        }
    }
    family(
        e,
        "shardai_raft_follower_lag_entries",
        "Entries a follower is behind this leader's log",
        MetricType::Gauge,
        &lag,
    )
}

/// True when `r` is the group's leader (and has not stopped).
fn is_leader(r: &shardai_raft::RoleInfo) -> bool {
    r.leader.as_ref().is_some_and(|(id, _)| *id == r.me) && r.fatal.is_none()
}

fn cluster(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
    let Some(c) = &shared.cluster else {
        return Ok(());
    };
    if let Some(view) = c.view() {
        let owned: usize = view
            .my_shard()
            .map(|s| {
                view.ranges(s)
                    .iter()
                    .map(|(a, b)| (*b - *a) as usize + 1)
                    .sum()
            })
            .unwrap_or(0);
        gauge(
            e,
            "shardai_cluster_slots_owned",
            "Hash slots this node's shard owns",
            owned as f64,
        )?;
        gauge(
            e,
            "shardai_cluster_migrations_open",
            "Slots migrating between shards now",
            view.migrations().len() as f64,
        )?;
    }
    let st = &shared.stats;
    family(
        e,
        "shardai_cluster_redirects",
        "MOVED and ASK redirects this node answered",
        MetricType::Counter,
        &[
            ([("kind", "moved")], st.moved.load(Ordering::Relaxed) as f64),
            ([("kind", "ask")], st.ask.load(Ordering::Relaxed) as f64),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(b"plain"), "plain");
        assert_eq!(label_value(b"a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
