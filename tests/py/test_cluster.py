"""A real cluster: 3 shards x 3 replicas (9 shardai processes on loopback), driven by real
cluster clients (redis-cli -c, redis-py RedisCluster over RESP2 and RESP3, node-redis 6
createCluster, the redis crate's cluster-async client), each started from one seed address.

Also: CLUSTER replies checked against a real Redis 7 cluster's (three Debian redis-server
processes formed by `redis-cli --cluster create`), MOVED / CROSSSLOT, slot key listing,
kill -9 of a shard leader under a writing RedisCluster client, and a plain single node
answering as a one-node cluster.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import redis
from redis.backoff import ConstantBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry
from redis.crc import key_slot

from harness import ROOT, binary, free_port
from shardcluster import Cluster

MODEL = ROOT / "tests" / "models" / "redisai" / "linear_iris.onnx"
IRIS = (5.0, 3.4, 1.6, 0.4)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(9, replicas=2)
    try:
        yield c
    finally:
        c.close()


def shard_ranges(node):
    """[(start, end, master port, [replica ports])] from CLUSTER SLOTS."""
    out = []
    for e in node.client().execute_command("CLUSTER", "SLOTS"):
        out.append((e[0], e[1], e[2][1], sorted(r[1] for r in e[3:])))
    return sorted(out)


def tag_for_shard(ranges, i, prefix):
    """A hash tag whose slot lies in shard `i`'s range."""
    a, b = ranges[i][0], ranges[i][1]
    n = 0
    while not a <= key_slot(f"{prefix}{n}".encode()) <= b:
        n += 1
    return f"{prefix}{n}"


def test_every_node_sees_the_same_three_shards(cluster):
    views = [shard_ranges(n) for n in cluster.nodes]
    assert all(v == views[0] for v in views)
    assert [(a, b) for a, b, _, _ in views[0]] == [(0, 5460), (5461, 10922), (10923, 16383)]
    ports = {n.port for n in cluster.nodes}
    seen = set()
    for _, _, master, replicas in views[0]:
        assert len(replicas) == 2
        seen |= {master, *replicas}
    assert seen == ports
    for n in cluster.nodes:
        r = n.client()
        info = r.execute_command("CLUSTER", "INFO").decode()
        assert "cluster_state:ok" in info and "cluster_known_nodes:9" in info
        assert "cluster_size:3" in info
        lines = r.execute_command("CLUSTER", "NODES").decode().splitlines()
        assert len(lines) == 9
        assert sum(" master " in f" {ln.split()[2].split(',')[-1]} " for ln in lines) == 3
        me = r.execute_command("CLUSTER", "MYID").decode()
        assert [ln for ln in lines if "myself" in ln][0].startswith(me)


def test_keyslot_moved_and_crossslot(cluster):
    r = cluster.nodes[0].client()
    assert r.execute_command("CLUSTER", "KEYSLOT", "{user1000}.following") == 3443
    assert r.execute_command("CLUSTER", "KEYSLOT", "foo{}{bar}") == key_slot(b"foo{}{bar}")
    assert r.execute_command("CLUSTER", "KEYSLOT", "foo{}{bar}") == 8363
    assert r.execute_command("CLUSTER", "KEYSLOT", "foo") == 12182
    ranges = shard_ranges(cluster.nodes[0])
    # Every node of a shard that does not own "foo" sends it to the owner's leader.
    owner = [x for x in ranges if x[0] <= 12182 <= x[1]][0]
    for n in cluster.nodes:
        if n.port == owner[2]:
            continue
        with pytest.raises(redis.exceptions.MovedError) as e:
            n.client().execute_command("AI.TENSORSET", "foo", "FLOAT", 1, "VALUES", 1)
        assert (e.value.slot_id, e.value.port) == (12182, owner[2])
    lead = redis.Redis(port=owner[2])
    # redis-py recognises Redis's exact CROSSSLOT text.
    with pytest.raises(redis.exceptions.ClusterCrossSlotError,
                       match="^Keys in request don't hash to the same slot$"):
        lead.execute_command("MSET", "foo", "1", "bar", "2")
    raw = subprocess.run(["redis-cli", "-p", str(owner[2]), "DEL", "foo", "bar"],
                         capture_output=True, text=True).stdout
    assert raw.strip() == "CROSSSLOT Keys in request don't hash to the same slot"


def test_keys_in_slot(cluster):
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for i in range(5):
            rc.execute_command("AI.TENSORSET", f"{{slotted}}.{i}", "INT8", 1, "VALUES", i)
        slot = key_slot(b"{slotted}")
        node = rc.get_node_from_key("{slotted}")
        r = redis.Redis(port=node.port)
        assert r.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 5
        got = r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 3)
        assert got == [b"{slotted}.0", b"{slotted}.1", b"{slotted}.2"]
        with pytest.raises(redis.ResponseError, match="Invalid slot"):
            r.execute_command("CLUSTER", "COUNTKEYSINSLOT", 16384)
    finally:
        rc.close()


def test_ask_tryagain_and_asking_during_a_manual_migration(cluster):
    """Slot 12182 ("foo") moved by hand from shard 2 to shard 0 with Redis Cluster's
    commands: the source serves the keys it has, ASK for the others, TRYAGAIN for a split
    multi-key command; the target serves the slot only after ASKING."""
    ranges = masters_by_range(cluster.nodes[0])
    (_, dst_id, dst_port), (_, src_id, src_port) = ranges[0], ranges[2]
    slot = 12182
    src, dst = redis.Redis(port=src_port), redis.Redis(port=dst_port)
    src.execute_command("AI.TENSORSET", "{foo}a", "INT8", 1, "VALUES", 7)
    # Large enough to be serialized off the event loop by MIGRATE.
    big = bytes(range(256)) * 1024
    src.execute_command("AI.TENSORSET", "{foo}big", "UINT8", len(big), "BLOB", big)
    assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 2
    assert src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10) == [b"{foo}a", b"{foo}big"]
    assert dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id) == b"OK"
    assert src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id) == b"OK"
    mine = [ln for ln in src.execute_command("CLUSTER", "NODES").decode().splitlines()
            if "myself" in ln][0]
    assert f"[{slot}->-{dst_id}]" in mine
    # The source still has {foo}a: served. {foo}b is not there: ASK to the target.
    assert src.execute_command("AI.TENSORGET", "{foo}a", "VALUES") == [7]
    with pytest.raises(redis.exceptions.AskError) as e:
        src.execute_command("AI.TENSORSET", "{foo}b", "INT8", 1, "VALUES", 8)
    assert (e.value.slot_id, e.value.port) == (slot, dst_port)
    with pytest.raises(redis.exceptions.TryAgainError):
        src.execute_command("DEL", "{foo}a", "{foo}b")
    # The target: MOVED without ASKING, served after it (one command only).
    with pytest.raises(redis.exceptions.MovedError):
        dst.execute_command("AI.TENSORSET", "{foo}b", "INT8", 1, "VALUES", 8)
    out = subprocess.run(["redis-cli", "-p", str(dst_port)], input=(
        "ASKING\nAI.TENSORSET {foo}b INT8 1 VALUES 8\nAI.TENSORGET {foo}b VALUES\n"),
        capture_output=True, text=True, timeout=30).stdout.split("\n")
    assert out[:2] == ["OK", "OK"] and out[2].startswith("MOVED"), out
    # The slot cannot change hands while the source still holds a key of it.
    with pytest.raises(redis.ResponseError, match="^Can't assign hashslot 12182 to a "
                       "different node while I still hold keys for this hash slot.$"):
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    # MIGRATE moves {foo}a and {foo}big (with its deadline); then the source sends them on.
    assert src.execute_command("EXPIRE", "{foo}big", 600) == 1
    deadline = src.execute_command("PEXPIRETIME", "{foo}big")
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000,
                               "KEYS", "{foo}a", "{foo}big") == b"OK"
    out = subprocess.run(["redis-cli", "-p", str(dst_port)],
                         input="ASKING\nPEXPIRETIME {foo}big\nASKING\nTTL {foo}a\n",
                         capture_output=True, text=True, timeout=30).stdout.split("\n")
    # Sent as the time left, as Redis's MIGRATE does: the transfer's time may add to it.
    assert out[0] == out[2] == "OK" and out[3] == "-1", out
    assert 0 <= int(out[1]) - deadline < 1000, (out, deadline)
    with pytest.raises(redis.exceptions.AskError):
        src.execute_command("AI.TENSORGET", "{foo}a", "VALUES")
    assert src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000,
                               "KEYS", "{foo}a") == b"NOKEY"
    for r in (dst, src):
        assert r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id) == b"OK"
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        assert rc.execute_command("AI.TENSORGET", "{foo}a", "VALUES") == [7]
        assert rc.execute_command("AI.TENSORGET", "{foo}b", "VALUES") == [8]
        assert rc.execute_command("AI.TENSORGET", "{foo}big", "BLOB") == big
        assert rc.get_node_from_key("{foo}a").port == dst_port
    finally:
        rc.close()
    assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0


def test_keys_in_slot_count_a_write_still_in_flight(cluster):
    """A write of a new key admitted before its slot started migrating, still waiting for
    its commit (the shard's followers stopped): GETKEYSINSLOT waits for it and lists the key,
    and SETSLOT NODE refuses to move the slot while it is there. A resharding tool that got
    an empty list would move the slot and leave the key behind."""
    ranges = masters_by_range(cluster.nodes[0])
    (_, dst_id, dst_port), (src_first, src_id, src_port) = ranges[0], ranges[1]
    shard = shard_ranges(cluster.nodes[0])
    followers = [n for n in cluster.nodes
                 if n.port in [r for s in shard if s[2] == src_port for r in s[3]]]
    assert len(followers) == 2
    tag = tag_for_shard(shard, [s[2] for s in shard].index(src_port), "inflight")
    key, slot = f"{{{tag}}}k", key_slot(tag.encode())
    src, dst = redis.Redis(port=src_port), redis.Redis(port=dst_port)
    assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    written, listed = [], []
    for f in followers:
        os.kill(f.proc.pid, signal.SIGSTOP)
    try:
        w = threading.Thread(target=lambda: written.append(src.execute_command(
            "AI.TENSORSET", key, "INT8", 1, "VALUES", 5)))
        w.start()
        time.sleep(0.5)  # admitted and proposed, not committed
        assert written == []
        assert dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id) == b"OK"
        assert src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id) == b"OK"
        g = threading.Thread(target=lambda: listed.append(redis.Redis(
            port=src_port).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)))
        g.start()
        time.sleep(0.5)
        assert listed == []  # waiting for the write
    finally:
        for f in followers:
            os.kill(f.proc.pid, signal.SIGCONT)
    w.join(30)
    g.join(30)
    assert written == [b"OK"] and listed == [[key.encode()]]
    with pytest.raises(redis.ResponseError, match="still hold keys"):
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for r in (dst, src):
        assert r.execute_command("CLUSTER", "SETSLOT", slot, "STABLE") == b"OK"
    assert src.execute_command("DEL", key) == 1


def leaders_dbsize(cluster):
    ranges = shard_ranges(cluster.nodes[0])
    return [redis.Redis(port=m).dbsize() for _, _, m, _ in ranges]


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_cluster_client(cluster, protocol):
    before = leaders_dbsize(cluster)
    # Every MOVED would count here (reinitialize_steps: never reset the counter).
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[4].port, protocol=protocol,
                      reinitialize_steps=10**9)
    try:
        p = f"py{protocol}"
        for i in range(90):
            assert rc.execute_command("AI.TENSORSET", f"{p}:{i}", "INT32", 2,
                                      "VALUES", i, -i) in (b"OK", "OK", True)
        for i in range(90):
            assert rc.execute_command("AI.TENSORGET", f"{p}:{i}", "VALUES") == [i, -i]
        ranges = shard_ranges(cluster.nodes[0])
        blob = MODEL.read_bytes()
        for s in range(3):
            tag = tag_for_shard(ranges, s, f"{p}-t")
            m, x, y = f"m{{{tag}}}", f"in{{{tag}}}", f"out{{{tag}}}"
            rc.execute_command("AI.MODELSTORE", m, "ONNX", "CPU", "BLOB", blob)
            rc.execute_command("AI.TENSORSET", x, "FLOAT", 1, 4, "VALUES", *IRIS)
            rc.execute_command("AI.MODELEXECUTE", m, "INPUTS", 1, x, "OUTPUTS", 1, y)
            meta = rc.execute_command("AI.TENSORGET", y, "META")
            meta = dict(zip(meta[::2], meta[1::2])) if isinstance(meta, list) else meta
            assert meta[b"shape"] == [1, 1]
            dag = rc.execute_command("AI.DAGEXECUTE", "LOAD", 1, x, "|>",
                                     "AI.MODELEXECUTE", m, "INPUTS", 1, x, "OUTPUTS", 1, "o",
                                     "|>", "AI.TENSORGET", "o", "VALUES")
            direct = rc.execute_command("AI.TENSORGET", y, "VALUES")
            assert dag[-1] == direct
        after = leaders_dbsize(cluster)
        # Keys landed on every shard.
        assert all(a > b for a, b in zip(after, before)), (before, after)
        # redis-py found every key's node itself (COMMAND / COMMAND GETKEYS), never by MOVED.
        assert rc.reinitialize_counter == 0
    finally:
        rc.close()


def test_redis_cli_follows_moved(cluster):
    seed = str(cluster.nodes[8].port)
    for i in range(12):
        out = subprocess.run(["redis-cli", "-c", "-p", seed, "AI.TENSORSET", f"cli:{i}",
                              "INT64", "1", "VALUES", str(i * 7)], capture_output=True, text=True,
                             timeout=30)
        assert out.stdout.strip() == "OK", out
    for i in range(12):
        out = subprocess.run(["redis-cli", "-c", "-p", seed, "AI.TENSORGET", f"cli:{i}",
                              "VALUES"], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == [str(i * 7)], out


def test_node_redis_cluster_client(cluster):
    if not (ROOT / "tests" / "node" / "node_modules" / "redis").exists():
        pytest.fail("node-redis is not installed: run scripts/setup")
    for resp in (2, 3):
        out = subprocess.run(["node", str(ROOT / "tests" / "node" / "cluster-client.mjs"),
                              str(cluster.nodes[2].port), str(resp), str(MODEL)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        res = json.loads(out.stdout.strip().splitlines()[-1])
        assert res == {"masters": 3, "keys": 60, "shards": 3, "resp": resp}


def test_redis_rs_cluster_async_client(cluster):
    exe = ROOT / "target" / "release" / "cluster_client"
    if not exe.exists():
        pytest.fail(f"{exe} missing: cargo build --release -p shardai-tests")
    out = subprocess.run([str(exe), cluster.nodes[6].addr, str(MODEL)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "ok 60 keys, 3 models"


def load(cluster, prefix, stop, acked, errors, stale=None, keys=400):
    """A RedisCluster client writing new keys and overwriting old ones (`keys` of them, in
    turn) until `stop`.

    redis-py builds its node list from CLUSTER SLOTS, so it does not know a shard that owns
    no slot yet (a new one, as with Redis), and fails on an ASK to it with AttributeError
    instead of following it. That write was not applied (it was not acknowledged); it is
    counted in `stale`, the client is rebuilt and the write retried."""
    def client():
        return RedisCluster(host="127.0.0.1", port=cluster.nodes[1].port, socket_timeout=10,
                            retry=Retry(ConstantBackoff(0.05), 50))
    rc = client()
    i = 0
    try:
        while not stop.is_set():
            k = f"{prefix}:{i % keys}"
            try:
                rc.execute_command("AI.TENSORSET", k, "INT32", 1, "VALUES", i)
                acked[k] = i
            except (redis.RedisError, OSError) as e:
                errors.append(repr(e))
            except AttributeError as e:
                if stale is None:
                    raise
                stale.append(repr(e))
                rc.close()
                rc = client()
                continue
            i += 1
    except Exception as e:  # a dead writer must fail the test, not just warn
        errors.append(f"writer stopped: {e!r}")
    finally:
        rc.close()


def test_leader_kill_under_a_writing_cluster_client(cluster):
    """kill -9 of one shard's leader while RedisCluster writes over all shards: writes
    continue after MOVED, and every acknowledged write is read back."""
    ranges = shard_ranges(cluster.nodes[0])
    victim_port = ranges[1][2]
    victim = [n for n in cluster.nodes if n.port == victim_port][0]
    acked, errors, stop = {}, [], threading.Event()
    threads = [threading.Thread(target=load, args=(cluster, f"kill{w}", stop, acked, errors),
                                kwargs={"keys": 10**9})
               for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    n_before = len(acked)
    victim.kill()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(60)
    try:
        assert n_before > 50
        assert len(acked) > n_before + 50, (n_before, len(acked), errors[-5:])
        new = shard_ranges(cluster.nodes[0])
        assert new[1][2] != victim_port
        assert_acked_read_back(cluster, acked)
    finally:
        victim.start()


def test_expiry_survives_a_leader_kill_and_wait_counts_replicas(cluster):
    """A tensor and a model with deadlines on shard 2's leader; WAIT counts the two
    followers that have the writes (a follower refuses WAIT). kill -9 of the leader: the new
    leader has the same deadlines, and the keys expire on it then."""
    ranges = shard_ranges(cluster.nodes[0])
    victim_port, followers = ranges[2][2], ranges[2][3]
    victim = [n for n in cluster.nodes if n.port == victim_port][0]
    tag = tag_for_shard(ranges, 2, "ttl")
    t, m = f"{{{tag}}}t", f"{{{tag}}}m"
    r = redis.Redis(port=victim_port)
    r.execute_command("AI.TENSORSET", t, "FLOAT", 1, 4, "VALUES", *IRIS)
    r.execute_command("AI.MODELSTORE", m, "ONNX", "CPU", "BLOB", MODEL.read_bytes())
    assert r.execute_command("PEXPIRE", t, 6000) == 1
    assert r.execute_command("PEXPIRE", m, 6000, "NX") == 1
    deadlines = [r.execute_command("PEXPIRETIME", k) for k in (t, m)]
    assert r.execute_command("WAIT", 2, 5000) == 2
    assert r.execute_command("WAITAOF", 1, 2, 5000) == [1, 2]
    with pytest.raises(redis.ResponseError, match="^WAIT cannot be used with replica"):
        redis.Redis(port=followers[0]).execute_command("WAIT", 1, 100)
    victim.kill()
    try:
        survivor = redis.Redis(port=followers[0])
        leader = None
        for _ in range(200):
            try:
                leader = [e[2][1] for e in survivor.execute_command("CLUSTER", "SLOTS")
                          if e[0] <= key_slot(tag.encode()) <= e[1]][0]
            except redis.RedisError:
                leader = None
            if leader not in (None, victim_port):
                break
            time.sleep(0.1)
        assert leader in followers, leader
        new = redis.Redis(port=leader)
        assert [new.execute_command("PEXPIRETIME", k) for k in (t, m)] == deadlines
        new.execute_command("AI.MODELEXECUTE", m, "INPUTS", 1, t, "OUTPUTS", 1, f"{{{tag}}}o")
        time.sleep(max(0, max(deadlines) / 1000 - time.time()) + 0.3)
        assert new.execute_command("EXISTS", t, m) == 0
        assert new.execute_command("EXISTS", f"{{{tag}}}o") == 1
    finally:
        victim.start()


def test_replies_match_a_real_redis7_cluster(cluster):
    """CLUSTER SLOTS / SHARDS / NODES / INFO have the shapes Redis 7 gives (Debian's
    redis-server in cluster mode, three masters formed by redis-cli --cluster create)."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server missing: run scripts/setup")
    procs, dirs, ports = [], [], []
    try:
        for _ in range(3):
            d = tempfile.mkdtemp(prefix="redis7-")
            port = bus_capable_port()
            dirs.append(d)
            ports.append(port)
            procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for p in ports:
            end = time.time() + 10
            while True:
                try:
                    redis.Redis(port=p).ping()
                    break
                except redis.ConnectionError:
                    if time.time() > end:
                        raise
                    time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in ports], "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        end = time.time() + 30
        while b"cluster_state:ok" not in redis.Redis(port=ports[0]).execute_command(
                "CLUSTER", "INFO"):
            assert time.time() < end
            time.sleep(0.1)
        for protocol in (2, 3):
            ours = redis.Redis(port=cluster.nodes[0].port, protocol=protocol)
            theirs = redis.Redis(port=ports[0], protocol=protocol)
            a = ours.execute_command("CLUSTER", "SLOTS")[0]
            b = theirs.execute_command("CLUSTER", "SLOTS")[0]
            # [start, end, [ip, port, id, {extra}], replicas...]: theirs has no replicas.
            assert shape(a[:3]) == shape(b[:3]), (protocol, a, b)
            a = ours.execute_command("CLUSTER", "SHARDS")[0]
            b = theirs.execute_command("CLUSTER", "SHARDS")[0]
            assert shard_shape(a) == shard_shape(b), (protocol, a, b)
        ours_info = lines_of(redis.Redis(port=cluster.nodes[0].port).execute_command(
            "CLUSTER", "INFO"))
        their_info = lines_of(redis.Redis(port=ports[0]).execute_command("CLUSTER", "INFO"))
        names = [ln.split(":")[0] for ln in ours_info]
        # The same first nine fields; Redis then lists gossip counters per message type
        # (only types it has sent), then the totals, which shardai prints as 0 (no gossip).
        assert names[:9] == [ln.split(":")[0] for ln in their_info][:9]
        assert set(names) <= {ln.split(":")[0] for ln in their_info}
        ours_nodes = lines_of(redis.Redis(port=cluster.nodes[0].port).execute_command(
            "CLUSTER", "NODES"))
        their_nodes = lines_of(redis.Redis(port=ports[0]).execute_command("CLUSTER", "NODES"))
        for ln in ours_nodes + their_nodes:
            f = ln.split()
            assert len(f[0]) == 40 and all(c in "0123456789abcdef" for c in f[0])
            assert f[1].count(":") == 1 and "@" in f[1]
            assert set(f[2].split(",")) <= {"myself", "master", "slave"}
            assert f[3] == "-" or len(f[3]) == 40
            assert f[4].isdigit() and f[5].isdigit() and f[6].isdigit()
            assert f[7] == "connected"
            assert all(s.replace("-", "").isdigit() for s in f[8:])
        for ln in ours_nodes + their_nodes:
            f = ln.split()
            assert (len(f) > 8) == ("master" in f[2]), ln
    finally:
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def bus_capable_port():
    """A free port whose Redis Cluster bus port (port + 10000) is free too."""
    import socket
    while True:
        p = free_port()
        if p + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 10000))
                return p
            except OSError:
                continue


def lines_of(reply):
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]


def shape(v):
    """The structure of a reply with the values abstracted."""
    if isinstance(v, dict):
        return {"map": sorted((k, shape(x)) for k, x in v.items())}
    if isinstance(v, list):
        return [shape(x) for x in v]
    if isinstance(v, (bytes, str)):
        return "str"
    return type(v).__name__


def as_map(v):
    return v if isinstance(v, dict) else dict(zip(v[::2], v[1::2]))


def shard_shape(entry):
    """Keys and value types of a CLUSTER SHARDS entry and of its first node."""
    d = as_map(entry)
    node = as_map(d[b"nodes"][0])
    return (sorted(d), {type(x).__name__ for x in d[b"slots"]},
            sorted((k, shape(v)) for k, v in node.items()))


def test_plain_node_is_a_one_node_cluster():
    from conftest import Server
    s = Server()
    try:
        r = s.client()
        slots = r.execute_command("CLUSTER", "SLOTS")
        assert len(slots) == 1 and slots[0][:2] == [0, 16383]
        assert slots[0][2][1] == s.port
        assert b"cluster_state:ok" in r.execute_command("CLUSTER", "INFO")
        rc = RedisCluster(host="127.0.0.1", port=s.port)
        try:
            for i in range(20):
                rc.execute_command("AI.TENSORSET", f"solo:{i}", "INT8", 1, "VALUES", i)
            assert [rc.execute_command("AI.TENSORGET", f"solo:{i}", "VALUES")
                    for i in range(20)] == [[i] for i in range(20)]
        finally:
            rc.close()
    finally:
        s.stop()


def masters_by_range(node):
    """[(first slot, master id, master port)] from CLUSTER NODES, by first slot."""
    out = []
    for ln in node.client().execute_command("CLUSTER", "NODES").decode().splitlines():
        f = ln.split()
        if "master" in f[2].split(",") and len(f) > 8:
            out.append((int(f[8].split("-")[0]), f[0], int(f[1].split("@")[0].split(":")[1])))
    return sorted(out)


def assert_acked_read_back(cluster, acked):
    """Every acknowledged write (key: the INT32 value last acknowledged) reads back."""
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for k, v in acked.items():
            assert rc.execute_command("AI.TENSORGET", k, "VALUES") == [v], k
    finally:
        rc.close()


def check_no_key_lost_or_duplicated(cluster, acked):
    """Every acknowledged write reads back; every key lives on exactly one shard, the one
    owning its slot."""
    assert_acked_read_back(cluster, acked)
    seen = {}
    for first, mid, port in masters_by_range(cluster.nodes[0]):
        r = redis.Redis(port=port)
        owned = set()
        for e in r.execute_command("CLUSTER", "SLOTS"):
            if e[2][1] == port:
                owned |= set(range(e[0], e[1] + 1))
        for k in r.keys("*"):
            assert k not in seen, (k, seen.get(k), port)
            seen[k] = port
            assert key_slot(k) in owned, (k, port)
    for k in acked:
        assert k.encode() in seen, k


def test_live_reshard_with_redis_cli_under_load(cluster):
    """1,000 slots move from shard 0 to shard 1 with `redis-cli --cluster reshard` while
    clients write: no key lost or duplicated, clients only saw redirects they retried."""
    rc = RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for i in range(3000):
            rc.execute_command("AI.TENSORSET", f"pre:{i}", "INT32", 1, "VALUES", i)
    finally:
        rc.close()
    acked = {f"pre:{i}": i for i in range(3000)}
    ranges = masters_by_range(cluster.nodes[0])
    src, dst = ranges[0], ranges[1]
    stop, errors, loads = threading.Event(), [], []
    threads = [threading.Thread(target=load, args=(cluster, f"live{w}", stop, acked, errors))
               for w in range(3)]
    for t in threads:
        t.start()
    try:
        t0 = time.time()
        out = subprocess.run(["redis-cli", "--cluster", "reshard", cluster.nodes[0].addr,
                              "--cluster-from", src[1], "--cluster-to", dst[1],
                              "--cluster-slots", "1000", "--cluster-yes"],
                             capture_output=True, text=True, timeout=900)
        elapsed = time.time() - t0
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    print(f"redis-cli reshard of 1000 slots: {elapsed:.1f} s")
    assert errors == [], errors[:5]
    after = masters_by_range(cluster.nodes[0])
    moved = [e for e in cluster.nodes[0].client().execute_command("CLUSTER", "SLOTS")
             if e[2][1] == dst[2]]
    assert sum(e[1] - e[0] + 1 for e in moved) == 5462 + 1000
    assert [a[0] for a in after if a[1] == src[1]] == [1000]
    check_no_key_lost_or_duplicated(cluster, acked)
    # redis-cli's own check agrees: one configuration, no open slot, every slot covered.
    chk = subprocess.run(["redis-cli", "--cluster", "check", cluster.nodes[0].addr],
                         capture_output=True, text=True, timeout=60)
    assert "[OK] All nodes agree about slots configuration." in chk.stdout, chk.stdout
    assert "[OK] All 16384 slots covered." in chk.stdout
    assert "[WARNING]" not in chk.stdout and "[ERR]" not in chk.stdout, chk.stdout


def test_add_shard_then_reshard_and_rebalance_with_shardai_cli(cluster):
    """Scale-out: three new nodes form a fourth shard (`shardai cluster add-shard`), get
    slots under client load (`shardai cluster reshard`, progress printed), then every shard
    is evened out (`shardai cluster rebalance`). Nothing lost or duplicated."""
    from shardcluster import Node, cli
    new = [Node() for _ in range(3)]
    cluster.nodes.extend(new)  # stopped with the cluster
    out = cli("add-shard", cluster.nodes[0].addr, *[n.addr for n in new], timeout=120)
    assert "[OK] shard 3 (3 nodes) joined" in out.stdout, out.stdout + out.stderr
    shards = cluster.nodes[0].client().execute_command("CLUSTER", "SHARDS")
    assert len(shards) == 4
    acked, errors, stale, stop = {}, [], [], threading.Event()
    threads = [threading.Thread(target=load, args=(cluster, f"grow{w}", stop, acked, errors,
                                                   stale))
               for w in range(2)]
    for t in threads:
        t.start()
    try:
        out = cli("reshard", cluster.nodes[0].addr, "--from", "all", "--to", new[0].addr,
                  "--slots", "600", timeout=600)
        assert "[OK] moved 600 slots" in out.stdout, out.stdout + out.stderr
        assert "slots moved" in out.stdout  # progress lines
        out = cli("rebalance", cluster.nodes[0].addr, timeout=900)
        assert "[OK] moved" in out.stdout, out.stdout + out.stderr
        print(out.stdout.strip().splitlines()[-2])
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == [], errors[:5]
    print(f"redis-py rebuilt its client {len(stale)} times (ASK to a shard it did not know)")
    counts = []
    for e in cluster.nodes[0].client().execute_command("CLUSTER", "SHARDS"):
        d = dict(zip(e[::2], e[1::2])) if isinstance(e, list) else e
        s = d[b"slots"]
        counts.append(sum(s[i + 1] - s[i] + 1 for i in range(0, len(s), 2)))
    assert sorted(counts) == [4096, 4096, 4096, 4096], counts
    check_no_key_lost_or_duplicated(cluster, acked)
