//! The pure decisions of [`super`]: the layout of a local cluster (ports, bus ports), its
//! state file's text, each node's command line, which extra server flags are refused, whether
//! a restart's options fit the stopped cluster, and whether a process's arguments are those of
//! one of its nodes. No I/O here.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
};

/// The bus secret file's name inside --dir.
pub(super) const SECRET_FILE: &str = "cluster.secret";
/// Most nodes one `start-local` runs.
const MAX_NODES: usize = 128;
/// The flags `start-local` sets itself, refused after `--`.
const OWN_FLAGS: [&str; 6] = [
    "--port",
    "--dir",
    "--bind",
    "--cluster-port",
    "--cluster-enabled",
    "--metrics-port",
];

/// One node of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Node {
    pub(super) port: u16,
    pub(super) bus: u16,
    /// The process id last started (0: none).
    pub(super) pid: u32,
}

/// What the state file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub(super) bind: IpAddr,
    pub(super) replicas: usize,
    /// Whether `create` completed (a restart then needs no create).
    pub(super) formed: bool,
    /// Whether the nodes prove `<dir>/cluster.secret` on the bus.
    pub(super) secret: bool,
    /// The first node's --metrics-port (the others follow it), if the nodes serve metrics.
    pub(super) metrics: Option<u16>,
    pub(super) extra: Vec<String>,
    pub(super) nodes: Vec<Node>,
}

impl Layout {
    pub(super) fn shards(&self) -> usize {
        self.nodes.len() / (self.replicas + 1)
    }

    /// The address the nodes are reached at (and announce): `bind`, or loopback for an
    /// unspecified address.
    pub(super) fn host(&self) -> IpAddr {
        match self.bind {
            IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        }
    }

    /// Node `i`'s --metrics-port, if the nodes serve metrics.
    pub(super) fn metrics_port(&self, i: usize) -> Option<u16> {
        self.metrics.map(|m| m + i as u16)
    }

    pub(super) fn addr(&self, port: u16) -> String {
        SocketAddr::new(self.host(), port).to_string()
    }

    pub(super) fn ports(&self) -> String {
        match (self.nodes.first(), self.nodes.last()) {
            (Some(a), Some(b)) if a.port != b.port => format!("{}-{}", a.port, b.port),
            (Some(a), _) => a.port.to_string(),
            _ => String::new(),
        }
    }

    pub(super) fn encode(&self) -> String {
        let mut s = String::from(
            "# shardai cluster start-local: this folder's nodes (written by shardai).\nversion 1\n",
        );
        s += &format!("bind {}\nreplicas {}\n", self.bind, self.replicas);
        s += &format!("formed {}\n", yes_no(self.formed));
        s += &format!("secret {}\n", yes_no(self.secret));
        if let Some(m) = self.metrics {
            s += &format!("metrics {m}\n");
        }
        for e in &self.extra {
            s += &format!("extra {e}\n");
        }
        for n in &self.nodes {
            s += &format!("node {} {} {}\n", n.port, n.bus, n.pid);
        }
        s
    }

    pub(super) fn decode(text: &str) -> Result<Layout, String> {
        let mut l = Layout {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            replicas: 0,
            formed: false,
            secret: false,
            metrics: None,
            extra: Vec::new(),
            nodes: Vec::new(),
        };
        let mut version = false;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            let bad = || format!("bad line `{line}`");
            match k {
                "version" if v == "1" => version = true,
                "version" => return Err(format!("unknown version {v}")),
                "bind" => l.bind = v.parse().map_err(|_| bad())?,
                "replicas" => l.replicas = v.parse().map_err(|_| bad())?,
                "formed" => l.formed = v == "yes",
                "secret" => l.secret = v == "yes",
                "metrics" => l.metrics = Some(v.parse().map_err(|_| bad())?),
                "extra" => l.extra.push(v.to_string()),
                "node" => {
                    let f: Vec<&str> = v.split(' ').collect();
                    let [port, bus, pid] = f[..] else {
                        return Err(bad());
                    };
                    l.nodes.push(Node {
                        port: port.parse().map_err(|_| bad())?,
                        bus: bus.parse().map_err(|_| bad())?,
                        pid: pid.parse().map_err(|_| bad())?,
                    });
                }
                _ => return Err(bad()),
            }
        }
        if !version || l.nodes.is_empty() || !l.nodes.len().is_multiple_of(l.replicas + 1) {
            return Err("incomplete".into());
        }
        Ok(l)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The layout of a new cluster: `shards × (replicas + 1)` nodes on consecutive client ports
/// from `port`, each bus port its client port + 10000, and, with `metrics`, consecutive
/// metrics ports from it.
pub(super) fn plan(
    shards: usize,
    replicas: usize,
    port: u16,
    bind: IpAddr,
    metrics: Option<u16>,
    extra: Vec<String>,
    env_secret: bool,
) -> Result<Layout, String> {
    if shards == 0 {
        return Err("--shards must be at least 1".into());
    }
    let n = shards
        .checked_mul(replicas + 1)
        .filter(|n| *n <= MAX_NODES)
        .ok_or_else(|| format!("at most {MAX_NODES} nodes (shards × (replicas + 1))"))?;
    if port == 0 || usize::from(port) + n - 1 + 10_000 > usize::from(u16::MAX) {
        return Err(format!(
            "--port {port}: the {n} client ports and their bus ports (+ 10000) must be ports \
             (1 to 65535)"
        ));
    }
    if let Some(m) = metrics {
        let (m, p) = (usize::from(m), usize::from(port));
        let overlaps = |a: usize, b: usize| a < b + n && b < a + n;
        if m == 0 || m + n - 1 > usize::from(u16::MAX) || overlaps(m, p) || overlaps(m, p + 10_000)
        {
            return Err(format!(
                "--metrics-port {m}: the {n} metrics ports must be ports (1 to 65535) apart \
                 from the client and bus ports"
            ));
        }
    }
    check_extra(&extra)?;
    let nodes = (0..n as u16)
        .map(|i| Node {
            port: port + i,
            bus: port + i + 10_000,
            pid: 0,
        })
        .collect();
    Ok(Layout {
        bind,
        replicas,
        formed: false,
        secret: !gives_secret(&extra, env_secret),
        metrics,
        extra,
        nodes,
    })
}

/// Refuses extra server flags that would undo the layout, or that the state file cannot hold.
pub(super) fn check_extra(extra: &[String]) -> Result<(), String> {
    for a in extra {
        if let Some(f) = OWN_FLAGS
            .iter()
            .find(|f| a == *f || a.starts_with(&format!("{f}=")))
        {
            return Err(format!(
                "{f} is set by start-local for each node: give --port/--bind/--dir before `--`"
            ));
        }
        if a.contains('\n') {
            return Err("a server flag holds a line break".into());
        }
    }
    Ok(())
}

/// Whether the extra flags, or the environment (`env_secret`: a `SHARDAI_CLUSTER_SECRET*`
/// variable is set), give the bus secret themselves: then no generated secret is passed.
pub(super) fn gives_secret(extra: &[String], env_secret: bool) -> bool {
    env_secret || extra.iter().any(|a| a.starts_with("--cluster-secret"))
}

/// Why a restart with these explicitly given options cannot reuse `l`, if it cannot.
pub(super) fn restart_conflict(
    l: &Layout,
    shards: Option<usize>,
    replicas: Option<usize>,
    port: Option<u16>,
    bind: Option<IpAddr>,
) -> Option<String> {
    let first = l.nodes[0].port;
    let differs = [
        (shards.is_some_and(|s| s != l.shards()), "--shards"),
        (replicas.is_some_and(|r| r != l.replicas), "--replicas"),
        (port.is_some_and(|p| p != first), "--port"),
        (bind.is_some_and(|b| b != l.bind), "--bind"),
    ];
    let what: Vec<&str> = differs.iter().filter(|d| d.0).map(|d| d.1).collect();
    (!what.is_empty()).then(|| {
        format!(
            "{} differ from the stopped cluster in this folder ({} shards of {} nodes, ports {}, \
             bind {}): leave them out to restart it, or use another --dir",
            what.join(", "),
            l.shards(),
            l.replicas + 1,
            l.ports(),
            l.bind
        )
    })
}

/// The server command line of `node` (after the binary); `env_secret` as for
/// [`gives_secret`].
pub(super) fn node_args(l: &Layout, dir: &Path, node: &Node, env_secret: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--port".into(),
        node.port.to_string(),
        "--bind".into(),
        l.bind.to_string(),
        "--dir".into(),
        node_dir(dir, node).display().to_string(),
        "--cluster-enabled".into(),
        "yes".into(),
        "--cluster-port".into(),
        node.bus.to_string(),
    ];
    if l.secret && !gives_secret(&l.extra, env_secret) {
        a.push("--cluster-secret-file".into());
        a.push(dir.join(SECRET_FILE).display().to_string());
    }
    if let Some(i) = l.nodes.iter().position(|n| n.port == node.port)
        && let Some(m) = l.metrics_port(i)
    {
        a.push("--metrics-port".into());
        a.push(m.to_string());
    }
    a.extend(l.extra.iter().cloned());
    a
}

pub(super) fn node_dir(dir: &Path, node: &Node) -> PathBuf {
    dir.join(node.port.to_string())
}

/// Whether a process's arguments are those of a node whose data folder is `node_dir`.
pub(super) fn is_node_cmdline(args: &[String], node_dir: &Path) -> bool {
    let want = node_dir.display().to_string();
    args.windows(2).any(|w| w[0] == "--dir" && w[1] == want)
        || args.iter().any(|a| a.strip_prefix("--dir=") == Some(&want))
}

/// The last `lines` lines of `text`.
pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    #[test]
    fn plan_lays_out_consecutive_ports() {
        let l = plan(3, 2, 7001, lo(), None, Vec::new(), false).unwrap();
        assert_eq!(l.nodes.len(), 9);
        assert_eq!(l.shards(), 3);
        assert_eq!(
            l.nodes[0],
            Node {
                port: 7001,
                bus: 17001,
                pid: 0
            }
        );
        assert_eq!(l.nodes[8].port, 7009);
        assert_eq!(l.nodes[8].bus, 17009);
        assert_eq!(l.ports(), "7001-7009");
        assert!(!l.formed);
        let one = plan(1, 0, 7001, lo(), None, Vec::new(), false).unwrap();
        assert_eq!(one.ports(), "7001");
    }

    #[test]
    fn metrics_ports_follow_the_first_and_stay_apart() {
        let l = plan(3, 2, 7001, lo(), Some(9101), Vec::new(), false).unwrap();
        assert_eq!(l.metrics_port(8), Some(9109));
        let args = node_args(&l, Path::new("/c"), &l.nodes[8], false);
        assert!(args.windows(2).any(|w| w == ["--metrics-port", "9109"]));
        assert_eq!(Layout::decode(&l.encode()).unwrap(), l);
        assert!(plan(3, 2, 7001, lo(), Some(7009), Vec::new(), false).is_err());
        assert!(plan(3, 2, 7001, lo(), Some(6993), Vec::new(), false).is_err());
        assert!(plan(3, 2, 7001, lo(), Some(6992), Vec::new(), false).is_ok());
        assert!(plan(3, 2, 7001, lo(), Some(17005), Vec::new(), false).is_err());
        assert!(plan(3, 2, 7001, lo(), Some(65530), Vec::new(), false).is_err());
    }

    #[test]
    fn plan_refuses_bad_layouts() {
        assert!(plan(0, 2, 7001, lo(), None, Vec::new(), false).is_err());
        assert!(plan(100, 2, 7001, lo(), None, Vec::new(), false).is_err());
        assert!(plan(3, 2, 0, lo(), None, Vec::new(), false).is_err());
        // The last bus port would be 55536 + 10000 > 65535.
        assert!(plan(1, 0, 55_536, lo(), None, Vec::new(), false).is_err());
        assert!(plan(1, 0, 55_535, lo(), None, Vec::new(), false).is_ok());
        assert!(plan(3, 0, 55_534, lo(), None, Vec::new(), false).is_err());
    }

    #[test]
    fn extra_flags_cannot_undo_the_layout() {
        let e = |v: &[&str]| check_extra(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(e(&["--maxmemory", "1gb"]).is_ok());
        assert!(e(&["--port", "1"]).is_err());
        assert!(e(&["--dir=/x"]).is_err());
        assert!(e(&["--cluster-enabled", "no"]).is_err());
        assert!(e(&["--cluster-port", "9"]).is_err());
        // Not a prefix match on other flags.
        assert!(e(&["--portable"]).is_ok());
        assert!(e(&["a\nb"]).is_err());
    }

    #[test]
    fn state_round_trips() {
        let mut l = plan(
            2,
            1,
            30001,
            lo(),
            None,
            vec!["--maxmemory".into(), "1 gb".into(), String::new()],
            false,
        )
        .unwrap();
        l.formed = true;
        l.nodes[2].pid = 4242;
        let back = Layout::decode(&l.encode()).unwrap();
        assert_eq!(back, l);
        let v6 = plan(1, 0, 7001, "::".parse().unwrap(), None, Vec::new(), false).unwrap();
        assert_eq!(Layout::decode(&v6.encode()).unwrap(), v6);
        assert!(Layout::decode("").is_err());
        assert!(Layout::decode("version 2\n").is_err());
        assert!(Layout::decode("version 1\nreplicas 1\nnode 1 10001 0\n").is_err());
        assert!(Layout::decode("version 1\nnode 1 x 0\n").is_err());
    }

    #[test]
    fn addresses_avoid_unspecified_binds() {
        let l = plan(
            1,
            0,
            7001,
            "0.0.0.0".parse().unwrap(),
            None,
            Vec::new(),
            false,
        )
        .unwrap();
        assert_eq!(l.addr(7001), "127.0.0.1:7001");
        let l = plan(1, 0, 7001, "::".parse().unwrap(), None, Vec::new(), false).unwrap();
        assert_eq!(l.addr(7001), "[::1]:7001");
        let l = plan(
            1,
            0,
            7001,
            "10.0.0.5".parse().unwrap(),
            None,
            Vec::new(),
            false,
        )
        .unwrap();
        assert_eq!(l.addr(7002), "10.0.0.5:7002");
    }

    #[test]
    fn node_args_name_the_nodes_folder_and_bus() {
        let extra = vec!["--maxmemory".into(), "1gb".into()];
        let l = plan(1, 2, 7001, lo(), None, extra, false).unwrap();
        assert!(l.secret);
        let dir = Path::new("/tmp/c");
        let a = node_args(&l, dir, &l.nodes[1], false);
        assert_eq!(
            a.join(" "),
            "--port 7002 --bind 127.0.0.1 --dir /tmp/c/7002 --cluster-enabled yes \
             --cluster-port 17002 --cluster-secret-file /tmp/c/cluster.secret --maxmemory 1gb"
        );
        // A secret in the environment wins: no generated one.
        let env = node_args(&l, dir, &l.nodes[1], true);
        assert!(!env.contains(&"--cluster-secret-file".into()));
        assert!(
            !plan(1, 0, 7001, lo(), None, Vec::new(), true)
                .unwrap()
                .secret
        );
        assert!(is_node_cmdline(&a, Path::new("/tmp/c/7002")));
        assert!(!is_node_cmdline(&a, Path::new("/tmp/c/7001")));
        assert!(!is_node_cmdline(&a, Path::new("/tmp/c")));
        let mut l2 = l.clone();
        l2.extra = vec!["--cluster-secret".into(), "s".into()];
        let a2 = node_args(&l2, dir, &l2.nodes[0], false);
        assert!(!a2.contains(&"--cluster-secret-file".into()));
        let l3 = plan(1, 0, 7001, lo(), None, l2.extra.clone(), false).unwrap();
        assert!(!l3.secret);
    }

    #[test]
    fn cmdline_match_is_exact() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let d = Path::new("/x/c/7001");
        assert!(is_node_cmdline(&v(&["shardai", "--dir", "/x/c/7001"]), d));
        assert!(is_node_cmdline(&v(&["shardai", "--dir=/x/c/7001"]), d));
        assert!(!is_node_cmdline(&v(&["vim", "/x/c/7001"]), d));
        assert!(!is_node_cmdline(&v(&["shardai", "--dir", "/x/c/70011"]), d));
        assert!(!is_node_cmdline(&[], d));
    }

    #[test]
    fn restart_keeps_the_layout() {
        let l = plan(3, 2, 7001, lo(), None, Vec::new(), false).unwrap();
        assert!(restart_conflict(&l, None, None, None, None).is_none());
        assert!(restart_conflict(&l, Some(3), Some(2), Some(7001), Some(lo())).is_none());
        let e = restart_conflict(&l, Some(4), None, Some(8000), None).unwrap();
        assert!(e.starts_with("--shards, --port differ"), "{e}");
        assert!(e.contains("ports 7001-7009"), "{e}");
        let e = restart_conflict(&l, None, Some(1), None, Some("0.0.0.0".parse().unwrap()));
        assert!(e.unwrap().starts_with("--replicas, --bind differ"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }
}
