"""Cluster-wide models, scripts and settings on a real cluster of 3 shards x 3 replicas.

A model or script whose name starts with '@' is stored once for the whole cluster (through
the metadata group) and loaded by every node. It is not a key of any slot: requests that run
it are routed by their tensors, so redis-py RedisCluster (RESP2 and RESP3), the redis
crate's cluster-async client, node-redis createCluster and `redis-cli -c` run it on tensors
in every slot, and READONLY replicas run it in AI.DAGEXECUTE_RO. Also: reading, deleting
and describing it from any node, name clashes, a new version stored while four clients run
it (no failed run), AI.CONFIG given on one node seen on all, and a restarted node, a wiped
and re-added node and a shard added later that all get it.
"""
import json
import subprocess
import sys
import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from harness import ROOT
from shardcluster import Cluster, Node, cli

IRIS = ROOT / "tests" / "models" / "redisai" / "linear_iris.onnx"
MAKE = ROOT / "target" / "release" / "make_torch_models"
INPUT = (5.0, 3.4, 1.6, 0.4)
ADD = """def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]
"""
# A script that writes, through redis.execute, the name it is given.
SETTER = """def set_name(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", args[0], "x")
"""


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(9, replicas=2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def pt(tmp_path_factory):
    if not MAKE.exists():
        pytest.fail(f"{MAKE} missing: run `cargo build --release -p shardai-tests`")
    out = tmp_path_factory.mktemp("torch")
    subprocess.run([str(MAKE), str(out)], check=True, capture_output=True)
    return out


def floats(values):
    return [float(v) for v in values]


def as_dict(reply):
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def info(node, name):
    return as_dict(node.client().execute_command("AI.INFO", name))


def wait_everywhere(cluster, name, version=None, timeout=60):
    """Until every node reports `name` loaded (at `version`, when given) in AI.INFO."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = [info(n, name) for n in cluster.nodes if n.alive()]
            if all(i[b"load_state"] == b"loaded"
                   and (version is None or i[b"version"] == version) for i in last):
                return last
        except (redis.ResponseError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{name} not loaded on every node: {last}")


def wait_setting(node, chunk, timeout=10):
    """Until `node` applied the cluster's MODEL_CHUNK_SIZE `chunk` (within 100 ms of having
    the record)."""
    end = time.time() + timeout
    while node.client().execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") != chunk:
        assert time.time() < end, node.addr
        time.sleep(0.05)


def ranges(node):
    """[(start, end, master port, [replica ports])] from CLUSTER SLOTS."""
    return sorted((e[0], e[1], e[2][1], sorted(r[1] for r in e[3:]))
                  for e in node.client().execute_command("CLUSTER", "SLOTS"))


def shard_of(rs, key):
    s = key_slot(key.encode())
    return next(i for i, r in enumerate(rs) if r[0] <= s <= r[1])


def with_unknown_field(blob, n):
    """The same ONNX model with an unknown protobuf field appended (ONNX Runtime skips it):
    another blob, hence another version, that computes the same."""
    return blob + bytes([0xF8, 0x06, n])  # field 111, varint n


def test_stored_once_and_run_by_every_cluster_client_in_every_slot(cluster, pt):
    seed = cluster.nodes[4]
    r = seed.client()
    assert r.execute_command("AI.MODELSTORE", "@iris", "ONNX", "CPU", "TAG", "v1",
                             "BLOB", IRIS.read_bytes()) == b"OK"
    assert r.execute_command("AI.MODELSTORE", "@mul", "TORCH", "CPU",
                             "BLOB", (pt / "mul.pt").read_bytes()) == b"OK"
    assert r.execute_command("AI.SCRIPTSTORE", "@add", "CPU", "ENTRY_POINTS", 1, "add",
                             "SOURCE", ADD) == b"OK"
    for name in ("@iris", "@mul", "@add"):
        wait_everywhere(cluster, name)
    rs = ranges(seed)
    expected = None
    for protocol in (2, 3):
        before = [redis.Redis(port=m).dbsize() for _, _, m, _ in rs]
        rc = RedisCluster(host="127.0.0.1", port=seed.port, protocol=protocol,
                          reinitialize_steps=10**9)
        try:
            shards = set()
            for i in range(300):
                x, y = f"{{py{protocol}-{i}}}x", f"{{py{protocol}-{i}}}y"
                shards.add(shard_of(rs, x))
                rc.execute_command("AI.TENSORSET", x, "FLOAT", 1, 4, "VALUES", *INPUT)
                rc.execute_command("AI.MODELEXECUTE", "@iris", "INPUTS", 1, x, "OUTPUTS", 1, y)
                v = floats(rc.execute_command("AI.TENSORGET", y, "VALUES"))
                expected = expected or v
                assert v == expected, x
                if i % 10 == 0:
                    a, b, c = (f"{{py{protocol}-{i}}}{k}" for k in "abc")
                    rc.execute_command("AI.TENSORSET", a, "FLOAT", 2, 3, "VALUES", *range(6))
                    rc.execute_command("AI.TENSORSET", b, "FLOAT", 2, 3, "VALUES", *[2] * 6)
                    rc.execute_command("AI.MODELEXECUTE", "@mul", "INPUTS", 2, a, b,
                                       "OUTPUTS", 1, c)
                    got = rc.execute_command("AI.TENSORGET", c, "VALUES")
                    assert [float(g) for g in got] == [2.0 * k for k in range(6)]
                    rc.execute_command("AI.SCRIPTEXECUTE", "@add", "add", "INPUTS", 2, a, b,
                                       "OUTPUTS", 1, c)
                    got = rc.execute_command("AI.TENSORGET", c, "VALUES")
                    assert [float(g) for g in got] == [k + 2.0 for k in range(6)]
            assert shards == {0, 1, 2}
            # redis-py found every node by COMMAND GETKEYS (which leaves the model out),
            # never by MOVED, and never met CROSSSLOT.
            assert rc.reinitialize_counter == 0
        finally:
            rc.close()
        after = [redis.Redis(port=m).dbsize() for _, _, m, _ in rs]
        assert all(a > b for a, b in zip(after, before)), (before, after)
    # The objects are keys of no slot: no node lists or counts them.
    for n in cluster.nodes:
        assert n.client().keys("@*") == []

    # redis-cli -c, from a node that may own none of the keys: 300 runs fed on its stdin,
    # each redirected to its tensors' shard.
    lines = "".join(
        f"AI.TENSORSET {{cli-{i}}}x FLOAT 1 4 VALUES {' '.join(map(str, INPUT))}\n"
        f"AI.MODELEXECUTE @iris INPUTS 1 {{cli-{i}}}x OUTPUTS 1 {{cli-{i}}}y\n"
        f"AI.TENSORGET {{cli-{i}}}y VALUES\n" for i in range(300))
    out = subprocess.run(["redis-cli", "-c", "-p", str(cluster.nodes[8].port)], input=lines,
                         capture_output=True, text=True, timeout=300)
    replies = [ln for ln in out.stdout.splitlines() if not ln.startswith("-> Redirected")]
    assert len(replies) == 900, out.stdout[-2000:] + out.stderr[-2000:]
    for i in range(300):
        assert replies[3 * i:3 * i + 2] == ["OK", "OK"], (i, replies[3 * i:3 * i + 3])
        assert floats(replies[3 * i + 2].split()) == expected, (i, replies[3 * i + 2])
    assert "Redirected" in out.stdout

    # node-redis createCluster, RESP2 and RESP3.
    if not (ROOT / "tests" / "node" / "node_modules" / "redis").exists():
        pytest.fail("node-redis is not installed: run scripts/setup")
    for resp in (2, 3):
        out = subprocess.run(["node", str(ROOT / "tests" / "node" / "cluster-wide.mjs"),
                              str(cluster.nodes[2].port), str(resp), "@iris", "300"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {
            "runs": 300, "shards": 3, "resp": resp}

    # The redis crate's cluster-async client.
    exe = ROOT / "target" / "release" / "cluster_client"
    out = subprocess.run([str(exe), cluster.nodes[6].addr, "--cluster-wide", "@iris", "300"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok 300 runs"

    # AI.DAGEXECUTE_RO on every READONLY replica, for a key of its own shard.
    for s, (_, _, _, replicas) in enumerate(rs):
        key = next(f"{{py2-{i}}}x" for i in range(300) if shard_of(rs, f"{{py2-{i}}}x") == s)
        for port in replicas:
            c = redis.Redis(port=port, single_connection_client=True)
            c.execute_command("READONLY")
            end = time.time() + 10
            while True:
                try:
                    out = c.execute_command(
                        "AI.DAGEXECUTE_RO", "LOAD", 1, key, "|>", "AI.MODELEXECUTE", "@iris",
                        "INPUTS", 1, key, "OUTPUTS", 1, "o", "|>", "AI.TENSORGET", "o", "VALUES")
                    break
                except redis.ResponseError:
                    if time.time() > end:
                        raise
                    time.sleep(0.1)
            assert floats(out[-1]) == expected
            c.close()

    # AI.INFO: this node's counters, every node's view and the cluster's totals. Runs of
    # @iris: redis-py 2 x 300, redis-cli 300, node-redis 2 x 300 x 2 (MODELEXECUTE and
    # DAGEXECUTE_RO), redis-rs 300 x 2, DAGEXECUTE_RO on the 6 replicas.
    CALLS = 2 * 300 + 300 + 2 * 300 * 2 + 300 * 2 + 6
    end = time.time() + 10
    while True:
        i = info(seed, "@iris")
        if i[b"cluster_calls"] >= CALLS or time.time() > end:
            break
        time.sleep(0.2)
    assert i[b"type"] == b"MODEL" and i[b"backend"] == b"ONNX" and i[b"tag"] == b"v1"
    assert i[b"cluster_calls"] >= CALLS, i
    assert i[b"cluster_errors"] == 0
    assert i[b"nodes_loaded"] == 9 and i[b"nodes_total"] == 9
    assert len(i[b"nodes"]) == 9
    assert sum(as_dict(n)[b"calls"] for n in i[b"nodes"]) == i[b"cluster_calls"]
    assert len({as_dict(n)[b"version"] for n in i[b"nodes"]}) == 1
    section = seed.client().info("ai_cluster_wide")
    assert section["ai_cluster_wide_objects"] == 3
    assert section["ai_cluster_wide_not_loaded"] == ""


def test_read_delete_and_describe_from_any_node_and_name_clashes(cluster):
    for n in cluster.nodes:
        c = n.client()
        meta = as_dict(c.execute_command("AI.MODELGET", "@iris", "META"))
        assert meta[b"backend"] == b"ONNX" and meta[b"tag"] == b"v1"
        assert c.execute_command("AI.MODELGET", "@iris", "BLOB") == IRIS.read_bytes()
        assert c.type("@iris") == b"AI__MODEL"
        assert c.type("@add") == b"AI_SCRIPT"
        assert [b"@iris", b"v1"] in c.execute_command("AI._MODELSCAN")
        assert [b"@add", b""] in c.execute_command("AI._SCRIPTSCAN")
        assert as_dict(c.execute_command("AI.SCRIPTGET", "@add"))[b"source"] == ADD.encode()
    a, b, c = (n.client() for n in cluster.nodes[:3])
    assert a.execute_command("AI.SCRIPTSTORE", "@tmp", "CPU", "ENTRY_POINTS", 1, "add",
                             "SOURCE", ADD) == b"OK"
    wait_everywhere(cluster, "@tmp")
    assert b.execute_command("AI.SCRIPTDEL", "@tmp") == b"OK"
    for n in cluster.nodes:
        end = time.time() + 10
        while True:
            try:
                n.client().execute_command("AI.SCRIPTGET", "@tmp")
            except redis.ResponseError as e:
                assert "script key is empty" in str(e)
                break
            assert time.time() < end
            time.sleep(0.05)
    with pytest.raises(redis.ResponseError, match="script key is empty"):
        c.execute_command("AI.SCRIPTDEL", "@tmp")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.execute_command("AI.MODELSTORE", "@add", "ONNX", "CPU", "BLOB", IRIS.read_bytes())
    # A cluster-wide name is never a key, so it never clashes with one.
    for args in (["SET", "@iris", "x"], ["AI.TENSORSET", "@iris", "FLOAT", 1, "VALUES", 1],
                 ["GET", "@iris"], ["DEL", "@iris"],
                 ["AI.MODELEXECUTE", "@iris", "INPUTS", 1, "{k}x", "OUTPUTS", 1, "@out"]):
        with pytest.raises(redis.ResponseError, match="cluster-wide model or script name"):
            a.execute_command(*args)
    # Not inside a transaction either (EXEC runs on a copy of the shard's keys).
    tx = cluster.nodes[0].client().pipeline(transaction=True)
    tx.execute_command("AI.MODELGET", "@iris", "META")
    with pytest.raises(redis.ResponseError, match="inside MULTI"):
        tx.execute()
    # Nor from a script's redis.execute, on a key of its own slot or by the name itself.
    assert a.execute_command("AI.SCRIPTSTORE", "@setter", "CPU", "ENTRY_POINTS", 1,
                             "set_name", "SOURCE", SETTER) == b"OK"
    wait_everywhere(cluster, "@setter")
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        # {@iris}k has the slot of "@iris": the slot check passes, the name check refuses.
        with pytest.raises(redis.ResponseError, match="cluster-wide model or script name"):
            rc.execute_command("AI.SCRIPTEXECUTE", "@setter", "set_name", "KEYS", 1,
                               "{@iris}k", "ARGS", 1, "@iris")
        assert rc.execute_command("AI.SCRIPTEXECUTE", "@setter", "set_name", "KEYS", 1,
                                  "{u}k", "ARGS", 1, "{u}k") == b"OK"
        assert rc.get("{u}k") == b"x"
    finally:
        rc.close()
    for n in cluster.nodes:
        assert n.client().keys("@*") == []
    # Ordinary names are unaffected; '@' alone is an ordinary key.
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        assert rc.set("@", "plain")
        assert rc.get("@") == b"plain"
    finally:
        rc.close()


def test_new_version_replaces_it_everywhere_while_four_clients_run_it(cluster):
    blob = IRIS.read_bytes()
    seed = cluster.nodes[1].client()
    assert seed.execute_command("AI.MODELSTORE", "@live", "ONNX", "CPU", "BLOB", blob) == b"OK"
    v1 = wait_everywhere(cluster, "@live")[0][b"version"]
    stop, errors, runs = threading.Event(), [], [0] * 4

    def client(w):
        rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[w].port)
        try:
            i = 0
            while not stop.is_set():
                x, y = f"{{live{w}-{i % 40}}}x", f"{{live{w}-{i % 40}}}y"
                try:
                    if i < 40:
                        rc.execute_command("AI.TENSORSET", x, "FLOAT", 1, 4, "VALUES", *INPUT)
                    rc.execute_command("AI.MODELEXECUTE", "@live", "INPUTS", 1, x,
                                       "OUTPUTS", 1, y)
                    runs[w] += 1
                except redis.RedisError as e:
                    errors.append(repr(e))
                i += 1
        finally:
            rc.close()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        versions = {v1}
        for n in range(1, 4):
            new = with_unknown_field(blob, n)
            node = cluster.nodes[3 * (n - 1) + 2].client()
            assert node.execute_command("AI.MODELSTORE", "@live", "ONNX", "CPU",
                                        "BLOB", new) == b"OK"
            v = wait_everywhere(cluster, "@live")[0][b"version"]
            versions.add(v)
            wait_everywhere(cluster, "@live", version=v)
            time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == [], errors[:5]
    assert all(n > 10 for n in runs), runs
    assert len(versions) == 4


def test_ai_config_on_one_node_applies_on_every_node(cluster, pt):
    c = cluster.nodes[7].client()
    assert c.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024) == b"OK"
    for n in cluster.nodes:
        wait_setting(n, 1024)
        chunks = n.client().execute_command("AI.MODELGET", "@mul", "BLOB")
        assert isinstance(chunks, list) and len(chunks[0]) == 1024
        assert b"".join(chunks) == (pt / "mul.pt").read_bytes()


def test_a_node_that_cannot_load_it_says_so_and_answers_runs_with_the_error(cluster, tmp_path):
    seed = cluster.nodes[0].client()
    real = seed.execute_command("AI.CONFIG", "GET", "BACKENDSPATH").decode()
    rs = ranges(cluster.nodes[0])
    shard, port = 0, rs[0][3][0]
    victim = next(x for x in cluster.nodes if x.port == port)
    # A replica restarted where no backend library can be found.
    victim.kill()
    victim.extra += ["--backends-path", str(tmp_path), "--enable-backend-loading", "yes"]
    victim.start()
    assert seed.execute_command("AI.MODELSTORE", "@nobackend", "ONNX", "CPU",
                                "BLOB", IRIS.read_bytes()) == b"OK"
    key = next(f"{{nb-{i}}}x" for i in range(10000) if shard_of(rs, f"{{nb-{i}}}x") == shard)
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    rc.execute_command("AI.TENSORSET", key, "FLOAT", 1, 4, "VALUES", *INPUT)
    rc.close()
    dag = ("AI.DAGEXECUTE_RO", "LOAD", 1, key, "|>", "AI.MODELEXECUTE", "@nobackend",
           "INPUTS", 1, key, "OUTPUTS", 1, "o", "|>", "AI.TENSORGET", "o", "VALUES")
    v = victim.client(single_connection_client=True)
    v.execute_command("READONLY")
    end = time.time() + 30
    while True:
        try:
            i = info(victim, "@nobackend")
            got = v.execute_command(*dag)
            if i[b"load_state"] == b"error" and isinstance(got[0], redis.ResponseError):
                break
        except redis.ResponseError:
            pass
        assert time.time() < end
        time.sleep(0.1)
    assert i[b"load_error"], i
    assert "could not be loaded on this node" in str(got[0]), got
    assert "@nobackend" in str(victim.client().info("ai_cluster_wide")["ai_cluster_wide_not_loaded"])
    # Every other node reports it loaded; this one, the error.
    end = time.time() + 10
    while True:
        nodes = [as_dict(n) for n in info(cluster.nodes[0], "@nobackend")[b"nodes"]]
        states = sorted(n[b"load_state"] for n in nodes)
        if states == [b"error"] + [b"loaded"] * 8:
            break
        assert time.time() < end, states
        time.sleep(0.1)
    # Once its backend can be found there, it loads and runs as everywhere else.
    assert v.execute_command("AI.CONFIG", "BACKENDSPATH", real) == b"OK"
    assert info(victim, "@nobackend")[b"load_state"] == b"loaded"
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    rc.execute_command("AI.MODELEXECUTE", "@nobackend", "INPUTS", 1, key, "OUTPUTS", 1, key + "y")
    want = floats(rc.execute_command("AI.TENSORGET", key + "y", "VALUES"))
    rc.close()
    assert floats(v.execute_command(*dag)[-1]) == want
    v.close()
    wait_everywhere(cluster, "@iris")


def test_restarted_wiped_and_added_nodes_get_the_models_and_settings(cluster):
    # A node restarted from its folder.
    n = cluster.nodes[5]
    n.kill()
    n.start()
    assert wait_everywhere(cluster, "@iris")
    wait_setting(n, 1024)
    # A replica wiped, removed and added again (a snapshot or the log brings it all back).
    rs = ranges(cluster.nodes[0])
    lead_port, replica_port = rs[0][2], rs[0][3][0]
    victim = next(x for x in cluster.nodes if x.port == replica_port)
    lead = next(x for x in cluster.nodes if x.port == lead_port)
    vid = victim.replication()["raft_node_id"]
    cli("del-node", lead.addr, str(vid))
    victim.kill()
    victim.wipe()
    victim.start()
    cli("add-node", victim.addr, lead.addr)
    wait_everywhere(cluster, "@iris")
    wait_everywhere(cluster, "@add")
    wait_setting(victim, 1024)
    # A shard added later serves the model once it owns slots.
    new = [Node() for _ in range(3)]
    cluster.nodes.extend(new)  # stopped with the cluster
    out = cli("add-shard", cluster.nodes[0].addr, *[x.addr for x in new], timeout=120)
    assert "joined" in out.stdout, out.stdout + out.stderr
    wait_everywhere(cluster, "@iris")
    for x in new:
        wait_setting(x, 1024)
    out = cli("reshard", cluster.nodes[0].addr, "--from", "all", "--to", new[0].addr,
              "--slots", "60", timeout=300)
    assert "[OK] moved 60 slots" in out.stdout, out.stdout + out.stderr
    rs = ranges(cluster.nodes[0])
    mine = [r for r in rs if r[2] in {x.port for x in new}]
    assert mine
    keys = []
    for i in range(100000):
        k = f"{{grow-{i}}}x"
        if any(a <= key_slot(k.encode()) <= b for a, b, _, _ in mine):
            keys.append(k)
        if len(keys) == 5:
            break
    rc = RedisCluster(host="127.0.0.1", port=new[1].port)
    try:
        for k in keys:
            rc.execute_command("AI.TENSORSET", k, "FLOAT", 1, 4, "VALUES", *INPUT)
            rc.execute_command("AI.MODELEXECUTE", "@iris", "INPUTS", 1, k, "OUTPUTS", 1, k + "y")
            assert len(rc.execute_command("AI.TENSORGET", k + "y", "VALUES")) == 1
    finally:
        rc.close()
    i = info(new[0], "@iris")
    assert i[b"calls"] == 5 and i[b"nodes_total"] == 12
