"""Real multi-process shardai clusters on loopback, for the replication tests and benchmark.

A `Node` is one `shardai --cluster-enabled yes` process with its own data folder, client
port and bus port (kept across restarts), proving the run's cluster secret on the bus
(`SECRET`; a cluster node refuses to start without a secret or bus TLS certificates). A `Cluster` starts nodes and forms them with
`shardai cluster create`. `Client` is a minimal cluster-aware client: it follows MOVED,
waits out CLUSTERDOWN/TRYAGAIN and moves to another node when its node dies.
Every process is stopped by its PID; `Cluster.close()` removes the folders.
"""
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness import binary, free_port

# The cluster bus secret of every node of this run (unless a test gives its own bus options).
SECRET = "shardai-test-" + secrets.token_hex(16)
BUS_SECRET = ("--cluster-secret", SECRET)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    """`d`/`name`.crt and .key: a CA (EC P-256, valid 2 days)."""
    openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.crt", "-days", "2",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(d, name, ca):
    """`d`/`name`.crt and .key: a node certificate (IP 127.0.0.1) signed by `ca`."""
    with open(f"{d}/{name}.ext", "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.crt", "-CAkey",
            f"{d}/{ca}.key", "-CAcreateserial", "-CAserial", f"{d}/{ca}.srl", "-out",
            f"{d}/{name}.crt", "-days", "2", "-extfile", f"{d}/{name}.ext")


def tls_args(d, name):
    """The bus TLS options of the node whose certificate is `d`/`name`.crt (CA `d`/ca.crt)."""
    return ["--cluster-tls-cert-file", f"{d}/{name}.crt", "--cluster-tls-key-file",
            f"{d}/{name}.key", "--cluster-tls-ca-cert-file", f"{d}/ca.crt"]


class Node:
    def __init__(self, extra=(), bus=BUS_SECRET, bin=None, password=None, username=None):
        """`bus`: the cluster bus options (secret, TLS files); `bin`: another shardai binary;
        `password` (and `username`): what its clients authenticate with."""
        self.dir = tempfile.mkdtemp(prefix="shardai-cluster-")
        self.extra = list(extra)
        self.bus_args = list(bus)
        self.bin = bin or binary()
        self.password = password
        self.username = username
        self.proc = None
        for _ in range(5):
            self.port, self.bus = free_port(), free_port()
            if self.start(check=False):
                return
        raise RuntimeError("shardai did not start")

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self, check=True):
        self.log = open(os.path.join(self.dir, "shardai.log"), "ab")
        self.proc = subprocess.Popen(
            [self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus), *self.bus_args,
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=self.log)
        end = time.time() + 20
        while time.time() < end:
            if self.proc.poll() is not None:
                break
            try:
                if self.client().ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.02)
        self.kill()
        if check:
            raise RuntimeError(f"shardai on {self.addr} did not start:\n{self.log_text()[-3000:]}")
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, **kw):
        kw.setdefault("socket_timeout", 30)
        kw.setdefault("password", self.password)
        kw.setdefault("username", self.username)
        return redis.Redis(port=self.port, **kw)

    def kill(self):
        """kill -9."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if not self.log.closed:
            self.log.close()

    def stop(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self.log.closed:
            self.log.close()

    def wipe(self):
        """Removes everything in the data folder except the log file."""
        for name in os.listdir(self.dir):
            if name != "shardai.log":
                p = os.path.join(self.dir, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

    def log_text(self):
        with open(os.path.join(self.dir, "shardai.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def replication(self):
        return self.client().info("replication")


def node_ok(node):
    """Whether `node` reports `cluster_state:ok` (it knows the topology, every shard is led)."""
    r = node.client()
    try:
        return b"cluster_state:ok" in r.execute_command("CLUSTER", "INFO")
    finally:
        r.close()


def cli(*args, timeout=60, bin=None, password=None, user=None):
    env = dict(os.environ)
    if password:
        env["SHARDAI_PASSWORD"] = password
    if user:
        env["SHARDAI_USER"] = user
    return subprocess.run([bin or binary(), "cluster", *args], check=True, timeout=timeout,
                          capture_output=True, text=True, env=env)


class Cluster:
    def __init__(self, n=3, extra=(), replicas=None, bus=None, bin=None, password=None):
        """`n` nodes in shards of `replicas` + 1 (default: one shard of all of them).
        `bus`: the cluster bus options of node i, `bus(i)` (default: the run's secret);
        `password`: every node's requirepass, when given."""
        self.nodes = []
        self.password = password
        replicas = n - 1 if replicas is None else replicas
        if password:
            extra = [*extra, "--requirepass", password]
        try:
            self.nodes = [Node(extra, BUS_SECRET if bus is None else bus(i), bin, password)
                          for i in range(n)]
            cli("create", *[x.addr for x in self.nodes], "--replicas", str(replicas), bin=bin,
                password=password)
            if replicas == n - 1:
                self.leader()
        except BaseException:
            self.close()
            raise

    def leader(self, timeout=20):
        """The live node that leads the newest term with a majority of the live nodes
        agreeing (a restarted leader briefly believes it still leads its old term)."""
        end = time.time() + timeout
        while time.time() < end:
            infos = {}
            for x in self.nodes:
                if not x.alive():
                    continue
                try:
                    infos[x] = x.client(socket_timeout=2).info("replication")
                except redis.RedisError:
                    continue
            leaders = [x for x, i in infos.items() if i.get("raft_state") == "leader"]
            if leaders:
                x = max(leaders, key=lambda n: int(infos[n]["raft_term"]))
                me = infos[x]["raft_node_id"]
                agree = sum(1 for i in infos.values() if i.get("raft_leader_id") == me)
                if agree * 2 > len(self.nodes):
                    return x
            time.sleep(0.05)
        raise TimeoutError("no leader")

    def followers(self):
        lead = self.leader()
        return [x for x in self.nodes if x is not lead and x.alive()]

    def wait_caught_up(self, node, timeout=60):
        """Waits until `node` applied everything the leader committed and knows the
        cluster's topology (`cluster_state:ok`), so that it serves what it holds."""
        end = time.time() + timeout
        while time.time() < end:
            try:
                target = int(self.leader().replication()["raft_commit_index"])
                if int(node.replication()["raft_applied_index"]) >= target and node_ok(node):
                    return
            except (redis.RedisError, KeyError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{node.addr} did not catch up")

    def client(self):
        return Client([x for x in self.nodes])

    def close(self):
        for x in self.nodes:
            x.kill()
            if not os.environ.get("SHARDAI_KEEP_DIRS"):
                shutil.rmtree(x.dir, ignore_errors=True)


class Client:
    """Follows MOVED to the leader; on a dead node, tries the others."""

    def __init__(self, nodes, patience=30):
        self.ports = [x.port for x in nodes]
        self.port = self.ports[0]
        self.patience = patience
        self.conns = {}

    def _conn(self):
        if self.port not in self.conns:
            # No retries inside redis-py (it backs off for seconds on a refused
            # connection): this client moves to another node itself.
            self.conns[self.port] = redis.Redis(port=self.port, socket_timeout=10,
                                                socket_connect_timeout=2,
                                                retry=Retry(NoBackoff(), 0))
        return self.conns[self.port]

    def execute(self, *args):
        end = time.time() + self.patience
        while True:
            try:
                return self._conn().execute_command(*args)
            except redis.exceptions.MovedError as e:
                # redis-py parses MOVED itself: e.slot_id, e.port.
                self.port = e.port
                continue
            except redis.ResponseError as e:
                msg = str(e)
                if not (msg.startswith("CLUSTERDOWN") or msg.startswith("TRYAGAIN")):
                    raise
            except (redis.ConnectionError, redis.TimeoutError):
                self.conns.pop(self.port, None)
                self.port = self.ports[(self.ports.index(self.port) + 1) % len(self.ports)]
            if time.time() > end:
                raise TimeoutError(f"no node served {args[0]} within {self.patience}s")
            time.sleep(0.02)

    def close(self):
        for c in self.conns.values():
            c.close()
