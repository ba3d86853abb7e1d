//! WAIT and WAITAOF under Raft. A write is acknowledged once a majority of its shard's
//! replicas have it in their logs, so WAIT counts the replicas (besides this leader) whose
//! log holds everything this node had applied when WAIT arrived, which includes the
//! connection's own writes; WAITAOF's local count is 1 once this node's log is on disk.

use std::time::{Duration, Instant};

use shardai_protocol::{Error, Reply};

use crate::state::Shared;

/// How often the replicas' progress is read while waiting.
const POLL: Duration = Duration::from_millis(5);

pub(super) async fn wait(
    local: Option<i64>,
    replicas: i64,
    timeout_ms: u64,
    shared: &Shared,
) -> Reply {
    let group = shared.data_group();
    let Some(group) = group else {
        return Reply::Error(Error::Verbatim(
            "ERR this node holds no data (it is not part of a shard yet)".into(),
        ));
    };
    let role = group.role();
    if shared.cluster.is_some() && role.leader.as_ref().is_none_or(|(id, _)| *id != role.me) {
        return Reply::Error(Error::Verbatim(match local {
            None => "ERR WAIT cannot be used with replica instances. Please also note that \
                     since Redis 4.0 if a replica is configured to be writable (which is not \
                     the default) writes to replicas are just local and are not propagated."
                .into(),
            Some(_) => "ERR WAITAOF cannot be used with replica instances. Please also note \
                        that writes to replicas are just local and are not propagated."
                .into(),
        }));
    }
    let target = role.applied;
    let local_done = match local {
        Some(n) if n > 0 => match group.sync_log().await {
            Ok(()) => 1,
            Err(e) => {
                return Reply::Error(Error::Unavailable(format!("the log fsync failed: {e}")));
            }
        },
        // Every acknowledged write is on disk under `--appendfsync always`.
        Some(_) => (group.fsync().name() == "always") as i64,
        None => 0,
    };
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    let have = loop {
        let r = group.role();
        let have = r
            .matched
            .iter()
            .filter(|(id, m)| **id != r.me && **m >= target)
            .count() as i64;
        // A leader that stepped down counts no more.
        let leads =
            shared.cluster.is_none() || r.leader.as_ref().is_some_and(|(id, _)| *id == r.me);
        if have >= replicas || !leads || deadline.is_some_and(|d| Instant::now() >= d) {
            break have;
        }
        tokio::time::sleep(POLL).await;
    };
    match local {
        None => Reply::Int(have),
        Some(_) => Reply::Array(vec![Reply::Int(local_done), Reply::Int(have)]),
    }
}
