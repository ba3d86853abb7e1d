//! The operator's side of a node: Prometheus metrics ([`metrics`]), the health endpoints
//! and the HTTP port that serves both ([`http`], [`ready`]), SLOWLOG ([`slowlog`]) and
//! MONITOR ([`monitor`]). [`Ops`] is what the connections feed as commands run.

pub mod http;
pub mod metrics;
pub mod monitor;
pub mod ready;
pub mod slowlog;

use std::time::Duration;

use bytes::Bytes;
use shardai_protocol::table::CommandSpec;

use crate::{client::ClientInfo, config::Config};

/// What commands report to as they run.
#[derive(Debug)]
pub struct Ops {
    /// SLOWLOG.
    pub slowlog: slowlog::SlowLog,
    /// MONITOR listeners.
    pub monitors: monitor::Monitors,
    /// Per-command counters and latency; only with --metrics-port.
    pub commands: Option<metrics::CommandMetrics>,
    /// /readyz's memory of what was committed when the node started.
    pub readiness: ready::Readiness,
}

impl Ops {
    /// As `config` asks.
    pub fn for_config(config: &Config) -> Self {
        Ops {
            slowlog: slowlog::SlowLog::new(config.slowlog_log_slower_than, config.slowlog_max_len),
            monitors: monitor::Monitors::default(),
            commands: config
                .metrics_port
                .map(|_| metrics::CommandMetrics::default()),
            readiness: ready::Readiness::default(),
        }
    }

    /// Before a command (at `index` in the command table) runs: what SLOWLOG may need of its request (only while it logs),
    /// and its MONITOR line (only while someone listens).
    pub fn before(
        &self,
        index: usize,
        spec: &CommandSpec,
        argv: &[Bytes],
        client: &ClientInfo,
    ) -> Option<Vec<Bytes>> {
        if self.monitors.active() {
            self.monitors.feed(index, spec, argv, &client.addr);
        }
        (self.slowlog.enabled() && !spec.flags.contains(&"skip_slowlog"))
            .then(|| slowlog::summarize(argv))
    }

    /// After a command (`index` in the command table) ran for `took`; `failed` when it
    /// answered an error.
    pub fn after(
        &self,
        index: usize,
        took: Duration,
        failed: bool,
        request: Option<Vec<Bytes>>,
        client: &ClientInfo,
    ) {
        if let Some(m) = &self.commands {
            m.observe(index, took, failed);
        }
        if let Some(args) = request {
            self.slowlog.consider(took, || {
                (
                    args,
                    client.addr.to_string(),
                    client.names.lock().name.clone(),
                )
            });
        }
    }
}
