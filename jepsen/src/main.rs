//! shardai-jepsen: drives a real multi-process shardai cluster, each node in its own
//! network namespace, through partitions, kills, pauses, clock skew, membership changes and
//! reshards while client workers record every operation, then checks the history: per-key
//! linearizability of registers, no lost or phantom acknowledged adds, model outputs on
//! every replica, follower reads that only return written values, and availability and
//! recovery per fault. Needs root (namespaces, links, routes).

mod checker;
mod client;
mod db;
mod history;
mod models;
mod nemesis;
mod net;
mod report;
mod run;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::nemesis::Fault;
use crate::run::Setup;

/// Runs shardai clusters under faults and checks what their clients saw.
///
/// Each run starts fresh nodes, each in a network namespace of its own on a bridge the run
/// creates (needs root), forms them into a cluster, runs register, set, model and follower-read
/// workers while the nemesis injects faults with heal phases between them, heals, lets the
/// cluster recover, reads back every add and model output and checks the history. It prints one line per
/// run and a summary table, and writes each run's picture (run.svg), fault schedule and,
/// for a failed run, its history and each failing key's smallest failing history under
/// --out. The exit status is 1 when any run fails a check.
#[derive(Parser, Debug)]
#[command(name = "shardai-jepsen", version)]
struct Args {
    /// Number of runs.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Seconds of faults per run (a 10 s recovery period follows).
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Faults to inject: all, none, a family (partition, kill, pause, clock) or single
    /// faults (partition-leader, partition-halves, partition-bridge, partition-random,
    /// kill, kill-leader, pause, pause-leader, clock-skew, membership, reshard),
    /// comma-separated. clock-skew needs Debian's faketime package; reshard needs two
    /// shards or more (--nodes 6 --replicas 2) and is left out, with a warning, with one.
    /// With several shards each leader fault takes one shard's leader, at random.
    #[arg(long, default_value = "all", value_parser = Fault::parse_list)]
    nemesis: std::vec::Vec<Fault>,
    /// Seed of the first run's fault schedule and workers (run i uses seed + i); default:
    /// random. A seed repeats a schedule.
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Replicas per shard (shards of replicas + 1 nodes); default: one shard of all nodes.
    #[arg(long)]
    replicas: Option<usize>,
    /// Register workers (two adders, two follower readers and two model workers run
    /// besides).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Hold READONLY follower reads to linearizability. They do not promise it: under
    /// partitions a run in this mode must report violations (a check of the checker).
    #[arg(long)]
    follower_reads_linearizable: bool,
    /// The shardai binary (default: target/release/shardai of this workspace, or $SHARDAI_BIN).
    #[arg(long, env = "SHARDAI_BIN")]
    bin: Option<PathBuf>,
    /// Folder for the runs' pictures, schedules, logs and failing histories.
    #[arg(long, default_value = "target/jepsen")]
    out: PathBuf,
    /// More flags for every node (repeat: --server-arg=--raft-election-timeout-ms --server-arg=300).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
    /// Keep the nodes' data folders.
    #[arg(long)]
    keep: bool,
}

// Two threads are enough for the workers; the nodes are separate processes.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("shardai-jepsen: cannot watch SIGTERM: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        r = sweep(args) => match r {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("shardai-jepsen: {e:#}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => interrupted(),
        _ = term.recv() => interrupted(),
    }
}

/// After Ctrl-C or SIGTERM: leaving `select!` dropped the sweep, which killed the nodes and
/// removed the namespaces and bridge.
fn interrupted() -> ExitCode {
    eprintln!("shardai-jepsen: interrupted; nodes stopped and namespaces removed");
    ExitCode::from(130)
}

async fn sweep(args: Args) -> Result<bool> {
    let replicas = args.replicas.unwrap_or(args.nodes.saturating_sub(1));
    if args.nodes < 3 || !args.nodes.is_multiple_of(replicas + 1) {
        anyhow::bail!("--nodes must be at least 3 and a multiple of --replicas + 1");
    }
    let bin = args.bin.clone().unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/shardai")
    });
    if !bin.exists() {
        anyhow::bail!(
            "no shardai binary at {} (cargo build --release -p shardai-node, or --bin)",
            bin.display()
        );
    }
    let mut faults = args.nemesis.clone();
    if args.nodes / (replicas + 1) < 2 && faults.contains(&Fault::Reshard) {
        faults.retain(|f| *f != Fault::Reshard);
        if faults.is_empty() {
            anyhow::bail!("reshard needs two shards or more (--nodes 6 --replicas 2)");
        }
        eprintln!("shardai-jepsen: one shard: reshard left out (it needs --nodes 6 --replicas 2)");
    }
    let seed = args.seed.unwrap_or_else(|| rand::random::<u32>() as u64);
    let setup = Setup {
        bin,
        out: args.out.clone(),
        nodes: args.nodes,
        replicas,
        time: Duration::from_secs(args.time),
        faults,
        workers: args.workers,
        follower_reads_linearizable: args.follower_reads_linearizable,
        server_args: args.server_args.clone(),
        keep: args.keep,
    };
    let mut results = Vec::new();
    let mut deck = Vec::new();
    for i in 0..args.runs {
        // A run that cannot go on fails; the sweep goes on with the next.
        let r = match run::run(&setup, i, seed + i as u64, &mut deck).await {
            Ok(r) => r,
            Err(e) => report::RunResult {
                run: i,
                seed: seed + i as u64,
                error: Some(format!("{e:#}")),
                ..Default::default()
            },
        };
        println!("{}", r.line());
        results.push(r);
    }
    let table = report::summary(&results);
    println!("\n{table}");
    std::fs::write(args.out.join("summary.md"), &table)?;
    Ok(results.iter().all(|r| r.passed()))
}
