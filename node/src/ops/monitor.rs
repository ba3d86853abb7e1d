//! MONITOR: every command a node receives, as one line per command, streamed to the
//! connections that sent MONITOR. Lines are built only while someone listens; commands of
//! the `@admin` category are not shown, and secrets are `(redacted)`, as Redis does.
//! Arguments are cut as SLOWLOG cuts them ([`super::slowlog::summarize`]), so that a
//! tensor's BLOB is never copied to a monitor. [`serve`] is the connection loop of a client
//! in MONITOR mode.

use std::{
    fmt::Write as _,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use shardai_protocol::{
    frame::{Decoded, RequestDecoder},
    table::CommandSpec,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{broadcast, watch},
};
use tracing::debug;

use crate::{
    client::ConnState,
    conn::{READ_CHUNK, Stream},
    state::Shared,
};

/// Lines a slow monitor may fall behind by before it misses some.
const BACKLOG: usize = 4096;

/// The listeners and the channel lines go out on.
#[derive(Debug)]
pub struct Monitors {
    tx: broadcast::Sender<Bytes>,
    listening: AtomicUsize,
}

impl Default for Monitors {
    fn default() -> Self {
        Monitors {
            tx: broadcast::channel(BACKLOG).0,
            listening: AtomicUsize::new(0),
        }
    }
}

/// A connection in MONITOR mode; dropping it stops the lines.
#[derive(Debug)]
pub struct Listener<'a> {
    monitors: &'a Monitors,
    /// The lines, in order.
    pub rx: broadcast::Receiver<Bytes>,
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        self.monitors.listening.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Monitors {
    /// True while some connection listens (so a line is worth building).
    pub fn active(&self) -> bool {
        self.listening.load(Ordering::Relaxed) > 0
    }

    /// Starts listening.
    pub fn listen(&self) -> Listener<'_> {
        self.listening.fetch_add(1, Ordering::Relaxed);
        Listener {
            monitors: self,
            rx: self.tx.subscribe(),
        }
    }

    /// Sends the line for `argv` (a command of `spec`, at `index` in the command table)
    /// from the client at `addr`.
    pub fn feed(&self, index: usize, spec: &CommandSpec, argv: &[Bytes], addr: &SocketAddr) {
        if !shown(index, spec, argv) {
            return;
        }
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let _ = self.tx.send(Bytes::from(line(now_us, spec, argv, addr)));
    }
}

/// False for the commands MONITOR does not show: those (or whose subcommand) of the
/// `@admin` category, as in Redis.
fn shown(index: usize, spec: &CommandSpec, argv: &[Bytes]) -> bool {
    let catalog = crate::acl::catalog::Catalog::get();
    let id = catalog.request_id(index, spec, argv);
    !catalog.entries[id].categories.contains(&"admin")
}

/// One MONITOR line: `<unix time>.<micros> [0 <addr>] "arg" ...`.
pub fn line(now_us: u64, spec: &CommandSpec, argv: &[Bytes], addr: &SocketAddr) -> String {
    let mut s = format!(
        "{}.{:06} [0 {addr}]",
        now_us / 1_000_000,
        now_us % 1_000_000
    );
    for a in super::slowlog::summarize(spec, argv, argv.len()) {
        s.push(' ');
        quote(&mut s, &a);
    }
    s
}

/// Appends `b` double-quoted with Redis's escapes (`sdscatrepr`).
fn quote(s: &mut String, b: &[u8]) {
    s.push('"');
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
}

/// A connection after MONITOR: every command the node receives, one `+line` each, until
/// the client sends QUIT or leaves (other requests are read and ignored), CLIENT KILL, or
/// shutdown. A monitor too slow to keep up misses lines rather than holding the server; one
/// that reads none of them for client-write-timeout is closed.
pub(crate) async fn serve<S: Stream>(
    sock: &mut S,
    shared: &Arc<Shared>,
    state: &mut ConnState,
    shutdown: &mut watch::Receiver<bool>,
    mut listener: Listener<'_>,
    decoder: &mut RequestDecoder,
    rbuf: &mut BytesMut,
) -> io::Result<String> {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut out = Vec::new();
    loop {
        tokio::select! {
            line = listener.rx.recv() => {
                let mut next = line.map_err(|e| match e {
                    RecvError::Lagged(n) => TryRecvError::Lagged(n),
                    RecvError::Closed => TryRecvError::Closed,
                });
                // Write what has queued up in one go.
                for _ in 0..256 {
                    match next {
                        Ok(line) => {
                            out.push(b'+');
                            out.extend_from_slice(&line);
                            out.extend_from_slice(b"\r\n");
                        }
                        Err(TryRecvError::Lagged(n)) => {
                            debug!(id = state.info.id, missed = n, "monitor fell behind");
                        }
                        Err(TryRecvError::Closed) => return Ok("server shutting down".into()),
                        Err(TryRecvError::Empty) => break,
                    }
                    next = listener.rx.try_recv();
                }
                shared.stats.net_out.fetch_add(out.len() as u64, Ordering::Relaxed);
                let limit = Duration::from_secs(
                    shared.runtime.write_timeout.load(Ordering::Relaxed).max(1),
                );
                let written = async {
                    sock.write_all(&out).await?;
                    sock.flush().await
                };
                tokio::select! {
                    r = tokio::time::timeout(limit, written) => match r {
                        Ok(r) => r?,
                        Err(_) => return Ok("monitor read no lines for client-write-timeout".into()),
                    },
                    _ = state.info.kill.notified() => return Ok("killed by CLIENT KILL".into()),
                    _ = shutdown.changed() => return Ok("server shutting down".into()),
                }
                out.clear();
            }
            n = sock.read_buf(rbuf) => {
                if n? == 0 {
                    return Ok("client closed".into());
                }
                loop {
                    match decoder.decode(rbuf) {
                        Ok(Decoded::Request(argv)) if argv[0].eq_ignore_ascii_case(b"quit") => {
                            sock.write_all(b"+OK\r\n").await?;
                            sock.flush().await?;
                            return Ok("client quit".into());
                        }
                        Ok(Decoded::Request(_) | Decoded::Empty) => {}
                        Ok(Decoded::Incomplete { .. }) => break,
                        Err(e) => return Ok(e.wire_text()),
                    }
                }
                if rbuf.len() > READ_CHUNK {
                    return Ok("monitor sent a request too large".into());
                }
            }
            _ = state.info.kill.notified() => return Ok("killed by CLIENT KILL".into()),
            _ = shutdown.changed() => return Ok("server shutting down".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use shardai_protocol::table;

    use super::*;

    fn spec(name: &str) -> &'static CommandSpec {
        table::lookup(name.as_bytes()).unwrap()
    }

    fn index(name: &str) -> usize {
        table::lookup_indexed(name.as_bytes()).unwrap().0
    }

    #[test]
    fn lines_look_like_redis() {
        let addr: SocketAddr = "127.0.0.1:60866".parse().unwrap();
        let argv = [Bytes::from_static(b"SET"), Bytes::from_static(b"k\n\"\x01")];
        assert_eq!(
            line(1_339_518_083_107_412, spec("set"), &argv, &addr),
            r#"1339518083.107412 [0 127.0.0.1:60866] "SET" "k\n\"\x01""#
        );
        let argv = [Bytes::from_static(b"AUTH"), Bytes::from_static(b"secret")];
        assert_eq!(
            line(5, spec("auth"), &argv, &addr),
            r#"0.000005 [0 127.0.0.1:60866] "AUTH" "(redacted)""#
        );
    }

    #[test]
    fn only_listeners_count() {
        let m = Monitors::default();
        assert!(!m.active());
        let mut l = m.listen();
        assert!(m.active());
        m.feed(
            index("get"),
            spec("get"),
            &[Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
            &"1.2.3.4:5".parse().unwrap(),
        );
        assert!(
            String::from_utf8(l.rx.try_recv().unwrap().to_vec())
                .unwrap()
                .ends_with(r#""GET" "k""#)
        );
        m.feed(
            index("config"),
            spec("config"),
            &[Bytes::from_static(b"CONFIG"), Bytes::from_static(b"GET")],
            &"1.2.3.4:5".parse().unwrap(),
        );
        assert!(l.rx.try_recv().is_err());
        drop(l);
        assert!(!m.active());
    }
}
