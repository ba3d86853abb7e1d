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

/// The error for a cluster-wide name used as a key.
pub fn name_is_not_a_key(name: &[u8]) -> Error {
    Error::Verbatim(format!(
        "ERR '{}' is a cluster-wide model or script name (names starting with '@'), not a \
         key: store, run, read and delete it with the AI.MODEL*/AI.SCRIPT* commands",
        String::from_utf8_lossy(name)
    ))
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
    Model(Bytes),
    Script(Bytes),
    Gone,
}

impl Expect {
    fn of(m: &Mutation) -> Option<(Bytes, Expect)> {
        Some(match m {
            Mutation::SetModel { key, model } => (key.clone(), Expect::Model(model.blob.clone())),
            Mutation::SetScript { key, script } => {
                (key.clone(), Expect::Script(script.source.clone()))
            }
            Mutation::DelModel(key) | Mutation::DelScript(key) => (key.clone(), Expect::Gone),
            _ => return None,
        })
    }

    fn met(&self, v: Option<Value>) -> bool {
        match (self, v) {
            (Expect::Model(b), Some(Value::Model(m))) => m.blob == *b,
            (Expect::Script(s), Some(Value::Script(sc))) => sc.source == *s,
            (Expect::Gone, None) => true,
            _ => false,
        }
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
        let mut changes = meta.changes();
        // A write whose commit is unknown (the metadata group changed leader while a large
        // model replicated) is proposed again: storing the same value twice, or deleting
        // twice, ends the same way.
        let mut tries = 0;
        let applied = loop {
            tries += 1;
            match meta.propose_anywhere(m.clone()).await {
                Ok(a) => break a,
                Err(Error::Unavailable(_) | Error::ClusterDown(_))
                    if tries < 3 && !matches!(expect, Expect::Gone) =>
                {
                    warn!(
                        name = %String::from_utf8_lossy(&key),
                        "the metadata group did not confirm a cluster-wide write; proposing it again"
                    );
                }
                Err(e) => return Err(e),
            }
        };
        let deadline = Instant::now() + LOCAL_APPLY_WAIT;
        while !expect.met(self.meta_store.get(&key)) {
            let now = Instant::now();
            if now >= deadline {
                warn!(
                    name = %String::from_utf8_lossy(&key),
                    "a cluster-wide write committed but this node has not applied it yet"
                );
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
        let mut out = BTreeMap::new();
        let mut versions = self.versions.lock();
        let mut seen = HashMap::new();
        for key in self.meta_store.keys(b"@*", now) {
            let (content, ptr, loaded, stats) = match self.meta_store.get(&key) {
                Some(Value::Model(m)) => (
                    m.blob.clone(),
                    Arc::as_ptr(&m) as *const u8 as usize,
                    m.loaded.load_error().is_none(),
                    m.stats.snapshot(),
                ),
                Some(Value::Script(s)) => (
                    s.source.clone(),
                    Arc::as_ptr(&s) as *const u8 as usize,
                    s.compiled.load_error().is_none(),
                    s.stats.snapshot(),
                ),
                _ => continue,
            };
            let version = match versions.get(&key) {
                Some((p, v)) if *p == ptr => v.clone(),
                _ => version_of(&content),
            };
            seen.insert(key.clone(), (ptr, version.clone()));
            out.insert(
                key,
                Report {
                    version,
                    state: if loaded { "loaded" } else { "error" },
                    stats,
                },
            );
        }
        *versions = seen;
        out
    }

    /// Every node's last report, by node id (this node's own is current).
    pub fn reports(&self) -> BTreeMap<u64, BTreeMap<Bytes, Report>> {
        let now = shardai_engine::now_ms();
        let mut out: BTreeMap<u64, BTreeMap<Bytes, Report>> = self
            .meta_store
            .keys(b"objrep:*", now)
            .into_iter()
            .filter_map(|k| {
                let node = std::str::from_utf8(k.strip_prefix(b"objrep:")?)
                    .ok()?
                    .parse()
                    .ok()?;
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
