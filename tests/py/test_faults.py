"""Faults against real shardai processes: a node whose Raft log was lost while its
cluster.conf remains refuses to start; a leader cut off from its majority (its followers
paused with SIGSTOP) serves no read from its state, whether the read names keys, names none
(DBSIZE, KEYS, SCAN) or is a DAG that only LOADs and reads; once the followers return, it
serves again; a bit flipped in an acknowledged entry of a node's log refuses its start and
cuts nothing (torn writes, which are cut, are tested on the log files in raft/src/log_store);
a follower that cannot load a replicated model's backend keeps the model, answers its runs
with the load error (also after a restart) and loads it once the backend can be found; a
leader whose disk fills up (a 40 MiB tmpfs) stops and leads nothing while the shard goes on,
and once space returns it restarts itself and comes back in step."""
import os
import shutil
import signal
import time

import pytest
import redis

from shardcluster import Cluster


@pytest.fixture
def shard():
    c = Cluster(3, extra=["--raft-election-timeout-ms", "300"])
    yield c
    for n in c.nodes:
        if n.alive():
            os.kill(n.proc.pid, signal.SIGCONT)
    c.close()


def test_a_leader_without_its_majority_answers_no_reads(shard):
    leader = shard.leader()
    r = leader.client(socket_timeout=30)
    assert r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 7) == b"OK"
    followers = shard.followers()
    for f in followers:
        os.kill(f.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)  # past the leader's lease
        reads = [
            ("AI.TENSORGET", "t", "VALUES"),
            ("DBSIZE",),
            ("KEYS", "*"),
            ("SCAN", 0),
            ("AI.DAGEXECUTE", "LOAD", 1, "t", "|>", "AI.TENSORGET", "t", "VALUES"),
        ]
        for args in reads:
            start = time.time()
            with pytest.raises((redis.exceptions.ClusterDownError, redis.exceptions.MovedError)):
                r.execute_command(*args)
            assert time.time() - start < 10, args
    finally:
        for f in followers:
            os.kill(f.proc.pid, signal.SIGCONT)
    # The majority is back: reads are served again, by whoever leads now.
    leader = shard.leader()
    r = leader.client(socket_timeout=30)
    end = time.time() + 10
    while True:
        try:
            assert r.dbsize() == 1
            got = r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t", "|>",
                                    "AI.TENSORGET", "t", "VALUES")
            break
        except redis.ResponseError:
            # Leadership may still move: ask whoever leads now.
            assert time.time() < end
            time.sleep(0.1)
            r = shard.leader().client(socket_timeout=30)
    assert [float(x) for x in got[0]] == [7.0]


def test_a_node_whose_raft_log_was_lost_refuses_to_start(shard):
    victim = shard.followers()[0]
    # With its log, a node restarts as ever.
    victim.kill()
    victim.start()
    shard.wait_caught_up(victim)
    victim.kill()
    shutil.rmtree(os.path.join(victim.dir, "raft"))
    assert not victim.start(check=False)
    log = victim.log_text()
    assert "raft is gone" in log and "del-node" in log, log[-2000:]
    # Nothing was recreated behind the operator's back.
    assert not os.path.exists(os.path.join(victim.dir, "raft"))
    # The other two serve on.
    r = shard.leader().client()
    assert r.execute_command("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1) == b"OK"


def _records(path):
    """(offset, end) of each record of a Raft log segment."""
    with open(path, "rb") as f:
        b = f.read()
    off, out = 16, []  # after the versioned header
    while off + 8 <= len(b):
        n = int.from_bytes(b[off:off + 4], "little")
        if n == 0:
            break
        out.append((off, off + 8 + n))
        off += 8 + n
    return out


def _patch(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def test_a_flipped_bit_in_the_log_refuses_the_start(shard):
    r = shard.leader().client()
    for i in range(20):
        assert r.execute_command("AI.TENSORSET", f"t{i}", "FLOAT", 1, "VALUES", i) == b"OK"
    victim = shard.followers()[0]
    shard.wait_caught_up(victim)
    victim.kill()
    log = os.path.join(victim.dir, "raft", "log")
    seg = os.path.join(log, sorted(x for x in os.listdir(log) if x.endswith(".seg"))[-1])
    recs = _records(seg)
    assert len(recs) >= 20, recs
    # A bit flipped in an acknowledged entry, intact entries after it: not a crash.
    off, end = recs[-5]
    with open(seg, "rb") as f:
        f.seek(off + 12)
        byte = f.read(1)[0]
    _patch(seg, off + 12, bytes([byte ^ 0x20]))
    assert not victim.start(check=False)
    text = victim.log_text()
    assert f"corrupt at byte {off}" in text and "not a torn write" in text, text[-2000:]
    with open(seg, "rb") as f:
        assert len(f.read()) >= end, "nothing was cut while refusing"
    _patch(seg, off + 12, bytes([byte]))
    # Put back, the node starts with everything it had and follows on.
    victim.start()
    assert r.execute_command("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1) == b"OK"
    shard.wait_caught_up(victim)


def test_a_replica_without_a_backend_keeps_the_model_and_says_why(shard, tmp_path):
    from harness import ROOT
    models = ROOT / "tests" / "models" / "redisai"
    leader = shard.leader()
    r = leader.client()
    real = r.execute_command("AI.CONFIG", "GET", "BACKENDSPATH").decode()
    # A follower restarted where no backend library can be found.
    victim = shard.followers()[0]
    victim.kill()
    victim.extra += ["--backends-path", str(tmp_path), "--enable-backend-loading", "yes"]
    victim.start()
    blob = (models / "linear_iris.onnx").read_bytes()
    assert r.execute_command("AI.MODELSTORE", "m{x}", "ONNX", "CPU", "BLOB", blob) == b"OK"
    r.execute_command("AI.TENSORSET", "in{x}", "FLOAT", 1, 4, "VALUES", 5.0, 3.4, 1.6, 0.4)
    dag = ("AI.DAGEXECUTE_RO", "LOAD", 1, "in{x}", "|>",
           "AI.MODELEXECUTE", "m{x}", "INPUTS", 1, "in{x}", "OUTPUTS", 1, "o",
           "|>", "AI.TENSORGET", "o", "VALUES")
    want = r.execute_command(*dag)
    shard.wait_caught_up(victim)

    def check_kept():
        v = victim.client()
        v.execute_command("READONLY")
        # The model is there (its blob is data every replica holds) and says why it cannot run.
        assert v.execute_command("AI.MODELGET", "m{x}", "BLOB") == blob
        got = v.execute_command(*dag)
        assert isinstance(got[0], redis.ResponseError), got
        assert "could not be loaded on this node" in str(got[0]), got
        assert v.info("ai_runs")["ai_models_not_loaded"] == 1
        return v

    v = check_kept()
    assert "it is kept" in victim.log_text()
    # After a restart (the log replayed) it is still there.
    victim.kill()
    victim.start()
    shard.wait_caught_up(victim)
    v = check_kept()
    # Once its backend can be found, it is loaded and runs as on the leader.
    assert v.execute_command("AI.CONFIG", "BACKENDSPATH", real) == b"OK"
    assert v.info("ai_runs")["ai_models_not_loaded"] == 0
    assert v.execute_command(*dag) == want


def test_a_leader_whose_disk_fills_up_stops_and_the_shard_goes_on(shard, tmp_path):
    import shutil
    import subprocess
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs: run it as root (CI does)")
    mnt = str(tmp_path / "small")
    os.makedirs(mnt)
    victim = shard.leader()
    victim.kill()
    old_dir = victim.dir
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", mnt], check=True)
    try:
        # The leader's data folder moves to a 40 MiB file system; it leads again at restart.
        for name in os.listdir(victim.dir):
            src = os.path.join(victim.dir, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(mnt, name))
        victim.dir = mnt
        victim.start()
        acked, errors = [], 0
        for i in range(80):
            try:
                r = shard.leader(timeout=10).client()
                r.execute_command("AI.TENSORSET", f"t{i}", "INT8", 1 << 20, "BLOB", bytes([i]) * (1 << 20))
                acked.append(i)
            except redis.RedisError:
                errors += 1
                time.sleep(0.2)
        # Its disk filled: it stopped, claims to lead nothing, says why; another node leads and
        # the shard took the writes.
        info = victim.replication()
        assert "No space left" in info["raft_status"], info
        assert info["role"] == "slave", info
        assert "No space left" in victim.log_text()
        assert shard.leader() is not victim
        assert len(acked) >= 70 and errors <= 10, (len(acked), errors)
        # Every acknowledged write is on the new leader.
        r = shard.leader().client()
        for i in acked[::10]:
            assert r.execute_command("AI.TENSORGET", f"t{i}", "BLOB") == bytes([i]) * (1 << 20)
        # Space returns (a larger file system): the node sees it, restarts itself in place
        # (same PID) and comes back in step.
        pid = victim.proc.pid
        subprocess.run(["mount", "-o", "remount,size=400m", mnt], check=True)
        end = time.time() + 30
        while "restarting to recover" not in victim.log_text():
            assert time.time() < end, victim.log_text()[-3000:]
            time.sleep(0.2)
        assert r.execute_command("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1) == b"OK"
        shard.wait_caught_up(victim)
        assert victim.alive() and victim.proc.pid == pid
        assert victim.replication()["raft_status"] == "ok"
        # While stopped it did not flood its log with the live leader's every heartbeat.
        assert victim.log_text().count("failed to send RaftMsg") < 20
    finally:
        victim.kill()
        subprocess.run(["umount", "-l", mnt])
        victim.dir = old_dir
