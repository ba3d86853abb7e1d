//! Configuration: command-line flags, environment variables and an optional config file.
//!
//! Precedence: flags, then `SHARDAI_*` environment variables, then the `--config` file
//! (redis.conf style: one `name value` per line, `#` comments), then defaults.

use std::{net::IpAddr, path::PathBuf};

use clap::Parser;
use shardai_raft::{BusSecurity, TlsFiles, log_store::Fsync};

/// The command line of `shardai`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "shardai",
    version,
    about = "shardai: a Redis-protocol server for tensors (RedisAI's API); one node owning all \
             16384 slots.",
    long_about = "shardai: a Redis-protocol server for tensors (RedisAI's API); one node owning \
                  all 16384 slots.\n\nWith no flags it serves on 127.0.0.1:6379 with its data \
                  folder at ./data. Any Redis client works, for example:\n  \
                  redis-cli AI.TENSORSET t FLOAT 2 VALUES 1 2\n  \
                  redis-cli AI.TENSORGET t META VALUES\n\nEvery option can also be given as \
                  an environment variable or as a `name value` line in the --config file (for \
                  example `maxclients 100`); command-line flags win over the environment, which \
                  wins over the file.",
    after_long_help = "Fixed limits per request: a tensor has at most 32 dimensions and at \
                       most proto-max-bulk-len bytes; AI.TENSORGET VALUES replies at most \
                       4194304 elements (use BLOB beyond); a DAG has at most 1000 operations \
                       and 10000 LOAD/PERSIST keys; MODEL_CHUNK_SIZE is at least 1kb. A node \
                       keeps at most 64 device run queues, each holding at most 10000 waiting \
                       requests (more answer an error at once). MIGRATE waits at most 60 s per \
                       step.",
    args_override_self = true
)]
pub struct Config {
    /// TCP port for clients (plain RESP); 0 serves TLS clients only (see --tls-port).
    #[arg(long, env = "SHARDAI_PORT", default_value_t = 6379)]
    pub port: u16,

    /// TCP port for TLS clients (`redis-cli --tls`, redis-py `ssl=True`); needs
    /// --tls-cert-file and --tls-key-file. Cluster nodes announce it to TLS clients in MOVED,
    /// ASK and CLUSTER SLOTS/SHARDS/NODES.
    #[arg(long, env = "SHARDAI_TLS_PORT")]
    pub tls_port: Option<u16>,

    /// The server's certificate chain (PEM) for --tls-port.
    #[arg(long, env = "SHARDAI_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, env = "SHARDAI_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, env = "SHARDAI_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// Whether TLS clients must present a certificate signed by --tls-ca-cert-file: yes
    /// (Redis's default), optional, or no.
    #[arg(long, env = "SHARDAI_TLS_AUTH_CLIENTS", default_value = "yes", value_parser = crate::tls::parse_client_auth)]
    pub tls_auth_clients: crate::tls::ClientAuth,

    /// Address to listen on.
    #[arg(long, env = "SHARDAI_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Data folder (created if missing): the log and snapshots of every write, from which
    /// the node recovers its data when it restarts (in `standalone/`; with --cluster-enabled
    /// yes, the node's identity and its Raft groups' logs and snapshots).
    #[arg(long, env = "SHARDAI_DIR", default_value = "./data")]
    pub dir: PathBuf,

    /// Read settings from a file of `name value` lines, names as the long options without
    /// dashes (`port 7000`, `proto-max-bulk-len 1gb`); flags and environment win.
    #[arg(long, env = "SHARDAI_CONFIG")]
    pub config: Option<PathBuf>,

    /// Most client connections served at once; more are refused with
    /// `ERR max number of clients reached`.
    #[arg(long, env = "SHARDAI_MAXCLIENTS", default_value_t = 10_000)]
    pub maxclients: usize,

    /// Largest bulk string a client may send (Redis's proto-max-bulk-len). Accepts
    /// suffixes: 512mb, 1gb, 64kb.
    #[arg(long, env = "SHARDAI_PROTO_MAX_BULK_LEN", default_value = "512mb", value_parser = parse_size)]
    pub proto_max_bulk_len: usize,

    /// Most bytes the dataset may hold (0: no limit). Accepts suffixes: 512mb, 4gb. With the
    /// dataset plus the writes in flight at the limit, writes answer `-OOM command not
    /// allowed when used memory > 'maxmemory'.` while reads and deletes keep working
    /// (policy noeviction: nothing is evicted). Also `CONFIG SET maxmemory`.
    #[arg(long, env = "SHARDAI_MAXMEMORY", default_value = "0", value_parser = parse_size)]
    pub maxmemory: usize,

    /// What happens at maxmemory: only `noeviction` (writes are refused; stored models and
    /// tensors are never evicted). Accepted so that redis.conf lines work.
    #[arg(long, env = "SHARDAI_MAXMEMORY_POLICY", default_value = "noeviction", value_parser = parse_policy)]
    pub maxmemory_policy: String,

    /// Close a client that sent nothing for this many seconds (0: never), as Redis's
    /// `timeout`. Also `CONFIG SET timeout`.
    #[arg(long, env = "SHARDAI_TIMEOUT", default_value_t = 0)]
    pub timeout: u64,

    /// Redis's client-output-buffer-limit for clients: `normal <hard> <soft> <seconds>`.
    /// A client whose unread replies pass the hard limit, or stay above the soft limit for
    /// that many seconds, is closed (0: no limit). Also `CONFIG SET`.
    #[arg(long, env = "SHARDAI_CLIENT_OUTPUT_BUFFER_LIMIT", default_value = "normal 0 0 0",
          value_parser = crate::output_limit::OutputLimit::parse)]
    pub client_output_buffer_limit: crate::output_limit::OutputLimit,

    /// Close a client that reads none of a reply for this many seconds (0: never), so that
    /// a client that stops reading gives its memory and connection slot back.
    #[arg(long, env = "SHARDAI_CLIENT_WRITE_TIMEOUT", default_value_t = 60)]
    pub client_write_timeout: u64,

    /// Folder holding the backend libraries: a Python `site-packages` with the onnxruntime
    /// wheel (scripts/setup installs it into .venv, which is the default when present).
    /// Relative AI.CONFIG LOADBACKEND paths are resolved against it.
    #[arg(long, env = "SHARDAI_BACKENDSPATH")]
    pub backends_path: Option<PathBuf>,

    /// Size of the chunks MODELGET splits model blobs into (AI.CONFIG MODEL_CHUNK_SIZE).
    /// At least 1kb.
    #[arg(long, env = "SHARDAI_MODEL_CHUNK_SIZE", default_value = "535822336", value_parser = parse_chunk_size)]
    pub model_chunk_size: usize,

    /// Threads per device run queue (RedisAI's THREADS_PER_QUEUE).
    #[arg(long, env = "SHARDAI_THREADS_PER_QUEUE", default_value_t = 1)]
    pub threads_per_queue: usize,

    /// Threads one backend operator may use (RedisAI's INTRA_OP_PARALLELISM; 0: the
    /// library's default, usually one per core). Passed to ONNX Runtime, libtorch,
    /// TensorFlow and LiteRT (XNNPACK) when their library is loaded.
    #[arg(long, env = "SHARDAI_INTRA_OP_PARALLELISM", default_value_t = 0)]
    pub intra_op_parallelism: usize,

    /// Whether ONNX Runtime's operator threads spin, waiting for the next run, after each
    /// run (the library's default). Spinning lowers one request's latency; `no` lets them
    /// sleep, which leaves those cores to connections and to other models under concurrent
    /// load, and serves more requests per second where cores are few.
    #[arg(long, env = "SHARDAI_ONNX_SPINNING", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub onnx_spinning: bool,

    /// Operators a backend may run at once (RedisAI's INTER_OP_PARALLELISM; 0: the
    /// library's default). Passed to ONNX Runtime, libtorch and TensorFlow.
    #[arg(long, env = "SHARDAI_INTER_OP_PARALLELISM", default_value_t = 0)]
    pub inter_op_parallelism: usize,

    /// Longest one model run may take, in ms (RedisAI's MODEL_EXECUTION_TIMEOUT; 0: no
    /// limit). ONNX Runtime is told to stop the run; a TORCH, TF or TFLITE run cannot be
    /// stopped, so it is abandoned: its requests get an error, a fresh worker serves the
    /// device, and the model answers an error until that run ends. RedisAI applies it to ONNX
    /// only.
    #[arg(long, env = "SHARDAI_MODEL_EXECUTION_TIMEOUT", default_value_t = 5000)]
    pub model_execution_timeout: u64,

    /// Most memory ONNX Runtime may hold, in decimal MB (RedisAI's BACKEND_MEMORY_LIMIT; 0: no
    /// limit). A model whose session would pass it is not stored, and a run that would pass
    /// it fails, both with `Onnxruntime memory limit exceeded, memory allocation failed.`.
    /// `AI.CONFIG BACKEND_MEMORY_LIMIT` changes it at run time.
    #[arg(long, env = "SHARDAI_BACKEND_MEMORY_LIMIT", default_value_t = 0)]
    pub backend_memory_limit: u64,

    /// How long a batch that is not full waits for more requests, in µs (0: none, RedisAI's
    /// rules). Applies to models stored with BATCHSIZE: once MINBATCHSIZE is met, a batch
    /// below BATCHSIZE runs when full or when its oldest request has waited this long, and
    /// at once if waiting would pass a request's TIMEOUT. Fuller batches cost latency at low
    /// load. `AI.CONFIG BATCH_QUEUE_DELAY_US` changes it at run time.
    #[arg(long, env = "SHARDAI_BATCH_QUEUE_DELAY_US", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=shardai_protocol::command::MAX_BATCH_QUEUE_DELAY_US))]
    pub batch_queue_delay_us: u64,

    /// Run as a cluster node (Redis's cluster-enabled): every write is replicated through
    /// Raft to the shard's replicas and fsync'd on a majority before it is acknowledged.
    /// Form the cluster with `shardai cluster create HOST:PORT...`; a formed node restarts
    /// from its --dir. `no`: a single node, its data in --dir (see --appendfsync).
    #[arg(long, env = "SHARDAI_CLUSTER_ENABLED", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub cluster_enabled: bool,

    /// When a write counts as stored, as Redis's appendfsync: `always`, fsync'd before the
    /// reply (nothing acknowledged is lost, even by a power failure); `everysec`, written to
    /// the log before the reply and fsync'd within a second (a crash or kill of shardai loses
    /// nothing; a power failure or kernel crash, up to about the last second); `no`, fsync'd
    /// only when a log segment closes, a snapshot drops the log before it or shardai stops (a
    /// power failure loses what the kernel had not written back yet, on Linux up to about 30
    /// seconds). Also `CONFIG SET appendfsync`. A cluster
    /// node always fsyncs (Raft's safety needs it): with --cluster-enabled yes only `always`
    /// is accepted. [default: everysec; always with --cluster-enabled yes]
    #[arg(long, env = "SHARDAI_APPENDFSYNC", value_parser = parse_fsync)]
    pub appendfsync: Option<Fsync>,

    /// Port of the cluster bus (Raft traffic between nodes); default: client port + 10000.
    #[arg(long, env = "SHARDAI_CLUSTER_PORT")]
    pub cluster_port: Option<u16>,

    /// The cluster bus secret, the same on every node: each bus connection proves both ways
    /// that the other side knows it (HMAC-SHA256 over fresh nonces; the secret is never
    /// sent), and a node that does not is refused without learning anything about the
    /// cluster. A cluster node needs this (or --cluster-secret-file) or the three
    /// --cluster-tls-* files, or both. Command lines are visible to every local user:
    /// prefer the file or the environment.
    #[arg(long, env = "SHARDAI_CLUSTER_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub cluster_secret: Option<Secret>,

    /// A file holding the cluster bus secret (its content, without surrounding whitespace).
    #[arg(
        long,
        env = "SHARDAI_CLUSTER_SECRET_FILE",
        conflicts_with = "cluster_secret"
    )]
    pub cluster_secret_file: Option<PathBuf>,

    /// This node's certificate (PEM, then any intermediates) for mutual TLS on the cluster
    /// bus. With --cluster-tls-key-file and --cluster-tls-ca-cert-file (all three or none),
    /// every bus connection is TLS, and both sides must present a certificate chaining to
    /// the CA (its host name or IP is not checked: nodes are addressed by IP).
    #[arg(long, env = "SHARDAI_CLUSTER_TLS_CERT_FILE")]
    pub cluster_tls_cert_file: Option<PathBuf>,

    /// The private key of --cluster-tls-cert-file (PEM).
    #[arg(long, env = "SHARDAI_CLUSTER_TLS_KEY_FILE")]
    pub cluster_tls_key_file: Option<PathBuf>,

    /// The CA certificate(s) (PEM) the other nodes' bus certificates must chain to.
    #[arg(long, env = "SHARDAI_CLUSTER_TLS_CA_CERT_FILE")]
    pub cluster_tls_ca_cert_file: Option<PathBuf>,

    /// Raft leader heartbeat interval, ms.
    #[arg(long, env = "SHARDAI_RAFT_HEARTBEAT_MS", default_value_t = 100)]
    pub raft_heartbeat_ms: u64,

    /// Raft election timeout, ms: a follower that hears no leader for a random time between
    /// this and twice this starts an election (so failover takes about 1-2x this).
    #[arg(long, env = "SHARDAI_RAFT_ELECTION_TIMEOUT_MS", default_value_t = 400)]
    pub raft_election_timeout_ms: u64,

    /// How a shard's leader makes sure it still leads before it serves a read: `read-index`
    /// (a heartbeat round to a majority per read, shared by the reads that arrive together;
    /// correct whatever the nodes' clocks do) or `lease` (served locally while a majority
    /// acknowledged the leader within the last --raft-lease-clock-drift-th of twice the
    /// election timeout; faster, but a read may be stale if one node's clock runs faster
    /// than another's by more than that factor)
    #[arg(long, env = "SHARDAI_RAFT_READ_POLICY", value_enum, default_value_t = ReadPolicy::ReadIndex)]
    pub raft_read_policy: ReadPolicy,

    /// With --raft-read-policy lease: the largest ratio of two nodes' clock rates the lease
    /// stays correct under (the lease is twice the election timeout divided by it). At least 1
    #[arg(long, env = "SHARDAI_RAFT_LEASE_CLOCK_DRIFT", default_value_t = 2.0, value_parser = parse_drift)]
    pub raft_lease_clock_drift: f64,

    /// The largest replicated write: one log entry (a tensor, a model, a DAG's PERSISTed
    /// tensors together) may hold at most this many bytes (units as maxmemory; at most 1gb,
    /// so that an entry always fits the cluster bus's frames). A larger write is refused
    /// before it is replicated.
    #[arg(long, env = "SHARDAI_MAX_ENTRY_SIZE", default_value = "512mb", value_parser = parse_entry_size)]
    pub max_entry_size: usize,

    /// How long a write waits to commit (stored by a majority of its shard, or by the node's
    /// own log), ms, plus one second per 10 MB the write carries (a large model); after that
    /// it answers an error saying its outcome is unknown (it may still commit).
    #[arg(long, env = "SHARDAI_RAFT_COMMIT_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub raft_commit_timeout_ms: u64,

    /// Take a snapshot of the shard after at least this many log entries, once the log since
    /// the last snapshot is at least as large as it (as Redis rewrites its AOF when it has
    /// doubled); older log entries are then dropped, and a replica that is far behind catches
    /// up from the snapshot.
    #[arg(long, env = "SHARDAI_SNAPSHOT_ENTRIES", default_value_t = 10_000)]
    pub snapshot_entries: u64,

    /// Threads serving connections (0: one per core).
    #[arg(long, env = "SHARDAI_IO_THREADS", default_value_t = 0)]
    pub io_threads: usize,

    /// Seconds to let connections finish their current command on SIGTERM, SIGINT or
    /// SHUTDOWN.
    #[arg(long, env = "SHARDAI_SHUTDOWN_TIMEOUT", default_value_t = 5)]
    pub shutdown_timeout: u64,

    /// Password of the default user (Redis's requirepass). Without it, and without an ACL
    /// file that gives the default user a password, anyone who can reach the port may run
    /// every command. Clients authenticate with `AUTH password` or `HELLO 3 AUTH default
    /// password`.
    #[arg(long, env = "SHARDAI_REQUIREPASS", hide_env_values = true, value_parser = parse_secret)]
    pub requirepass: Option<Secret>,

    /// ACL file: `user <name> <rules...>` lines, as Redis's aclfile (`user alice on >pw ~app:*
    /// +@read +@ai`). Read at start (a bad file stops the server) and by ACL LOAD; ACL SAVE
    /// writes it.
    #[arg(long, env = "SHARDAI_ACLFILE")]
    pub aclfile: Option<PathBuf>,

    /// Protected mode (Redis's protected-mode): while the default user has no password, only
    /// clients on the loopback interface are served; others get a DENIED error.
    #[arg(long, env = "SHARDAI_PROTECTED_MODE", default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub protected_mode: bool,

    /// Allow AI.CONFIG LOADBACKEND and BACKENDSPATH at run time (admin users only;
    /// LOADBACKEND opens only files inside the backends path, which BACKENDSPATH moves). Off
    /// by default, as Redis 7's enable-module-command: backends load from --backends-path
    /// (or the .venv) without either command.
    #[arg(long, env = "SHARDAI_ENABLE_BACKEND_LOADING", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub enable_backend_loading: bool,

    /// Let MIGRATE connect to any host. By default a cluster node migrates only to nodes of
    /// its own cluster, and a standalone server only to loopback addresses.
    #[arg(long, env = "SHARDAI_MIGRATE_ANY_HOST", default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub migrate_any_host: bool,

    /// Log filter: error, warn, info, debug, trace, or a tracing filter such as
    /// `shardai_node=debug`. Logs go to standard error.
    #[arg(long, env = "SHARDAI_LOG", default_value = "info")]
    pub log: String,

    /// How log lines are written to stderr: `text` (for people) or `json` (one object per
    /// line, for log shippers: timestamp, level, message and fields).
    #[arg(long, env = "SHARDAI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// HTTP port for operators (off unless given): Prometheus metrics at /metrics, /livez
    /// (the process serves) and /readyz (its shard has a leader, it has applied what was
    /// committed when it started, its cluster-wide models are loaded) for probes and load
    /// balancers. Plain HTTP, no authentication: bind it where only your scraper reaches.
    #[arg(long, env = "SHARDAI_METRICS_PORT")]
    pub metrics_port: Option<u16>,

    /// Address the --metrics-port listens on (default: --bind).
    #[arg(long, env = "SHARDAI_METRICS_BIND")]
    pub metrics_bind: Option<IpAddr>,

    /// Commands that run at least this many microseconds are kept in SLOWLOG (0: every
    /// command, -1: none). CONFIG SET changes it.
    #[arg(
        long,
        env = "SHARDAI_SLOWLOG_LOG_SLOWER_THAN",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub slowlog_log_slower_than: i64,

    /// The most entries SLOWLOG keeps (the oldest go first). CONFIG SET changes it.
    #[arg(long, env = "SHARDAI_SLOWLOG_MAX_LEN", default_value_t = 128)]
    pub slowlog_max_len: usize,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// True when both paths name the same file (or the same text, when one cannot be read).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A secret given as an option: never shown by `{:?}`.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret(s.to_string()))
}

/// What a cluster node is refused without.
const UNSECURED: &str = "a cluster node needs an authenticated cluster bus: give \
                         --cluster-secret or --cluster-secret-file (the same secret on every \
                         node), or --cluster-tls-cert-file, --cluster-tls-key-file and \
                         --cluster-tls-ca-cert-file (certificates of the cluster's CA), or both";

/// Parses an appendfsync policy.
pub fn parse_fsync(s: &str) -> Result<Fsync, String> {
    Fsync::parse(s.trim()).ok_or_else(|| format!("expected always, everysec or no, got '{s}'"))
}

/// Parses yes/no (also true/false, on/off, 1/0), as redis.conf does.
pub fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, got '{s}'")),
    }
}

/// A maxmemory-policy: only noeviction.
fn parse_policy(s: &str) -> Result<String, String> {
    if s.eq_ignore_ascii_case("noeviction") {
        Ok("noeviction".into())
    } else {
        Err("only noeviction is supported: stored models and tensors are never evicted".into())
    }
}

/// A MODEL_CHUNK_SIZE: a size of at least 1 KiB.
fn parse_chunk_size(s: &str) -> Result<usize, String> {
    let min = shardai_protocol::command::MIN_MODEL_CHUNK_SIZE as usize;
    match parse_size(s)? {
        n if n >= min => Ok(n),
        _ => Err(format!("the chunk size must be at least {min} bytes")),
    }
}

/// `--raft-read-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadPolicy {
    /// A heartbeat round to a majority per read.
    ReadIndex,
    /// Served locally while the lease holds.
    Lease,
}

/// Parses `--raft-lease-clock-drift`: a finite ratio of at least 1.
fn parse_drift(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d.is_finite() && d >= 1.0 => Ok(d),
        _ => Err(format!(
            "{s:?} is not a clock-rate ratio of at least 1 (for example 2)"
        )),
    }
}

/// Parses `--max-entry-size`: a size of at least 1kb and at most 1gb.
fn parse_entry_size(s: &str) -> Result<usize, String> {
    let n = parse_size(s)?;
    let max = shardai_raft::MAX_ENTRY_BYTES as usize;
    if !(1024..=max).contains(&n) {
        return Err(format!("must be between 1kb and 1gb ({max} bytes)"));
    }
    Ok(n)
}

/// Parses a size with an optional unit as Redis does: kb/mb/gb are powers of 1024, k/m/g
/// powers of 1000.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, mult) = [
        ("gb", 1usize << 30),
        ("g", 1_000_000_000),
        ("mb", 1 << 20),
        ("m", 1_000_000),
        ("kb", 1 << 10),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| lower.strip_suffix(suf).map(|d| (d.to_string(), *m)))
    .unwrap_or((lower.clone(), 1));
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("invalid size '{s}'"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

impl Config {
    /// The cluster bus port: --cluster-port, else the client port + 10000.
    pub fn bus_port(&self) -> Result<u16, String> {
        match self.cluster_port {
            Some(p) => Ok(p),
            None => self.port.checked_add(10_000).ok_or_else(|| {
                format!(
                    "client port {} + 10000 is not a port: give --cluster-port",
                    self.port
                )
            }),
        }
    }

    /// The --cluster-tls-* files, if given (all three or none).
    fn bus_tls(&self) -> Result<Option<TlsFiles>, String> {
        match (
            &self.cluster_tls_cert_file,
            &self.cluster_tls_key_file,
            &self.cluster_tls_ca_cert_file,
        ) {
            (Some(cert), Some(key), Some(ca)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
            })),
            (None, None, None) => Ok(None),
            _ => Err("--cluster-tls-cert-file, --cluster-tls-key-file and \
                      --cluster-tls-ca-cert-file go together: give all three or none"
                .into()),
        }
    }

    /// Checks what needs no file read: a cluster node has a bus secret or TLS files, and
    /// the TLS files come as three.
    pub fn check(&self) -> Result<(), String> {
        if self.cluster_enabled && self.appendfsync.is_some_and(|f| f != Fsync::Always) {
            return Err(format!(
                "--appendfsync {} is for a single node: a cluster node fsyncs every write \
                 before it acknowledges it (a replica that forgot an entry it acknowledged \
                 could elect a leader without it), so with --cluster-enabled yes it must be \
                 always",
                self.appendfsync.map_or("", |f| f.name())
            ));
        }
        let tls = self.bus_tls()?;
        let secret = self.cluster_secret.is_some() || self.cluster_secret_file.is_some();
        if self.cluster_enabled && !secret && tls.is_none() {
            return Err(UNSECURED.into());
        }
        // With the client CA, every client certificate would open the cluster bus too.
        if let (Some(bus), Some(clients)) = (&tls, &self.tls_ca_cert_file)
            && self.tls_auth_clients != crate::tls::ClientAuth::No
            && same_file(&bus.ca, clients)
        {
            return Err(
                "--cluster-tls-ca-cert-file must not be the clients' CA (--tls-ca-cert-file): \
                 every client certificate would open the cluster bus; give the bus a CA that \
                 signs cluster nodes only (shardai cert makes one)"
                    .into(),
            );
        }
        Ok(())
    }

    /// How the cluster bus authenticates its peers: the secret (read from
    /// --cluster-secret-file if given there) and the TLS certificates, loaded.
    pub fn bus_security(&self) -> Result<BusSecurity, String> {
        let secret = match (&self.cluster_secret, &self.cluster_secret_file) {
            (Some(Secret(s)), _) => Some(s.clone()),
            (None, Some(path)) => {
                let s = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "cannot read the cluster secret file {}: {e}",
                        path.display()
                    )
                })?;
                let s = s.trim();
                if s.is_empty() {
                    return Err(format!(
                        "the cluster secret file {} is empty",
                        path.display()
                    ));
                }
                Some(s.to_string())
            }
            (None, None) => None,
        };
        if secret.as_deref() == Some("") {
            return Err("--cluster-secret is empty".into());
        }
        let tls = self.bus_tls()?;
        if secret.is_none() && tls.is_none() {
            return Err(UNSECURED.into());
        }
        BusSecurity::new(secret.as_deref().map(str::as_bytes), tls.as_ref())
    }

    /// Bounds on one replicated write (--max-entry-size, --raft-commit-timeout-ms).
    pub fn write_limits(&self) -> shardai_raft::WriteLimits {
        shardai_raft::WriteLimits {
            max_entry_bytes: self.max_entry_size as u64,
            commit_timeout: std::time::Duration::from_millis(self.raft_commit_timeout_ms),
        }
    }

    /// The read check of this node's shard groups (--raft-read-policy).
    pub fn read_check(&self) -> shardai_raft::ReadCheck {
        match self.raft_read_policy {
            ReadPolicy::Lease => {
                // openraft's followers refuse votes for the election timeout's maximum
                // (twice --raft-election-timeout-ms) after they last heard the leader.
                let max = 2.0 * self.raft_election_timeout_ms as f64;
                shardai_raft::ReadCheck::Lease(std::time::Duration::from_secs_f64(
                    max / self.raft_lease_clock_drift / 1000.0,
                ))
            }
            ReadPolicy::ReadIndex => shardai_raft::ReadCheck::ReadIndex,
        }
    }

    /// The appendfsync policy this node runs with.
    pub fn fsync(&self) -> Fsync {
        self.appendfsync.unwrap_or(if self.cluster_enabled {
            Fsync::Always
        } else {
            Fsync::EverySec
        })
    }

    /// Parses flags and environment, then fills what they left unset from `--config`, and
    /// checks the result ([`Config::check`]).
    pub fn load() -> Result<Config, String> {
        let c = Self::parse_all()?;
        c.check()?;
        Ok(c)
    }

    fn parse_all() -> Result<Config, String> {
        let args: Vec<String> = std::env::args().collect();
        let first = Config::parse_from(&args);
        let Some(path) = first.config.clone() else {
            return Ok(first);
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        // File entries go first so that flags given on the command line override them.
        let mut merged = vec![args[0].clone()];
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{}:{}: expected 'name value'", path.display(), n + 1))?;
            let name = name.trim().to_ascii_lowercase().replace('_', "-");
            if std::env::var(format!(
                "SHARDAI_{}",
                name.to_ascii_uppercase().replace('-', "_")
            ))
            .is_ok()
            {
                continue;
            }
            merged.push(format!("--{name}"));
            merged.push(value.trim().trim_matches('"').to_string());
        }
        merged.extend(args.into_iter().skip(1));
        Config::try_parse_from(&merged).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_policy_and_lease() {
        let parse = |args: &[&str]| Config::try_parse_from([&["shardai"], args].concat());
        let c = parse(&[]).unwrap();
        assert_eq!(c.read_check(), shardai_raft::ReadCheck::ReadIndex);
        // Twice the election timeout over the drift: 2 × 400 ms / 2.
        let c = parse(&["--raft-read-policy", "lease"]).unwrap();
        assert_eq!(
            c.read_check(),
            shardai_raft::ReadCheck::Lease(std::time::Duration::from_millis(400))
        );
        let c = parse(&[
            "--raft-read-policy",
            "lease",
            "--raft-lease-clock-drift",
            "4",
        ])
        .unwrap();
        assert_eq!(
            c.read_check(),
            shardai_raft::ReadCheck::Lease(std::time::Duration::from_millis(200))
        );
        assert!(parse(&["--raft-lease-clock-drift", "0.5"]).is_err());
        assert!(parse(&["--raft-read-policy", "quorum"]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512mb"), Ok(512 << 20));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64_000));
        assert_eq!(parse_size("4g"), Ok(4_000_000_000));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn a_cluster_node_needs_a_secured_bus() {
        let c = Config::parse_from(["shardai", "--cluster-enabled", "yes"]);
        let err = c.check().unwrap_err();
        assert!(err.contains("--cluster-secret") && err.contains("--cluster-tls-cert-file"));
        let c = Config::parse_from([
            "shardai",
            "--cluster-enabled",
            "yes",
            "--cluster-secret",
            "s",
        ]);
        assert!(c.check().is_ok());
        assert!(!format!("{c:?}").contains("\"s\""));
        assert!(c.bus_security().unwrap().is_secured());
        let c = Config::parse_from([
            "shardai",
            "--cluster-enabled",
            "yes",
            "--cluster-tls-cert-file",
            "n.crt",
        ]);
        assert!(c.check().unwrap_err().contains("all three or none"));
        // Standalone nodes have no bus.
        assert!(Config::parse_from(["shardai"]).check().is_ok());
    }

    #[test]
    fn the_secret_file_is_read_trimmed() {
        let d = std::env::temp_dir().join(format!("shardai-secret-{}", std::process::id()));
        std::fs::write(&d, "  sesame\n").unwrap();
        let args: [std::ffi::OsString; 3] = [
            "shardai".into(),
            "--cluster-secret-file".into(),
            d.clone().into(),
        ];
        let c = Config::parse_from(args);
        let file = c.bus_security();
        std::fs::write(&d, "\n").unwrap();
        let empty = c.bus_security();
        let _ = std::fs::remove_file(&d);
        assert!(file.unwrap().is_secured());
        assert!(empty.unwrap_err().contains("is empty"));
    }

    #[test]
    fn defaults() {
        let c = Config::parse_from(["shardai"]);
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind.to_string(), "127.0.0.1");
        assert_eq!(c.proto_max_bulk_len, 512 << 20);
    }
}
