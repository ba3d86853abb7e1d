"""`shardai cluster start-local / stop / clean`: a 3 shards x 3 nodes cluster started by one
command in a temporary folder on free ports, used through redis-py's RedisCluster, stopped
by pid, restarted from its data and removed; and the errors: ports in use, a folder whose
cluster already runs, a node that does not start, stop with nothing running, clean while
nodes run.

Whatever a test does, its nodes are stopped by pid when it ends: `stop`, then SIGKILL to any
pid the state file (or the test) recorded that still runs as a node of the folder.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from harness import binary

STATE = "local-cluster.state"


def port_free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


def free_base(n):
    """A first client port p with p .. p+n-1, their bus ports (+ 10000) and metrics ports
    (+ 20000) all free, and all below the kernel's ephemeral range (from 32768): a port in
    it can be taken by any outgoing connection between a stop and the restart."""
    for _ in range(500):
        p = random.randint(10000, 32768 - 20000 - n)
        if all(port_free(q) for i in range(n) for q in (p + i, p + i + 10000, p + i + 20000)):
            return p
    raise RuntimeError("no free port range")


def recorded(d):
    """[(port, pid)] from the folder's state file (empty when there is none)."""
    try:
        with open(os.path.join(d, STATE)) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    nodes = [line.split()[1:] for line in lines if line.startswith("node ")]
    return [(int(port), int(pid)) for port, _bus, pid in nodes]


def alive(pid):
    """Whether `pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def node_of(pid, d):
    """Whether `pid` still runs as a node of folder `d`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.realpath(d).encode() in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def cluster_cmd(*args, timeout=300):
    return subprocess.run([binary(), "cluster", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def folder():
    """A fresh path for a cluster folder (not created); its nodes are stopped by pid at the
    end whatever happened. `folder.pids` collects pids the test saw."""
    parent = tempfile.mkdtemp(prefix="shardai-local-")
    d = os.path.join(parent, "cluster")

    class F(str):
        pids = set()

    f = F(d)
    yield f
    try:
        if os.path.exists(os.path.join(d, STATE)):
            f.pids.update(pid for _, pid in recorded(d))
            cluster_cmd("stop", "--dir", d, "--timeout", "10", timeout=60)
    finally:
        for pid in f.pids:
            if pid and alive(pid) and node_of(pid, d):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(parent, ignore_errors=True)


def start(d, *args):
    r = cluster_cmd("start-local", "--dir", d, "--timeout", "120", *args)
    d.pids.update(pid for _, pid in recorded(d))
    return r


def cluster_info(port):
    info = redis.Redis(port=port, socket_timeout=10).execute_command("CLUSTER", "INFO")
    if isinstance(info, dict):
        return {k: str(v) for k, v in info.items()}
    if isinstance(info, bytes):
        info = info.decode()
    return dict(line.split(":", 1) for line in info.split() if ":" in line)


def wait_gone(pids, limit=30):
    end = time.time() + limit
    while time.time() < end and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def test_start_use_stop_restart_clean(folder):
    base = free_base(9)
    r = start(folder, "--shards", "3", "--replicas", "2", "--port", str(base),
              "--metrics-port", str(base + 20000))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"redis-cli -c -p {base}" in r.stdout
    assert f'"127.0.0.1:{base + 20008}"]' in r.stdout
    assert f"RedisCluster(host=\"127.0.0.1\", port={base})" in r.stdout
    nodes = recorded(folder)
    assert [p for p, _ in nodes] == list(range(base, base + 9))
    pids = [pid for _, pid in nodes]
    assert all(alive(p) and node_of(p, folder) for p in pids)
    for port, pid in nodes:
        node = os.path.join(folder, str(port))
        assert os.path.getsize(os.path.join(node, "shardai.log")) > 0
        with open(os.path.join(node, "shardai.pid")) as f:
            assert int(f.read()) == pid
        info = cluster_info(port)
        assert info["cluster_state"] == "ok"
        assert info["cluster_known_nodes"] == "9"
        assert info["cluster_size"] == "3"
        # Each node serves its metrics port, and is ready once it has caught up.
        end = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port + 20000}/readyz",
                                            timeout=5) as resp:
                    assert resp.read() == b"ready\n"
                    break
            except urllib.error.HTTPError:
                assert time.time() < end, f"node {port} never became ready"
                time.sleep(0.2)

    rc = RedisCluster(host="127.0.0.1", port=base, socket_timeout=30)
    assert len(rc.get_primaries()) == 3
    keys = {f"key:{i}": f"value-{i}" for i in range(300)}
    for k, v in keys.items():
        assert rc.set(k, v)
    for k, v in keys.items():
        assert rc.get(k) == v.encode()
    # The keys landed on every shard: each primary holds some of their slots.
    ranges = [(a, b) for a, b, *_ in redis.Redis(port=base).execute_command("CLUSTER", "SLOTS")]
    assert len(ranges) == 3
    for a, b in ranges:
        assert any(a <= key_slot(k.encode()) <= b for k in keys)
    rc.close()

    again = start(folder)
    assert again.returncode == 1
    assert "already holds a running cluster" in again.stderr
    busy = cluster_cmd("clean", "--dir", folder)
    assert busy.returncode == 1 and "still run" in busy.stderr
    assert os.path.isdir(folder)

    s = cluster_cmd("stop", "--dir", folder)
    assert s.returncode == 0, s.stdout + s.stderr
    assert wait_gone(pids, 5) == []
    assert all(pid == 0 for _, pid in recorded(folder))
    none = cluster_cmd("stop", "--dir", folder)
    assert none.returncode == 1 and "no node of" in none.stderr

    # A restart: the same nodes, their data, no new cluster.
    r = start(folder)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Restarting 9 nodes" in r.stdout
    assert "hash slots allocation" not in r.stdout
    pids = [pid for _, pid in recorded(folder)]
    rc = RedisCluster(host="127.0.0.1", port=base, socket_timeout=30)
    for k, v in keys.items():
        assert rc.get(k) == v.encode()
    rc.close()
    s = cluster_cmd("stop", "--dir", folder)
    assert s.returncode == 0, s.stdout + s.stderr
    assert wait_gone(pids, 5) == []

    c = cluster_cmd("clean", "--dir", folder)
    assert c.returncode == 0, c.stdout + c.stderr
    assert not os.path.exists(folder)


def test_ports_in_use_are_named(folder):
    base = free_base(3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 1))
        s.listen()
        r = start(folder, "--shards", "1", "--replicas", "2", "--port", str(base))
    assert r.returncode == 1
    assert f"{base + 1} (client port of node {base + 1})" in r.stderr, r.stderr
    assert "already in use" in r.stderr
    assert not os.path.exists(folder)  # nothing started, nothing written


def test_a_node_that_does_not_start_shows_its_log(folder):
    base = free_base(3)
    r = start(folder, "--shards", "1", "--replicas", "2", "--port", str(base), "--",
              "--maxmemory", "banana")
    assert r.returncode == 1
    assert "exited while starting" in r.stderr, r.stderr
    assert "invalid size 'banana'" in r.stderr  # the node's own message, from its log
    assert "Stopping the nodes started" in r.stderr
    assert wait_gone(folder.pids, 10) == []
    # A folder whose cluster was never formed is not restarted, only cleaned.
    again = start(folder)
    assert again.returncode == 1 and "never formed" in again.stderr
    c = cluster_cmd("clean", "--dir", folder)
    assert c.returncode == 0, c.stderr
    assert not os.path.exists(folder)


def test_refuses_flags_it_sets_and_unknown_folders(folder):
    r = start(folder, "--", "--port", "1")
    assert r.returncode == 1 and "--port is set by start-local" in r.stderr
    os.makedirs(folder)
    with open(os.path.join(folder, "precious"), "w") as f:
        f.write("x")
    r = start(folder)
    assert r.returncode == 1 and "not empty" in r.stderr
    for cmd in ("stop", "clean"):
        r = cluster_cmd(cmd, "--dir", folder)
        assert r.returncode == 1 and "holds no cluster made by" in r.stderr
    assert os.path.exists(os.path.join(folder, "precious"))
