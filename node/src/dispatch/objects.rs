//! AI.INFO of a cluster-wide model or script: RedisAI's fields with this node's statistics,
//! then its version and load state here, every node's last report and the cluster's totals
//! (see [`crate::cluster::objects`]).

use bytes::Bytes;
use shardai_engine::stats::StatsSnapshot;
use shardai_protocol::Reply;

use crate::cluster::Cluster;

/// # Format
/// `AI.INFO @name [RESETSTAT]` → RedisAI's fields for this node, then `version`,
/// `load_state` (`loaded` or `error`), `nodes` (one `node`, `version`, `load_state`,
/// `calls`, `errors` list per node that reported it; nodes that have not applied it yet are
/// missing), `nodes_loaded`, `nodes_total`, and `cluster_duration`, `cluster_samples`,
/// `cluster_calls`, `cluster_errors` (every node's last report, this node's current
/// counters). RESETSTAT resets this node's counters.
pub(super) fn ai_info(key: &Bytes, reset: bool, cluster: &Cluster) -> Reply {
    let base = super::model::ai_info(key, reset, cluster.objects());
    let Reply::Array(mut out) = base else {
        return base;
    };
    let reports = cluster.reports();
    let me = cluster.identity().map(|i| i.node);
    let total_nodes = cluster
        .view()
        .map_or(reports.len(), |v| v.topology.nodes.len());
    let mut total = StatsSnapshot::default();
    let mut nodes = Vec::new();
    let mut loaded = 0;
    for (node, r) in &reports {
        let Some(r) = r.get(key) else { continue };
        if Some(*node) == me {
            out.extend([
                Reply::bulk("version"),
                Reply::Bulk(Bytes::from(r.version.clone())),
                Reply::bulk("load_state"),
                Reply::bulk(r.state),
            ]);
        }
        loaded += usize::from(r.state == "loaded");
        total.duration_us += r.stats.duration_us;
        total.samples += r.stats.samples;
        total.calls += r.stats.calls;
        total.errors += r.stats.errors;
        nodes.push(Reply::Array(vec![
            Reply::bulk("node"),
            Reply::Int(*node as i64),
            Reply::bulk("version"),
            Reply::Bulk(Bytes::from(r.version.clone())),
            Reply::bulk("load_state"),
            Reply::bulk(r.state),
            Reply::bulk("calls"),
            Reply::Int(r.stats.calls as i64),
            Reply::bulk("errors"),
            Reply::Int(r.stats.errors as i64),
        ]));
    }
    let int = |n: u64| Reply::Int(n as i64);
    out.extend([
        Reply::bulk("nodes"),
        Reply::Array(nodes),
        Reply::bulk("nodes_loaded"),
        int(loaded as u64),
        Reply::bulk("nodes_total"),
        int(total_nodes as u64),
        Reply::bulk("cluster_duration"),
        int(total.duration_us),
        Reply::bulk("cluster_samples"),
        int(total.samples),
        Reply::bulk("cluster_calls"),
        int(total.calls),
        Reply::bulk("cluster_errors"),
        int(total.errors),
    ]);
    Reply::Array(out)
}
