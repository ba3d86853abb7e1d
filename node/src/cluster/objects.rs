//! Cluster-wide models and scripts on this node: names starting with `@`
//! ([`shardai_protocol::cluster_wide`]) stored once for the whole cluster.
//!
//! They live in the metadata group's store under their own names. Every node applies that
//! group, loading each model and script into its own backends on a blocking thread before
//! the new value replaces the old one, so a node serves the old version until it has loaded
//! the new one. A node that cannot load one (a missing backend, an absent GPU) keeps it with
//! the load error, reports it, and answers executions with that error.
//!
//! Requests that store, read, delete or describe one by name are served by whichever node
//! receives them ([`admission`]); any other use of such a name as a key is refused, so a
//! cluster-wide name never clashes with a key of a slot. Every node reports what it has
//! loaded (version, load state, AI.INFO counters) under `objrep:<node>` in the metadata
//! group at most once a [`REPORT_EVERY`], which AI.INFO reads for its per-node view and
//! cluster totals.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use shardai_engine::{Applied, Mutation, Proposal, Proposer, Store, Value, stats::StatsSnapshot};
use shardai_protocol::{Error, cluster_wide::is_cluster_wide, table::CommandSpec};
use tracing::{info, warn};

use super::Cluster;

/// How often a node reports its cluster-wide objects (when they changed).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// How long a write of a cluster-wide object waits for this node to apply (and load) it
/// before it answers.
const LOCAL_APPLY_WAIT: Duration = Duration::from_secs(120);

/// The metadata key of node `node`'s report.
pub fn report_key(node: u64) -> String {
    format!("objrep:{node}")
}

/// How a request that names a cluster-wide object among its slot keys is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It names none: routed by its keys as usual.
    Keys,
    /// It addresses one cluster-wide object by name: served on this node.
    Here,
    /// It uses a cluster-wide name as a key: refused.
    Refuse(Error),
}

/// The commands served on any node when their key is a cluster-wide name.
const BY_NAME: [&str; 10] = [
    "ai.modelstore",
    "ai.modelset",
    "ai.modelget",
    "ai.modeldel",
    "ai.scriptstore",
    "ai.scriptset",
    "ai.scriptget",
    "ai.scriptdel",
    "ai.info",
    "type",
];

/// How a command with table entry `spec` and slot keys `keys` treats cluster-wide names.
pub fn admission<K: AsRef<[u8]>>(spec: &CommandSpec, keys: &[K]) -> Admission {
    let Some(name) = keys.iter().find(|k| is_cluster_wide(k.as_ref())) else {
        return Admission::Keys;
    };
    if keys.len() == 1 && BY_NAME.contains(&spec.name) {
        return Admission::Here;
    }
    Admission::Refuse(name_is_not_a_key(name.as_ref()))
}

/// True when a request to `spec` addresses a cluster-wide object by name (served on any
/// node, see [`admission`]).
pub fn addresses_object(spec: &CommandSpec, argv: &[Bytes]) -> bool {
    let keys = spec.slot_keys(argv).unwrap_or_default();
    admission(spec, &keys) == Admission::Here
}

/// The error for a cluster-wide name used as a key.
pub fn name_is_not_a_key(name: &[u8]) -> Error {
    Error::Verbatim(format!(
        "ERR '{}' is a cluster-wide model or script name (names starting with '@'), not a \
         key: store, run, read and delete it with the AI.MODEL*/AI.SCRIPT* commands",
        String::from_utf8_lossy(name)
    ))
}

/// A model or script whose version was computed, held weakly: its allocation stays
/// reserved while held, so a later value cannot reuse its address.
pub enum Held {
    /// A model.
    Model(std::sync::Weak<shardai_engine::model::Model>),
    /// A script.
    Script(std::sync::Weak<shardai_engine::script::Script>),
}

impl Held {
    fn is(&self, v: &Value) -> bool {
        match (self, v) {
            (Held::Model(w), Value::Model(m)) => std::ptr::eq(w.as_ptr(), Arc::as_ptr(m)),
            (Held::Script(w), Value::Script(s)) => std::ptr::eq(w.as_ptr(), Arc::as_ptr(s)),
            _ => false,
        }
    }
}

/// The version of a model or script, the same on every node: its blob's or source's length
/// (low 32 bits) and CRC-32, as 16 hex digits. A checksum, not a cryptographic digest: it
/// tells versions apart at memory speed (about 10 ms for 100 MB), on any thread.
pub fn version_of(content: &[u8]) -> String {
    format!(
        "{:08x}{:08x}",
        content.len() as u32,
        crc32fast::hash(content)
    )
}

/// One cluster-wide object as a node reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its version ([`version_of`]).
    pub version: String,
    /// `loaded`, or `error` when the node keeps it without its backend.
    pub state: &'static str,
    /// The node's AI.INFO counters for it.
    pub stats: StatsSnapshot,
}

/// Encodes a node's reports: one line per object, `hex(name) version state duration samples
/// calls errors`.
pub fn encode_reports(reports: &BTreeMap<Bytes, Report>) -> String {
    let mut out = String::new();
    for (name, r) in reports {
        let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
        let s = &r.stats;
        out.push_str(&format!(
            "{hex} {} {} {} {} {} {}\n",
            r.version, r.state, s.duration_us, s.samples, s.calls, s.errors
        ));
    }
    out
}

/// Decodes [`encode_reports`]; lines it cannot read are skipped.
pub fn decode_reports(text: &str) -> BTreeMap<Bytes, Report> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [hex, version, state, d, s, c, e] = f[..] else {
            continue;
        };
        let name: Option<Vec<u8>> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
            .collect();
        let (Some(name), Ok(d), Ok(s), Ok(c), Ok(e)) =
            (name, d.parse(), s.parse(), c.parse(), e.parse())
        else {
            continue;
        };
        let state = if state == "loaded" { "loaded" } else { "error" };
        out.insert(
            Bytes::from(name),
            Report {
                version: version.to_string(),
                state,
                stats: StatsSnapshot {
                    duration_us: d,
                    samples: s,
                    calls: c,
                    errors: e,
                },
            },
        );
    }
    out
}

/// What a write of a cluster-wide object leaves in the store, to wait for locally.
enum Expect {
    Model(Arc<shardai_engine::model::Model>),
    Script(Arc<shardai_engine::script::Script>),
    Gone,
}

impl Expect {
    fn of(m: &Mutation) -> Option<(Bytes, Expect)> {
        Some(match m {
            Mutation::SetModel { key, model } => (key.clone(), Expect::Model(model.clone())),
            Mutation::SetScript { key, script } => (key.clone(), Expect::Script(script.clone())),
            Mutation::DelModel(key) | Mutation::DelScript(key) => (key.clone(), Expect::Gone),
            _ => return None,
        })
    }

    /// True when `v` is what the write stores: the same model or script (by everything it
    /// was stored with), or nothing after a delete.
    fn met(&self, v: &Option<Value>) -> bool {
        match (self, v) {
            (Expect::Model(a), Some(Value::Model(b))) => {
                Arc::ptr_eq(a, b)
                    || (a.backend == b.backend
                        && a.device == b.device
                        && a.tag == b.tag
                        && a.batch == b.batch
                        && a.inputs == b.inputs
                        && a.outputs == b.outputs
                        && a.blob == b.blob)
            }
            (Expect::Script(a), Some(Value::Script(b))) => {
                Arc::ptr_eq(a, b)
                    || (a.device == b.device
                        && a.tag == b.tag
                        && a.entry_points == b.entry_points
                        && a.source == b.source)
            }
            (Expect::Gone, None) => true,
            _ => false,
        }
    }

    /// Bytes the write carries: the time it may take grows with it.
    fn bytes(&self) -> usize {
        match self {
            Expect::Model(m) => m.blob.len(),
            Expect::Script(s) => s.source.len(),
            Expect::Gone => 0,
        }
    }
}

/// How long a write carrying `bytes` waits for something to show before deciding: `base`
/// and a second more per 10 MB (a large model takes that long to reach and load).
fn scaled(base: Duration, bytes: usize) -> Duration {
    base + Duration::from_millis(bytes as u64 / 10_000)
}

/// True when `a` and `b` are the same stored value (the same model or script, or both
/// absent), told by identity rather than by content.
fn same(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Value::Model(x)), Some(Value::Model(y))) => Arc::ptr_eq(x, y),
        (Some(Value::Script(x)), Some(Value::Script(y))) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// What a write does after its proposal failed for want of a leader (or a leader that did
/// not take it), given whether the name still holds what it held before the write
/// (`unchanged`), whether it now holds what the write stores (`met`) and how many tries
/// were made.
#[derive(Debug, PartialEq, Eq)]
enum AfterFailure {
    /// The value is there (the write committed after all): answer as a success.
    Done,
    /// Nothing changed: propose it again.
    Retry,
    /// Give the error: tried enough, or another write changed the name meanwhile.
    Fail,
}

fn after_failure(unchanged: bool, met: bool, tries: u32) -> AfterFailure {
    if met && !unchanged {
        AfterFailure::Done
    } else if unchanged && tries < 3 {
        AfterFailure::Retry
    } else {
        AfterFailure::Fail
    }
}

/// Writes cluster-wide objects: through the metadata group from any node, answering once
/// this node has applied (and loaded) the write too, so the client's next request here
/// sees it.
pub struct ObjectWrites<'a>(pub &'a Cluster);

impl Proposer for ObjectWrites<'_> {
    fn propose(&self, m: Mutation) -> Proposal<'_> {
        Box::pin(self.0.write_object(m))
    }

    fn store(&self) -> &Arc<Store> {
        self.0.objects()
    }
}

impl Cluster {
    /// The store holding the cluster-wide models and scripts (the metadata group's).
    pub fn objects(&self) -> &Arc<Store> {
        &self.meta_store
    }

    async fn write_object(&self, m: Mutation) -> Result<Applied, Error> {
        let meta = self
            .meta_group()
            .ok_or_else(|| Error::ClusterDown("this node has not joined a cluster".into()))?;
        let Some((key, expect)) = Expect::of(&m) else {
            return meta.propose_anywhere(m).await;
        };
        let name = String::from_utf8_lossy(&key).into_owned();
        let before = self.meta_store.get(&key);
        let mut changes = meta.changes();
        let mut tries = 0;
        let applied = loop {
            tries += 1;
            let e = match meta.propose_anywhere(m.clone()).await {
                Ok(a) => break a,
                Err(e @ (Error::Unavailable(_) | Error::ClusterDown(_))) => e,
                // Refused (a delete of a missing name, WRONGTYPE): nothing was written.
                Err(e) => return Err(e),
            };
            // The commit may be unknown (the group changed leader while a large model
            // replicated): see whether it lands here before deciding.
            let settle = Instant::now() + scaled(Duration::from_secs(3), expect.bytes());
            while same(&before, &self.meta_store.get(&key)) && Instant::now() < settle {
                changes.next(Duration::from_millis(100)).await;
            }
            let now = self.meta_store.get(&key);
            match after_failure(same(&before, &now), expect.met(&now), tries) {
                AfterFailure::Done => return Ok(Applied::Ok),
                AfterFailure::Retry => warn!(
                    name = %name,
                    error = %e.wire_text(),
                    "the metadata group did not take a cluster-wide write; proposing it again"
                ),
                AfterFailure::Fail => return Err(e),
            }
        };
        // Answer once this node applied it too. Another write of the same name may land
        // here first; ours follows it shortly, or was overtaken by a later one.
        let deadline = Instant::now() + LOCAL_APPLY_WAIT;
        let mut last = before;
        let mut other_since: Option<Instant> = None;
        let patience = scaled(Duration::from_secs(5), expect.bytes());
        loop {
            let current = self.meta_store.get(&key);
            // A delete is shown by the name's absence, whatever came before it.
            if (!same(&last, &current) || matches!(expect, Expect::Gone)) && expect.met(&current) {
                break;
            }
            if !same(&last, &current) {
                other_since.get_or_insert_with(Instant::now);
                last = current;
            }
            let now = Instant::now();
            if now >= deadline || other_since.is_some_and(|t| now - t > patience) {
                warn!(name = %name, "a cluster-wide write committed; this node has not shown it yet");
                break;
            }
            changes
                .next((deadline - now).min(Duration::from_millis(100)))
                .await;
        }
        Ok(applied)
    }

    /// This node's cluster-wide objects as it reports them.
    pub fn local_reports(&self) -> BTreeMap<Bytes, Report> {
        let now = shardai_engine::now_ms();
        let values: Vec<(Bytes, Value)> = self
            .meta_store
            .keys(b"@*", now)
            .into_iter()
            .filter_map(|k| {
                let v = self.meta_store.get(&k)?;
                matches!(v, Value::Model(_) | Value::Script(_)).then_some((k, v))
            })
            .collect();
        let cached: Vec<Option<String>> = {
            let versions = self.versions.lock();
            values
                .iter()
                .map(|(k, v)| {
                    let (held, version) = versions.get(k)?;
                    held.is(v).then(|| version.clone())
                })
                .collect()
        };
        // Checksums of new values outside the lock.
        let mut out = BTreeMap::new();
        let mut fresh = HashMap::new();
        for ((key, value), version) in values.into_iter().zip(cached) {
            let (content, loaded, stats, held) = match &value {
                Value::Model(m) => (
                    &m.blob,
                    m.loaded.load_error().is_none(),
                    m.stats.snapshot(),
                    Held::Model(Arc::downgrade(m)),
                ),
                Value::Script(s) => (
                    &s.source,
                    s.compiled.load_error().is_none(),
                    s.stats.snapshot(),
                    Held::Script(Arc::downgrade(s)),
                ),
                _ => continue,
            };
            let version = version.unwrap_or_else(|| version_of(content));
            fresh.insert(key.clone(), (held, version.clone()));
            out.insert(
                key,
                Report {
                    version,
                    state: if loaded { "loaded" } else { "error" },
                    stats,
                },
            );
        }
        *self.versions.lock() = fresh;
        out
    }

    /// The last report of every node of the cluster's topology, by node id (this node's own
    /// is current; a removed node's is left out).
    pub fn reports(&self) -> BTreeMap<u64, BTreeMap<Bytes, Report>> {
        let now = shardai_engine::now_ms();
        let members = self
            .view()
            .map(|v| v.topology.nodes.keys().copied().collect::<Vec<_>>());
        let mut out: BTreeMap<u64, BTreeMap<Bytes, Report>> = self
            .meta_store
            .keys(b"objrep:*", now)
            .into_iter()
            .filter_map(|k| {
                let node = std::str::from_utf8(k.strip_prefix(b"objrep:")?)
                    .ok()?
                    .parse()
                    .ok()?;
                if members.as_ref().is_some_and(|m| !m.contains(&node)) {
                    return None;
                }
                let v = self.meta_string_b(&k)?;
                Some((node, decode_reports(std::str::from_utf8(&v).ok()?)))
            })
            .collect();
        if let Some(id) = self.identity() {
            out.insert(id.node, self.local_reports());
        }
        out
    }

    /// Publishes this node's report when it changed (at most once a [`REPORT_EVERY`]).
    pub(super) fn report_objects(self: &Arc<Self>) {
        let Some(id) = self.identity() else { return };
        {
            let mut last = self.reported_at.lock();
            if last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let key = report_key(id.node);
        let reports = self.local_reports();
        {
            let mut last = self.last_reports.lock();
            log_changes(&last, &reports);
            *last = reports.clone();
        }
        let text = encode_reports(&reports);
        let published = self.meta_string_b(key.as_bytes());
        if published.as_deref().unwrap_or_default() == text.as_bytes()
            || (published.is_none() && text.is_empty())
        {
            return;
        }
        if self.reporting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(meta) = self.meta_group() else {
            self.reporting.store(false, Ordering::Release);
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let m = if text.is_empty() {
                Mutation::Del(vec![Bytes::from(key)])
            } else {
                super::meta::set(key, text)
            };
            if let Err(e) = meta.propose_anywhere(m).await {
                warn!(error = %e.wire_text(), "cannot report this node's cluster-wide models yet");
            }
            me.reporting.store(false, Ordering::Release);
        });
    }
}

/// Logs what changed among the cluster-wide objects this node has applied.
fn log_changes(before: &BTreeMap<Bytes, Report>, now: &BTreeMap<Bytes, Report>) {
    for (name, r) in now {
        if before.get(name).map(|b| (&b.version, b.state)) != Some((&r.version, r.state)) {
            info!(
                name = %String::from_utf8_lossy(name),
                version = %r.version,
                state = r.state,
                "cluster-wide model or script applied on this node"
            );
        }
    }
    for name in before.keys().filter(|n| !now.contains_key(*n)) {
        info!(name = %String::from_utf8_lossy(name), "cluster-wide model or script deleted on this node");
    }
}

#[cfg(test)]
mod tests {
    use shardai_protocol::table::lookup;

    use super::*;

    fn adm(cmd: &str, keys: &[&str]) -> Admission {
        admission(lookup(cmd.as_bytes()).unwrap(), keys)
    }

    #[test]
    fn by_name_commands_are_served_anywhere_and_other_uses_refused() {
        assert_eq!(adm("AI.MODELSTORE", &["@m"]), Admission::Here);
        assert_eq!(adm("AI.SCRIPTDEL", &["@s"]), Admission::Here);
        assert_eq!(adm("TYPE", &["@s"]), Admission::Here);
        assert_eq!(adm("AI.MODELSTORE", &["m"]), Admission::Keys);
        assert_eq!(adm("AI.MODELEXECUTE", &["a", "b"]), Admission::Keys);
        assert!(matches!(adm("SET", &["@m"]), Admission::Refuse(_)));
        assert!(matches!(adm("AI.TENSORSET", &["@t"]), Admission::Refuse(_)));
        assert!(matches!(
            adm("AI.MODELEXECUTE", &["a", "@m"]),
            Admission::Refuse(_)
        ));
        assert!(matches!(adm("DEL", &["@m", "x"]), Admission::Refuse(_)));
        // "@" alone is an ordinary key.
        assert_eq!(adm("SET", &["@"]), Admission::Keys);
    }

    #[test]
    fn a_failed_write_is_retried_only_while_nothing_changed() {
        // Nothing changed: propose again, at most three times in all.
        assert_eq!(after_failure(true, false, 1), AfterFailure::Retry);
        assert_eq!(after_failure(true, false, 3), AfterFailure::Fail);
        // The write landed after all.
        assert_eq!(after_failure(false, true, 1), AfterFailure::Done);
        // Another write changed the name: never overwrite it with an older value.
        assert_eq!(after_failure(false, false, 1), AfterFailure::Fail);
        // The same bytes were there already, but not by this write: propose again.
        assert_eq!(after_failure(true, true, 1), AfterFailure::Retry);
    }

    #[test]
    fn values_are_the_same_by_identity_not_content() {
        let script = |src: &'static [u8], tag: &'static [u8]| {
            Arc::new(shardai_engine::script::Script {
                device: "CPU".into(),
                tag: Bytes::from_static(tag),
                entry_points: Vec::new(),
                source: Bytes::from_static(src),
                compiled: Arc::new(shardai_engine::script::NotCompiled::new("test".into())),
                stats: Default::default(),
            })
        };
        let s = |src, tag| Value::Script(script(src, tag));
        let a = Some(s(b"x", b""));
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &Some(s(b"x", b""))));
        assert!(same(&None, &None));
        assert!(!same(&a, &None));
        // What a write stored: equal in everything it was stored with, not only the source.
        assert!(Expect::Script(script(b"x", b"")).met(&Some(s(b"x", b""))));
        assert!(!Expect::Script(script(b"x", b"v2")).met(&a));
        assert!(!Expect::Script(script(b"y", b"")).met(&a));
        assert!(Expect::Gone.met(&None));
        assert!(!Expect::Gone.met(&a));
        assert_eq!(
            scaled(Duration::from_secs(3), 100_000_000),
            Duration::from_secs(13)
        );
    }

    #[test]
    fn reports_round_trip() {
        let mut r = BTreeMap::new();
        r.insert(
            Bytes::from_static(b"@m o\n\xff"),
            Report {
                version: version_of(b"blob"),
                state: "loaded",
                stats: StatsSnapshot {
                    duration_us: 5,
                    samples: 6,
                    calls: 7,
                    errors: 1,
                },
            },
        );
        r.insert(
            Bytes::from_static(b"@s"),
            Report {
                version: version_of(b"src"),
                state: "error",
                stats: StatsSnapshot::default(),
            },
        );
        assert_eq!(decode_reports(&encode_reports(&r)), r);
        assert_eq!(version_of(b"blob").len(), 16);
        assert_ne!(version_of(b"blob"), version_of(b"blob2"));
    }
}
