"""The default node (no cluster flags) keeps its data in --dir: every acknowledged write, made
by several clients at once, is there after kill -9 and a restart, under each appendfsync
choice (always, everysec, no), also once the log has been cut down to a snapshot; a model is
loaded again and runs; TTLs and deletions hold. CONFIG SET/GET appendfsync and INFO
persistence report the policy; a data folder belongs to one mode (standalone or cluster) and
one process; a full disk stops writes until space returns, when the node recovers by itself."""
import os
import pathlib
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest
import redis

from conftest import Server, binary, free_port

MODELS = pathlib.Path(__file__).resolve().parents[1] / "models" / "redisai"


def writers(port, n, stop):
    """`n` clients writing numbered strings and tensors until `stop` is set; returns the
    threads and, per client, the keys whose writes were acknowledged."""
    acked = [[] for _ in range(n)]

    def run(i):
        r = redis.Redis(port=port, socket_timeout=10)
        j = 0
        while not stop.is_set():
            key = f"w{i}:{j}"
            try:
                if j % 2:
                    r.execute_command("AI.TENSORSET", key, "INT32", 1, "VALUES", j)
                else:
                    r.set(key, f"v{j}")
            except redis.ConnectionError:
                return  # the server was killed mid-write: this one was not acknowledged
            acked[i].append(key)
            j += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, acked


@pytest.mark.parametrize("mode", ["always", "everysec", "no"])
def test_every_acknowledged_write_survives_kill_9(mode):
    s = Server("--appendfsync", mode, "--snapshot-entries", "300")
    try:
        r = s.client()
        assert r.config_get("appendfsync") == {"appendfsync": mode}
        blob = (MODELS / "linear_iris.onnx").read_bytes()
        assert r.execute_command("AI.MODELSTORE", "lin", "ONNX", "CPU", "TAG", "v1", "BLOB", blob) == b"OK"
        r.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 4, "VALUES", 5.0, 3.4, 1.6, 0.4)
        r.execute_command("AI.MODELEXECUTE", "lin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
        want = r.execute_command("AI.TENSORGET", "y", "BLOB")
        r.set("ttl", "later gone", ex=1000)
        r.set("short", "soon gone", px=300)
        r.set("gone", "x")
        r.delete("gone")
        stop = threading.Event()
        threads, acked = writers(s.port, 4, stop)
        time.sleep(2.0)
        s.kill()  # while the writers are writing
        stop.set()
        for t in threads:
            t.join()
        total = sum(len(a) for a in acked)
        assert total > 300, "too few writes to cover a snapshot"
        assert os.listdir(os.path.join(s.dir, "standalone", "snapshots")), "no snapshot was taken"

        s = Server(dir=s.dir)
        r = s.client()
        assert "data recovered" in s.log_text()
        for keys in acked:
            for key in keys:
                j = int(key.split(":")[1])
                if j % 2:
                    assert r.execute_command("AI.TENSORGET", key, "VALUES") == [j], key
                else:
                    assert r.get(key) == f"v{j}".encode(), key
        # The model was loaded again from the log or snapshot and runs as before.
        r.execute_command("AI.MODELEXECUTE", "lin", "INPUTS", 1, "x", "OUTPUTS", 1, "y2")
        assert r.execute_command("AI.TENSORGET", "y2", "BLOB") == want
        meta = r.execute_command("AI.MODELGET", "lin", "META")
        assert dict(zip(meta[::2], meta[1::2]))[b"tag"] == b"v1"
        assert r.get("ttl") == b"later gone"
        assert r.get("short") is None  # its deadline passed while the node was down
        assert r.exists("gone") == 0
        # It is the same data log going on: new writes are kept too.
        r.set("after", "restart")
        s.stop()
        s = Server(dir=s.dir)
        assert s.client().get("after") == b"restart"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_appendfsync_is_set_at_run_time_and_reported(server):
    r = server.client()
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    info = r.info("persistence")
    assert info["aof_enabled"] == 1
    assert info["aof_last_write_status"] == "ok"
    assert info["shardai_appendfsync"] == "everysec"
    for mode in ("always", "no", "everysec", "ALWAYS"):
        assert r.config_set("appendfsync", mode)
        assert r.config_get("appendfsync") == {"appendfsync": mode.lower()}
        r.set("k", mode)
        assert r.get("k") == mode.encode()
    with pytest.raises(redis.ResponseError) as e:
        r.config_set("appendfsync", "sometimes")
    assert str(e.value) == ("CONFIG SET failed (possibly related to argument 'appendfsync') - "
                            "argument(s) must be one of the following: always, everysec, no")
    assert r.config_get("appendfsync") == {"appendfsync": "always"}


def start_fails(*args):
    out = subprocess.run([binary(), "--port", str(free_port()), "--bind", "127.0.0.1", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    return out.stderr


def test_a_data_folder_belongs_to_one_mode(tmp_path):
    # A cluster node's folder is not a standalone node's, and the other way round.
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "cluster.conf").write_text(
        "cluster-id c1\nnode-id 2\nclient-addr 127.0.0.1:7000\nbus-addr 127.0.0.1:17000\n"
        "raft-state yes\n")
    err = start_fails("--dir", str(tmp_path / "c"))
    assert "belongs to a cluster node" in err and "--cluster-enabled yes" in err
    s = Server()
    s.client().set("k", "v")
    # Two processes never share a data folder.
    err = start_fails("--dir", s.dir)
    assert "another shardai process is using the data folder" in err, err
    s.stop()
    try:
        err = start_fails("--dir", s.dir, "--cluster-enabled", "yes", "--cluster-secret", "x" * 32,
                          "--cluster-port", str(free_port()))
        assert "holds the data of a standalone node" in err, err
        # Nothing was changed: the standalone node still has its data.
        s = Server(dir=s.dir)
        assert s.client().get("k") == b"v"
        s.stop()
    finally:
        shutil.rmtree(s.dir, ignore_errors=True)
    # A cluster node fsyncs every write: it refuses a relaxed appendfsync.
    err = start_fails("--dir", str(tmp_path / "d"), "--cluster-enabled", "yes",
                      "--cluster-secret", "x" * 32, "--appendfsync", "everysec")
    assert "--appendfsync everysec is for a single node" in err, err


def test_a_full_disk_stops_writes_and_the_node_recovers_when_space_returns(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs: run it as root (CI does)")
    mnt = str(tmp_path / "small")
    os.makedirs(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", mnt], check=True)
    s = None
    try:
        s = Server("--appendfsync", "always", dir=mnt)
        pid = s.proc.pid
        r = s.client()
        acked, refused = [], None
        for i in range(80):
            try:
                r.execute_command("AI.TENSORSET", f"t{i}", "INT8", 1 << 20, "BLOB", bytes([i]) * (1 << 20))
                acked.append(i)
            except redis.ResponseError as e:
                refused = str(e)
                break
        assert refused is not None and acked, "the 40 MiB disk never filled up"
        assert refused.startswith("this node takes no writes: its log could not be written"), refused
        # Writes are refused, reads go on, and INFO says why.
        assert r.info("persistence")["aof_last_write_status"] == "err"
        assert r.execute_command("AI.TENSORGET", f"t{acked[-1]}", "BLOB") == bytes([acked[-1]]) * (1 << 20)
        with pytest.raises(redis.ResponseError):
            r.set("k", "v")
        # Space returns: the node restarts itself in place and takes writes again.
        subprocess.run(["mount", "-o", "remount,size=400m", mnt], check=True)
        end = time.time() + 30
        while True:
            try:
                if redis.Redis(port=s.port, socket_timeout=5).set("k", "v"):
                    break
            except redis.RedisError:
                pass
            assert time.time() < end, "the node did not recover"
            time.sleep(0.2)
        assert s.proc.poll() is None and s.proc.pid == pid
        r = s.client()
        assert r.info("persistence")["aof_last_write_status"] == "ok"
        for i in acked:
            assert r.execute_command("AI.TENSORGET", f"t{i}", "BLOB") == bytes([i]) * (1 << 20), i
    finally:
        if s:
            s.kill()
        subprocess.run(["umount", "-l", mnt])
