//! The Raft and cluster part of `/metrics` (see [`super::metrics`]): per group this node
//! is in, its term, leader, indexes, leader changes, log latency, snapshots and followers'
//! lag; in a cluster, the slots its shard owns, open migrations and redirects answered.

use std::sync::{Arc, atomic::Ordering};

use prometheus_client::{encoding::DescriptorEncoder, metrics::MetricType};

use super::metrics::{family, gauge, histograms};
use crate::state::Shared;

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

pub(super) fn raft(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
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

pub(super) fn cluster(e: &mut DescriptorEncoder, shared: &Shared) -> std::fmt::Result {
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
