//! The shardai processes of a run: one per namespace, started with `ip netns exec` (which
//! execs, so the child's PID is the server's own and every signal reaches it), each with
//! its own data folder and log file; kill -9, SIGSTOP/SIGCONT and restarts from the same
//! folder, or from an emptied one; the operator's `shardai cluster` commands (create,
//! del-node, add-node, reshard), each bounded by a timeout. Every process is killed by its
//! PID when the [`Db`] drops, also on a panic, and a `shardai cluster` command when its
//! call is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use redis::Value;

use crate::client::{Client, Reply};
use crate::net::Host;

/// The client port of every node (each has an address of its own).
pub(crate) const PORT: u16 = 6379;

/// Debian's libfaketime (package faketime), the variant for multithreaded programs.
pub(crate) const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// One node.
pub(crate) struct Node {
    pub(crate) host: Host,
    pub(crate) dir: PathBuf,
    pub(crate) log: PathBuf,
    child: Option<Child>,
    pub(crate) paused: bool,
    /// The rate of its clocks against real time (libfaketime), when skewed.
    pub(crate) clock_rate: Option<f64>,
}

impl Node {
    pub(crate) fn addr(&self) -> String {
        format!("{}:{PORT}", self.host.ip)
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    /// kill -9, waiting for the process to end.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    pub(crate) fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    pub(crate) fn resume(&mut self) {
        self.signal("-CONT");
        self.paused = false;
    }
}

/// The nodes of a run.
pub(crate) struct Db {
    pub(crate) nodes: Vec<Node>,
    /// Nodes per shard: shard `s` is nodes `s * shard_size ..` (as `cluster create` groups
    /// them).
    pub(crate) shard_size: usize,
    bin: PathBuf,
    args: Vec<String>,
    /// The run's folder.
    root: PathBuf,
}

impl Db {
    /// Starts a node in each of `hosts`, its folder under `root`; `extra` are more server
    /// flags for every node.
    pub(crate) fn start(bin: &Path, hosts: &[Host], root: &Path, extra: &[String]) -> Result<Db> {
        let secret = format!("jepsen-{}-{}", std::process::id(), rand::random::<u64>());
        let mut args = vec![
            "--cluster-enabled".into(),
            "yes".into(),
            "--cluster-secret".into(),
            secret,
            // The run's network is private to it: no password for its clients.
            "--protected-mode".into(),
            "no".into(),
        ];
        args.extend(extra.iter().cloned());
        let mut db = Db {
            nodes: Vec::new(),
            shard_size: hosts.len(),
            bin: bin.to_path_buf(),
            args,
            root: root.to_path_buf(),
        };
        for (i, h) in hosts.iter().enumerate() {
            let dir = root.join(format!("n{i}"));
            std::fs::create_dir_all(&dir)?;
            db.nodes.push(Node {
                host: h.clone(),
                log: root.join(format!("n{i}.log")),
                dir,
                child: None,
                paused: false,
                clock_rate: None,
            });
        }
        for i in 0..db.nodes.len() {
            db.spawn(i)?;
        }
        Ok(db)
    }

    /// Starts node `i` (again) from its folder.
    pub(crate) fn spawn(&mut self, i: usize) -> Result<()> {
        let n = &mut self.nodes[i];
        n.kill();
        let log = File::options().create(true).append(true).open(&n.log)?;
        let mut cmd = Command::new("ip");
        if let Some(rate) = n.clock_rate {
            // Every clock the server reads (wall and monotonic) runs `rate` times as fast
            // as real time from its start; `ip netns exec` passes the environment on.
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", format!("+0 x{rate}"));
        }
        let child = cmd
            .args(["netns", "exec", &n.host.ns])
            .arg(&self.bin)
            .args(["--bind", &n.host.ip, "--port", &PORT.to_string(), "--dir"])
            .arg(&n.dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        n.child = Some(child);
        Ok(())
    }

    /// Waits until every node answers PING.
    pub(crate) async fn wait_up(&mut self, within: Duration) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_node(i, within).await?;
        }
        Ok(())
    }

    /// Waits until node `i` answers PING.
    pub(crate) async fn wait_node(&mut self, i: usize, within: Duration) -> Result<()> {
        let end = Instant::now() + within;
        let mut c = Client::new(Duration::from_secs(1), false);
        {
            loop {
                if !self.nodes[i].alive() {
                    bail!(
                        "node {i} exited at start; its log:\n{}",
                        tail(&self.nodes[i].log)
                    );
                }
                if let Reply::Value(..) = c.call(&self.nodes[i].addr(), &redis::cmd("PING")).await {
                    break;
                }
                c.reset();
                if Instant::now() > end {
                    bail!(
                        "node {i} did not answer PING; its log:\n{}",
                        tail(&self.nodes[i].log)
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Forms the cluster: shards of `replicas + 1` nodes.
    pub(crate) async fn create(&mut self, replicas: usize) -> Result<()> {
        let mut args = vec!["create".to_string()];
        args.extend(self.nodes.iter().map(Node::addr));
        args.extend(["--replicas".into(), replicas.to_string()]);
        self.cluster(args, Duration::from_secs(60)).await?;
        self.shard_size = replicas + 1;
        Ok(())
    }

    /// Runs `shardai cluster ARGS...`, killed after `within`.
    pub(crate) async fn cluster(&self, args: Vec<String>, within: Duration) -> Result<String> {
        self.cli().run(args, within).await
    }

    /// The operator's command line, to run apart from the [`Db`].
    pub(crate) fn cli(&self) -> Cli {
        Cli {
            bin: self.bin.clone(),
            dir: self.root.clone(),
        }
    }

    /// The nodes of node `i`'s shard.
    pub(crate) fn shard_of(&self, i: usize) -> std::ops::Range<usize> {
        let s = i / self.shard_size;
        s * self.shard_size..(s + 1) * self.shard_size
    }

    /// Node `i`'s cluster id (CLUSTER MYID).
    pub(crate) async fn node_id(&self, i: usize) -> Result<String> {
        let mut c = Client::new(Duration::from_secs(2), false);
        match c
            .call(&self.nodes[i].addr(), redis::cmd("CLUSTER").arg("MYID"))
            .await
        {
            Reply::Value(Value::BulkString(b), _) => Ok(String::from_utf8_lossy(&b).into()),
            other => bail!("CLUSTER MYID of n{i}: {other:?}"),
        }
    }

    /// Kills node `i` and empties its folder (it forgets everything).
    pub(crate) fn wipe(&mut self, i: usize) -> Result<()> {
        self.nodes[i].kill();
        let dir = &self.nodes[i].dir;
        std::fs::remove_dir_all(dir)?;
        std::fs::create_dir_all(dir)?;
        Ok(())
    }

    /// The nodes that lead their shard with a majority of its members agreeing (a paused
    /// or partitioned old leader may still believe it leads): by index.
    pub(crate) async fn leaders(&mut self) -> Vec<usize> {
        let mut c = Client::new(Duration::from_millis(500), false);
        let mut infos = Vec::new();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive() || self.nodes[i].paused {
                infos.push(None);
                continue;
            }
            let mut cmd = redis::cmd("INFO");
            cmd.arg("replication");
            infos.push(match c.call(&self.nodes[i].addr(), &cmd).await {
                Reply::Value(Value::BulkString(b), _) => Some(parse_info(&b)),
                Reply::Value(Value::VerbatimString { text, .. }, _) => {
                    Some(parse_info(text.as_bytes()))
                }
                _ => None,
            });
        }
        let mut out = Vec::new();
        for (i, info) in infos.iter().enumerate() {
            let Some(info) = info else { continue };
            if info.get("raft_state").map(String::as_str) != Some("leader") {
                continue;
            }
            let me = info.get("raft_node_id");
            let agree = infos
                .iter()
                .flatten()
                .filter(|o| o.get("raft_leader_id") == me)
                .count();
            let members: usize = info
                .get("raft_members")
                .and_then(|m| m.parse().ok())
                .unwrap_or(usize::MAX);
            if agree * 2 > members {
                out.push(i);
            }
        }
        out
    }
}

/// `shardai cluster`, the operator's command line.
pub(crate) struct Cli {
    bin: PathBuf,
    /// Where its output goes while it runs.
    dir: PathBuf,
}

/// A command's process, killed when dropped before it ended (a timeout, an error, Ctrl-C).
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cli {
    /// Runs `shardai cluster ARGS...`, killed after `within`: its output (stdout, then
    /// stderr), or its last lines as the error when it fails.
    pub(crate) async fn run(&self, args: Vec<String>, within: Duration) -> Result<String> {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let what = format!("shardai cluster {}", args.join(" "));
        let path = self
            .dir
            .join(format!("cli-{}.out", CALLS.fetch_add(1, Ordering::Relaxed)));
        let out = File::create(&path)?;
        let child = Command::new(&self.bin)
            .arg("cluster")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let mut reap = Reap(Some(child));
        let end = Instant::now() + within;
        let status = loop {
            if let Some(st) = reap.0.as_mut().and_then(|c| c.try_wait().transpose()) {
                reap.0 = None;
                break st?;
            }
            if Instant::now() > end {
                bail!("{what}: not done in {within:?} (killed)");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        if !status.success() {
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            bail!(
                "{what} failed: {}",
                lines[lines.len().saturating_sub(3)..].join(" / ")
            );
        }
        Ok(text)
    }
}

fn parse_info(b: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The last lines of a log file.
pub(crate) fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Db {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}
