//! SLOWLOG: the newest commands that ran longer than `slowlog-log-slower-than`
//! microseconds, at most `slowlog-max-len` of them, as Redis keeps them (AI.* runs
//! included). While a command runs, its connection holds its first arguments ([`hold`]);
//! only a command that turns out slow is copied into an entry ([`summarize`]): at most 32
//! arguments of at most 128 bytes, secrets redacted.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use parking_lot::Mutex;
use shardai_protocol::{Reply, table::CommandSpec};

/// Arguments an entry keeps (the last one then says how many more there were).
const MAX_ARGS: usize = 32;
/// Bytes an argument keeps (the rest is counted).
const MAX_ARG_BYTES: usize = 128;

/// One slow command.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique, increasing.
    pub id: u64,
    /// Unix time it was logged, seconds.
    pub time: u64,
    /// How long it ran, microseconds.
    pub micros: u64,
    /// Its arguments, as [`summarize`] shortened them.
    pub args: Vec<Bytes>,
    /// The client's address.
    pub addr: String,
    /// The client's name (CLIENT SETNAME).
    pub name: Bytes,
}

/// The log and its two settings.
#[derive(Debug)]
pub struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
    /// slowlog-log-slower-than, microseconds; negative: off, 0: every command.
    pub slower_than: AtomicI64,
    /// slowlog-max-len.
    pub max_len: AtomicUsize,
}

impl SlowLog {
    /// An empty log with the given settings.
    pub fn new(slower_than: i64, max_len: usize) -> Self {
        SlowLog {
            entries: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
            slower_than: AtomicI64::new(slower_than),
            max_len: AtomicUsize::new(max_len),
        }
    }

    /// Whether commands are being logged at all (so a request's summary is worth taking).
    pub fn enabled(&self) -> bool {
        self.slower_than.load(Ordering::Relaxed) >= 0
    }

    /// Logs the command if it ran at least `slowlog-log-slower-than`; `args` is called only
    /// then.
    pub fn consider(&self, took: Duration, args: impl FnOnce() -> (Vec<Bytes>, String, Bytes)) {
        let threshold = self.slower_than.load(Ordering::Relaxed);
        let micros = took.as_micros() as u64;
        if threshold < 0 || micros < threshold as u64 {
            return;
        }
        let (args, addr, name) = args();
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: shardai_engine::now_ms() / 1000,
            micros,
            args,
            addr,
            name,
        };
        let max = self.max_len.load(Ordering::Relaxed);
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }

    /// Applies a new slowlog-max-len at once.
    pub fn set_max_len(&self, max: usize) {
        self.max_len.store(max, Ordering::Relaxed);
        self.entries.lock().truncate(max);
    }

    /// The newest `count` entries (all when `None`), newest first.
    pub fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let entries = self.entries.lock();
        let n = count.unwrap_or(usize::MAX).min(entries.len());
        entries.iter().take(n).cloned().collect()
    }

    /// SLOWLOG LEN.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// True when nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// SLOWLOG RESET.
    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

/// Whether argument `i` of a request of `spec` (`argv`: its first arguments) is a secret,
/// which SLOWLOG and MONITOR show as `(redacted)`: the arguments of AUTH, HELLO and
/// MIGRATE, the rules of ACL SETUSER, and the values of CONFIG SET's password options.
pub fn redacted(spec: &CommandSpec, argv: &[Bytes], i: usize) -> bool {
    let sub = |n: usize, word: &str| {
        argv.get(n)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    };
    match spec.name {
        "auth" | "hello" | "migrate" => i > 0,
        "acl" => sub(1, "setuser") && i > 2,
        "config" => {
            sub(1, "set")
                && i >= 3
                && i % 2 == 1
                && ["requirepass", "masterauth", "masteruser"]
                    .iter()
                    .any(|w| sub(i - 1, w))
        }
        _ => false,
    }
}

/// What a log entry (or a MONITOR line) shows of a request whose first arguments are
/// `argv` and which had `argc` in all: at most 32 arguments (the 32nd then says
/// `... (N more arguments)`), each cut to 128 bytes followed by `... (N more bytes)`,
/// secrets as `(redacted)` ([`redacted`]). Copied, so that the log holds nothing of the
/// request (a tensor's BLOB, or the buffer it was read into).
pub fn summarize(spec: &CommandSpec, argv: &[Bytes], argc: usize) -> Vec<Bytes> {
    let keep = if argc > MAX_ARGS { MAX_ARGS - 1 } else { argc }.min(argv.len());
    let mut out: Vec<Bytes> = argv[..keep]
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if redacted(spec, argv, i) {
                Bytes::from_static(b"(redacted)")
            } else if a.len() <= MAX_ARG_BYTES {
                Bytes::copy_from_slice(a)
            } else {
                let mut v = a[..MAX_ARG_BYTES].to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(v)
            }
        })
        .collect();
    if argc > MAX_ARGS {
        out.push(Bytes::from(format!("... ({} more arguments)", argc - keep)));
    }
    out
}

/// Keeps (shared, not copied) the arguments of `argv` a summary can show, in `held`.
pub fn hold(argv: &[Bytes], held: &mut Vec<Bytes>) {
    held.clear();
    held.extend(argv.iter().take(MAX_ARGS).cloned());
}

/// SLOWLOG GET's reply for `entries`.
pub fn reply(entries: Vec<Entry>) -> Reply {
    Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(e.micros as i64),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::Bulk(Bytes::from(e.addr)),
                    Reply::Bulk(e.name),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(n: usize) -> Vec<Bytes> {
        (0..n).map(|i| Bytes::from(i.to_string())).collect()
    }

    #[test]
    fn keeps_the_newest_within_max_len() {
        let log = SlowLog::new(0, 3);
        for i in 0..5u64 {
            log.consider(Duration::from_micros(i), || {
                (args(1), "127.0.0.1:1".into(), Bytes::new())
            });
        }
        let ids: Vec<u64> = log.newest(None).iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 3, 2]);
        assert_eq!(log.newest(Some(1)).len(), 1);
        log.set_max_len(1);
        assert_eq!(log.len(), 1);
        log.reset();
        assert!(log.is_empty());
    }

    #[test]
    fn logs_only_what_reaches_the_threshold() {
        let log = SlowLog::new(1000, 128);
        log.consider(Duration::from_micros(999), || unreachable!());
        log.consider(Duration::from_micros(1000), || {
            (args(1), String::new(), Bytes::new())
        });
        assert_eq!(log.len(), 1);
        log.slower_than.store(-1, Ordering::Relaxed);
        assert!(!log.enabled());
        log.consider(Duration::from_secs(10), || unreachable!());
    }

    fn spec(name: &str) -> &'static CommandSpec {
        shardai_protocol::table::lookup(name.as_bytes()).unwrap()
    }

    fn words(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
    }

    #[test]
    fn summaries_cut_arguments_as_redis_does() {
        let mut held = Vec::new();
        hold(&args(40), &mut held);
        assert_eq!(held.len(), 32);
        let s = summarize(spec("del"), &held, 40);
        assert_eq!(s.len(), 32);
        assert_eq!(&s[31][..], b"... (9 more arguments)");
        let long = Bytes::from(vec![b'x'; 200]);
        let s = summarize(spec("set"), &[Bytes::from_static(b"SET"), long], 2);
        assert_eq!(s[1].len(), 128 + "... (72 more bytes)".len());
        assert!(s[1].ends_with(b"... (72 more bytes)"));
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = |cmd: &str| {
            let argv = words(cmd);
            let s = summarize(spec(cmd.split(' ').next().unwrap()), &argv, argv.len());
            s.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(shown("AUTH bob pw"), "AUTH (redacted) (redacted)");
        assert_eq!(
            shown("ACL SETUSER bob on >pw"),
            "ACL SETUSER bob (redacted) (redacted)"
        );
        assert_eq!(
            shown("CONFIG SET maxclients 5 requirepass pw"),
            "CONFIG SET maxclients 5 requirepass (redacted)"
        );
        assert_eq!(shown("GET k"), "GET k");
    }
}
