//! `shardai cluster start-local / stop / clean`: a whole cluster of local processes in one
//! folder, as Redis's `utils/create-cluster` (for development and tests on one machine).
//!
//! This module owns the folder: `<dir>/local-cluster.state` (the layout: ports, pids,
//! whether the cluster was formed, the extra server flags), `<dir>/cluster.secret` (the bus
//! secret every node proves), and one folder per node, `<dir>/<port>/`, holding the node's
//! data, its `shardai.log` (standard output and error) and `shardai.pid`. It starts the nodes
//! as background processes of the running binary, forms them with [`super::create`],
//! restarts a stopped cluster from its data, stops the nodes by pid (after checking that the
//! pid is still a node of this folder) and removes the folder. The decisions (the layout, the
//! state file, the nodes' flags, whether a pid is ours) are plain functions in [`layout`],
//! tested there.

mod layout;

use std::{
    fs,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::{fs::OpenOptionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use layout::{
    Layout, Node, SECRET_FILE, check_extra, gives_secret, is_node_cmdline, node_args, node_dir,
    plan, restart_conflict, tail,
};

use super::conn::{Conn, Val};

/// The state file's name inside --dir.
const STATE_FILE: &str = "local-cluster.state";

/// `shardai cluster start-local`.
#[derive(Debug, clap::Args)]
pub(super) struct StartLocal {
    /// Shards [default: 3].
    #[arg(long)]
    shards: Option<usize>,
    /// Replicas per shard (each shard is a Raft group of replicas + 1 nodes) [default: 2].
    #[arg(long)]
    replicas: Option<usize>,
    /// The cluster's folder: one data folder per node, their logs, the cluster's state.
    #[arg(long, default_value = "./cluster")]
    dir: PathBuf,
    /// Client port of the first node; the others follow it, and each bus port is its client
    /// port + 10000 [default: 7001].
    #[arg(long)]
    port: Option<u16>,
    /// Address every node listens on [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Serve Prometheus metrics, /livez and /readyz: the first node on this port, the others
    /// on the ports after it (printed as Prometheus scrape targets).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Seconds to wait for the nodes to answer and for the cluster to be complete.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// More server flags for every node, after `--` (for example `-- --maxmemory 1gb`);
    /// when restarting, they replace the ones the cluster was started with.
    #[arg(last = true)]
    extra: Vec<String>,
}

/// Whether `pid` is running as the node of `node_dir` (a zombie is not).
fn running(pid: u32, node_dir: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let args: Vec<String> = if Path::new("/proc/self/cmdline").exists() {
        match fs::read(format!("/proc/{pid}/cmdline")) {
            Ok(b) => b
                .split(|c| *c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
            Err(_) => return false,
        }
    } else {
        // No /proc (macOS): ps prints the arguments joined by spaces.
        let out = Command::new("ps")
            .args(["-ww", "-o", "command=", "-p", &pid.to_string()])
            .output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        text.unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    is_node_cmdline(&args, node_dir)
}

/// Whether the environment gives the bus secret (`SHARDAI_CLUSTER_SECRET[_FILE]`): the nodes
/// inherit it, and no generated secret is passed.
fn env_secret() -> bool {
    std::env::var_os("SHARDAI_CLUSTER_SECRET").is_some()
        || std::env::var_os("SHARDAI_CLUSTER_SECRET_FILE").is_some()
}

fn signal(pid: u32, sig: &str) -> Result<(), String> {
    // A process that exited meanwhile makes kill fail: fine, the caller checks what runs.
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(drop)
        .map_err(|e| format!("cannot run kill: {e}"))
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

fn read_layout(dir: &Path) -> Result<Layout, String> {
    let path = state_path(dir);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Layout::decode(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_layout(dir: &Path, l: &Layout) -> Result<(), String> {
    let path = state_path(dir);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    fs::write(&tmp, l.encode())
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `dir` made absolute, symbolic links resolved (it must exist).
fn canonical(dir: &Path) -> Result<PathBuf, String> {
    fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The folder of an existing local cluster and its layout.
fn open_cluster(dir: &Path) -> Result<(PathBuf, Layout), String> {
    if !dir.is_dir() {
        return Err(format!("{} does not exist", dir.display()));
    }
    let abs = canonical(dir)?;
    if !state_path(&abs).exists() {
        return Err(format!(
            "{} holds no cluster made by `shardai cluster start-local` (no {STATE_FILE})",
            dir.display()
        ));
    }
    let l = read_layout(&abs)?;
    Ok((abs, l))
}

/// The nodes of `l` whose recorded pid still runs as that node.
fn running_nodes(dir: &Path, l: &Layout) -> Vec<Node> {
    l.nodes
        .iter()
        .filter(|n| running(n.pid, &node_dir(dir, n)))
        .copied()
        .collect()
}

/// The client and bus ports of `l` that something already listens on.
fn ports_in_use(l: &Layout) -> Vec<String> {
    let mut used = Vec::new();
    for n in &l.nodes {
        let i = l.nodes.iter().position(|m| m.port == n.port).unwrap_or(0);
        let metrics = l.metrics_port(i).map(|p| (p, "metrics"));
        for (p, what) in [(n.port, "client"), (n.bus, "cluster bus")]
            .into_iter()
            .chain(metrics)
        {
            if TcpListener::bind(SocketAddr::new(l.bind, p)).is_err() {
                used.push(format!("{p} ({what} port of node {})", n.port));
            }
        }
    }
    used
}

fn write_secret(dir: &Path) -> Result<(), String> {
    let path = dir.join(SECRET_FILE);
    if path.exists() {
        return Ok(());
    }
    let mut b = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{hex}\n").as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Starts `node` in the background: its own process group (a Ctrl-C in the terminal does
/// not reach it), output appended to its log, its pid in `shardai.pid`.
fn spawn(exe: &Path, dir: &Path, l: &Layout, node: &Node) -> Result<Child, String> {
    let nd = node_dir(dir, node);
    fs::create_dir_all(&nd).map_err(|e| format!("cannot create {}: {e}", nd.display()))?;
    let log_path = nd.join("shardai.log");
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut child = Command::new(exe)
        .args(node_args(l, dir, node, env_secret()))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid_path = nd.join("shardai.pid");
    if let Err(e) = fs::write(&pid_path, format!("{}\n", child.id())) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("cannot write {}: {e}", pid_path.display()));
    }
    Ok(child)
}

fn log_tail(dir: &Path, node: &Node) -> String {
    let path = node_dir(dir, node).join("shardai.log");
    let text = fs::read(&path).map(|b| String::from_utf8_lossy(&b).into_owned());
    format!(
        "the end of {}:\n{}",
        path.display(),
        tail(&text.unwrap_or_default(), 20)
    )
}

/// Waits until `node` answers PING (or exits, or the deadline passes).
fn wait_ready(
    dir: &Path,
    l: &Layout,
    node: &Node,
    child: &mut Child,
    deadline: Instant,
) -> Result<(), String> {
    let addr = l.addr(node.port);
    let sock: SocketAddr = addr.parse().map_err(|_| format!("bad address {addr}"))?;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!(
                "the node on port {} exited while starting ({st}); {}",
                node.port,
                log_tail(dir, node)
            ));
        }
        if TcpStream::connect_timeout(&sock, Duration::from_millis(200)).is_ok() {
            match Conn::open(&addr).and_then(|mut c| c.call(&["PING"])) {
                Ok(Val::Err(e)) if e.starts_with("LOADING") => {}
                Ok(Val::Err(e)) if e.starts_with("NOAUTH") => {
                    return Err(format!(
                        "{addr} answers PING with: {e} (give the nodes' password with -a or \
                         SHARDAI_PASSWORD)"
                    ));
                }
                Ok(Val::Err(e)) => return Err(format!("{addr} answers PING with: {e}")),
                Ok(_) => return Ok(()),
                Err(e) if e.contains("WRONGPASS") || e.contains("AUTH") => return Err(e),
                Err(_) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the node on port {} does not answer PING in time; {}",
                node.port,
                log_tail(dir, node)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to every node of `nodes` still running as a node of `dir`, then SIGKILL to those
/// still running after `timeout`. Returns how many were signalled, and how many killed.
fn terminate(dir: &Path, nodes: &[Node], timeout: Duration) -> Result<(usize, usize), String> {
    let live: Vec<Node> = nodes
        .iter()
        .filter(|n| running(n.pid, &node_dir(dir, n)))
        .copied()
        .collect();
    for n in &live {
        signal(n.pid, "TERM")?;
    }
    let still = |deadline: Instant| loop {
        let left: Vec<Node> = live
            .iter()
            .filter(|n| running(n.pid, &node_dir(dir, n)))
            .copied()
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let killed = still(Instant::now() + timeout);
    for n in &killed {
        eprintln!(
            "[WARN] the node on port {} (pid {}) did not stop within {} s after SIGTERM: \
             sending SIGKILL",
            n.port,
            n.pid,
            timeout.as_secs()
        );
        signal(n.pid, "KILL")?;
    }
    let left = still(Instant::now() + Duration::from_secs(5));
    if let Some(n) = left.first() {
        return Err(format!(
            "the node on port {} (pid {}) still runs after SIGKILL",
            n.port, n.pid
        ));
    }
    Ok((live.len(), killed.len()))
}

/// Forgets the pids of `l`'s nodes (they have stopped).
fn forget_pids(dir: &Path, l: &mut Layout) -> Result<(), String> {
    for n in &mut l.nodes {
        n.pid = 0;
        let _ = fs::remove_file(node_dir(dir, n).join("shardai.pid"));
    }
    write_layout(dir, l)
}

/// `shardai cluster start-local`.
pub(super) fn start_local(a: StartLocal) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let existing = a.dir.is_dir() && state_path(&a.dir).exists();
    let (dir, mut l) = if existing {
        let (dir, mut l) = open_cluster(&a.dir)?;
        let live = running_nodes(&dir, &l);
        if !live.is_empty() {
            return Err(format!(
                "{} already holds a running cluster (nodes on ports {}): stop it with `{}`",
                a.dir.display(),
                live.iter()
                    .map(|n| n.port.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                command("stop", &a.dir)
            ));
        }
        if !l.formed {
            return Err(format!(
                "{} holds a cluster that was never formed (its start failed): remove it with \
                 `{}` and start again",
                a.dir.display(),
                command("clean", &a.dir)
            ));
        }
        if let Some(e) = restart_conflict(&l, a.shards, a.replicas, a.port, a.bind) {
            return Err(e);
        }
        if a.metrics_port.is_some() && a.metrics_port != l.metrics {
            return Err(format!(
                "--metrics-port differs from the stopped cluster's ({}): leave it out to \
                 restart it, or use another --dir",
                l.metrics.map_or("none".into(), |m| m.to_string())
            ));
        }
        if !a.extra.is_empty() {
            check_extra(&a.extra)?;
            l.extra = a.extra.clone();
            l.secret = l.secret && !gives_secret(&l.extra, false);
        }
        (dir, l)
    } else {
        if a.dir.exists()
            && fs::read_dir(&a.dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(format!(
                "{} exists and is not empty: give a new or empty --dir",
                a.dir.display()
            ));
        }
        let l = plan(
            a.shards.unwrap_or(3),
            a.replicas.unwrap_or(2),
            a.port.unwrap_or(7001),
            a.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            a.metrics_port,
            a.extra.clone(),
            env_secret(),
        )?;
        (PathBuf::new(), l)
    };
    let used = ports_in_use(&l);
    if !used.is_empty() {
        return Err(format!(
            "port(s) already in use: {}; pick another --port (or stop what listens there)",
            used.join(", ")
        ));
    }
    let dir = if existing {
        dir
    } else {
        fs::create_dir_all(&a.dir)
            .map_err(|e| format!("cannot create {}: {e}", a.dir.display()))?;
        let dir = canonical(&a.dir)?;
        if l.secret {
            write_secret(&dir)?;
        }
        write_layout(&dir, &l)?;
        dir
    };
    println!(
        ">>> {} {} nodes in {} ({} shard(s) of {} node(s); client ports {}, bus ports + 10000)",
        if existing { "Restarting" } else { "Starting" },
        l.nodes.len(),
        dir.display(),
        l.shards(),
        l.replicas + 1,
        l.ports()
    );
    let mut children: Vec<Child> = Vec::new();
    let r = run_nodes(&exe, &dir, &mut l, &mut children, existing, a.timeout);
    if let Err(e) = r {
        eprintln!("[ERR] {e}");
        eprintln!(">>> Stopping the nodes started");
        let stopped = terminate(&dir, &l.nodes, Duration::from_secs(10));
        for c in &mut children {
            let _ = c.try_wait();
        }
        stopped?;
        forget_pids(&dir, &mut l)?;
        return Err(format!(
            "the cluster did not start; its nodes' logs are in {}/<port>/shardai.log{}",
            dir.display(),
            if existing {
                String::new()
            } else {
                format!("; remove the folder with `{}`", command("clean", &a.dir))
            }
        ));
    }
    print_usage(&a.dir, &dir, &l);
    Ok(())
}

/// Starts every node of `l`, waits for them, then forms the cluster (or, `restart`, waits
/// until the formed cluster is complete again).
fn run_nodes(
    exe: &Path,
    dir: &Path,
    l: &mut Layout,
    children: &mut Vec<Child>,
    restart: bool,
    timeout: u64,
) -> Result<(), String> {
    for i in 0..l.nodes.len() {
        let child = spawn(exe, dir, l, &l.nodes[i])?;
        l.nodes[i].pid = child.id();
        children.push(child);
        write_layout(dir, l)?;
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    for (n, c) in l.nodes.iter().zip(children.iter_mut()) {
        wait_ready(dir, l, n, c, deadline)?;
    }
    let addrs: Vec<String> = l.nodes.iter().map(|n| l.addr(n.port)).collect();
    let formed = if restart {
        super::wait_for_ok(&addrs, Duration::from_secs(timeout))
    } else {
        super::create(addrs, l.replicas, timeout)
    };
    if let Err(e) = formed {
        let dead: Vec<String> = l
            .nodes
            .iter()
            .zip(children.iter_mut())
            .filter_map(|(n, c)| matches!(c.try_wait(), Ok(Some(_))).then_some((n, c)))
            .map(|(n, _)| format!("the node on port {} exited; {}", n.port, log_tail(dir, n)))
            .collect();
        return Err(if dead.is_empty() {
            e
        } else {
            format!("{e}\n{}", dead.join("\n"))
        });
    }
    l.formed = true;
    write_layout(dir, l)
}

/// `<this binary as invoked> cluster <sub> --dir <dir>`.
fn command(sub: &str, dir: &Path) -> String {
    let bin = std::env::args().next().unwrap_or_else(|| "shardai".into());
    format!("{bin} cluster {sub} --dir {}", dir.display())
}

fn print_usage(given: &Path, dir: &Path, l: &Layout) {
    let first = l.nodes[0].port;
    let host = l.host();
    let h = if host == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        String::new()
    } else {
        format!("-h {host} ")
    };
    println!("[OK] {} nodes up, cluster_state:ok on each", l.nodes.len());
    println!();
    println!("Connect:  redis-cli -c {h}-p {first}");
    println!("          python: redis.cluster.RedisCluster(host=\"{host}\", port={first})");
    println!("Logs:     {}/<port>/shardai.log", dir.display());
    if l.metrics.is_some() {
        let targets: Vec<String> = (0..l.nodes.len())
            .filter_map(|i| l.metrics_port(i))
            .map(|p| format!("\"{}\"", l.addr(p)))
            .collect();
        println!(
            "Metrics:  http://{}/metrics (also /livez, /readyz); Prometheus targets: [{}]",
            l.addr(l.metrics_port(0).unwrap_or(0)),
            targets.join(", ")
        );
    }
    println!(
        "Stop:     {}   (start-local again restarts it, data kept)",
        command("stop", given)
    );
    println!("Remove:   {}   (after stop)", command("clean", given));
}

/// `shardai cluster stop`.
pub(super) fn stop(dir: &Path, timeout: u64) -> Result<(), String> {
    let (abs, mut l) = open_cluster(dir)?;
    let live = running_nodes(&abs, &l);
    if live.is_empty() {
        forget_pids(&abs, &mut l)?;
        return Err(format!("no node of {} is running", dir.display()));
    }
    for n in l.nodes.iter().filter(|n| !live.contains(n)) {
        println!("[WARN] the node on port {} was not running", n.port);
    }
    println!(
        ">>> Stopping {} node(s) of {} (SIGTERM)",
        live.len(),
        abs.display()
    );
    let (stopped, killed) = terminate(&abs, &live, Duration::from_secs(timeout))?;
    forget_pids(&abs, &mut l)?;
    if killed == 0 {
        println!("[OK] {stopped} node(s) stopped");
    } else {
        println!("[OK] {stopped} node(s) stopped, {killed} of them with SIGKILL");
    }
    Ok(())
}

/// `shardai cluster clean`.
pub(super) fn clean(dir: &Path) -> Result<(), String> {
    let (abs, l) = open_cluster(dir)?;
    let live = running_nodes(&abs, &l);
    if !live.is_empty() {
        return Err(format!(
            "nodes of {} still run (ports {}): stop them first with `{}`",
            dir.display(),
            live.iter()
                .map(|n| n.port.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            command("stop", dir)
        ));
    }
    fs::remove_dir_all(&abs).map_err(|e| format!("cannot remove {}: {e}", abs.display()))?;
    println!("[OK] removed {}", abs.display());
    Ok(())
}
