//! `shardai cluster ...`: the operator's commands, run against live nodes over their
//! client port (like `redis-cli --cluster`).
//!
//! - `create HOST:PORT... --replicas N`: every node must be started with
//!   `--cluster-enabled yes` and be empty; they get a fresh cluster id and node ids, and the
//!   first one forms the Raft group of all of them (one shard: N + 1 nodes).
//! - `add-node NEW EXISTING`: NEW joins EXISTING's cluster as a learner, catches up, then
//!   becomes a voter.
//! - `del-node EXISTING NODE-ID`: removes a node (id from `CLUSTER MYID` or INFO
//!   replication's `raft_node_id`).
//! - `info HOST:PORT`: the shard's members and leader as that node sees them.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand};

/// `shardai cluster`.
#[derive(Debug, Parser)]
#[command(
    name = "shardai cluster",
    about = "Forms and changes a shardai cluster through its nodes' client ports."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Forms a cluster of the given nodes (started with --cluster-enabled yes, empty).
    Create {
        /// host:port of every node.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Replicas per shard (each shard is a Raft group of replicas + 1 nodes).
        #[arg(long, default_value_t = 2)]
        replicas: usize,
        /// Seconds to wait for a leader.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Adds NEW (empty, --cluster-enabled yes) to the cluster EXISTING belongs to.
    AddNode {
        /// host:port of the node to add.
        new: String,
        /// host:port of any member.
        existing: String,
    },
    /// Removes node NODE_ID from the cluster EXISTING belongs to.
    DelNode {
        /// host:port of any member.
        existing: String,
        /// The node's id (decimal, or the 40-hex name CLUSTER MYID prints).
        node_id: String,
    },
    /// Shows the shard's members and leader as HOST:PORT sees them.
    Info {
        /// host:port of a member.
        node: String,
    },
}

/// A reply from a node.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Err(String),
    Int(i64),
    Nil,
    Arr(Vec<Val>),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) | Val::Err(s) => s.clone(),
            Val::Int(n) => n.to_string(),
            Val::Nil => String::new(),
            Val::Arr(v) => v.iter().map(Val::text).collect::<Vec<_>>().join(" "),
        }
    }
}

/// A blocking RESP2 connection.
struct Conn {
    addr: String,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn, String> {
        let sock = std::net::ToSocketAddrs::to_socket_addrs(addr)
            .map_err(|e| format!("{addr}: {e}"))?
            .find_map(|a| TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok())
            .ok_or_else(|| format!("cannot connect to {addr}: is shardai running there?"))?;
        let _ = sock.set_read_timeout(Some(Duration::from_secs(120)));
        Ok(Conn {
            addr: addr.to_string(),
            r: BufReader::new(sock),
        })
    }

    fn call(&mut self, args: &[&str]) -> Result<Val, String> {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.r
            .get_mut()
            .write_all(&req)
            .map_err(|e| format!("{}: {e}", self.addr))?;
        self.read().map_err(|e| format!("{}: {e}", self.addr))
    }

    fn read(&mut self) -> std::io::Result<Val> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']);
        let bad = || std::io::Error::other(format!("bad reply line {line:?}"));
        let (t, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        Ok(match t {
            "+" => Val::Str(rest.to_string()),
            "-" => Val::Err(rest.to_string()),
            ":" => Val::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(Val::Nil);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b)?;
                b.truncate(n as usize);
                Val::Str(String::from_utf8_lossy(&b).into_owned())
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    return Ok(Val::Nil);
                }
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(self.read()?);
                }
                Val::Arr(v)
            }
            _ => return Err(bad()),
        })
    }

    /// Calls and fails on an error reply.
    fn ok(&mut self, args: &[&str]) -> Result<Val, String> {
        match self.call(args)? {
            Val::Err(e) => Err(format!("{}: {e}", self.addr)),
            v => Ok(v),
        }
    }
}

/// Sends `args` to `addr`, following MOVED redirects to the leader.
fn call_leader(addr: &str, args: &[&str]) -> Result<Val, String> {
    let mut addr = addr.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Conn::open(&addr)?.call(args)? {
            Val::Err(e) if e.starts_with("MOVED ") => {
                addr = e.split(' ').nth(2).unwrap_or_default().to_string();
            }
            Val::Err(e) if e.starts_with("CLUSTERDOWN") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Val::Err(e) => return Err(format!("{addr}: {e}")),
            v => return Ok(v),
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ (std::process::id() as u64) << 32).to_le_bytes();
    }
    // Positive in an i64, so replies can carry it as an integer.
    (u64::from_le_bytes(b) >> 1).max(1)
}

/// `(cluster id, node id, leader addr, members [(id, addr, bus, voter)])` from SHARDAI-STATE.
type State = (String, u64, String, Vec<(u64, String, String, bool)>);

fn state(addr: &str) -> Result<Option<State>, String> {
    let v = Conn::open(addr)?.ok(&["CLUSTER", "SHARDAI-STATE"])?;
    let Val::Arr(v) = v else {
        return Err(format!("{addr}: unexpected reply"));
    };
    if v.is_empty() {
        return Ok(None);
    }
    let members = match &v[3] {
        Val::Arr(ms) => ms
            .iter()
            .filter_map(|m| match m {
                Val::Arr(f) if f.len() == 4 => Some((
                    f[0].text().parse().unwrap_or(0),
                    f[1].text(),
                    f[2].text(),
                    f[3].text() == "1",
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Some((
        v[0].text(),
        v[1].text().parse().unwrap_or(0),
        v[2].text(),
        members,
    )))
}

fn wait_for_leader(nodes: &[String], timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        for n in nodes {
            if let Ok(Some((_, _, leader, _))) = state(n)
                && !leader.is_empty()
            {
                return Ok(leader);
            }
        }
        if Instant::now() >= deadline {
            return Err("no leader was elected in time; check the nodes' logs".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(nodes: Vec<String>, replicas: usize, timeout: u64) -> Result<(), String> {
    if nodes.len() != replicas + 1 {
        return Err(format!(
            "{} nodes with --replicas {replicas}: this version forms one shard, so give \
             exactly replicas + 1 = {} nodes",
            nodes.len(),
            replicas + 1
        ));
    }
    for n in &nodes {
        if let Some((cluster, ..)) = state(n)? {
            return Err(format!("{n} already belongs to cluster {cluster}"));
        }
    }
    let cluster = format!("{:016x}", random_u64());
    let mut members: Vec<(u64, String, String)> = Vec::new();
    for n in &nodes {
        let id = random_u64();
        let bus = Conn::open(n)?
            .ok(&["CLUSTER", "SHARDAI-JOIN", &cluster, &id.to_string(), n])?
            .text();
        println!(">>> {n}: node {id:040x} (bus {bus})");
        members.push((id, n.clone(), bus));
    }
    let ids: Vec<String> = members.iter().map(|m| m.0.to_string()).collect();
    let mut init = vec!["CLUSTER", "SHARDAI-INIT"];
    for (i, (_, addr, bus)) in members.iter().enumerate() {
        init.extend([ids[i].as_str(), addr.as_str(), bus.as_str()]);
    }
    Conn::open(&nodes[0])?.ok(&init)?;
    let leader = wait_for_leader(&nodes, Duration::from_secs(timeout))?;
    println!(
        ">>> cluster {cluster}: one shard of {} replicas, leader {leader}",
        nodes.len()
    );
    println!("[OK] All 16384 slots covered.");
    Ok(())
}

fn add_node(new: String, existing: String) -> Result<(), String> {
    let Some((cluster, _, leader, _)) = state(&existing)? else {
        return Err(format!("{existing} is not part of a cluster"));
    };
    if let Some((c, ..)) = state(&new)? {
        return Err(format!("{new} already belongs to cluster {c}"));
    }
    let id = random_u64();
    let bus = Conn::open(&new)?
        .ok(&["CLUSTER", "SHARDAI-JOIN", &cluster, &id.to_string(), &new])?
        .text();
    let via = if leader.is_empty() { existing } else { leader };
    call_leader(
        &via,
        &["CLUSTER", "SHARDAI-ADDNODE", &id.to_string(), &new, &bus],
    )?;
    println!("[OK] {new} joined cluster {cluster} as node {id:040x}");
    Ok(())
}

fn del_node(existing: String, node: String) -> Result<(), String> {
    let id: u64 = if node.len() == 40 {
        u64::from_str_radix(&node[24..], 16).map_err(|_| format!("bad node id {node}"))?
    } else {
        node.parse().map_err(|_| format!("bad node id {node}"))?
    };
    call_leader(&existing, &["CLUSTER", "SHARDAI-DELNODE", &id.to_string()])?;
    println!("[OK] node {id:040x} removed");
    Ok(())
}

fn info(node: String) -> Result<(), String> {
    let Some((cluster, me, leader, members)) = state(&node)? else {
        println!("{node} is not part of a cluster");
        return Ok(());
    };
    println!("cluster {cluster}, asked node {me:040x}, leader {leader}");
    for (id, addr, bus, voter) in members {
        println!(
            "  {id:040x} {addr} bus {bus} {}",
            if voter { "voter" } else { "learner" }
        );
    }
    Ok(())
}

/// Runs `shardai cluster <args>`; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = Cli::parse_from(args);
    let r = match cli.cmd {
        Cmd::Create {
            nodes,
            replicas,
            timeout,
        } => create(nodes, replicas, timeout),
        Cmd::AddNode { new, existing } => add_node(new, existing),
        Cmd::DelNode { existing, node_id } => del_node(existing, node_id),
        Cmd::Info { node } => info(node),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("[ERR] {e}");
            1
        }
    }
}
