//! The run's network: one Linux network namespace per node, each with a veth link to a
//! bridge in the harness's namespace that carries only the run's private /24 (nodes have no
//! other route, so nothing leaves the namespaces the run made), and partitions made in the
//! kernel with blackhole routes inside the namespaces (no packet filter needed: the sender's
//! routing discards the packets, so new connections fail at once and established ones
//! stall). Everything is removed when the [`Net`] drops, also on a panic.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// One node's namespace and address.
#[derive(Clone, Debug)]
pub(crate) struct Host {
    pub(crate) ns: String,
    pub(crate) ip: String,
}

/// The namespaces, links and bridge of one run.
pub(crate) struct Net {
    bridge: String,
    /// The harness's address on the bridge (its clients come from here).
    pub(crate) gateway: String,
    pub(crate) hosts: Vec<Host>,
}

/// Runs `ip` with `args`; its error output becomes the error.
pub(crate) fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Net {
    /// `n` namespaces on a new bridge. The names carry `tag` (unique per run: the harness's
    /// PID), so that runs and leftovers of a killed run never collide.
    pub(crate) fn create(n: usize, tag: u32) -> Result<Net> {
        let prefix = format!("sj{}", tag % 100_000);
        // 10.X.Y.0/24 from the tag, away from common private ranges' low subnets.
        let subnet = format!("10.{}.{}", 200 + (tag / 250) % 50, tag % 250);
        let mut net = Net {
            bridge: format!("{prefix}br"),
            gateway: format!("{subnet}.254"),
            hosts: Vec::new(),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"])
            .context("creating the run's bridge (the harness needs root)")?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway),
            "dev",
            &net.bridge,
        ])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        for i in 0..n {
            let host = Host {
                ns: format!("{prefix}n{i}"),
                ip: format!("{subnet}.{}", i + 1),
            };
            let veth = format!("{prefix}v{i}");
            ip(&["netns", "add", &host.ns])?;
            net.hosts.push(host.clone());
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &host.ns,
            ])?;
            ip(&["link", "set", &veth, "master", &net.bridge, "up"])?;
            ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &format!("{}/24", host.ip),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &host.ns, "link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    /// Discards every packet node `a` sends to node `b` (one direction).
    fn drop_to(&self, a: usize, b: usize) -> Result<()> {
        let dst = format!("{}/32", self.hosts[b].ip);
        ip(&["-n", &self.hosts[a].ns, "route", "add", "blackhole", &dst])
    }

    /// Cuts every link between a node of `side` and a node outside it, both ways; links
    /// inside `side` and inside the rest, and every node's link to the harness, stay.
    pub(crate) fn isolate(&self, side: &[usize]) -> Result<()> {
        let rest: Vec<usize> = (0..self.hosts.len())
            .filter(|i| !side.contains(i))
            .collect();
        self.cut(side, &rest)
    }

    /// Cuts every link between a node of `a` and a node of `b`, both ways.
    pub(crate) fn cut(&self, a: &[usize], b: &[usize]) -> Result<()> {
        for &x in a {
            for &y in b {
                if x != y {
                    self.drop_to(x, y)?;
                    self.drop_to(y, x)?;
                }
            }
        }
        Ok(())
    }

    /// Removes every cut.
    pub(crate) fn heal(&self) -> Result<()> {
        for h in &self.hosts {
            ip(&["-n", &h.ns, "route", "flush", "type", "blackhole"])?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the other end.
        for h in &self.hosts {
            let _ = ip(&["netns", "del", &h.ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
