//! Recovery from a failed disk write. A Raft group whose log could not be written or fsync'd
//! (a full or failing disk) stops: it acknowledges nothing more and leads nothing, and a
//! failed fsync may have dropped the data it was flushing, so that group cannot go on in this
//! process. This task waits until the data folder takes a write and an fsync again (space
//! returned), then restarts the process in place (an exec of its own binary with the same
//! arguments, keeping its PID) so that it recovers from its log and snapshots exactly as after
//! a crash, and catches up from its shard's leader. A Raft core that stopped for another
//! reason than a shutdown (a panic) is restarted the same way.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use shardai_raft::ShardGroup;
use tracing::{error, info, warn};

use crate::state::Shared;

/// How often a stopped group's disk is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Counts the restarts this process made to recover (kept across the exec in the
/// environment): each one waits twice as long as the one before before it tries the disk,
/// so that a failing disk that takes the probe but fails the log again does not restart the
/// node every few seconds.
const RESTARTS_VAR: &str = "SHARDAI_RECOVERY_RESTARTS";

/// How long a recovered node must run for its next failure to count as a first one.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Bytes the probe writes: twice what the log allocates at a time (8 MiB), so that a disk
/// with room for the probe has room for the log to go on.
const PROBE_BYTES: usize = 16 << 20;

/// The node's Raft groups (the standalone node's one, or a cluster node's data and metadata
/// groups).
fn groups(shared: &Shared) -> Vec<Arc<ShardGroup>> {
    let mut out: Vec<Arc<ShardGroup>> = shared.standalone.iter().cloned().collect();
    if let Some(c) = &shared.cluster {
        out.extend(c.group());
        out.extend(c.meta_group());
    }
    out
}

/// Whether `dir` takes a write of [`PROBE_BYTES`] and its fsync.
fn writable(dir: &Path) -> bool {
    let path = dir.join(".write-probe");
    let ok = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0x5a; PROBE_BYTES])?;
        f.sync_all()
    })()
    .is_ok();
    let _ = std::fs::remove_file(&path);
    ok
}

/// Watches the node's groups; once one has stopped on a storage error and `dir` is writable
/// again, restarts the process. Runs until the process ends.
pub async fn watch(shared: Arc<Shared>) {
    let dir: PathBuf = shared.config.dir.clone();
    let restarts: u32 = std::env::var(RESTARTS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut reported = false;
    loop {
        tokio::time::sleep(RETRY_EVERY).await;
        let Some(why) = groups(&shared).iter().find_map(|g| g.storage_failure()) else {
            continue;
        };
        // A failure long after the last recovery starts the count again.
        let restarts = if shared.started.elapsed() > FORGET_AFTER {
            0
        } else {
            restarts
        };
        if !reported {
            error!(
                reason = %why,
                "a Raft group stopped (its log could not be written, or its core failed): this \
                 node acknowledges no write and leads nothing until its data folder takes \
                 writes again; it then restarts to recover"
            );
            reported = true;
            let patience = RETRY_EVERY * 2u32.pow(restarts.min(8));
            tokio::time::sleep(patience.saturating_sub(RETRY_EVERY)).await;
        }
        let probe = dir.clone();
        if !tokio::task::spawn_blocking(move || writable(&probe))
            .await
            .unwrap_or(false)
        {
            continue;
        }
        warn!(
            dir = %dir.display(),
            "the data folder takes writes again: restarting to recover from the Raft log"
        );
        restart(restarts + 1);
    }
}

/// Replaces this process with a fresh run of its own binary, same arguments and environment.
fn restart(count: u32) {
    use std::os::unix::process::CommandExt;
    // /proc/self/exe is this very binary even if its file was since replaced.
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new("/proc/self/exe");
    if let Some(name) = args.next() {
        cmd.arg0(name);
    }
    let e = cmd.args(args).env(RESTARTS_VAR, count.to_string()).exec();
    error!(error = %e, "cannot restart shardai; restart it by hand");
    info!("exiting");
    std::process::exit(1);
}
