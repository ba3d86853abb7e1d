"""Redis hashes and lists through redis-py (RESP2 and RESP3): the commands RedisAI users keep
metadata with, their replies and errors, TYPE / SCAN TYPE / DEL, DUMP and RESTORE, surviving a
restart from the log and from a snapshot, replication to a follower, and use from a script."""
import os
import shutil
import socket

import pytest
import redis

from conftest import Server
from shardcluster import Cluster


def as_dict(x):
    if isinstance(x, dict):
        return x
    return dict(zip(x[::2], x[1::2]))


def test_hash_commands(r):
    assert r.hset("h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hset("h", mapping={"a": "10", "c": "3"}) == 1
    assert r.hget("h", "a") == b"10" and r.hget("h", "zz") is None and r.hget("nope", "a") is None
    assert r.hmget("h", ["a", "zz", "c"]) == [b"10", None, b"3"]
    assert r.hgetall("h") == {b"a": b"10", b"b": b"2", b"c": b"3"}
    assert r.hgetall("nope") == {}
    assert sorted(r.hkeys("h")) == [b"a", b"b", b"c"]
    assert sorted(r.hvals("h")) == [b"10", b"2", b"3"]
    assert r.hlen("h") == 3 and r.hlen("nope") == 0
    assert r.hexists("h", "a") and not r.hexists("h", "zz")
    assert r.execute_command("HMSET", "h", "d", "4") in (b"OK", True)
    assert r.hdel("h", "a", "zz") == 1
    assert r.type("h") == b"hash"
    assert r.hdel("h", "b", "c", "d") == 3
    assert not r.exists("h"), "a hash goes with its last field"
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'hset' command"):
        r.execute_command("HSET", "h", "a", "1", "b")


def test_list_commands(r):
    assert r.rpush("l", "a", "b") == 2
    assert r.lpush("l", "x", "y") == 4
    assert r.lrange("l", 0, -1) == [b"y", b"x", b"a", b"b"]
    assert r.lrange("l", -2, 100) == [b"a", b"b"] and r.lrange("l", 3, 1) == []
    assert r.lrange("nope", 0, -1) == []
    assert r.llen("l") == 4 and r.llen("nope") == 0
    assert r.lindex("l", -1) == b"b" and r.lindex("l", 9) is None
    assert r.type("l") == b"list"
    assert r.lpushx("nope", "a") == 0 and not r.exists("nope")
    assert r.rpushx("l", "z") == 5
    assert r.lpop("l") == b"y"
    assert r.rpop("l", 2) == [b"z", b"b"]
    assert r.lpop("l", 0) == []
    assert r.lpop("nope") is None and r.lpop("nope", 2) is None
    assert r.lpop("l", 10) == [b"x", b"a"]
    assert not r.exists("l"), "a list goes with its last element"
    with pytest.raises(redis.ResponseError, match="value is out of range, must be positive"):
        r.lpop("l", -1)
    with pytest.raises(redis.ResponseError, match="value is not an integer"):
        r.execute_command("LRANGE", "l", "a", "1")


def test_pop_of_a_missing_key_is_nil_or_a_nil_array(server):
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"LPOP nope\r\nRPOP nope 2\r\nRPUSH l a\r\nLPOP l 0\r\n")
        want = b"$-1\r\n*-1\r\n:1\r\n*0\r\n"
        got = b""
        while len(got) < len(want):
            got += s.recv(100)
        assert got == want


def test_wrong_types_and_the_keyspace(r):
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
    r.set("s", "v")
    r.hset("h", "f", "v")
    r.rpush("l", "a")
    for call in (lambda: r.hset("t", "f", "v"), lambda: r.hget("s", "f"), lambda: r.hgetall("l"),
                 lambda: r.rpush("h", "a"), lambda: r.lpop("t"), lambda: r.lrange("s", 0, 1),
                 lambda: r.get("h"), lambda: r.llen("h"), lambda: r.hdel("l", "a")):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            call()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.execute_command("AI.TENSORSET", "h", "FLOAT", 1, "VALUES", 1)
    assert sorted(r.scan(0, _type="hash", count=10000)[1]) == [b"h"]
    assert sorted(r.scan(0, _type="list", count=10000)[1]) == [b"l"]
    assert r.set("h", "now a string") and r.type("h") == b"string"
    assert r.delete("l", "h") == 2 and r.dbsize() == 2


def test_dump_and_restore(server):
    r = server.client()
    r.hset("h", mapping={"a": "1", "b": "2"})
    r.rpush("l", "a", "b", "c")
    for key in ("h", "l"):
        payload = r.dump(key)
        r.restore(key + "2", 0, payload)
        with pytest.raises(redis.ResponseError, match="BUSYKEY"):
            r.restore(key + "2", 0, payload)
    assert r.hgetall("h2") == {b"a": b"1", b"b": b"2"}
    assert r.lrange("l2", 0, -1) == [b"a", b"b", b"c"]
    # REPLACE over a value of another type.
    r.set("s", "v")
    r.restore("s", 0, r.dump("l"), replace=True)
    assert r.type("s") == b"list"


@pytest.mark.parametrize("snapshot", [False, True], ids=["log", "snapshot"])
def test_hashes_and_lists_survive_a_restart(snapshot):
    extra = ("--snapshot-entries", "50") if snapshot else ()
    s = Server(*extra)
    try:
        r = s.client()
        for i in range(120 if snapshot else 5):
            r.hset(f"h{i % 3}", f"f{i}", i)
            r.rpush(f"l{i % 3}", i)
        r.lpop("l0")
        r.hdel("h1", "f1")
        if snapshot:
            r.hset("h0", "last", "before the snapshot")
            assert r.execute_command("SAVE") is True
            assert os.listdir(os.path.join(s.dir, "standalone", "snapshots")), "no snapshot was taken"
            r.rpush("l0", "after the snapshot")
        want = {k: r.hgetall(k) for k in ("h0", "h1", "h2")}
        lists = {k: r.lrange(k, 0, -1) for k in ("l0", "l1", "l2")}
        s.kill()
        s = Server(*extra, dir=s.dir)
        r = s.client()
        assert {k: r.hgetall(k) for k in want} == want
        assert {k: r.lrange(k, 0, -1) for k in lists} == lists
        assert r.type("h0") == b"hash" and r.type("l0") == b"list"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_a_follower_serves_hashes_and_lists_and_refuses_writes():
    c = Cluster(3)
    try:
        lead = c.leader().client()
        lead.hset("h", mapping={"a": "1"})
        lead.rpush("l", "x", "y")
        lead.rpop("l")
        f = c.followers()[0]
        c.wait_caught_up(f)
        fr = f.client()
        fr.execute_command("READONLY")
        assert fr.hgetall("h") == {b"a": b"1"} and fr.lrange("l", 0, -1) == [b"x"]
        with pytest.raises(redis.exceptions.MovedError):
            fr.rpush("l", "z")
        assert lead.lrange("l", 0, -1) == [b"x"]
    finally:
        c.close()


def test_a_script_builds_a_list_and_a_hash_with_redis_execute(server):
    r = server.client()
    src = """
def build(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("RPUSH", keys[0], "1", "2", "3")
    redis.execute("HSET", keys[1], "a", "4", "b", "5")
    values = redis.asList(redis.execute("LRANGE", keys[0], "0", "-1"))
    fields = redis.asList(redis.execute("HVALS", keys[1]))
    total = 0
    for v in values:
        total += int(str(v))
    for v in fields:
        total += int(str(v))
    return torch.tensor([total])
"""
    assert r.execute_command("AI.SCRIPTSTORE", "s{x}", "CPU", "ENTRY_POINTS", 1, "build", "SOURCE", src) == b"OK"
    assert r.execute_command("AI.SCRIPTEXECUTE", "s{x}", "build", "KEYS", 2, "l{x}", "h{x}",
                             "OUTPUTS", 1, "out{x}") == b"OK"
    assert r.execute_command("AI.TENSORGET", "out{x}", "VALUES") == [15]
    assert r.lrange("l{x}", 0, -1) == [b"1", b"2", b"3"]
    assert r.hgetall("h{x}") == {b"a": b"4", b"b": b"5"}
