"""Limits against real shardai processes: maxmemory refuses writes that would pass it with
Redis's OOM text while reads and deletes keep working, in a standalone node and on a shard's
leader; replies stay bounded (VALUES of a huge tensor, MODEL_CHUNK_SIZE); keys with a time to
live cost no Raft entries until one is due."""
import shutil
import socket
import threading
import time

import pytest
import redis

from conftest import Server
from shardcluster import Cluster

OOM = "command not allowed when used memory > 'maxmemory'."


@pytest.fixture
def small():
    s = Server("--maxmemory", "4mb")
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


def test_a_zero_filled_tensor_cannot_pass_maxmemory(small):
    r = small.client()
    # 40 bytes on the wire, 512 MiB in memory.
    with pytest.raises(redis.exceptions.OutOfMemoryError, match=OOM):
        r.execute_command("AI.TENSORSET", "big", "INT8", 536870912)
    assert r.exists("big") == 0
    mem = r.info("memory")
    assert mem["maxmemory"] == 4 << 20
    assert mem["maxmemory_policy"] == "noeviction"
    assert mem["used_memory"] < 1 << 20


def test_writes_stop_at_the_limit_reads_and_deletes_go_on(small):
    r = small.client()
    blob = b"\x01" * (256 << 10)
    stored = 0
    with pytest.raises(redis.exceptions.OutOfMemoryError, match=OOM):
        for i in range(64):
            r.execute_command("AI.TENSORSET", f"t{i}", "UINT8", len(blob), "BLOB", blob)
            stored += 1
    # Roughly 4 MiB of 256 KiB tensors, and no more.
    assert 10 <= stored < 16, stored
    used = r.info("memory")["used_memory"]
    assert used <= 4 << 20
    # A small write still fits under the limit...
    assert r.set("small", "v")
    # ...until the dataset fills it: then every write that grows the dataset is refused,
    # whatever its type.
    assert r.config_set("maxmemory", r.info("memory")["used_memory"])
    for args in (("SET", "s", "v"), ("AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 1),
                 ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"x")):
        with pytest.raises(redis.exceptions.OutOfMemoryError, match=OOM):
            r.execute_command(*args)
    # Reads and deletes work.
    assert r.execute_command("AI.TENSORGET", "t0", "BLOB") == blob
    assert r.dbsize() == stored + 1
    assert r.delete("t0", "t1") == 2
    assert r.config_set("maxmemory", "4mb")
    r.execute_command("AI.TENSORSET", "again", "UINT8", len(blob), "BLOB", blob)
    # CONFIG SET moves the limit at once; 0 lifts it.
    assert r.config_get("maxmemory") == {"maxmemory": str(4 << 20)}
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert r.config_set("maxmemory", "64mb")
    r.execute_command("AI.TENSORSET", "more", "UINT8", len(blob), "BLOB", blob)
    assert r.config_set("maxmemory", "1mb")
    with pytest.raises(redis.exceptions.OutOfMemoryError, match=OOM):
        r.set("s", "v")
    assert r.config_set("maxmemory", 0)
    assert r.set("s", "v")
    with pytest.raises(redis.ResponseError, match="only noeviction"):
        r.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(redis.ResponseError, match="must be a memory value"):
        r.config_set("maxmemory", "lots")


def test_concurrent_writes_cannot_pass_the_limit_together(small):
    blob = b"\x02" * (512 << 10)
    errors, oks = [], []

    def writer(n):
        c = small.client()
        for i in range(8):
            try:
                c.execute_command("AI.TENSORSET", f"w{n}:{i}", "UINT8", len(blob), "BLOB", blob)
                oks.append(1)
            except redis.exceptions.OutOfMemoryError:
                errors.append(1)
        c.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = small.client()
    assert errors and len(oks) <= 8
    assert r.info("memory")["used_memory"] <= 4 << 20


def test_a_shard_leader_refuses_and_its_replicas_keep_serving():
    c = Cluster(3, extra=["--maxmemory", "2mb"])
    try:
        client = c.client()
        blob = b"\x03" * (256 << 10)
        with pytest.raises(redis.exceptions.OutOfMemoryError, match=OOM):
            for i in range(32):
                client.execute("AI.TENSORSET", f"k{i}", "UINT8", len(blob), "BLOB", blob)
        for f in c.followers():
            c.wait_caught_up(f)
            r = f.client(single_connection_client=True)
            r.execute_command("READONLY")
            assert r.execute_command("AI.TENSORGET", "k0", "BLOB") == blob
            assert r.info("memory")["used_memory"] <= 2 << 20
            r.close()
    finally:
        c.close()


def test_expiry_proposes_only_when_a_key_is_due():
    c = Cluster(1, replicas=0)
    try:
        r = c.nodes[0].client()
        assert r.set("far", "v", ex=1000)
        assert r.set("soon", "v", px=300)
        # The due key is removed (DBSIZE counts keys not yet removed)...
        end = time.time() + 5
        while r.dbsize() != 1:
            assert time.time() < end, "the due key was not removed"
            time.sleep(0.05)
        # ...and the one far from due writes nothing to the log meanwhile.
        before = int(r.info("replication")["raft_commit_index"])
        time.sleep(1.5)
        after = int(r.info("replication")["raft_commit_index"])
        assert after - before <= 1, (before, after)
        assert r.get("far") == b"v"
    finally:
        c.close()


def test_replies_stay_bounded():
    s = Server()
    try:
        r = s.client()
        n = (1 << 22) + 1
        r.execute_command("AI.TENSORSET", "big", "INT8", n)
        # Element by element this reply would take hundreds of MB before its first byte.
        for fmt in (("VALUES",), ("META", "VALUES")):
            with pytest.raises(redis.ResponseError,
                               match=f"tensor has {n} elements, more than VALUES replies "
                                     f"\\({1 << 22}\\): use BLOB"):
                r.execute_command("AI.TENSORGET", "big", *fmt)
        got = r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "big", "|>",
                                "AI.TENSORGET", "big", "VALUES")
        assert isinstance(got[0], redis.ResponseError) and "use BLOB" in str(got[0])
        assert len(r.execute_command("AI.TENSORGET", "big", "BLOB")) == n
        r.execute_command("AI.TENSORSET", "small", "INT8", 3, "VALUES", 1, 2, 3)
        assert r.execute_command("AI.TENSORGET", "small", "VALUES") == [1, 2, 3]
        # MODELGET's chunks are at least 1 KiB: a 1-byte chunk would reply a model as
        # millions of replies.
        with pytest.raises(redis.ResponseError, match="at least 1024 bytes"):
            r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 1)
        with pytest.raises(redis.ResponseError, match="invalid chunk size"):
            r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 0)
        assert r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024) == b"OK"
        assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 1024
        # Bounded work per request.
        with pytest.raises(redis.ResponseError, match="more than 32 dimensions"):
            r.execute_command("AI.TENSORSET", "r", "INT8", *[1] * 33)
        with pytest.raises(redis.ResponseError, match="1001 operations, more than 1000"):
            r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "small",
                              *["|>", "AI.TENSORGET", "small", "META"] * 1001)
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def connected(r):
    return r.info("clients")["connected_clients"]


def wait_until(cond, timeout, what):
    end = time.time() + timeout
    while not cond():
        assert time.time() < end, what
        time.sleep(0.05)


def test_an_idle_client_is_closed_after_timeout():
    s = Server("--timeout", "1")
    try:
        r = s.client()
        assert r.config_get("timeout") == {"timeout": "1"}
        idle = socket.create_connection(("127.0.0.1", s.port))
        idle.sendall(b"PING\r\n")
        assert idle.recv(100) == b"+PONG\r\n"
        idle.settimeout(5)
        start = time.time()
        assert idle.recv(100) == b""  # closed by the server
        assert 0.9 < time.time() - start < 4
        idle.close()
        assert r.config_set("timeout", 0)
        kept = socket.create_connection(("127.0.0.1", s.port))
        time.sleep(1.5)
        kept.sendall(b"PING\r\n")
        assert kept.recv(100) == b"+PONG\r\n"
        kept.close()
        with pytest.raises(redis.ResponseError, match="from 0 to 31536000"):
            r.config_set("timeout", -1)
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def never_reading_client(port, requests):
    """A connection with a small receive buffer that sends `requests` and reads nothing."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.connect(("127.0.0.1", port))
    c.sendall(requests)
    return c


@pytest.mark.parametrize("flags,reason", [
    (("--client-output-buffer-limit", "normal 1mb 0 0"), "hard limit"),
    (("--client-output-buffer-limit", "normal 0 256kb 1", "--client-write-timeout", "0"),
     "soft limit (262144) for 1 s"),
    (("--client-write-timeout", "1"), "read none of"),
])
def test_a_client_that_does_not_read_is_closed(flags, reason):
    s = Server(*flags)
    try:
        r = s.client()
        blob = b"\x07" * (2 << 20)
        r.execute_command("AI.TENSORSET", "t", "UINT8", len(blob), "BLOB", blob)
        get = b"*3\r\n$12\r\nAI.TENSORGET\r\n$1\r\nt\r\n$4\r\nBLOB\r\n"
        accepted = r.info("stats")["total_connections_received"]
        c = never_reading_client(s.port, get * 20)
        wait_until(lambda: r.info("stats")["total_connections_received"] > accepted, 5,
                   "the client did not connect")
        # Closed: its slot and its replies' memory are given back.
        wait_until(lambda: connected(r) == 1, 10, "the client that does not read is still served")
        c.close()
        assert reason in open(f"{s.dir}/shardai.log").read()
        # Everyone else is served.
        assert r.execute_command("AI.TENSORGET", "t", "META")
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_output_limits_change_at_run_time():
    s = Server()
    try:
        r = s.client()
        assert r.config_get("client-output-buffer-limit") == {
            "client-output-buffer-limit": "normal 0 0 0"}
        assert r.config_get("client-write-timeout") == {"client-write-timeout": "60"}
        assert r.config_set("client-output-buffer-limit", "normal 64kb 32kb 10")
        assert r.config_get("client-output-buffer-limit") == {
            "client-output-buffer-limit": f"normal {64 << 10} {32 << 10} 10"}
        with pytest.raises(redis.ResponseError, match="invalid client class"):
            r.config_set("client-output-buffer-limit", "bogus 32mb 8mb 60")
        # redis.conf's other classes are taken (and have no clients here).
        assert r.config_set("client-output-buffer-limit",
                            "normal 64kb 32kb 10 pubsub 32mb 8mb 60")
        r.execute_command("AI.TENSORSET", "t", "UINT8", 100 << 10)
        # A reply over the hard limit closes the connection that asked for it.
        c = s.client(single_connection_client=True)
        with pytest.raises(redis.ConnectionError):
            c.execute_command("AI.TENSORGET", "t", "BLOB")
        assert r.execute_command("AI.TENSORGET", "t", "META")
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
