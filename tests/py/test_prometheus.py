"""A real Prometheus (Debian's package) scrapes a three-node shard through --metrics-port,
evaluates deploy/prometheus/alerts.yml, and answers every query of the Grafana dashboard;
/readyz follows the node's view of its shard (not ready when cut off from its leader,
ready again once it has caught up)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

from harness import ROOT, free_port
from shardcluster import Node, cli
from test_models_onnx import matmul_model
from test_operations import http

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture(scope="module")
def shard():
    nodes = []
    try:
        for _ in range(3):
            port = free_port()
            n = Node(["--metrics-port", str(port)])
            n.metrics = port
            nodes.append(n)
        cli("create", *[n.addr for n in nodes], "--replicas", "2")
        yield nodes
    finally:
        for n in nodes:
            try:
                os.kill(n.proc.pid, signal.SIGCONT)
            except (ProcessLookupError, AttributeError):
                pass
            n.kill()
            shutil.rmtree(n.dir, ignore_errors=True)


def leader(nodes, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        for n in nodes:
            try:
                if n.client(socket_timeout=2).info("replication").get("raft_state") == "leader":
                    return n
            except Exception:
                pass
        time.sleep(0.05)
    raise TimeoutError("no leader")


def wait_ready(n, want, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        status, body = http(n.metrics, "/readyz")
        if (status == 200) == want:
            return body
        time.sleep(0.1)
    raise TimeoutError(f"{n.addr}: /readyz did not become {'ready' if want else 'unready'}: {body}")


class Prometheus:
    """A prometheus process scraping `targets` every second, with `rules`."""

    def __init__(self, targets, rules):
        self.dir = tempfile.mkdtemp(prefix="shardai-prometheus-")
        shutil.copy(rules, os.path.join(self.dir, "alerts.yml"))
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [{"job_name": "shardai",
                                "static_configs": [{"targets": targets}]}],
        }
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir}/prometheus.yml",
             f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.time() + 60
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log_text())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not start:\n" + self.log_text())

    def log_text(self):
        with open(os.path.join(self.dir, "prometheus.log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def query(self, expr):
        r = self.api("query", query=expr)
        assert r["status"] == "success", (expr, r)
        return r["data"]["result"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def exported_names(text):
    """Metric names of an OpenMetrics exposition, as Prometheus stores them."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add({"counter": name + "_total", "info": name + "_info"}.get(kind, name))
    return names


def dashboard_queries():
    with open(ROOT / "deploy/grafana/shardai-dashboard.json") as f:
        d = json.load(f)
    for p in d["panels"]:
        for t in p.get("targets", []):
            yield (t["expr"].replace("$instance", ".*").replace("$__rate_interval", "30s")
                   .replace("$__range", "5m"))


@pytest.mark.skipif(PROMETHEUS is None, reason="needs Debian's prometheus (scripts/setup)")
def test_prometheus_scrapes_a_shard(shard):
    lead = leader(shard)
    r = lead.client()
    for i in range(50):
        r.set(f"k{i}", i)
        r.get(f"k{i}")
    r.execute_command("AI.MODELSTORE", "{m}mm", "ONNX", "CPU", "BLOB", matmul_model(8))
    r.execute_command("AI.TENSORSET", "{m}x", "FLOAT", 2, 8, "BLOB",
                      np.ones((2, 8), np.float32).tobytes())
    for _ in range(5):
        r.execute_command("AI.MODELEXECUTE", "{m}mm", "INPUTS", 1, "{m}x", "OUTPUTS", 1, "{m}y")
    # Every name the deploy files use is one the nodes export.
    exported = set()
    for n in shard:
        status, body = http(n.metrics, "/metrics")
        assert status == 200
        exported |= exported_names(body)
    with open(ROOT / "deploy/prometheus/metrics.txt") as f:
        documented = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    assert documented <= exported, documented - exported
    assert {x for x in exported if x.startswith("shardai_")} <= documented, exported - documented

    prom = Prometheus([f"127.0.0.1:{n.metrics}" for n in shard],
                      ROOT / "deploy/prometheus/alerts.yml")
    try:
        instances = {f"127.0.0.1:{n.metrics}" for n in shard}
        end = time.time() + 60
        while time.time() < end:
            got = {s["metric"]["instance"] for s in prom.query('shardai_raft_has_leader{group="data"}')}
            if got == instances and prom.query('shardai_ai_runs_total{key="{m}mm"} >= 5'):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("series missing:\n" + prom.log_text())
        assert all(s["value"][1] == "1" for s in prom.query('shardai_raft_has_leader{group="data"}'))
        leaders = prom.query('shardai_raft_is_leader{group="data"} == 1')
        assert [s["metric"]["instance"] for s in leaders] == [f"127.0.0.1:{lead.metrics}"]
        assert prom.query("sum(shardai_cluster_slots_owned)")[0]["value"][1] == str(3 * 16384)
        assert int(prom.query('sum(shardai_commands_total{command="set"})')[0]["value"][1]) >= 50
        assert prom.query('shardai_ai_batch_size_count{key="{m}mm"} >= 5')
        assert prom.query("shardai_raft_fsync_duration_seconds_count > 0")
        assert prom.query('shardai_device_queue_depth{device="CPU"}')
        assert len(prom.query("shardai_ready == 1")) == 3
        # The dashboard's queries are valid PromQL and the main ones have data.
        for expr in dashboard_queries():
            prom.query(expr)
        time.sleep(2)  # two points for rate()
        assert prom.query('sum by (command) (rate(shardai_commands_total{instance=~".*"}[30s]))')
        # The alert rules load and evaluate; a healthy shard fires none of the shard's alerts.
        rules = prom.api("rules")["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) >= 5
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        firing = [a["labels"]["alertname"] for a in prom.api("alerts")["data"]["alerts"]
                  if a["state"] == "firing"]
        assert not [a for a in firing if "Leader" in a], firing
    finally:
        prom.close()


def test_readyz_follows_the_leader(shard):
    for n in shard:
        assert wait_ready(n, True) == "ready\n"
    lead = leader(shard)
    follower = next(n for n in shard if n is not lead)
    other = next(n for n in shard if n is not lead and n is not follower)
    # The leader and another follower stop: `follower` is cut off from its leader.
    os.kill(lead.proc.pid, signal.SIGSTOP)
    os.kill(other.proc.pid, signal.SIGSTOP)
    try:
        body = wait_ready(follower, False)
        assert "no leader" in body, body
        status, metrics = http(follower.metrics, "/metrics")
        assert "shardai_ready 0" in metrics
    finally:
        os.kill(other.proc.pid, signal.SIGCONT)
        os.kill(lead.proc.pid, signal.SIGCONT)
    # Back with a leader and caught up: ready again, and the write made meanwhile is there.
    assert wait_ready(follower, True) == "ready\n"
    new_lead = leader(shard)
    new_lead.client().set("after", "1")
    for n in shard:
        assert wait_ready(n, True) == "ready\n"
