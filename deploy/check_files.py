"""Checks of deploy/ that no off-the-shelf tool makes (deploy/check runs it):

- every shardai_* metric name the Grafana dashboard and the alert rules (and their tests)
  use is one the server exports, as listed in prometheus/metrics.txt (a histogram's
  _bucket/_sum/_count series count as its name);
- the dashboard is valid JSON of the shape Grafana imports: unique panel ids, each query
  with an expression and a refId, the data source a variable, panels within the grid;
- every shardai option (`--name` flags and SHARDAI_* variables) the systemd unit, its
  example config, the compose file and the Kubernetes manifests give exists in
  `shardai --help` of the binary given as the first argument;
- the three Kubernetes StatefulSets differ only in their shard;
- prometheus.yml scrapes exactly the compose file's nodes, at their metrics port.

Usage: python3 deploy/check_files.py SHARDAI_BINARY
"""

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
METRIC = re.compile(r"(?<![A-Za-z0-9_:])shardai_[A-Za-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# SHARDAI_* variables of these files that are not server options.
NOT_OPTIONS = {"SHARDAI_IMAGE", "SHARDAI_USER", "SHARDAI_PASSWORD", "SHARDAI_BIN"}

failures = []


def fail(where, what):
    failures.append(f"{where}: {what}")


def exported_metrics():
    path = DEPLOY / "prometheus" / "metrics.txt"
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    for n in names:
        if not re.fullmatch(r"shardai_[a-z0-9_]+", n):
            fail(path.name, f"{n!r} is not a metric name")
    if len(set(names)) != len(names):
        fail(path.name, "a name is listed twice")
    return set(names)


def check_metric_names(where, text, exported):
    used = set(METRIC.findall(text))
    for name in sorted(used):
        base = name
        for s in HISTOGRAM_SUFFIXES:
            if name.endswith(s) and name[: -len(s)] in exported:
                base = name[: -len(s)]
        if base not in exported:
            fail(where, f"uses {name}, which prometheus/metrics.txt does not list")
    return used


def check_dashboard(exported):
    path = DEPLOY / "grafana" / "shardai-dashboard.json"
    where = str(path.relative_to(DEPLOY))
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        fail(where, f"not valid JSON: {e}")
        return set()
    for key in ("title", "uid", "panels", "schemaVersion"):
        if key not in dash:
            fail(where, f"no {key!r}")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        fail(where, "no `datasource` variable")
    exprs = []
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        exprs.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    ids = set()
    cells = {}
    for p in dash.get("panels", []):
        title = p.get("title", "?")
        pid = p.get("id")
        if pid in ids:
            fail(where, f"panel id {pid} used twice")
        ids.add(pid)
        g = p.get("gridPos", {})
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or x < 0 or w < 1 or x + w > 24 or h < 1:
            fail(where, f"panel {title!r}: gridPos {g} is outside the 24-column grid")
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        fail(where, f"panel {title!r} overlaps {cells[(cx, cy)]!r}")
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail(where, f"panel {title!r}: the data source is not ${{datasource}}")
        targets = p.get("targets") or []
        if not targets:
            fail(where, f"panel {title!r} has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            fail(where, f"panel {title!r}: refIds missing or repeated")
        for t in targets:
            if not t.get("expr", "").strip():
                fail(where, f"panel {title!r}: a query without an expression")
            exprs.append(t.get("expr", ""))
    return check_metric_names(where, "\n".join(exprs), exported)


def check_rules(exported):
    used = set()
    for name in ("alerts.yml", "alerts.test.yml"):
        path = DEPLOY / "prometheus" / name
        doc = yaml.safe_load(path.read_text())
        if name == "alerts.yml":
            text = "\n".join(
                r.get("expr", "") for g in doc["groups"] for r in g["rules"]
            )
        else:
            text = "\n".join(
                s["series"] for t in doc["tests"] for s in t.get("input_series", [])
            )
        used |= check_metric_names(f"prometheus/{name}", text, exported)
    return used


def server_options(binary):
    out = subprocess.run(
        [binary, "--help"], capture_output=True, text=True, check=True
    ).stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", out, re.M))
    envs = set(re.findall(r"\[env: (SHARDAI_[A-Z0-9_]+)", out))
    return flags, envs


def check_options(binary):
    flags, envs = server_options(binary)

    def flag(where, name):
        if name not in flags:
            fail(where, f"--{name} is not an option of `shardai --help`")

    def env(where, name):
        if name not in envs and name not in NOT_OPTIONS:
            fail(where, f"{name} is not a variable of `shardai --help`")

    unit = (DEPLOY / "systemd" / "shardai.service").read_text()
    for line in unit.splitlines():
        if line.startswith("ExecStart="):
            for f in re.findall(r"\s--([a-z0-9-]+)", line):
                flag("systemd/shardai.service", f)
    for e in re.findall(r"\b(SHARDAI_[A-Z0-9_]+)=", unit):
        env("systemd/shardai.service", e)

    conf = DEPLOY / "systemd" / "shardai.conf.example"
    for line in conf.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            flag(conf.name, line.split()[0])

    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    for name, svc in compose["services"].items():
        if name.startswith("shardai-"):
            for arg in svc.get("command", []):
                if arg.startswith("--"):
                    flag(f"compose.yaml {name}", arg[2:].split("=", 1)[0])
            for e in svc.get("environment", {}):
                env(f"compose.yaml {name}", e)

    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("StatefulSet", "Job"):
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for a in c.get("args", []):
                    for f in re.findall(r"\sshardai((?:\s+--[a-z0-9-]+\s+\S+)+)", " " + a):
                        for name in re.findall(r"--([a-z0-9-]+)", f):
                            flag(f"kubernetes/{path.name}", name)
                for e in c.get("env", []):
                    if e["name"].startswith("SHARDAI_"):
                        env(f"kubernetes/{path.name}", e["name"])


def check_statefulsets():
    path = DEPLOY / "kubernetes" / "20-statefulsets.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    sets = [d for d in docs if d.get("kind") == "StatefulSet"]
    if len(sets) != 3:
        fail(path.name, f"{len(sets)} StatefulSets, expected 3 (one per shard)")
        return

    def normalized(d, shard, base):
        text = json.dumps(d).replace(f"shardai-{shard}", "shardai-SHARD")
        text = text.replace(f'"{shard}"', '"SHARD"')
        d = json.loads(text)
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"] == "SHARD_BASE":
                    if e.get("value") != str(base):
                        fail(path.name, f"shardai-{shard}: SHARD_BASE is not {base}")
                    e["value"] = "BASE"
        return d

    first = normalized(copy.deepcopy(sets[0]), "s0", 0)
    for i, d in enumerate(sets[1:], start=1):
        if normalized(copy.deepcopy(d), f"s{i}", 3 * i) != first:
            fail(path.name, f"shardai-s{i} differs from shardai-s0 beyond its shard")


def check_scrape_targets():
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    expected = set()
    for name, svc in compose["services"].items():
        if not name.startswith("shardai-"):
            continue
        port = next(
            (a.split("=", 1)[1] for a in svc["command"] if a.startswith("--metrics-port=")),
            None,
        )
        if port is None:
            fail("docker/compose.yaml", f"{name} has no --metrics-port")
        expected.add(f"{name}:{port}")
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t
        for job in prom["scrape_configs"]
        if job["job_name"] == "shardai"
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    if targets != expected:
        fail(
            "prometheus/prometheus.yml",
            f"targets {sorted(targets)} are not compose.yaml's nodes {sorted(expected)}",
        )


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    exported = exported_metrics()
    shown = check_dashboard(exported)
    alerted = check_rules(exported)
    check_options(sys.argv[1])
    check_statefulsets()
    check_scrape_targets()
    if failures:
        for f in failures:
            print(f"FAIL {f}")
        sys.exit(1)
    print(
        f"ok: {len(shown)} metric names in the dashboard and {len(alerted)} in the alerts,"
        f" all among the {len(exported)} of metrics.txt; options, StatefulSets and scrape"
        " targets consistent"
    )


if __name__ == "__main__":
    main()
