"""Pipelined writes on one connection: writes sent without waiting (AI.TENSORSET, SET,
INCR, HSET, LPUSH, DEL, EXPIRE, ...) are proposed without waiting for each other's commit,
and every reply still comes back in order, reads in the same pipeline see the writes before
them, errors land on their own command, and acknowledged writes survive a kill -9. Driven
by redis-py pipelines and `redis-cli --pipe`; a mixed pipeline of Redis's writes is
answered as Debian's redis-server 7 answers it."""
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


# Every write that is put in flight, its error cases, and reads between them: the same
# replies as redis-server, in the same order.
MIXED = [
    ("SET", "s", "1"), ("SETNX", "s", "2"), ("SET", "s", "3", "NX"), ("SET", "s", "4", "GET"),
    ("SET", "s", "5", "XX", "GET"), ("GETSET", "s", "6"), ("GET", "s"),
    ("INCR", "n"), ("INCRBY", "n", "10"), ("DECR", "n"), ("DECRBY", "n", "3"), ("INCR", "s"),
    ("INCRBYFLOAT", "f", "1.5"), ("INCRBYFLOAT", "s", "x"),
    ("HSET", "h", "a", "1", "b", "2"), ("HMSET", "h", "c", "3"), ("HDEL", "h", "a", "zz"),
    ("HSET", "s", "a", "1"), ("HGETALL", "h"),
    ("RPUSH", "l", "x", "y", "z"), ("LPUSH", "l", "w"), ("LPUSHX", "nolist", "v"),
    ("LPOP", "l"), ("RPOP", "l", "2"), ("LPOP", "nolist"), ("LPOP", "nolist", "2"), ("LPOP", "s"),
    ("LRANGE", "l", "0", "-1"),
    ("MSET", "m1", "a", "m2", "b"), ("MSETNX", "m1", "c", "m3", "d"), ("MSETNX", "m4", "e"),
    ("APPEND", "m1", "bc"), ("SETRANGE", "m2", "3", "zz"), ("GETDEL", "m4"), ("GETDEL", "m4"),
    ("RENAME", "m1", "m5"), ("RENAMENX", "m5", "m2"), ("RENAME", "nokey", "x"),
    ("COPY", "m5", "m6"), ("COPY", "m5", "m6"), ("MGET", "m1", "m2", "m5", "m6"),
    ("EXPIRE", "m5", "100"), ("EXPIRE", "m5", "50", "GT"), ("PEXPIRE", "m6", "100000", "NX"),
    ("EXPIREAT", "m2", "4000000000"), ("EXPIRETIME", "m2"), ("PERSIST", "m5"), ("PERSIST", "m5"),
    ("TTL", "m5"), ("EXPIRE", "nokey", "10"), ("SET", "m5", "v", "EX", "0"),
    ("DEL", "m5", "m6", "nokey"), ("UNLINK", "m2"), ("EXISTS", "m2", "m5", "m6", "s"),
    ("SET", "gone", "v"), ("PEXPIRE", "gone", "-1"), ("EXISTS", "gone"), ("DBSIZE",),
]


def mixed_replies(port, protocol):
    r = redis.Redis(port=port, protocol=protocol)
    r.flushall()
    p = r.pipeline(transaction=False)
    for c in MIXED:
        p.execute_command(*c)
    out = p.execute(raise_on_error=False)
    # redis-py's parsers differ only in error classes; compare errors by their text.
    return [("error", str(x)) if isinstance(x, redis.ResponseError) else x for x in out]


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_mixed_pipeline_of_writes_answers_as_redis_server(server, redis7, protocol):
    expected = mixed_replies(redis7, protocol)
    got = mixed_replies(server.port, protocol)
    assert len(got) == len(MIXED)
    for cmd, g, e in zip(MIXED, got, expected):
        assert g == e, (cmd, g, e)


def test_pipelined_increments_apply_in_order_and_survive_a_kill():
    s = Server()
    try:
        r = s.client()
        p = r.pipeline(transaction=False)
        for i in range(2000):
            p.incr("n")
            p.rpush("l", i)
            p.hset("h", f"f{i % 7}", i)
        out = p.execute()
        assert out[0::3] == list(range(1, 2001))
        assert out[1::3] == list(range(1, 2001))
        s.kill()
        s = Server(dir=s.dir)
        r = s.client()
        assert r.get("n") == b"2000"
        assert r.lrange("l", 0, -1) == [str(i).encode() for i in range(2000)]
        assert r.hget("h", "f5") == b"1993"  # the last i below 2000 with i % 7 == 5
    finally:
        s.stop()


def test_redis_cli_pipe_of_sets_and_deletes(server, tmp_path):
    stream = tmp_path / "load.resp"
    with open(stream, "wb") as f:
        for i in range(20_000):
            key = b"k%d" % (i % 5000)
            for args in ((b"SET", key, b"v%d" % i), (b"DEL", key) if i % 3 == 0 else None):
                if args:
                    f.write(b"*%d\r\n" % len(args))
                    for a in args:
                        f.write(b"$%d\r\n%s\r\n" % (len(a), a))
    with open(stream, "rb") as f:
        out = subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], stdin=f,
                             capture_output=True, timeout=300).stdout.decode()
    assert "errors: 0, replies: 26667" in out, out
    r = server.client()
    # The last write of k<j> is SET v<i> for i = 15000 + j, deleted when i % 3 == 0.
    expect = {b"k%d" % j: b"v%d" % (15000 + j) for j in range(5000) if (15000 + j) % 3}
    assert r.dbsize() == len(expect)
    keys = [b"k%d" % j for j in range(5000)]
    assert dict(zip(keys, r.mget(keys))) == {k: expect.get(k) for k in keys}


def test_a_malformed_tensorset_after_a_write_in_flight_sees_that_write(server):
    """RedisAI answers a malformed AI.TENSORSET on another type's key with WRONGTYPE, so its
    error reads the keyspace: after the writes in flight before it."""
    r = server.client()
    p = r.pipeline(transaction=False)
    p.set("k", "v")
    p.execute_command("AI.TENSORSET", "k", "NOTATYPE", 2)
    p.delete("k")
    p.execute_command("AI.TENSORSET", "k", "NOTATYPE", 2)
    out = p.execute(raise_on_error=False)
    assert out[0] is True
    assert isinstance(out[1], redis.ResponseError) and "WRONGTYPE" in str(out[1]), out[1]
    assert out[2] == 1
    assert isinstance(out[3], redis.ResponseError) and "WRONGTYPE" not in str(out[3]), out[3]


def test_under_maxmemory_a_write_counts_the_deletes_in_flight_before_it():
    s = Server("--maxmemory", "1mb")
    try:
        r = s.client()
        r.set("big", b"x" * 1_040_000)
        # Small enough to be read in one buffer with the DEL before it, so that the DEL is
        # still in flight when the SET is checked against the limit.
        p = r.pipeline(transaction=False)
        p.delete("big")
        p.set("k", b"y" * 20_000)
        p.set("k2", b"z" * 1_040_000)
        out = p.execute(raise_on_error=False)
        assert out[:2] == [1, True], out[:2]
        assert isinstance(out[2], redis.exceptions.OutOfMemoryError), out[2]
        assert r.strlen("k") == 20_000 and r.exists("big", "k2") == 0
    finally:
        s.stop()
