"""Pipelined writes on one connection: AI.TENSORSETs sent without waiting are proposed
without waiting for each other's commit, and every reply still comes back in order, reads
in the same pipeline see the writes before them, errors land on their own command, and
acknowledged writes survive a kill -9. Driven by redis-py pipelines and `redis-cli --pipe`."""
import struct
import subprocess

import pytest
import redis

from conftest import Server


def tensorset(p, key, v):
    p.execute_command("AI.TENSORSET", key, "INT32", 1, "BLOB", struct.pack("<i", v))


def value(reply):
    return struct.unpack("<i", reply)[0]


def test_replies_come_back_in_order_and_reads_see_earlier_writes(server):
    r = server.client()
    p = r.pipeline(transaction=False)
    for i in range(500):
        tensorset(p, "k", i)
        if i % 50 == 49:
            p.execute_command("AI.TENSORGET", "k", "BLOB")
        tensorset(p, f"k{i}", i)
    out = p.execute(raise_on_error=False)
    reads = [x for x in out if x != b"OK"]
    assert [value(x) for x in reads] == list(range(49, 500, 50))
    assert out.count(b"OK") == 1000
    assert value(r.execute_command("AI.TENSORGET", "k", "BLOB")) == 499
    assert r.dbsize() == 501


def test_an_error_in_a_pipeline_answers_its_own_command(server):
    r = server.client()
    r.set("s", "a string")
    p = r.pipeline(transaction=False)
    tensorset(p, "a", 1)
    p.execute_command("AI.TENSORSET", "bad", "INT32", 2, "BLOB", b"\x00")  # blob too short
    tensorset(p, "s", 2)  # another type's key: WRONGTYPE when it applies
    tensorset(p, "b", 3)
    p.execute_command("AI.TENSORGET", "b", "VALUES")
    p.execute_command("MULTI")
    tensorset(p, "c", 4)
    p.execute_command("EXEC")
    out = p.execute(raise_on_error=False)
    assert out[0] == b"OK"
    assert isinstance(out[1], redis.ResponseError)
    assert isinstance(out[2], redis.ResponseError) and "WRONGTYPE" in str(out[2])
    assert out[3] == b"OK"
    assert out[4] == [3]
    assert out[5:] == [b"OK", b"QUEUED", [b"OK"]]
    assert r.exists("bad") == 0 and r.type("s") == b"string"


def test_acknowledged_pipelined_writes_survive_a_kill(tmp_path):
    s = Server()
    try:
        r = s.client()
        p = r.pipeline(transaction=False)
        for i in range(3000):
            tensorset(p, f"t{i}", i)
        assert p.execute() == [b"OK"] * 3000
        s.kill()
        s = Server(dir=s.dir)
        r = s.client()
        assert r.dbsize() == 3000
        assert value(r.execute_command("AI.TENSORGET", "t2999", "BLOB")) == 2999
    finally:
        s.stop()


def test_redis_cli_pipe_loads_every_write(server, tmp_path):
    stream = tmp_path / "load.resp"
    with open(stream, "wb") as f:
        for i in range(20_000):
            blob = struct.pack("<i", i)
            parts = [b"AI.TENSORSET", b"p%d" % i, b"INT32", b"1", b"BLOB", blob]
            f.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in parts))
    with open(stream, "rb") as f:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=f,
                             capture_output=True, timeout=300)
    assert out.returncode == 0, out
    assert b"errors: 0, replies: 20000" in out.stdout, out.stdout
    r = server.client()
    assert r.dbsize() == 20_000
    assert value(r.execute_command("AI.TENSORGET", "p12345", "BLOB")) == 12345


@pytest.mark.parametrize("protocol", [2, 3])
def test_slowlog_records_pipelined_writes(server, protocol):
    r = server.client(protocol=protocol)
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    p = r.pipeline(transaction=False)
    for i in range(10):
        tensorset(p, f"w{i}", i)
    assert p.execute() == [b"OK"] * 10
    logged = [e for e in r.slowlog_get(128) if e["command"].startswith(b"AI.TENSORSET")]
    assert len(logged) == 10
    assert sorted(e["command"].split()[1] for e in logged) == sorted(b"w%d" % i for i in range(10))


def test_large_and_small_writes_keep_their_order(server):
    r = server.client()
    big = b"\x01" * (200 * 1024)
    p = r.pipeline(transaction=False)
    for i in range(20):
        tensorset(p, "x", i)
        p.execute_command("AI.TENSORSET", "x", "UINT8", len(big), "BLOB", big)
    tensorset(p, "x", 99)
    p.execute_command("AI.TENSORGET", "x", "META")
    out = p.execute()
    assert out[:-1] == [b"OK"] * 41
    assert out[-1] == [b"dtype", b"INT32", b"shape", [1]]


def test_pipelines_and_exec_of_other_clients_do_not_block_each_other(server):
    """A connection with writes in flight holds the transaction gate shared; an EXEC of
    another client waiting for it must not stall that connection, nor the node."""
    import threading
    errors = []

    def pipeliner(n):
        try:
            c = server.client()
            for round_ in range(20):
                p = c.pipeline(transaction=False)
                for i in range(200):
                    tensorset(p, f"own{n}", round_ * 1000 + i)
                assert p.execute() == [b"OK"] * 200
                assert value(c.execute_command("AI.TENSORGET", f"own{n}", "BLOB")) == round_ * 1000 + 199
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def transactions():
        try:
            c = server.client()
            for i in range(100):
                p = c.pipeline(transaction=True)
                tensorset(p, "tx", i)
                p.execute_command("AI.TENSORGET", "tx", "BLOB")
                out = p.execute()
                assert out[0] == b"OK" and value(out[1]) == i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=pipeliner, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=transactions) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a client stalled"
    assert not errors, errors
    assert server.client().ping()


def test_a_parse_error_after_writes_in_flight_sees_them(server):
    r = server.client()
    p = r.pipeline(transaction=False)
    tensorset(p, "t", 7)
    p.execute_command("AI.TENSORGET", "t", "BADFORMAT")
    p.execute_command("AI.TENSORGET", "t", "BLOB")
    out = p.execute(raise_on_error=False)
    assert out[0] == b"OK"
    assert isinstance(out[1], redis.ResponseError) and "empty" not in str(out[1]), out[1]
    assert value(out[2]) == 7
