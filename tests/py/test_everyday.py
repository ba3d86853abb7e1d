"""Redis's everyday commands beside the tensors: expiry (EXPIRE and its forms, TTL and its
forms, PERSIST, GETEX), keys (RENAME, RENAMENX, COPY, TOUCH), strings (SETNX, SETEX,
PSETEX, GETSET, GETDEL, GETRANGE, SETRANGE, APPEND, STRLEN, INCRBYFLOAT, MSETNX) and server
(TIME, LASTSAVE, SHUTDOWN, DEBUG SLEEP).

Each case runs on shardai and on Debian's redis-server 7, started here, over redis-py with
RESP2 and RESP3: the replies (errors included, by their text) must be the same. Then what
redis-server cannot show: expiry of tensors and models, through a restart, and SHUTDOWN.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import redis

from conftest import Server
from harness import ROOT

MODEL = ROOT / "tests" / "models" / "redisai" / "linear_iris.onnx"


@pytest.fixture(scope="module")
def shardai():
    s = Server()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def pair(request, redis7, shardai):
    a = shardai.client(protocol=request.param)
    b = redis.Redis(port=redis7, protocol=request.param)
    for c in (a, b):
        c.flushall()
    yield a, b
    a.close()
    b.close()


def reply(c, args):
    try:
        return c.execute_command(*args)
    except redis.ResponseError as e:
        return ("error", str(e))


def same(pair, *cmds):
    """Runs each command (a space-separated string, or a tuple) on both servers, in turn;
    every reply must be the same."""
    a, b = pair
    for cmd in cmds:
        args = cmd.split(" ") if isinstance(cmd, str) else cmd
        got, want = reply(a, args), reply(b, args)
        assert got == want, (args, got, want)


def test_string_commands_answer_as_redis(pair):
    same(pair,
         "SET s hello", ("APPEND", "s", " world"), ("APPEND", "new", ""), "EXISTS new",
         "STRLEN s", "STRLEN nope",
         "GETRANGE s 0 4", "GETRANGE s -5 -1", "GETRANGE s 5 3", "GETRANGE s -1 -3",
         "GETRANGE s 0 100", "GETRANGE s -100 2", "GETRANGE nope 0 1", "GETRANGE s x 1",
         "SETRANGE s 6 Redis", "GET s", "SETRANGE pad 5 x", "GET pad",
         ("SETRANGE", "nope2", "0", ""), "EXISTS nope2", ("SETRANGE", "s", "1", ""),
         "SETRANGE s -1 x", "SETRANGE s 536870912 x",
         "GETSET s v2", "GETSET nokey v", "SET fresh v GET", "SET fresh w GET",
         "SETNX s v", "SETNX sn v", "GET sn",
         "SETEX se 100 v", "GET se", "SETEX se 0 v", "SETEX se x v", "PSETEX pe 100000 v",
         "PSETEX pe -1 v", "SETEX se 9223372036854775807 v", "PSETEX pe 9223372036854775807 v",
         "GETDEL s", "GETDEL s",
         "INCRBYFLOAT f 10.5", "INCRBYFLOAT f 0.1", "INCRBYFLOAT f -5e3", "INCRBYFLOAT f abc",
         "INCRBYFLOAT f inf", "INCRBYFLOAT sn 1", "SET i 3.0", "INCRBYFLOAT i 1",
         "SET z 1.5", "INCRBYFLOAT z -1.5",
         "MSETNX a 1 b 2", "MSETNX a 3 c 4", "MGET a b c", "MSETNX a 1 b",
         "HSET h f v", "APPEND h x", "STRLEN h", "GETRANGE h 0 1", "SETRANGE h 0 x",
         ("SETRANGE", "h", "0", ""), "GETDEL h", "INCRBYFLOAT h 1", "GETSET h v", "SETNX h v",
         "STRLEN", "GETRANGE k 0", "SETEX k 1", "GETDEL", "MSETNX a")


def test_key_commands_answer_as_redis(pair):
    same(pair,
         "SET a 1", "SET b 2", "RENAME a a2", "RENAME nokey x", "RENAMENX a2 b",
         "RENAMENX a2 a3", "RENAME a3 a3", "RENAMENX b b", "RENAMENX nokey b", "GET a3",
         "COPY b b2", "COPY b b2", "COPY b b2 REPLACE", "COPY b b", "COPY nokey z",
         "COPY b b3 DB 0", "COPY b b3 DB x", "COPY b b3 FOO",
         "COPY b b3 REPLACE REPLACE", "MGET b b2 b3",
         "TOUCH b b2 nokey", "TOUCH nokey",
         "EXPIRE b 100", "RENAME b moved", "TTL moved", "COPY moved cp", "TTL cp",
         "HSET h f v", "RENAME h h2", "HGET h2 f", "COPY h2 h3", "HGET h3 f", "TYPE h3",
         "RENAME a", "COPY a", "TOUCH")
    # One database, as SELECT says.
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        pair[0].execute_command("COPY", "b", "b4", "DB", 1)


def test_expiry_commands_answer_as_redis(pair):
    same(pair,
         "SET b v", "EXPIRE b 100", "TTL b", "EXPIRE b 100 NX", "EXPIRE b 200 XX", "TTL b",
         "EXPIRE b 50 GT", "EXPIRE b 300 GT", "TTL b", "EXPIRE b 400 LT", "EXPIRE b 10 LT",
         "TTL b", "EXPIRE b 20 xx gt", "EXPIRE b 5 XX LT", "TTL b",
         "EXPIRE nokey 10", "EXPIRE b x", "EXPIRE b 10 FOO", "EXPIRE b x FOO",
         "EXPIRE b 10 NX GT", "EXPIRE b 10 GT LT", "EXPIRE b 9223372036854775807",
         "PEXPIRE b 9223372036854775807", "EXPIREAT b 9223372036854775807",
         "PERSIST b", "PERSIST b", "PERSIST nokey", "TTL b", "TTL nokey", "PTTL b", "PTTL nokey",
         "EXPIRETIME b", "EXPIRETIME nokey", "PEXPIRETIME b",
         "SET n v", "EXPIRE n 10 GT", "EXPIRE n 10 LT", "TTL n", "PERSIST n",
         "EXPIRE n 10 XX", "EXPIRE n 10 NX", "EXPIRE n 10 NX",
         "EXPIREAT b 1", "EXISTS b",
         "SET e v", "EXPIREAT e 4102444800", "EXPIRETIME e", "PEXPIRETIME e",
         "PEXPIREAT e 4102444800123", "PEXPIRETIME e", "EXPIRETIME e",
         "EXPIRE e -1", "EXISTS e", "SET e v", "PEXPIRE e 0", "EXISTS e",
         "SET g v", "GETEX g", "GETEX g EX 100", "TTL g", "GETEX g PERSIST", "TTL g",
         "GETEX g EX 0", "GETEX g EX 1 PX 1", "GETEX g PERSIST EX 1", "GETEX g EX", "GETEX g EX x",
         "GETEX g PX 100000", "GETEX g EXAT 4102444800", "EXPIRETIME g",
         "GETEX g PXAT 4102444800123", "PEXPIRETIME g", "GETEX nokey", "GETEX nokey EX 10",
         "HSET h f v", "GETEX h", "EXPIRE h 100", "TTL h",
         "GETEX g PXAT 1", "EXISTS g", "GETEX nokey EX 0", "GETEX nokey PX x", "GETEX h EX 0",
         "SET g v", "GETEX g EX 0", "GETEX g PX 9223372036854775807",
         "SET k v EX 100", "SET k w KEEPTTL", "TTL k", "SET k x", "TTL k",
         "EXPIRE k", "TTL", "PERSIST", "GETEX")
    # Times that pass while the test runs: PTTL within a second of each other.
    a, b = pair
    for c in (a, b):
        c.execute_command("SET", "p", "v", "PX", 100000)
    got, want = (c.execute_command("PTTL", "p") for c in (a, b))
    assert abs(got - want) < 1000 and 98000 < got <= 100000


def test_watch_sees_deadline_changes_and_wait_does_not_block_a_transaction(pair):
    a, b = pair
    for c in (a, b):
        c.execute_command("SET", "w", "v")
        c.execute_command("WATCH", "w")
    same(pair, "EXPIRE w 100")
    for c in (a, b):
        c.execute_command("MULTI")
    same(pair, "SET other 1", "EXEC", "GET other")
    for c in (a, b):
        c.execute_command("MULTI")
    same(pair, "WAIT 1 0", "EXEC")


def test_restore_replace_takes_any_type_and_keeps_the_deadline(shardai):
    r = shardai.client()
    r.execute_command("AI.TENSORSET", "src", "FLOAT", 2, "VALUES", 1, 2)
    payload = r.execute_command("DUMP", "src")
    r.execute_command("SET", "k", "a string")
    r.execute_command("PEXPIRE", "k", 900000)
    with pytest.raises(redis.ResponseError, match="^BUSYKEY"):
        r.execute_command("RESTORE", "k", 5000, payload)
    assert r.execute_command("RESTORE", "k", 5000, payload, "REPLACE") == b"OK"
    assert r.execute_command("TYPE", "k") == b"AI_TENSOR"
    assert 0 < r.execute_command("PTTL", "k") <= 5000
    assert r.execute_command("RESTORE", "k", 0, payload, "REPLACE") == b"OK"
    assert r.execute_command("PTTL", "k") == -1
    # Not queued: they would hold up every other client while the transaction runs.
    r.execute_command("MULTI")
    for cmd in (("DEBUG", "SLEEP", 0), ("SHUTDOWN",), ("CLUSTER", "GETKEYSINSLOT", 0, 1)):
        with pytest.raises(redis.ResponseError, match="^Command not allowed inside a transac"):
            r.execute_command(*cmd)
    with pytest.raises(redis.ResponseError, match="^Transaction discarded"):
        r.execute_command("EXEC")
    r.close()


def test_server_commands_answer_as_redis(pair):
    same(pair, "DEBUG SLEEP 0", "DEBUG SLEEP 0.01", "SHUTDOWN ABORT", "SHUTDOWN SAVE NOSAVE",
         "SHUTDOWN ABORT NOW", "SHUTDOWN LATER", "TIME x", "LASTSAVE x")
    a, b = pair
    for c in (a, b):
        secs, micros = c.execute_command("TIME")
        assert abs(int(secs) - time.time()) < 5 and 0 <= int(micros) < 1_000_000
        assert abs(c.execute_command("LASTSAVE").timestamp() - time.time()) < 3600
    # SHUTDOWN is not queued in a transaction, which then aborts.
    for c in (a, b):
        c.execute_command("MULTI")
    same(pair, "SHUTDOWN", "EXEC")


def test_object_memory_and_wait_answer_as_redis(pair):
    """OBJECT and MEMORY (MEMORY USAGE counts shardai's own bytes: only its presence is
    compared), WAIT and WAITAOF on a node without replicas."""
    big = "x" * 50
    same(pair, "SET i 123", "SET small 007", ("SET", "s", "abc"), ("SET", "big", big),
         "HSET h f v", ("HSET", "bh", "f", big * 2), "RPUSH l a",
         "OBJECT ENCODING i", "OBJECT ENCODING small", "OBJECT ENCODING s", "OBJECT ENCODING big",
         "OBJECT ENCODING h", "OBJECT ENCODING bh", "OBJECT ENCODING l", "OBJECT ENCODING nokey",
         "OBJECT REFCOUNT i", "OBJECT REFCOUNT s", "OBJECT REFCOUNT nokey",
         "OBJECT FREQ s", "OBJECT FREQ nokey", "OBJECT ENCODING", "OBJECT foo k", "OBJECT HELP",
         "MEMORY USAGE nokey", "MEMORY USAGE s SAMPLES x", "MEMORY USAGE s foo", "MEMORY USAGE",
         "MEMORY foo", "WAIT 0 0", "WAIT 0 x", "WAIT x 0", "WAIT 0 -1", "WAIT 1 50")
    a, _ = pair
    a.execute_command("AI.TENSORSET", "t", "FLOAT", 256, "BLOB", b"\0" * 1024)
    assert a.execute_command("MEMORY", "USAGE", "t") >= 1024
    assert a.execute_command("OBJECT", "ENCODING", "t") == b"raw"
    assert a.execute_command("WAITAOF", 1, 0, 0) == [1, 0]


def test_redis_benchmark_default_tests_run_without_errors(shardai):
    """redis-benchmark's default tests of the types shardai has (not sets or sorted sets)."""
    tests = ("ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,hset,lrange_100,"
             "lrange_300,lrange_500,lrange_600,mset")
    out = subprocess.run(["redis-benchmark", "-p", str(shardai.port), "-n", "2000", "-q",
                          "-t", tests], capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "rror" not in text, text
    for name in ("PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "RPUSH", "LPOP",
                 "RPOP", "HSET", "LRANGE_100", "LRANGE_300", "LRANGE_500", "LRANGE_600", "MSET"):
        assert re.search(rf"\b{name}( \([^)]*\))?: [\d.]+ requests per second", text), (name, text)


def test_command_table_entries_match_redis(pair):
    """COMMAND INFO: arity, flags, key positions and ACL categories as Redis 7 has them."""
    names = ["expire", "pexpire", "expireat", "pexpireat", "persist", "ttl", "pttl",
             "expiretime", "pexpiretime", "getex", "rename", "renamenx", "copy", "touch",
             "getdel", "getset", "setnx", "setex", "psetex", "getrange", "setrange", "append",
             "strlen", "msetnx", "incrbyfloat", "time", "lastsave", "shutdown", "debug", "wait",
             "object", "memory"]
    a, b = pair
    got = a.execute_command("COMMAND", "INFO", *names)
    want = b.execute_command("COMMAND", "INFO", *names)

    def head(info):
        if isinstance(info, dict):  # redis-py's RESP3 parse
            return {k: info[k] for k in ("name", "arity", "flags", "first_key_pos",
                                         "last_key_pos", "step_count", "acl_categories")}
        return [sorted(x) if isinstance(x, (list, set)) else x for x in info[:7]]
    if isinstance(got, dict):
        assert set(got) == set(want)
        for n in got:
            assert head(got[n]) == head(want[n]), n
    else:
        for g, w in zip(got, want):
            assert head(g) == head(w), g[0]


def test_tensor_and_model_expire_and_keep_their_deadline_through_a_restart():
    """EXPIRE on a tensor and a model; the deadlines are in the log and the snapshot: after
    a restart the keys still expire then (not later, not never). COPY and RENAME of a model: each key
    runs, the copy with statistics of its own."""
    first = Server()
    second = None
    try:
        r = first.client()
        r.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
        r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", MODEL.read_bytes())
        r.execute_command("AI.TENSORSET", "gone", "FLOAT", 1, "VALUES", 1)
        assert r.execute_command("PEXPIRE", "t", 3000) == 1
        assert r.execute_command("EXPIRE", "m", 3) == 1
        assert r.execute_command("PEXPIRE", "gone", 300) == 1
        assert 0 < r.execute_command("PTTL", "t") <= 3000
        assert r.execute_command("TTL", "m") == 3
        deadline = r.execute_command("PEXPIRETIME", "t")
        time.sleep(0.5)
        assert r.execute_command("EXISTS", "gone") == 0
        # The restart reads the deadlines back from a snapshot.
        assert r.execute_command("SAVE") is True
        r.close()
        first.stop()
        second = Server(dir=first.dir)
        r = second.client()
        assert r.execute_command("PEXPIRETIME", "t") == deadline
        assert r.execute_command("AI.TENSORGET", "t", "VALUES") == [b"1", b"2"]
        assert r.execute_command("TYPE", "m") == b"AI__MODEL"
        assert r.execute_command("PERSIST", "m") == 1
        time.sleep(max(0, deadline / 1000 - time.time()) + 0.3)
        assert r.execute_command("EXISTS", "t", "m") == 1
        with pytest.raises(redis.ResponseError, match="tensor key is empty"):
            r.execute_command("AI.TENSORGET", "t", "VALUES")
        assert r.execute_command("COPY", "m", "m2") == 1
        assert r.execute_command("RENAME", "m", "m3") is True
        r.execute_command("AI.TENSORSET", "in", "FLOAT", 1, 4, "VALUES", 5.0, 3.4, 1.6, 0.4)
        r.execute_command("AI.MODELEXECUTE", "m3", "INPUTS", 1, "in", "OUTPUTS", 1, "o1")
        r.execute_command("AI.MODELEXECUTE", "m3", "INPUTS", 1, "in", "OUTPUTS", 1, "o1")
        r.execute_command("AI.MODELEXECUTE", "m2", "INPUTS", 1, "in", "OUTPUTS", 1, "o1")

        def calls(key):
            info = r.execute_command("AI.INFO", key)
            return dict(zip(info[::2], info[1::2]))[b"calls"]
        assert (calls("m2"), calls("m3")) == (1, 2)
        r.close()
    finally:
        for s in (first, second):
            if s is not None:
                s.stop()
        shutil.rmtree(first.dir, ignore_errors=True)


def test_redis_cli_shutdown_stops_the_server_cleanly():
    s = Server()
    try:
        r = s.client()
        r.set("k", "v")
        out = subprocess.run(["redis-cli", "-p", str(s.port), "shutdown"], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert s.proc.wait(timeout=30) == 0
        log = s.log_text()
        assert "SHUTDOWN received" in log and "shardai stopped" in log, log[-2000:]
        # Nothing acknowledged was lost.
        again = Server(dir=s.dir)
        try:
            assert again.client().get("k") == b"v"
        finally:
            again.stop()
    finally:
        if s.proc.poll() is None:
            os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait()
        shutil.rmtree(s.dir, ignore_errors=True)
