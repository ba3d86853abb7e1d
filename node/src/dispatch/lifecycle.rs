//! TIME, LASTSAVE, SHUTDOWN and DEBUG SLEEP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use shardai_protocol::{Error, Reply};
use tracing::info;

use super::Flow;
use crate::{client::ConnState, state::Shared};

/// TIME: Unix seconds and microseconds, as two bulk strings.
pub(super) fn time() -> Reply {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(d.as_secs().to_string())),
        Reply::Bulk(Bytes::from(d.subsec_micros().to_string())),
    ])
}

/// LASTSAVE: when the newest snapshot of this node's data was written; the start time
/// before the first one, as Redis.
pub(super) fn lastsave(shared: &Shared) -> Reply {
    let group = shared.data_group();
    let saved = group
        .and_then(|g| g.last_save())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    Reply::Int(saved.unwrap_or(shared.started_unix) as i64)
}

/// SHUTDOWN: the server stops as on SIGTERM (every acknowledged write is already in the
/// log); the connection closes without a reply, as Redis's does.
pub(super) fn shutdown(abort: bool, shared: &Shared, conn: &ConnState) -> (Reply, Flow) {
    if abort {
        return (
            Reply::Error(Error::Verbatim("ERR No shutdown in progress.".into())),
            Flow::Continue,
        );
    }
    info!(client = %conn.info.addr, "SHUTDOWN received");
    shared.shutdown.notify_one();
    (Reply::OK, Flow::Shutdown)
}

/// DEBUG SLEEP: answers OK after `d`, holding up only this connection.
pub(super) async fn sleep(d: Duration) -> Reply {
    tokio::time::sleep(d).await;
    Reply::OK
}
