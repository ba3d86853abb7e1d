//! A worker's Redis client: redis-rs connections to the nodes' client ports, one per node,
//! following MOVED and ASK itself (so the history records which node answered) and bounding
//! every call by a timeout. How a call ended is sorted into what the checkers need: a reply,
//! an error that proves the command did nothing, or an unknown outcome.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Value, aio::MultiplexedConnection};

/// How one command ended.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The server's reply, from the node at the address.
    Value(Value, String),
    /// The server's error reply (after redirects), with the node's address.
    Error(String, String),
    /// No reply in time, or the connection broke: the command may or may not have run.
    Unknown(String),
    /// The command was never sent (no connection could be made).
    NotSent(String),
}

/// Connections of one worker, by node address.
pub(crate) struct Client {
    conns: HashMap<String, MultiplexedConnection>,
    timeout: Duration,
    /// Sends READONLY first on every new connection (follower reads).
    readonly: bool,
}

impl Client {
    pub(crate) fn new(timeout: Duration, readonly: bool) -> Client {
        Client {
            conns: HashMap::new(),
            timeout,
            readonly,
        }
    }

    async fn conn(&mut self, addr: &str) -> Result<MultiplexedConnection, String> {
        if let Some(c) = self.conns.get(addr) {
            return Ok(c.clone());
        }
        let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
        // redis-rs's own timeouts (500 ms by default) off: the harness bounds every call.
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let mut c = tokio::time::timeout(
            self.timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| format!("connect to {addr} timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
        if self.readonly {
            let ok = tokio::time::timeout(
                self.timeout,
                redis::cmd("READONLY").query_async::<Value>(&mut c),
            )
            .await;
            if !matches!(ok, Ok(Ok(_))) {
                return Err(format!("READONLY on {addr} failed"));
            }
        }
        self.conns.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Sends `cmd` to `addr`, following up to three redirects.
    pub(crate) async fn call(&mut self, addr: &str, cmd: &redis::Cmd) -> Reply {
        let mut addr = addr.to_string();
        let mut asking = false;
        for _ in 0..4 {
            let mut c = match self.conn(&addr).await {
                Ok(c) => c,
                Err(e) => return Reply::NotSent(e),
            };
            let res = if asking {
                let mut p = redis::pipe();
                p.cmd("ASKING").ignore().add_command(cmd.clone());
                tokio::time::timeout(self.timeout, p.query_async::<Vec<Value>>(&mut c))
                    .await
                    .map(|r| r.map(|mut v| v.pop().unwrap_or(Value::Nil)))
            } else {
                tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut c)).await
            };
            match res {
                Err(_) => {
                    // The connection may hold a late answer: never reuse it.
                    self.conns.remove(&addr);
                    return Reply::Unknown(format!("no reply from {addr} in time"));
                }
                Ok(Ok(v)) => return Reply::Value(v, addr),
                Ok(Err(e)) => {
                    if let Some((to, _)) = e.redirect_node() {
                        asking = e.code() == Some("ASK");
                        addr = to.to_string();
                        continue;
                    }
                    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                        self.conns.remove(&addr);
                        return Reply::Unknown(format!("{addr}: {e}"));
                    }
                    let text = match (e.code(), e.detail()) {
                        (Some(c), Some(d)) => format!("{c} {d}"),
                        _ => e.to_string(),
                    };
                    return Reply::Error(text, addr);
                }
            }
        }
        Reply::Error("too many redirects".into(), addr)
    }

    /// Forgets every connection (after a fault, connections to a restarted node are dead).
    pub(crate) fn reset(&mut self) {
        self.conns.clear();
    }
}
