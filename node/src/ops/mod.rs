//! The operator's side of a node: Prometheus metrics ([`metrics`], [`raft_metrics`]), the
//! health endpoints and the HTTP port that serves both ([`http`], [`ready`]), SLOWLOG
//! ([`slowlog`]) and MONITOR ([`monitor`]). [`Ops`] is what the connections feed as commands run.

pub mod http;
pub mod metrics;
pub mod monitor;
pub mod raft_metrics;
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

    /// Before a command (at `index` in the command table) runs: its MONITOR line (only
    /// while someone listens), and, while SLOWLOG logs, its first arguments held in `held`
    /// (shared with the request, not copied). `Some(argc)` when SLOWLOG may want it.
    pub fn before(
        &self,
        index: usize,
        spec: &CommandSpec,
        argv: &[Bytes],
        client: &ClientInfo,
        held: &mut Vec<Bytes>,
    ) -> Option<usize> {
        if self.monitors.active() {
            self.monitors.feed(index, spec, argv, &client.addr);
        }
        if !self.slowlog.enabled() || spec.flags.contains(&"skip_slowlog") {
            return None;
        }
        slowlog::hold(argv, held);
        Some(argv.len())
    }

    /// After a command (`index` in the command table, of `spec`) ran for `took`; `failed`
    /// when it answered an error; `argc` and `held` as [`Ops::before`] left them (`held`
    /// is emptied).
    #[allow(clippy::too_many_arguments)]
    pub fn after(
        &self,
        index: usize,
        spec: &CommandSpec,
        took: Duration,
        failed: bool,
        argc: Option<usize>,
        held: &mut Vec<Bytes>,
        client: &ClientInfo,
    ) {
        if let Some(m) = &self.commands {
            m.observe(index, took, failed);
        }
        if let Some(argc) = argc {
            self.slowlog.consider(took, || {
                (
                    slowlog::summarize(spec, held, argc),
                    client.addr.to_string(),
                    client.names.lock().name.clone(),
                )
            });
            held.clear();
        }
    }
}
