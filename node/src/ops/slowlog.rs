//! SLOWLOG: the newest commands that ran longer than `slowlog-log-slower-than`
//! microseconds, at most `slowlog-max-len` of them, as Redis keeps them (AI.* runs
//! included). [`summarize`] keeps what an entry shows of a request: at most 32 arguments,
//! each at most 128 bytes, without holding the request's large arguments alive.

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use bytes::Bytes;
use parking_lot::Mutex;
use shardai_protocol::Reply;

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

/// What a log entry (or a MONITOR line) keeps of a request: at most 32 arguments (the
/// 32nd then says `... (N more arguments)`), each cut to 128 bytes followed by
/// `... (N more bytes)`. Short arguments are shared, not copied; a long one is copied in
/// part, so that a tensor's BLOB is never held by the log.
pub fn summarize(argv: &[Bytes]) -> Vec<Bytes> {
    let keep = if argv.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        argv.len()
    };
    let mut out: Vec<Bytes> = argv[..keep]
        .iter()
        .map(|a| {
            if a.len() <= MAX_ARG_BYTES {
                a.clone()
            } else {
                let mut v = a[..MAX_ARG_BYTES].to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_BYTES).as_bytes(),
                );
                Bytes::from(v)
            }
        })
        .collect();
    if argv.len() > MAX_ARGS {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            argv.len() - keep
        )));
    }
    out
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

    #[test]
    fn summaries_cut_arguments_as_redis_does() {
        let s = summarize(&args(40));
        assert_eq!(s.len(), 32);
        assert_eq!(&s[31][..], b"... (9 more arguments)");
        let long = Bytes::from(vec![b'x'; 200]);
        let s = summarize(&[Bytes::from_static(b"SET"), long]);
        assert_eq!(s[1].len(), 128 + "... (72 more bytes)".len());
        assert!(s[1].ends_with(b"... (72 more bytes)"));
    }
}
