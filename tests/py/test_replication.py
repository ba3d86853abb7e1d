"""Replication through Raft with real processes: a 3-replica shard formed by
`shardai cluster create`, writes acknowledged only once on a majority, kill -9 of the leader
mid-stream, restarts from the data folders, a wiped replica caught up by snapshot, MOVED from
followers, READONLY reads and models executed on replicas."""
import os
import threading
import time

import numpy as np
import pytest
import redis

from harness import ROOT, binary
from shardcluster import Cluster, Node, cli

MODELS = ROOT / "tests" / "models" / "redisai"


def payload(i):
    return np.full(64, i % 251, dtype=np.uint8).tobytes()


def check_all(node, acked, readonly):
    """Every acknowledged tensor is on `node`, with its bytes."""
    r = node.client()
    keys = sorted(acked)
    for start in range(0, len(keys), 1000):
        p = r.pipeline(transaction=False)
        # READONLY is per connection: send it on the pipeline's own.
        p.execute_command("READONLY" if readonly else "READWRITE")
        for i in keys[start:start + 1000]:
            p.execute_command("AI.TENSORGET", f"t{i}", "BLOB")
        got = p.execute(raise_on_error=False)[1:]
        bad = [(i, g) for i, g in zip(keys[start:start + 1000], got) if g != payload(i)]
        assert not bad, (f"{node.addr}: {len(bad)} acknowledged writes missing, first "
                         f"{[(i, str(g)) for i, g in bad[:3]]}; {node.replication()}; "
                         f"its log:\n{node.log_text()[-6000:]}")
    r.close()


@pytest.fixture
def cluster():
    c = Cluster(3, extra=["--snapshot-entries", "3000"])
    yield c
    c.close()


def test_failover_restart_and_snapshot_keep_every_acknowledged_write(cluster):
    total, writers = 10_000, 8
    acked, lock = set(), threading.Lock()
    errors = []

    def writer(w):
        c = cluster.client()
        try:
            for i in range(w, total, writers):
                if c.execute("AI.TENSORSET", f"t{i}", "UINT8", 64, "BLOB", payload(i)) == b"OK":
                    with lock:
                        acked.add(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()

    old = cluster.leader()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    while len(acked) < 3000:
        time.sleep(0.01)
    old.kill()
    killed_at = len(acked)
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    assert killed_at < len(acked), "writes went on after the kill"
    assert len(acked) == total

    new = cluster.leader()
    assert new is not old
    check_all(new, acked, readonly=False)
    for f in cluster.followers():
        cluster.wait_caught_up(f)
        check_all(f, acked, readonly=True)

    # The killed node restarts from its folder and catches up from its log or a snapshot.
    old.start()
    cluster.wait_caught_up(old)
    check_all(old, acked, readonly=True)

    # Every node restarts from its folder: the cluster re-forms with all data.
    for x in cluster.nodes:
        x.kill()
    for x in cluster.nodes:
        x.start()
    lead = cluster.leader()
    check_all(lead, acked, readonly=False)
    for f in cluster.followers():
        cluster.wait_caught_up(f)
        check_all(f, acked, readonly=True)

    # A replica whose folder is wiped rejoins (under a new id) through a snapshot.
    victim = cluster.followers()[0]
    victim_id = victim.replication()["raft_node_id"]
    cli("del-node", cluster.leader().addr, str(victim_id))
    victim.kill()
    victim.wipe()
    victim.start()
    cli("add-node", victim.addr, cluster.leader().addr)
    cluster.wait_caught_up(victim)
    check_all(victim, acked, readonly=True)
    assert "snapshot installed" in victim.log_text()
    assert int(victim.replication()["raft_snapshot_index"]) > 0
    assert int(cluster.leader().replication()["connected_slaves"]) == 2


def test_moved_readonly_role_and_models_on_replicas(cluster):
    lead = cluster.leader()
    f = cluster.followers()[0]
    r, fr = lead.client(), f.client(single_connection_client=True)
    assert r.execute_command("AI.TENSORSET", "a{x}", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4) == b"OK"

    # Writes and plain reads on a follower are redirected to the leader, by slot.
    slot = r.execute_command("CLUSTER", "KEYSLOT", "a{x}")
    with pytest.raises(redis.exceptions.MovedError) as moved:
        fr.execute_command("AI.TENSORGET", "a{x}", "META")
    assert moved.value.slot_id == slot and moved.value.node_addr == ("127.0.0.1", lead.port)
    with pytest.raises(redis.exceptions.MovedError):
        fr.execute_command("AI.TENSORSET", "b", "FLOAT", 1, "VALUES", 1)
    # READONLY: reads are served by the replica, writes still go to the leader.
    assert fr.execute_command("READONLY") in (True, b"OK")
    cluster.wait_caught_up(f)
    assert [float(v) for v in fr.execute_command("AI.TENSORGET", "a{x}", "VALUES")] == [1, 2, 3, 4]
    with pytest.raises(redis.exceptions.MovedError):
        fr.execute_command("AI.TENSORSET", "b", "FLOAT", 1, "VALUES", 1)
    # Commands without keys are answered by any node.
    assert fr.ping()

    # A model stored through the leader is loaded on every replica and runs there.
    blob = (MODELS / "linear_iris.onnx").read_bytes()
    assert r.execute_command("AI.MODELSTORE", "m{x}", "ONNX", "CPU", "BLOB", blob) == b"OK"
    r.execute_command("AI.TENSORSET", "in{x}", "FLOAT", 1, 4, "VALUES", 5.0, 3.4, 1.6, 0.4)
    want = r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "in{x}", "|>",
                             "AI.MODELEXECUTE", "m{x}", "INPUTS", 1, "in{x}", "OUTPUTS", 1, "o",
                             "|>", "AI.TENSORGET", "o", "VALUES")
    cluster.wait_caught_up(f)
    got = fr.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "in{x}", "|>",
                             "AI.MODELEXECUTE", "m{x}", "INPUTS", 1, "in{x}", "OUTPUTS", 1, "o",
                             "|>", "AI.TENSORGET", "o", "VALUES")
    assert got == want
    assert fr.execute_command("AI.MODELGET", "m{x}", "META")[1] == b"ONNX"

    # ROLE and INFO replication show the shard's shape.
    role = r.execute_command("ROLE")
    assert role[0] == b"master" and len(role[2]) == 2
    frole = fr.execute_command("ROLE")
    assert frole[0] == b"slave" and frole[2] == lead.port and frole[3] == b"connected"
    info = f.replication()
    assert info["role"] == "slave" and info["master_link_status"] == "up"
    assert info["raft_term"] >= 1 and info["raft_commit_index"] >= 1
    linfo = lead.replication()
    assert linfo["role"] == "master" and linfo["connected_slaves"] == 2
    assert linfo["slave0"]["state"] == "online" and "lag" in linfo["slave0"]
    ci = lead.client().execute_command("CLUSTER", "INFO")
    assert (ci["cluster_state"] if isinstance(ci, dict) else ci.decode()).startswith("ok") \
        or b"cluster_state:ok" in ci
    for c in (r, fr):
        c.close()


def test_unformed_and_plain_nodes_explain_themselves():
    lonely = Node()
    try:
        r = lonely.client()
        with pytest.raises(redis.exceptions.ClusterDownError, match="Hash slot not served"):
            r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
        assert r.ping()
        # Shards of replicas + 1 nodes: one node cannot make one of three; the CLI says so.
        out = os.popen(f"{binary()} cluster create {lonely.addr} "
                       f"--replicas 2 2>&1").read()
        assert "cannot form shards of 3 (--replicas 2 + 1)" in out
    finally:
        lonely.kill()
