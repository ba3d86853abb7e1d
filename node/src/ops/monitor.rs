//! MONITOR: every command a node receives, as one line per command, streamed to the
//! connections that sent MONITOR. Lines are built only while someone listens; commands of
//! the `@admin` category are not shown, and secrets are `(redacted)`, as Redis does.
//! Arguments are cut as SLOWLOG cuts them ([`super::slowlog::summarize`]), so that a
//! tensor's BLOB is never copied to a monitor.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use shardai_protocol::table::CommandSpec;
use tokio::sync::broadcast;

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
