//! `shardai cluster ...`: the operator's commands, run against live nodes over their
//! client port (like `redis-cli --cluster`).
//!
//! - `create HOST:PORT... --replicas N`: every node must be started with
//!   `--cluster-enabled yes` and be empty; they get a fresh cluster id and node ids, are
//!   grouped into shards of N + 1 consecutive nodes (one Raft group each), the 16384 slots are
//!   spread evenly over the shards, and up to five nodes (spread over the shards) form the
//!   metadata group that holds the topology, the others following it as learners.
//! - `add-node NEW EXISTING`: NEW joins EXISTING's shard as a learner, catches up, then
//!   becomes a voter; it follows the metadata group as a learner.
//! - `del-node EXISTING NODE-ID`: removes a node (id from `CLUSTER MYID`/`CLUSTER NODES`).
//! - `info HOST:PORT`: the node's shard and the whole cluster as that node sees them.
//! - `add-shard`, `reshard`, `rebalance`: see [`reshard`].
//! - `start-local`, `stop`, `clean`: a whole cluster of local processes in one folder, see
//!   [`local`].

mod conn;
mod local;
mod plan;
mod reshard;

use std::{
    io::Read,
    time::{Duration, Instant},
};

use conn::{Conn, Val, call_leader, call_strs};

use clap::{Parser, Subcommand};
use shardai_router::{NodeInfo, Topology, replies::parse_node_name, topology::layout_error};

/// `shardai cluster`.
#[derive(Debug, Parser)]
#[command(
    name = "shardai cluster",
    about = "Forms and changes a shardai cluster through its nodes' client ports."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// ACL user to authenticate as on every node (needs the @admin category).
    #[arg(long, global = true, env = "SHARDAI_USER")]
    user: Option<String>,
    /// Password to authenticate with (the node's requirepass, or --user's password).
    #[arg(
        long = "pass",
        short = 'a',
        global = true,
        env = "SHARDAI_PASSWORD",
        hide_env_values = true
    )]
    pass: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Forms a cluster of the given nodes (started with --cluster-enabled yes, empty):
    /// shards of --replicas + 1 consecutive nodes, slots spread evenly over the shards.
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
    /// Forms a new shard of NEW nodes (empty, --cluster-enabled yes), without slots yet.
    AddShard {
        /// host:port of any member.
        existing: String,
        /// host:port of each node of the new shard.
        #[arg(required = true)]
        new: Vec<String>,
    },
    /// Moves slots (with their keys) between shards while they serve.
    Reshard {
        /// host:port of any member.
        existing: String,
        /// Source shards: a node id or host:port of each (comma-separated), or `all`.
        #[arg(long)]
        from: String,
        /// Target shard: a node id or host:port of any of its nodes.
        #[arg(long)]
        to: String,
        /// Number of slots to move.
        #[arg(long)]
        slots: usize,
        /// Keys per MIGRATE call.
        #[arg(long, default_value_t = 10)]
        pipeline: usize,
        /// Slots moved at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// Spreads the slots evenly over every shard (after add-shard).
    Rebalance {
        /// host:port of any member.
        existing: String,
        /// Keys per MIGRATE call.
        #[arg(long, default_value_t = 10)]
        pipeline: usize,
        /// Slots moved at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// Shows the shard's members and leader as HOST:PORT sees them.
    Info {
        /// host:port of a member.
        node: String,
    },
    /// Starts shards × (replicas + 1) local nodes in --dir and forms them into a cluster
    /// (or restarts the stopped cluster --dir holds, with its data).
    StartLocal(local::StartLocal),
    /// Stops the nodes of the local cluster in --dir (SIGTERM, then SIGKILL after --timeout).
    Stop {
        /// The folder given to start-local.
        #[arg(long, default_value = "./cluster")]
        dir: std::path::PathBuf,
        /// Seconds to wait for the nodes to exit before killing them.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Removes the folder of a stopped local cluster (its data and logs).
    Clean {
        /// The folder given to start-local.
        #[arg(long, default_value = "./cluster")]
        dir: std::path::PathBuf,
    },
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

/// The topology as `addr` knows it.
fn topology(addr: &str) -> Result<Topology, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Conn::open(addr)?.ok(&["CLUSTER", "SHARDAI-TOPOLOGY"])? {
            Val::Str(json) => return Topology::decode(json.as_bytes()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => return Err(format!("{addr} does not know the cluster topology yet")),
        }
    }
}

/// Waits until every node reports `cluster_state:ok` (topology applied, every shard led).
fn wait_for_ok(nodes: &[String], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    for n in nodes {
        loop {
            let info = Conn::open(n)?.call(&["CLUSTER", "INFO"])?.text();
            if info.starts_with("cluster_state:ok") {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{n} does not see a complete cluster in time; check the nodes' logs"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn member_args(t: &Topology, ids: &[u64]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| t.nodes.get(id))
        .flat_map(|n| [n.id.to_string(), n.client_addr.clone(), n.bus_addr.clone()])
        .collect()
}

fn create(nodes: Vec<String>, replicas: usize, timeout: u64) -> Result<(), String> {
    if let Some(e) = layout_error(nodes.len(), replicas) {
        return Err(e);
    }
    for n in &nodes {
        if let Some((cluster, ..)) = state(n)? {
            return Err(format!("{n} already belongs to cluster {cluster}"));
        }
    }
    let cluster = format!("{:016x}", random_u64());
    println!(
        ">>> Performing hash slots allocation on {} nodes...",
        nodes.len()
    );
    let mut members: Vec<(u64, String, String)> = Vec::new();
    for n in &nodes {
        let id = random_u64();
        let bus = Conn::open(n)?
            .ok(&["CLUSTER", "SHARDAI-JOIN", &cluster, &id.to_string(), n])?
            .text();
        println!("    {n} joined as node {id:040x} (bus {bus})");
        members.push((id, n.clone(), bus));
    }
    let mut t = Topology::layout(&members, replicas)?;
    for n in t.nodes.values_mut() {
        n.tls_port = conn::tls_port(&n.client_addr)?;
    }
    for shard in t.shards.values() {
        let (a, b) = shard.slots[0];
        let first = &t.nodes[&shard.nodes[0]];
        println!(
            "Shard[{}] -> Slots {a} - {b}: {}",
            shard.id,
            shard
                .nodes
                .iter()
                .map(|id| format!("{} ({id:040x})", t.nodes[id].client_addr))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut init = vec!["CLUSTER".into(), "SHARDAI-INIT".into(), "data".into()];
        init.extend(member_args(&t, &shard.nodes));
        call_strs(&first.client_addr, &init, false)?;
    }
    let voters = t.meta_voters();
    let seed = t.nodes[&voters[0]].client_addr.clone();
    println!(
        ">>> Forming the metadata group: {} voter(s), {} learner(s)",
        voters.len(),
        t.nodes.len() - voters.len()
    );
    let mut init = vec!["CLUSTER".into(), "SHARDAI-INIT".into(), "meta".into()];
    init.extend(member_args(&t, &voters));
    call_strs(&seed, &init, false)?;
    for id in t.nodes.keys().filter(|id| !voters.contains(id)) {
        let mut add: Vec<String> = ["CLUSTER", "SHARDAI-ADDNODE", "meta", "learner"]
            .map(String::from)
            .to_vec();
        add.extend(member_args(&t, &[*id]));
        call_strs(&seed, &add, true)?;
    }
    println!(">>> Storing the topology");
    call_strs(
        &seed,
        &["CLUSTER".into(), "SHARDAI-SETTOPOLOGY".into(), t.encode()],
        false,
    )?;
    println!(">>> Waiting for cluster_state:ok on every node (at most {timeout} s)");
    wait_for_ok(&nodes, Duration::from_secs(timeout))?;
    println!(
        ">>> cluster {cluster}: {} shard(s) of {} replica(s) each; metadata voters: {}",
        t.shards.len(),
        replicas + 1,
        voters.len()
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
    let mut t = topology(&existing)?;
    let shard = t
        .nodes
        .values()
        .find(|n| n.client_addr == existing)
        .map(|n| n.shard)
        .ok_or_else(|| format!("{existing} is not in the cluster's topology"))?;
    let id = random_u64();
    println!(">>> {new} joins cluster {cluster} as node {id:040x}");
    let bus = Conn::open(&new)?
        .ok(&["CLUSTER", "SHARDAI-JOIN", &cluster, &id.to_string(), &new])?
        .text();
    println!(">>> Adding it to shard {shard}: a learner until it has caught up, then a voter");
    let via = if leader.is_empty() {
        existing.clone()
    } else {
        leader
    };
    let id_s = id.to_string();
    call_leader(
        &via,
        &[
            "CLUSTER",
            "SHARDAI-ADDNODE",
            "data",
            "voter",
            &id_s,
            &new,
            &bus,
        ],
    )?;
    println!(">>> Adding it to the metadata group as a learner");
    call_leader(
        &existing,
        &[
            "CLUSTER",
            "SHARDAI-ADDNODE",
            "meta",
            "learner",
            &id_s,
            &new,
            &bus,
        ],
    )?;
    t.epoch += 1;
    t.nodes.insert(
        id,
        NodeInfo {
            tls_port: conn::tls_port(&new)?,
            id,
            client_addr: new.clone(),
            bus_addr: bus,
            shard,
        },
    );
    if let Some(s) = t.shards.get_mut(&shard) {
        s.nodes.push(id);
    }
    println!(">>> Storing the topology (epoch {})", t.epoch);
    call_strs(
        &existing,
        &["CLUSTER".into(), "SHARDAI-SETTOPOLOGY".into(), t.encode()],
        false,
    )?;
    println!("[OK] {new} joined cluster {cluster} (shard {shard}) as node {id:040x}");
    Ok(())
}

fn del_node(existing: String, node: String) -> Result<(), String> {
    let id = parse_node_name(&node).ok_or_else(|| format!("bad node id {node}"))?;
    let mut t = topology(&existing)?;
    let removed = t
        .nodes
        .get(&id)
        .ok_or_else(|| format!("node {id:040x} is not in the cluster"))?;
    let shard = removed.shard;
    if removed.client_addr == existing {
        return Err(format!(
            "{existing} is the node to remove: name another node of the cluster to remove it through"
        ));
    }
    let via = t.shards[&shard]
        .nodes
        .iter()
        .filter(|n| **n != id)
        .find_map(|n| t.nodes.get(n))
        .map(|n| n.client_addr.clone())
        .ok_or("cannot remove the last node of a shard")?;
    let id_s = id.to_string();
    call_leader(&via, &["CLUSTER", "SHARDAI-DELNODE", "data", &id_s])?;
    if let Err(e) = call_leader(&existing, &["CLUSTER", "SHARDAI-DELNODE", "meta", &id_s]) {
        eprintln!("[WARN] removing the node from the metadata group: {e}");
    }
    t.epoch += 1;
    t.nodes.remove(&id);
    if let Some(s) = t.shards.get_mut(&shard) {
        s.nodes.retain(|n| *n != id);
    }
    call_strs(
        &existing,
        &["CLUSTER".into(), "SHARDAI-SETTOPOLOGY".into(), t.encode()],
        false,
    )?;
    println!("[OK] node {id:040x} removed");
    Ok(())
}

fn info(node: String) -> Result<(), String> {
    let Some((cluster, me, leader, members)) = state(&node)? else {
        println!("{node} is not part of a cluster");
        return Ok(());
    };
    println!("cluster {cluster}, asked node {me:040x}; its shard's leader: {leader}");
    for (id, addr, bus, voter) in members {
        println!(
            "  {id:040x} {addr} bus {bus} {}",
            if voter { "voter" } else { "learner" }
        );
    }
    println!("all nodes (CLUSTER NODES):");
    print!("{}", Conn::open(&node)?.ok(&["CLUSTER", "NODES"])?.text());
    Ok(())
}

/// Runs `shardai cluster <args>`; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let cli = Cli::parse_from(args);
    if let Some(pass) = cli.pass.clone() {
        conn::set_credentials(cli.user.clone(), pass);
    }
    let r = match cli.cmd {
        Cmd::Create {
            nodes,
            replicas,
            timeout,
        } => create(nodes, replicas, timeout),
        Cmd::AddNode { new, existing } => add_node(new, existing),
        Cmd::DelNode { existing, node_id } => del_node(existing, node_id),
        Cmd::Info { node } => info(node),
        Cmd::AddShard { existing, new } => reshard::add_shard(existing, new),
        Cmd::Reshard {
            existing,
            from,
            to,
            slots,
            pipeline,
            parallel,
        } => reshard::reshard(existing, from, to, slots, pipeline, parallel),
        Cmd::Rebalance {
            existing,
            pipeline,
            parallel,
        } => reshard::rebalance(existing, pipeline, parallel),
        Cmd::StartLocal(a) => local::start_local(a),
        Cmd::Stop { dir, timeout } => local::stop(&dir, timeout),
        Cmd::Clean { dir } => local::clean(&dir),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("[ERR] {e}");
            1
        }
    }
}
