//! Prometheus metrics, in OpenMetrics text (`/metrics`). Names and labels follow
//! Prometheus's conventions: a `shardai_` prefix, base units (seconds, bytes), `_total`
//! counters.
//!
//! Two kinds of series:
//! - recorded as things happen: per command ([`CommandMetrics`], atomics only, only with
//!   --metrics-port), per model and script (the engine's run statistics), per Raft group
//!   (its log's append and fsync latency, its snapshots);
//! - read at scrape time ([`Pulled`]): connections, memory, keys, disk, device queues, Raft
//!   roles and indexes, the cluster's slots and migrations, readiness.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, histogram::Histogram},
    registry::Registry,
};
use shardai_engine::{Store, Value};
use shardai_protocol::table::COMMANDS;

use crate::state::Shared;

/// Upper bounds of the command latency buckets: 10 µs to about 5 s.
const BOUNDS: [f64; 20] = {
    let mut b = [0.0; 20];
    let mut i = 0;
    let mut v = 10e-6;
    while i < 20 {
        b[i] = v;
        v *= 2.0;
        i += 1;
    }
    b
};

/// One command's calls (its buckets' total), errors and latency: plain atomics, so that
/// connections on different threads running the same command never wait on each other.
#[derive(Debug, Default)]
struct Series {
    /// Calls per latency bucket ([`BOUNDS`], then the rest).
    buckets: [AtomicU64; BOUNDS.len() + 1],
    /// Total latency, nanoseconds.
    sum_ns: AtomicU64,
    errors: AtomicU64,
}

impl Series {
    fn observe(&self, took: Duration, failed: bool) {
        let at = BOUNDS.partition_point(|b| *b < took.as_secs_f64());
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (calls, per-bucket counts with their upper bounds, sum in seconds).
    fn read(&self) -> (u64, Vec<(f64, u64)>, f64) {
        let counts: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(&self.buckets)
            .map(|(b, c)| (b, c.load(Ordering::Relaxed)))
            .collect();
        let calls = counts.iter().map(|(_, c)| c).sum();
        (
            calls,
            counts,
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }
}

/// Calls, errors and latency of every command, by its index in the command table.
#[derive(Debug)]
pub struct CommandMetrics {
    series: Box<[Series]>,
}

impl Default for CommandMetrics {
    fn default() -> Self {
        CommandMetrics {
            series: COMMANDS.iter().map(|_| Series::default()).collect(),
        }
    }
}

impl CommandMetrics {
    /// Records one call of the command at `index` in the command table.
    pub fn observe(&self, index: usize, took: Duration, failed: bool) {
        if let Some(s) = self.series.get(index) {
            s.observe(took, failed);
        }
    }

    /// Writes the series of every command called so far.
    fn encode(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let called: Vec<_> = COMMANDS
            .iter()
            .zip(self.series.iter())
            .map(|(c, s)| {
                (
                    [("command", c.name)],
                    s.read(),
                    s.errors.load(Ordering::Relaxed),
                )
            })
            .filter(|(_, (calls, ..), _)| *calls > 0)
            .collect();
        let calls: Vec<_> = called
            .iter()
            .map(|(l, (n, ..), _)| (*l, *n as f64))
            .collect();
        family(
            e,
            "shardai_commands",
            "Commands run, by command",
            MetricType::Counter,
            &calls,
        )?;
        let errors: Vec<_> = called.iter().map(|(l, _, n)| (*l, *n as f64)).collect();
        family(
            e,
            "shardai_command_errors",
            "Commands that answered an error, by command",
            MetricType::Counter,
            &errors,
        )?;
        if called.is_empty() {
            return Ok(());
        }
        let mut m = e.encode_descriptor(
            "shardai_command_duration_seconds",
            "Time from a request to its reply, by command",
            None,
            MetricType::Histogram,
        )?;
        for (labels, (calls, buckets, sum), _) in &called {
            m.encode_family(labels)?
                .encode_histogram::<NoLabelSet>(*sum, *calls, buckets, None)?;
        }
        Ok(())
    }
}

/// The registry `/metrics` encodes: a [`Pulled`] collector over `shared`.
pub fn registry(shared: &Arc<Shared>) -> Registry {
    let mut r = Registry::default();
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
pub(super) fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Writes one unlabelled counter (`name` without `_total`).
pub(super) fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> std::fmt::Result {
    ConstCounter::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// Writes a labelled family of gauges or counters.
pub(super) fn family<L: prometheus_client::encoding::EncodeLabelSet>(
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
pub(super) fn histograms<L: prometheus_client::encoding::EncodeLabelSet>(
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
        if let Some(c) = &shared.ops.commands {
            c.encode(&mut e)?;
        }
        node(&mut e, &shared)?;
        ai(&mut e, &shared)?;
        super::raft_metrics::raft(&mut e, &shared)?;
        super::raft_metrics::cluster(&mut e, &shared)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_latency_lands_in_its_bucket() {
        let s = Series::default();
        s.observe(Duration::from_micros(10), false);
        s.observe(Duration::from_micros(11), true);
        s.observe(Duration::from_secs(60), false);
        let (calls, buckets, sum) = s.read();
        assert_eq!(calls, 3);
        assert_eq!(
            (buckets[0].1, buckets[1].1, buckets[20]),
            (1, 1, (f64::MAX, 1))
        );
        assert!((sum - 60.000021).abs() < 1e-9);
        assert_eq!(s.errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(b"plain"), "plain");
        assert_eq!(label_value(b"a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
