"""TorchScript scripts (AI.SCRIPTSTORE / SCRIPTSET / SCRIPTGET / SCRIPTDEL / SCRIPTEXECUTE /
SCRIPTRUN / _SCRIPTSCAN, and script ops in DAGs) through the real server and libtorch.

Exact replies and error texts are those of docs/redisai-script-commands.md (RedisAI 1.2.x);
the test scripts script.txt, old_script.txt and script_bad.txt are its appendix's, byte for
byte. Error texts are checked twice: as redis-py raises them (it strips a leading `ERR `) and
as they go on the wire (`wire`), where the presence or absence of `ERR ` is part of the text.
Also: a model generated here behind a pre/post-processing script in one DAG, AI.INFO for
scripts, a restart, a 3-replica shard after its leader is killed, and a two-shard cluster
(CROSSSLOT, MIGRATE of a script key)."""
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from conftest import Server
from harness import ROOT
from shardcluster import Cluster, cli as cluster_cli

# tests/flow/test_data/script.txt (newest, with long_func), old_script.txt, script_bad.txt.
SCRIPT = """def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def bar_variadic(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    l = tensors[1:]
    return a + l[0]

def long_func(tensors: List[Tensor], keys: List[str], args: List[str]):
    sum=0
    for i in range(10000000):
        sum+=1
"""
OLD_SCRIPT = """def bar(a, b):
    return a + b

def bar_variadic(a, args : List[Tensor]):
    return args[0] + args[1]
"""
SCRIPT_BAD = """def bar(tensors: List[Tensor], keys: List[str], args: List[Tensor]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def bar_variadic(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    l = tensors[1:]
    return a + l[0]
"""

# The spec's examples.
ADDTWO = """def addtwo(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b
"""
ADDN = """def addn(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.stack(tensors).sum()
"""
OLD_ADDTWO = """def addtwo(a, b):
    return a + b
"""
OLD_ADDN = """def addn(a, args : List[Tensor]):
    return a + torch.stack(args).sum()
"""

# Entry points and helpers for the list / args / keys / output-mapping tests.
LISTS = """def two_list(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + 1]

def two_tuple(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * 2, tensors[0] + 1

def total(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.stack(tensors).sum(0)

def scale(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * float(args[0]) + int(args[1])

def count_keys(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.tensor(len(keys))

def key_lengths(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.tensor([len(k) for k in keys])

def as_floats(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.tensor([float(a) for a in args])

def nothing(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = len(tensors)

def an_int(tensors: List[Tensor], keys: List[str], args: List[str]):
    return len(tensors)

def mixed_tuple(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0], 1

def slow(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = tensors[0]
    for i in range(int(args[0])):
        x = x + 1
    return x

def transposed(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].t()

def bfloat(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].to(15)

def helper(a: Tensor, rest: List[Tensor]):
    return a + torch.stack(rest).sum(0)

def pair(a: Tensor, b: Tensor):
    return a - b

def takes_int(n: int):
    return torch.tensor(n)
"""
LISTS_ENTRY = ["two_list", "two_tuple", "total", "scale", "count_keys", "key_lengths",
               "as_floats", "nothing", "an_int", "mixed_tuple", "slow", "transposed", "bfloat"]

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
COMPILE_ERROR = ("expected def but found 'return' here:   File \"<string>\", line 1 return 1 "
                 "~~~~~~ <--- HERE ")


# ---------------------------------------------------------------------------------- helpers

def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def wire(port, *args):
    """The first line of the raw reply to one command, e.g. `-ERR ...` or `+OK`."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(resp(*args))
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\r\n", 1)[0].decode()


def error_of(r, *args):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    return str(e.value)


def check_error(port, r, args, text):
    """`text` as it goes on the wire: redis-py raises it without a leading `ERR `."""
    assert error_of(r, *args) == (text[4:] if text.startswith("ERR ") else text)
    assert wire(port, *args) == "-" + text


def cli(port, *args, stdin=None):
    return subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], input=stdin,
                          capture_output=True, text=True, check=True, timeout=60).stdout


def info(r, key):
    i = r.execute_command("AI.INFO", key)
    return dict(zip([k.decode() for k in i[::2]], i[1::2]))


def values(r, key):
    return [float(v) for v in r.execute_command("AI.TENSORGET", key, "VALUES")]


def meta(r, key):
    m = r.execute_command("AI.TENSORGET", key, "META")
    m = m if isinstance(m, list) else [x for kv in m.items() for x in kv]
    return m[1].decode(), list(m[3])


def ok(reply):
    return reply in (b"OK", "OK", True)


def store(r, key, src, *entry, tag=None):
    tag = ["TAG", tag] if tag is not None else []
    assert ok(r.execute_command("AI.SCRIPTSTORE", key, "CPU", *tag, "ENTRY_POINTS", len(entry),
                                *entry, "SOURCE", src))


# --------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def shared():
    """One server for the error tables (errors write nothing): `s` holds script.txt with
    entry points bar and bar_variadic, `old` old_script.txt stored by AI.SCRIPTSET, `a` and
    `b` FLOAT tensors."""
    s = Server()
    r = s.client()
    store(r, "s", SCRIPT, "bar", "bar_variadic")
    assert ok(r.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT))
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
    yield s, r
    r.close()
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture
def c(server):
    r = server.client()
    yield r
    r.close()


# ---------------------------------------------------------------------- the spec's examples

def test_spec_scriptstore_addtwo_and_scriptexecute_through_redis_cli(server):
    p = server.port
    # `cat addtwo.py | redis-cli -x AI.SCRIPTSTORE ... SOURCE`: the source is the last argument.
    assert cli(p, "-x", "AI.SCRIPTSTORE", "myscript{tag}", "CPU", "TAG", "myscript:v0.1",
               "ENTRY_POINTS", 1, "addtwo", "SOURCE", stdin=ADDTWO) == "OK\n"
    assert cli(p, "AI.TENSORSET", "mytensor1{tag}", "FLOAT", 1, "VALUES", 40) == "OK\n"
    assert cli(p, "AI.TENSORSET", "mytensor2{tag}", "FLOAT", 1, "VALUES", 2) == "OK\n"
    assert cli(p, "AI.SCRIPTEXECUTE", "myscript{tag}", "addtwo", "INPUTS", 2, "mytensor1{tag}",
               "mytensor2{tag}", "OUTPUTS", 1, "result{tag}") == "OK\n"
    assert cli(p, "AI.TENSORGET", "result{tag}", "VALUES") == "42\n"
    assert cli(p, "AI.TENSORGET", "result{tag}", "META") == "dtype\nFLOAT\nshape\n1\n"
    # The source comes back byte for byte (with its final newline).
    assert server.client().execute_command("AI.SCRIPTGET", "myscript{tag}", "SOURCE") == ADDTWO.encode()
    assert cli(p, "TYPE", "myscript{tag}") == "AI_SCRIPT\n"


def test_a_source_without_a_final_newline_compiles_and_comes_back_as_given(server):
    # `redis-cli AI.SCRIPTSTORE ... SOURCE "$(cat addtwo.py)"`: the shell drops the newline.
    p = server.port
    source = ADDTWO.rstrip("\n")
    assert cli(p, "AI.SCRIPTSTORE", "nl{tag}", "CPU", "ENTRY_POINTS", 1, "addtwo",
               "SOURCE", source) == "OK\n"
    assert cli(p, "AI.TENSORSET", "nl1{tag}", "FLOAT", 1, "VALUES", 40) == "OK\n"
    assert cli(p, "AI.TENSORSET", "nl2{tag}", "FLOAT", 1, "VALUES", 2) == "OK\n"
    assert cli(p, "AI.SCRIPTEXECUTE", "nl{tag}", "addtwo", "INPUTS", 2, "nl1{tag}", "nl2{tag}",
               "OUTPUTS", 1, "nlr{tag}") == "OK\n"
    assert cli(p, "AI.TENSORGET", "nlr{tag}", "VALUES") == "42\n"
    assert server.client().execute_command("AI.SCRIPTGET", "nl{tag}", "SOURCE") == source.encode()


def test_spec_addn_takes_a_list_of_tensors(c):
    store(c, "myscript{tag}", ADDN, "addn")
    for k, v in (("mytensor1{tag}", 40), ("mytensor2{tag}", 1), ("mytensor3{tag}", 1)):
        assert ok(c.execute_command("AI.TENSORSET", k, "FLOAT", 1, "VALUES", v))
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "myscript{tag}", "addn", "INPUTS", 3,
                                "mytensor1{tag}", "mytensor2{tag}", "mytensor3{tag}",
                                "OUTPUTS", 1, "result{tag}"))
    assert c.execute_command("AI.TENSORGET", "result{tag}", "VALUES") == [b"42"]
    # torch.stack(...).sum() is 0-d: a tensor of shape [].
    assert meta(c, "result{tag}") == ("FLOAT", [])


@pytest.mark.parametrize("protocol", [2, 3])
def test_spec_scriptget_reply_layouts(server, protocol):
    r = server.client(protocol=protocol)
    store(r, "myscript", ADDTWO, "addtwo", tag="myscript:v0.1")
    head = [b"device", b"CPU", b"tag", b"myscript:v0.1", b"Entry Points", [b"addtwo"]]
    full = head + [b"source", ADDTWO.encode()]
    assert r.execute_command("AI.SCRIPTGET", "myscript") == full
    assert r.execute_command("AI.SCRIPTGET", "myscript", "META", "SOURCE") == full
    assert r.execute_command("AI.SCRIPTGET", "myscript", "SOURCE", "META") == full
    assert r.execute_command("AI.SCRIPTGET", "myscript", "META") == head
    # SOURCE alone: a bulk string, not an array.
    assert r.execute_command("AI.SCRIPTGET", "myscript", "SOURCE") == ADDTWO.encode()
    # Keywords are case-insensitive; any other word is ignored.
    assert r.execute_command("AI.SCRIPTGET", "myscript", "meta") == head
    assert r.execute_command("AI.SCRIPTGET", "myscript", "source", "whatever") == ADDTWO.encode()
    assert r.execute_command("AI.SCRIPTGET", "myscript", "BLOB") == full
    # Device as stored, tag "" when none, entry points in store order, duplicates kept.
    store(r, "multi", SCRIPT, "long_func", "bar", "bar", "bar_variadic")
    assert ok(r.execute_command("AI.SCRIPTSTORE", "lower", "cpu", "ENTRY_POINTS", 1, "bar",
                                "SOURCE", SCRIPT))
    assert r.execute_command("AI.SCRIPTGET", "multi", "META") == [
        b"device", b"CPU", b"tag", b"", b"Entry Points",
        [b"long_func", b"bar", b"bar", b"bar_variadic"]]
    assert r.execute_command("AI.SCRIPTGET", "lower", "META")[1] == b"cpu"
    r.close()


def test_spec_scriptdel_and_scriptscan(c):
    store(c, "myscript", ADDTWO, "addtwo", tag="myscript:v0.1")
    assert c.execute_command("AI._SCRIPTSCAN") == [[b"myscript", b"myscript:v0.1"]]
    store(c, "other", ADDN, "addn")
    c.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
    assert sorted(c.execute_command("AI._SCRIPTSCAN")) == [[b"myscript", b"myscript:v0.1"],
                                                           [b"other", b""]]
    assert ok(c.execute_command("AI.SCRIPTDEL", "myscript"))
    assert c.execute_command("AI._SCRIPTSCAN") == [[b"other", b""]]
    assert c.exists("myscript") == 0
    assert error_of(c, "AI.SCRIPTGET", "myscript") == "script key is empty"
    assert c.delete("other") == 1
    assert c.execute_command("AI._SCRIPTSCAN") == []


def test_spec_deprecated_scriptset_and_scriptrun(server):
    p, c = server.port, server.client()
    assert cli(p, "-x", "AI.SCRIPTSET", "myscript", "CPU", "TAG", "myscript:v0.1", "SOURCE",
               stdin=OLD_ADDTWO) == "OK\n"
    # A SCRIPTSET script has no entry points.
    assert c.execute_command("AI.SCRIPTGET", "myscript") == [
        b"device", b"CPU", b"tag", b"myscript:v0.1", b"Entry Points", [], b"source",
        OLD_ADDTWO.encode()]
    c.execute_command("AI.TENSORSET", "mytensor1", "FLOAT", 1, "VALUES", 40)
    c.execute_command("AI.TENSORSET", "mytensor2", "FLOAT", 1, "VALUES", 2)
    assert cli(p, "AI.SCRIPTRUN", "myscript", "addtwo", "INPUTS", "mytensor1", "mytensor2",
               "OUTPUTS", "result") == "OK\n"
    assert cli(p, "AI.TENSORGET", "result", "VALUES") == "42\n"
    # AI.SCRIPTEXECUTE runs it too, in best-effort mode.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "myscript", "addtwo", "INPUTS", 2,
                                "mytensor1", "mytensor2", "OUTPUTS", 1, "result2"))
    assert values(c, "result2") == [42]
    # The variadic example: `$` marks the List[Tensor] tail.
    assert ok(c.execute_command("AI.SCRIPTSET", "myscript", "CPU", "TAG", "myscript:v0.1",
                                "SOURCE", OLD_ADDN))
    c.execute_command("AI.TENSORSET", "mytensor2", "FLOAT", 1, "VALUES", 1)
    c.execute_command("AI.TENSORSET", "mytensor3", "FLOAT", 1, "VALUES", 1)
    assert ok(c.execute_command("AI.SCRIPTRUN", "myscript", "addn", "INPUTS", "mytensor1", "$",
                                "mytensor2", "mytensor3", "OUTPUTS", "result"))
    assert values(c, "result") == [42]
    assert meta(c, "result") == ("FLOAT", [1])
    # `$` is only a marker: the same inputs without it map the same way.
    assert ok(c.execute_command("AI.SCRIPTRUN", "myscript", "addn", "INPUTS", "mytensor1",
                                "mytensor2", "mytensor3", "OUTPUTS", "result3"))
    assert values(c, "result3") == [42]
    assert c.execute_command("AI._SCRIPTSCAN") == [[b"myscript", b"myscript:v0.1"]]
    assert ok(c.execute_command("AI.SCRIPTDEL", "myscript"))
    c.close()


# ------------------------------------------------------------------- errors, RedisAI's order

SCRIPTSTORE_ERRORS = [
    # 1. arity: fewer than 8 arguments
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 0, "SOURCE", SCRIPT],
     "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"),
    (["AI.SCRIPTSTORE", "k", "CPU", "SOURCE", SCRIPT],
     "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"),
    (["ai.scriptstore", "k", "CPU", "SOURCE", SCRIPT],
     "ERR wrong number of arguments for 'ai.scriptstore' command"),
    # 4. ENTRY_POINTS
    (["AI.SCRIPTSTORE", "k", "CPU", "TAG", "t", "SOURCE", SCRIPT, "x"],
     "ERR Insufficient arguments, missing script entry points"),
    (["AI.SCRIPTSTORE", "k", "TAG", "t", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT],
     "ERR Insufficient arguments, missing script entry points"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", "x", "bar", "SOURCE", SCRIPT],
     "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", "+1", "bar", "SOURCE", SCRIPT],
     "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command"),
    # 5. too few names
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 5, "bar", "bar_variadic", "SOURCE", SCRIPT],
     "ERR Insufficient arguments, missing script entry points"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", -1, "bar", "SOURCE", SCRIPT],
     "ERR Insufficient arguments, missing script entry points"),
    # 6. SOURCE
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 2, "bar", "SOURCE", SCRIPT],
     "ERR Insufficient arguments, missing script SOURCE"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 1, "bar", "SRC", SCRIPT],
     "ERR Insufficient arguments, missing script SOURCE"),
    (["AI.SCRIPTSTORE", "k", "CPU", "TAG", "t", "ENTRY_POINTS", 1, "bar", "SOURCE"],
     "ERR Insufficient arguments, missing script SOURCE"),
    # 7. device, before compilation and entry points
    (["AI.SCRIPTSTORE", "k", "TPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT], "ERR unsupported device"),
    (["AI.SCRIPTSTORE", "k", "GPUx", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT], "ERR unsupported device"),
    (["AI.SCRIPTSTORE", "k", "TPU", "ENTRY_POINTS", 1, "nope", "SOURCE", "return 1"], "ERR unsupported device"),
    # 8. compilation (libtorch's text, one-lined, no ERR)
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 1, "nope", "SOURCE", "return 1"], COMPILE_ERROR),
    (["AI.SCRIPTSTORE", "a", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", "return 1"], COMPILE_ERROR),
    # 9. entry points, in the given order
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 1, "bar1", "SOURCE", SCRIPT],
     "Function bar1 does not exist in the given script."),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 2, "bar", "BAR", "SOURCE", SCRIPT],
     "Function BAR does not exist in the given script."),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 2, "bar", "bar_variadic", "SOURCE", OLD_SCRIPT],
     "Wrong number of inputs in function bar. Expected 3 but was 2"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 2, "nope", "bar", "SOURCE", OLD_SCRIPT],
     "Function nope does not exist in the given script."),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 2, "bar", "bar_variadic", "SOURCE", SCRIPT_BAD],
     "Wrong inputs type in function bar. Expected signature similar to: def bar(tensors: "
     "List[Tensor], keys: List[str], args: List[str])"),
    (["AI.SCRIPTSTORE", "k", "CPU", "ENTRY_POINTS", 1, "f", "SOURCE", "def f(a, b, c):\n    return a\n"],
     "Wrong inputs type in function f. Expected signature similar to: def f(tensors: "
     "List[Tensor], keys: List[str], args: List[str])"),
    (["AI.SCRIPTSTORE", "a", "CPU", "ENTRY_POINTS", 1, "bar1", "SOURCE", SCRIPT],
     "Function bar1 does not exist in the given script."),
    # 10. the key's type, last
    (["AI.SCRIPTSTORE", "a", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT], WRONGTYPE),
]


@pytest.mark.parametrize("args,text", SCRIPTSTORE_ERRORS)
def test_scriptstore_errors(shared, args, text):
    s, r = shared
    before = r.dbsize()
    check_error(s.port, r, args, text)
    assert r.dbsize() == before and r.exists("k") == 0


SCRIPTSET_GET_DEL_SCAN_ERRORS = [
    (["AI.SCRIPTSET", "k", "CPU", "SOURCE"], "ERR wrong number of arguments for 'AI.SCRIPTSET' command"),
    (["AI.SCRIPTSET", "k", "CPU", "TAG", "t", "SOURCE"],
     "ERR wrong number of arguments for 'AI.SCRIPTSET' command"),
    # The spec's AI.SCRIPTSTORE example as printed (with AI.SCRIPTSET): too many arguments.
    (["AI.SCRIPTSET", "myscript", "CPU", "TAG", "myscript:v0.1", "ENTRY_POINTS", 1, "addtwo",
      "SOURCE", ADDTWO], "ERR wrong number of arguments for 'AI.SCRIPTSET' command"),
    (["AI.SCRIPTSET", "k", "CPU", "TAG", "t"], "ERR Insufficient arguments, missing script SOURCE"),
    (["AI.SCRIPTSET", "k", "CPU", "SRC", OLD_SCRIPT], "ERR Insufficient arguments, missing script SOURCE"),
    (["AI.SCRIPTSET", "k", "TPU", "SOURCE", OLD_SCRIPT], "ERR unsupported device"),
    (["AI.SCRIPTSET", "k", "CPU", "SOURCE", "return 1"], COMPILE_ERROR),
    (["AI.SCRIPTSET", "a", "CPU", "SOURCE", "return 1"], COMPILE_ERROR),
    (["AI.SCRIPTSET", "a", "CPU", "SOURCE", OLD_SCRIPT], WRONGTYPE),
    (["AI.SCRIPTGET"], "ERR wrong number of arguments for 'AI.SCRIPTGET' command"),
    (["ai.scriptget", "s", "META", "SOURCE", "x"], "ERR wrong number of arguments for 'ai.scriptget' command"),
    (["AI.SCRIPTGET", "k"], "ERR script key is empty"),
    (["AI.SCRIPTGET", "k", "META"], "ERR script key is empty"),
    (["AI.SCRIPTGET", "", "SOURCE"], "ERR script key is empty"),
    (["AI.SCRIPTGET", "a"], WRONGTYPE),
    (["AI.SCRIPTGET", "a", "SOURCE"], WRONGTYPE),
    (["AI.SCRIPTDEL"], "ERR wrong number of arguments for 'AI.SCRIPTDEL' command"),
    (["AI.SCRIPTDEL", "s", "old"], "ERR wrong number of arguments for 'AI.SCRIPTDEL' command"),
    (["AI.SCRIPTDEL", "k"], "ERR script key is empty"),
    (["AI.SCRIPTDEL", "a"], WRONGTYPE),
    (["AI._SCRIPTSCAN", "x"], "ERR wrong number of arguments for 'AI._SCRIPTSCAN' command"),
    (["AI.INFO"], "ERR wrong number of arguments for 'AI.INFO' command"),
    (["ai.info", "s", "RESETSTAT", "x"], "ERR wrong number of arguments for 'ai.info' command"),
    (["AI.INFO", "k"], "ERR cannot find run info for key"),
    (["AI.INFO", "k", "RESETSTAT"], "ERR cannot find run info for key"),
]


@pytest.mark.parametrize("args,text", SCRIPTSET_GET_DEL_SCAN_ERRORS)
def test_scriptset_scriptget_scriptdel_scan_info_errors(shared, args, text):
    s, r = shared
    before = r.dbsize()
    check_error(s.port, r, args, text)
    assert r.dbsize() == before and r.exists("k") == 0
    assert r.execute_command("AI.SCRIPTGET", "s", "SOURCE") == SCRIPT.encode()


SCRIPTEXECUTE_ERRORS = [
    # 1. arity, with the fixed upper-case name
    (["AI.SCRIPTEXECUTE", "s"], "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command"),
    (["ai.scriptexecute", "s"], "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command"),
    # 2. the script, before anything else
    (["AI.SCRIPTEXECUTE", "k", "bar", "INPUTS", 1, "a"], "ERR script key is empty"),
    (["AI.SCRIPTEXECUTE", "k", "bar", "OUTPUTS", 1, "a"], "ERR script key is empty"),
    (["AI.SCRIPTEXECUTE", "a", "bar", "INPUTS", 1, "a"], WRONGTYPE),
    # 3-4. the function name is taken literally; KEYS or INPUTS first
    (["AI.SCRIPTEXECUTE", "s", "bar"], "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "OUTPUTS", 2, "a", "a"],
     "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "ARGS", 1, "x", "INPUTS", 1, "a"],
     "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "TIMEOUT", 5],
     "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
    (["AI.SCRIPTEXECUTE", "s", "INPUTS", 1, "a"],
     "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
    # 5. KEYS
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1], "ERR Missing arguments after KEYS keyword"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", "x"], "ERR Missing arguments after KEYS keyword"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", "not_number", "key"],
     "ERR Invalid or negative value found in number of KEYS"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 0, "k"], "ERR Invalid or negative value found in number of KEYS"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", "01", "k"], "ERR Invalid or negative value found in number of KEYS"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", -1, "k"], "ERR Invalid or negative value found in number of KEYS"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 2, "key"],
     "ERR Number of pre declared KEYS to be used in the command does not match the number of given arguments"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "KEYS", 1, "k"],
     "ERR Already Encountered KEYS scope in AI.SCRIPTEXECUTE command"),
    # INPUTS
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "INPUTS", 1, "b"],
     "ERR Already Encountered INPUTS scope in AI.SCRIPTEXECUTE command"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "INPUTS"], "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", "OUTPUTS"],
     "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 3, "a", "b"],
     "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", -100, "a"],
     "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
    # ARGS ("keys count", sic)
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "{1}", "ARGS"], "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "ARGS", "x"],
     "ERR Invalid argument for keys count in AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "ARGS", 2, "x"],
     "ERR number of args to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "ARGS", 1, "x", "ARGS", 1, "y"],
     "ERR Already Encountered ARGS scope in AI.SCRIPTEXECUTE command"),
    # OUTPUTS
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS"],
     "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", "x"],
     "ERR Invalid argument for outputs count in AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", 2, "c"],
     "ERR number of outputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", 1, "c", "OUTPUTS", 1, "d"],
     "ERR Already Encountered OUTPUTS scope in AI.SCRIPTEXECUTE command"),
    # TIMEOUT
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c", "TIMEOUT"],
     "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c", "TIMEOUT", "TIMEOUT"],
     "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", 0], "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", -5], "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "TIMEOUT", 5, "OUTPUTS"],
     "ERR Encountered problem parsing AI.SCRIPTEXECUTE"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "TIMEOUT", 5, "OUTPUTS", 1, "c"],
     "ERR Encountered problem parsing AI.SCRIPTEXECUTE"),
    # any other token
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "FOO"],
     "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: FOO"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "missing", "FOO"],
     "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: FOO"),
    # 7. the inputs, in order, after parsing
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "missing", "OUTPUTS", 1, "c"],
     "ERR tensor key is empty or in a different shard"),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "old", "missing", "OUTPUTS", 1, "c"], WRONGTYPE),
    (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "missing", "old", "OUTPUTS", 1, "c"],
     "ERR tensor key is empty or in a different shard"),
]


@pytest.mark.parametrize("args,text", SCRIPTEXECUTE_ERRORS)
def test_scriptexecute_parse_errors(shared, args, text):
    s, r = shared
    before = r.dbsize()
    check_error(s.port, r, args, text)
    assert r.dbsize() == before and r.exists("c", "d", "k") == 0
    assert info(r, "s")["calls"] == 0, "parse-time errors are not counted"


SCRIPTRUN_ERRORS = [
    (["AI.SCRIPTRUN", "old"], "ERR wrong number of arguments for 'AI.SCRIPTRUN' command"),
    (["ai.scriptrun", "old"], "ERR wrong number of arguments for 'AI.SCRIPTRUN' command"),
    (["AI.SCRIPTRUN", "k", "bar", "INPUTS", "a", "b", "OUTPUTS", "c"], "ERR script key is empty"),
    (["AI.SCRIPTRUN", "a", "bar", "INPUTS", "a", "b", "OUTPUTS", "c"], WRONGTYPE),
    (["AI.SCRIPTRUN", "old", "bar", "x", "INPUTS", "a", "OUTPUTS", "b"], "ERR Unrecongnized parameter to SCRIPTRUN"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "INPUTS", "b", "OUTPUTS", "c"],
     "ERR Already encountered an INPUTS keyword in SCRIPTRUN"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "OUTPUTS", "b", "INPUTS", "c"],
     "ERR Already encountered an INPUTS section in SCRIPTRUN"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "OUTPUTS", "b", "OUTPUTS", "c"],
     "ERR Already encountered an OUTPUTS keyword in SCRIPTRUN"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "OUTPUTS", "$", "b"],
     "ERR Encountered a variable size list of tensors outside of input section"),
    (["AI.SCRIPTRUN", "old", "bar", "$", "INPUTS", "a", "b", "OUTPUTS", "c"],
     "ERR Encountered a variable size list of tensors outside of input section"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "$", "b", "$", "a", "OUTPUTS", "d"],
     "ERR Already encountered a variable size list of tensors"),
    (["AI.SCRIPTRUN", "old", "bar", "TIMEOUT", 1, "INPUTS", "a", "TIMEOUT", 2, "OUTPUTS", "b"],
     "ERR Already encountered an TIMEOUT section in SCRIPTRUN"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "OUTPUTS", "b", "TIMEOUT"], "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTRUN", "old", "bar", "TIMEOUT", 0, "INPUTS", "a", "b", "OUTPUTS", "c"], "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTRUN", "old", "bar", "TIMEOUT", "x", "INPUTS", "a", "b", "OUTPUTS", "c"],
     "ERR Invalid value for TIMEOUT"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "missing", "OUTPUTS", "c"],
     "ERR tensor key is empty or in a different shard"),
    (["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "s", "OUTPUTS", "c"], WRONGTYPE),
]


@pytest.mark.parametrize("args,text", SCRIPTRUN_ERRORS)
def test_scriptrun_parse_errors(shared, args, text):
    s, r = shared
    before = r.dbsize()
    check_error(s.port, r, args, text)
    assert r.dbsize() == before and r.exists("c", "d") == 0
    assert info(r, "old")["calls"] == 0


DAG_ERRORS = [
    (["AI.DAGEXECUTE_RO", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2,
      "a", "b", "OUTPUTS", 1, "c"], "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG"),
    (["AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2,
      "a", "b", "OUTPUTS", 1, "c", "TIMEOUT", 5], "ERR TIMEOUT not allowed within a DAG command"),
    (["AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTRUN", "s", "bar", "INPUTS", "a", "b",
      "OUTPUTS", "c"], "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command"),
    (["AI.DAGRUN", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
      "b", "OUTPUTS", 1, "c"], "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command"),
    (["AI.DAGRUN", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTRUN", "old", "bar", "TIMEOUT", 5,
      "INPUTS", "a", "b", "OUTPUTS", "c"], "ERR TIMEOUT not allowed within a DAG command"),
    (["AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "INPUTS", 1, "a",
      "OUTPUTS", 1, "y"], "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: 1"),
    (["AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1,
      "nope", "OUTPUTS", 1, "y"], "ERR INPUT key cannot be found in DAG"),
    (["AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "nope", "bar", "INPUTS", 1,
      "a", "OUTPUTS", 1, "y"], "ERR script key is empty"),
    (["AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "b", "bar", "INPUTS", 1,
      "a", "OUTPUTS", 1, "y"], WRONGTYPE),
    (["AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 0, "x",
      "INPUTS", 1, "a", "OUTPUTS", 1, "y"], "ERR Invalid or negative value found in number of KEYS"),
    (["AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "z", "|>", "AI.SCRIPTEXECUTE", "s", "bar",
      "INPUTS", 2, "a", "a", "OUTPUTS", 1, "y"], "ERR PERSIST key cannot be found in DAG"),
    (["AI.DAGEXECUTE", "KEYS", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
      "a", "OUTPUTS", 1, "y"], "ERR Invalid DAG command. Unexpected argument:  KEYS"),
]


@pytest.mark.parametrize("args,text", DAG_ERRORS)
def test_dag_script_op_errors(shared, args, text):
    s, r = shared
    before = r.dbsize()
    check_error(s.port, r, args, text)
    assert r.dbsize() == before and r.exists("c", "y", "z") == 0
    assert info(r, "s")["calls"] == 0


def test_run_time_errors_are_counted_and_write_nothing(server, c):
    p = server.port
    store(c, "s", SCRIPT, "bar", "bar_variadic")
    store(c, "l", LISTS, *LISTS_ENTRY)
    c.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT)
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    c.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
    cases = [
        # The function is looked up when the script runs (best-effort mode), no ERR.
        ("s", ["wrong_fn", "INPUTS", 1, "a", "OUTPUTS", 1, "c"], "Function does not exist: wrong_fn"),
        ("s", ["BAR", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c"], "Function does not exist: BAR"),
        ("s", ["INPUTS", "KEYS", 1, "k"], "Function does not exist: INPUTS"),
        ("old", ["wrong_fn", "INPUTS", 1, "a", "OUTPUTS", 1, "c"], "Function does not exist: wrong_fn"),
        # Best-effort mode: too few inputs for the parameters, unsupported parameter types.
        ("old", ["bar", "INPUTS", 1, "a", "OUTPUTS", 1, "c"], "Wrong number of inputs provided to function: bar"),
        ("old", ["bar", "KEYS", 2, "a", "b", "ARGS", 1, "x", "OUTPUTS", 1, "c"],
         "Wrong number of inputs provided to function: bar"),
        ("l", ["takes_int", "INPUTS", 1, "a", "OUTPUTS", 1, "c"],
         "Unsupported input type in function definition: takes_int"),
        # Output mapping.
        ("l", ["an_int", "INPUTS", 1, "a", "OUTPUTS", 1, "c"], "Function returned non-tensor valuesan_int"),
        ("l", ["nothing", "INPUTS", 1, "a", "OUTPUTS", 1, "c"], "Function returned non-tensor valuesnothing"),
        ("l", ["mixed_tuple", "INPUTS", 1, "a", "OUTPUTS", 2, "c", "d"],
         "Function returned non-tensor valuesmixed_tuple"),
        ("l", ["two_list", "INPUTS", 1, "a", "OUTPUTS", 1, "c"],
         "Function returned unexpected number of outputs - two_list"),
        ("l", ["two_tuple", "INPUTS", 1, "a", "OUTPUTS", 3, "c", "d", "e"],
         "Function returned unexpected number of outputs - two_tuple"),
        ("s", ["bar", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "c", "d"],
         "Function returned unexpected number of outputs - bar"),
    ]
    for key, rest, text in cases:
        check_error(p, c, ["AI.SCRIPTEXECUTE", key, *rest], text)
    # A failure inside the function: libtorch's interpreter message, one-lined.
    for cmd in (["AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "b", "OUTPUTS", 1, "c"],
                ["AI.SCRIPTRUN", "s", "bar", "INPUTS", "b", "OUTPUTS", "c"]):
        text = error_of(c, *cmd)
        assert text.startswith("The following operation failed in the TorchScript interpreter."), text
        assert "Traceback of TorchScript" in text and "out of range" in text, text
        assert "\n" not in text and "\r" not in text
        assert wire(p, *cmd) == "-" + text
    assert error_of(c, "AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "OUTPUTS", "c") == \
        "Wrong number of inputs provided to function: bar"
    assert c.exists("c", "d", "e") == 0, "a failed run writes nothing"
    # Every run-time error is counted (each command above was sent twice, by redis-py and raw).
    s, o, l = info(c, "s"), info(c, "old"), info(c, "l")
    assert (s["calls"], s["errors"]) == (2 * 4 + 2 * 2, 2 * 4 + 2 * 2)
    assert (o["calls"], o["errors"]) == (2 * 3 + 1, 2 * 3 + 1)
    assert (l["calls"], l["errors"], l["duration"]) == (2 * 6, 2 * 6, 0)


def test_negative_counts_are_refused(c):
    """A negative INPUTS / ARGS / OUTPUTS count is an error (RedisAI adds it to an unsigned
    position instead; shardai refuses it)."""
    store(c, "l", LISTS, *LISTS_ENTRY)
    assert error_of(c, "AI.SCRIPTEXECUTE", "l", "count_keys", "KEYS", 2, "k1", "k2",
                    "INPUTS", -1, "OUTPUTS", 1, "n") == (
        "number of inputs to AI.SCRIPTEXECUTE command does not match the number of given "
        "arguments")
    assert error_of(c, "AI.SCRIPTEXECUTE", "l", "count_keys", "KEYS", 1, "k",
                    "OUTPUTS", -1) == (
        "number of outputs to AI.SCRIPTEXECUTE command does not match the number of given "
        "arguments")
    assert c.exists("k", "k1", "k2", "n") == 0


def test_output_dtype_that_cannot_be_stored(c):
    """A BFloat16 output cannot be stored as a tensor: the call fails and writes nothing."""
    store(c, "l", LISTS, *LISTS_ENTRY)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 2, "VALUES", 1, 2)
    assert error_of(c, "AI.SCRIPTEXECUTE", "l", "bfloat", "INPUTS", 1, "x", "OUTPUTS", 1,
                    "y") == "unsupported output type BFloat16"
    assert c.exists("y") == 0


# ------------------------------------------------------------------- lists, keys and args

def test_list_outputs_tuples_and_list_inputs(c):
    store(c, "l", LISTS, *LISTS_ENTRY)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    c.execute_command("AI.TENSORSET", "y", "FLOAT", 2, 2, "VALUES", 10, 20, 30, 40)
    c.execute_command("AI.TENSORSET", "z", "FLOAT", 2, 2, "VALUES", 100, 200, 300, 400)
    # A List[Tensor] and a tuple each fill as many OUTPUTS, in order.
    for fn in ("two_list", "two_tuple"):
        assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", fn, "INPUTS", 1, "x", "OUTPUTS", 2,
                                    f"{fn}_a", f"{fn}_b"))
        assert values(c, f"{fn}_a") == [2, 4, 6, 8]
        assert values(c, f"{fn}_b") == [2, 3, 4, 5]
        assert meta(c, f"{fn}_a") == ("FLOAT", [2, 2])
    # INPUTS n: the function gets all n tensors, in order.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "total", "INPUTS", 3, "x", "y", "z",
                                "OUTPUTS", 1, "sum"))
    assert values(c, "sum") == [111, 222, 333, 444]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "total", "INPUTS", 1, "z", "OUTPUTS", 1, "sum"))
    assert values(c, "sum") == [100, 200, 300, 400], "an existing output tensor is replaced"
    # Outputs are made contiguous: a transposed view is stored in its own order.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "transposed", "INPUTS", 1, "x",
                                "OUTPUTS", 1, "xt"))
    assert meta(c, "xt") == ("FLOAT", [2, 2]) and values(c, "xt") == [1, 3, 2, 4]
    # OUTPUTS 0 (or none): the return value is ignored, whatever it is.
    for fn in ("an_int", "nothing", "two_list"):
        assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", fn, "INPUTS", 1, "x", "OUTPUTS", 0))
        assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", fn, "INPUTS", 1, "x"))
    # Keywords are case-insensitive; an output key need not be new.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "two_list", "inputs", 1, "x", "outputs",
                                2, "x", "y"))
    assert values(c, "x") == [2, 4, 6, 8] and values(c, "y") == [2, 3, 4, 5]


def test_args_are_strings_and_keys_are_passed_through(c):
    store(c, "l", LISTS, *LISTS_ENTRY)
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 3, "VALUES", 1, 2, 3)
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "scale", "INPUTS", 1, "x", "ARGS", 2,
                                "2.5", "10", "OUTPUTS", 1, "y"))
    assert values(c, "y") == [12.5, 15, 17.5]
    # ARGS may come before INPUTS once KEYS opened the command; OUTPUTS anywhere.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "scale", "KEYS", 1, "x", "OUTPUTS", 1,
                                "y", "ARGS", 2, "-1", "0", "INPUTS", 1, "x"))
    assert values(c, "y") == [-1, -2, -3]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "as_floats", "KEYS", 1, "k", "ARGS", 3,
                                "1.5", "-2", "1e3", "OUTPUTS", 1, "f"))
    assert meta(c, "f") == ("FLOAT", [3]) and values(c, "f") == [1.5, -2, 1000]
    # A bad conversion fails inside the script.
    text = error_of(c, "AI.SCRIPTEXECUTE", "l", "scale", "INPUTS", 1, "x", "ARGS", 2, "abc", "1",
                    "OUTPUTS", 1, "y")
    assert text.startswith("The following operation failed in the TorchScript interpreter."), text
    assert "float(args[0])" in text and "RuntimeError" in text, text
    # KEYS reach the function in order; they need not exist and are not read.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "count_keys", "KEYS", 3, "k1", "k2",
                                "x", "OUTPUTS", 1, "n"))
    assert meta(c, "n") == ("INT64", []) and c.execute_command("AI.TENSORGET", "n", "VALUES") == [3]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "key_lengths", "KEYS", 3, "a", "bbb",
                                "cc", "INPUTS", 0, "OUTPUTS", 1, "n"))
    assert c.execute_command("AI.TENSORGET", "n", "VALUES") == [1, 3, 2]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "count_keys", "INPUTS", 1, "x",
                                "OUTPUTS", 1, "n"))
    assert c.execute_command("AI.TENSORGET", "n", "VALUES") == [0]
    assert c.exists("k", "k1", "k2") == 0


def test_best_effort_mode_for_functions_that_are_not_entry_points(c):
    store(c, "l", LISTS, *LISTS_ENTRY)
    for k, v in (("x", 1), ("y", 10), ("z", 100)):
        c.execute_command("AI.TENSORSET", k, "FLOAT", 1, "VALUES", v)
    # A List[Tensor] parameter takes every remaining input; KEYS and ARGS are ignored.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "helper", "KEYS", 1, "q", "INPUTS", 3,
                                "x", "y", "z", "ARGS", 1, "7", "OUTPUTS", 1, "o"))
    assert values(c, "o") == [111]
    # Tensor parameters take inputs in order; extra inputs are ignored.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "pair", "INPUTS", 3, "z", "x", "y",
                                "OUTPUTS", 1, "o"))
    assert values(c, "o") == [99]
    # The old_script.txt functions through AI.SCRIPTRUN and AI.SCRIPTEXECUTE.
    c.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT)
    assert ok(c.execute_command("AI.SCRIPTRUN", "old", "bar_variadic", "INPUTS", "x", "$", "y",
                                "z", "OUTPUTS", "o"))
    assert values(c, "o") == [110]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "old", "bar", "INPUTS", 2, "x", "y",
                                "OUTPUTS", 1, "o"))
    assert values(c, "o") == [11]
    # An entry point run by AI.SCRIPTRUN gets (tensors, [], []).
    store(c, "s", SCRIPT, "bar", "bar_variadic")
    assert ok(c.execute_command("AI.SCRIPTRUN", "s", "bar_variadic", "INPUTS", "y", "$", "z",
                                "x", "OUTPUTS", "o"))
    assert values(c, "o") == [110]


# -------------------------------------------------------------------------------- AI.INFO

def test_info_counts_calls_errors_and_resets(c):
    store(c, "s", SCRIPT, "bar", "bar_variadic", tag="v1")
    empty = {"key": b"s", "type": b"SCRIPT", "backend": b"TORCH", "device": b"CPU", "tag": b"v1",
             "duration": 0, "samples": -1, "calls": 0, "errors": 0}
    assert info(c, "s") == empty
    assert list(info(c, "s")) == ["key", "type", "backend", "device", "tag", "duration",
                                  "samples", "calls", "errors"]
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    for _ in range(2):
        c.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "o")
    c.execute_command("AI.SCRIPTRUN", "s", "bar", "INPUTS", "a", "a", "OUTPUTS", "o")
    i = info(c, "s")
    assert (i["calls"], i["errors"], i["samples"]) == (3, 0, -1) and i["duration"] > 0
    with pytest.raises(redis.ResponseError):
        c.execute_command("AI.SCRIPTEXECUTE", "s", "wrong_fn", "INPUTS", 1, "a", "OUTPUTS", 1, "o")
    with pytest.raises(redis.ResponseError):  # parse-time: not counted
        c.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "missing", "OUTPUTS", 1, "o")
    after = info(c, "s")
    assert (after["calls"], after["errors"], after["duration"]) == (4, 1, i["duration"])
    # Script ops inside DAGs count; ops skipped after a failure do not.
    got = c.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "|>",
                            "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "t",
                            "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "t", "OUTPUTS", 1, "u",
                            "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "u", "u", "OUTPUTS", 1, "v")
    assert got[0] == b"OK" and got[2] == b"NA"
    assert isinstance(got[1], redis.ResponseError) and "out of range" in str(got[1])
    after = info(c, "s")
    assert (after["calls"], after["errors"]) == (6, 2)
    # RESETSTAT; any other third argument is ignored.
    assert ok(c.execute_command("AI.INFO", "s", "RESETSTAT"))
    assert info(c, "s") == empty
    assert c.execute_command("AI.INFO", "s", "resetstat") in (b"OK", "OK", True)
    c.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "o")
    assert c.execute_command("AI.INFO", "s", "whatever")[15] == 1
    # Storing over the script: fresh counters, the new device and tag.
    assert ok(c.execute_command("AI.SCRIPTSTORE", "s", "cpu", "TAG", "v2", "ENTRY_POINTS", 1, "bar",
                                "SOURCE", SCRIPT))
    assert info(c, "s") == {**empty, "device": b"cpu", "tag": b"v2"}
    assert ok(c.execute_command("AI.SCRIPTSET", "s", "CPU", "SOURCE", OLD_SCRIPT))
    assert info(c, "s") == {**empty, "tag": b""}
    # Gone with the script, by AI.SCRIPTDEL or DEL.
    assert ok(c.execute_command("AI.SCRIPTDEL", "s"))
    assert error_of(c, "AI.INFO", "s") == "cannot find run info for key"
    store(c, "s2", ADDN, "addn")
    assert c.delete("s2") == 1
    assert error_of(c, "AI.INFO", "s2") == "cannot find run info for key"


# -------------------------------------------------------------------- stores that succeed

def test_accepted_forms_of_scriptstore(c):
    # ENTRY_POINTS 0 with a TAG (8 arguments): a script without entry points.
    assert ok(c.execute_command("AI.SCRIPTSTORE", "z", "CPU", "TAG", "t", "ENTRY_POINTS", 0,
                                "SOURCE", OLD_SCRIPT))
    assert c.execute_command("AI.SCRIPTGET", "z", "META") == [
        b"device", b"CPU", b"tag", b"t", b"Entry Points", []]
    # Devices: a CPU prefix, any case; keywords in any case; an empty tag; arguments after
    # the source are ignored; SOURCE may be taken as an entry point name.
    for dev in ("cpu", "CPU:1", "CPUx", "Cpu"):
        assert ok(c.execute_command("AI.SCRIPTSTORE", "d", dev, "ENTRY_POINTS", 1, "bar",
                                    "SOURCE", SCRIPT)), dev
        assert c.execute_command("AI.SCRIPTGET", "d", "META")[1] == dev.encode()
    assert ok(c.execute_command("ai.scriptstore", "e", "CPU", "tag", "", "entry_points", 1, "bar",
                                "source", SCRIPT, "ignored", "too"))
    assert c.execute_command("AI.SCRIPTGET", "e", "META")[3] == b""
    assert c.execute_command("AI.SCRIPTGET", "e", "SOURCE") == SCRIPT.encode()
    src = "def SOURCE(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0]\n"
    assert ok(c.execute_command("AI.SCRIPTSTORE", "f", "CPU", "ENTRY_POINTS", 1, "SOURCE",
                                "SOURCE", src))
    assert c.execute_command("AI.SCRIPTGET", "f", "META")[5] == [b"SOURCE"]
    # AI.SCRIPTSET: 5 or 7 arguments; extra arguments after the source are ignored.
    assert ok(c.execute_command("AI.SCRIPTSET", "g", "CPU", "SOURCE", OLD_SCRIPT, "x", "y"))
    assert c.execute_command("AI.SCRIPTGET", "g", "SOURCE") == OLD_SCRIPT.encode()
    # GPU on a build without CUDA fails at compilation, after the device check.
    for dev in ("GPU", "GPU:0"):
        assert error_of(c, "AI.SCRIPTSTORE", "h", dev, "ENTRY_POINTS", 1, "bar", "SOURCE",
                        SCRIPT) == "GPU requested but Torch couldn't find CUDA", dev
    assert c.exists("h") == 0
    # Storing over a script replaces it.
    store(c, "z", ADDN, "addn", tag="v2")
    assert c.execute_command("AI.SCRIPTGET", "z", "META")[3:] == [b"v2", b"Entry Points", [b"addn"]]


def test_type_del_getkeys_and_restart(server):
    c = server.client()
    store(c, "s", ADDTWO, "addtwo", tag="v1")
    c.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_ADDN)
    assert c.type("s") == b"AI_SCRIPT" and c.type("old") == b"AI_SCRIPT"
    assert c.exists("s", "old") == 2
    # The script key, KEYS, INPUTS and OUTPUTS are the command's keys; ARGS are not.
    keys = c.command_getkeys("AI.SCRIPTEXECUTE", "s", "addtwo", "KEYS", 1, "k", "INPUTS", 2,
                             "i1", "i2", "ARGS", 1, "arg", "OUTPUTS", 1, "o")
    assert sorted(k.decode() if isinstance(k, bytes) else k for k in keys) == ["i1", "i2", "k", "o", "s"]
    c.execute_command("AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 40)
    c.execute_command("AI.TENSORSET", "y", "FLOAT", 1, "VALUES", 2)
    # Kept across a restart (AOF / snapshot), compiled again at load.
    c.close()
    server.stop()
    again = Server(dir=server.dir)
    try:
        c = again.client()
        assert c.execute_command("AI.SCRIPTGET", "s") == [
            b"device", b"CPU", b"tag", b"v1", b"Entry Points", [b"addtwo"], b"source", ADDTWO.encode()]
        assert c.execute_command("AI.SCRIPTGET", "old", "META")[5] == []
        assert info(c, "s")["calls"] == 0
        assert ok(c.execute_command("AI.SCRIPTEXECUTE", "s", "addtwo", "INPUTS", 2, "x", "y",
                                    "OUTPUTS", 1, "r"))
        assert values(c, "r") == [42]
        assert ok(c.execute_command("AI.SCRIPTRUN", "old", "addn", "INPUTS", "x", "$", "y", "y",
                                    "OUTPUTS", "r"))
        assert values(c, "r") == [44]
        assert c.delete("s") == 1 and c.exists("s") == 0
        assert error_of(c, "AI.SCRIPTEXECUTE", "s", "addtwo", "INPUTS", 2, "x", "y") == "script key is empty"
        assert sorted(c.execute_command("AI._SCRIPTSCAN")) == [[b"old", b""]]
        c.close()
    finally:
        again.stop()


def test_timeout_answers_timedout_when_queued_behind_a_long_run(c, server):
    store(c, "l", LISTS, *LISTS_ENTRY)
    c.execute_command("AI.TENSORSET", "x", "INT64", 1, "VALUES", 0)
    # Calibrate: n loop steps take at least 0.3 s; the run that blocks the queue does 4n.
    n = 20000
    while True:
        t = time.time()
        c.execute_command("AI.SCRIPTEXECUTE", "l", "slow", "INPUTS", 1, "x", "ARGS", 1, n,
                          "OUTPUTS", 1, "y")
        if time.time() - t > 0.3 or n > 10**8:
            break
        n *= 2
    assert values(c, "y") == [n]
    c.execute_command("AI.INFO", "l", "RESETSTAT")
    done = []
    bg = threading.Thread(target=lambda: done.append(server.client().execute_command(
        "AI.SCRIPTEXECUTE", "l", "slow", "INPUTS", 1, "x", "ARGS", 1, 4 * n, "OUTPUTS", 1, "y2")))
    bg.start()
    time.sleep(0.2)
    got = c.execute_command("AI.SCRIPTEXECUTE", "l", "two_list", "INPUTS", 1, "x", "OUTPUTS", 2,
                            "p", "q", "TIMEOUT", 1)
    bg.join(60)
    assert got == b"TIMEDOUT" and done == [b"OK"]
    assert c.exists("p", "q") == 0 and values(c, "y2") == [4 * n]
    # A TIMEDOUT request is not counted.
    assert info(c, "l")["calls"] == 1
    # With room to wait, the same request runs.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "l", "two_list", "INPUTS", 1, "x", "OUTPUTS",
                                2, "p", "q", "TIMEOUT", 60000))


# -------------------------------------------------------------------------------------- DAGs

CLASSIFIER_SCRIPT = """def pre_process(tensors: List[Tensor], keys: List[str], args: List[str]):
    image = tensors[0]
    return image.float().div(255).permute(2, 0, 1).unsqueeze(0)

def post_process(tensors: List[Tensor], keys: List[str], args: List[str]):
    output = tensors[0]
    return output.max(1)[1]
"""


def classifier_weights():
    """Small conv net weights, multiples of 1/64 (exact in float32 and in the source text)."""
    rng = np.random.default_rng(7)
    q = lambda *shape: (rng.integers(-64, 65, size=shape) / 64.0).astype(np.float32)  # noqa: E731
    return q(4, 3, 3, 3), q(4), q(5, 4), q(5)


def make_classifier(path, tmp):
    """A TorchScript model (x: 1x3xHxW) -> conv3x3(4) -> relu -> mean over H, W -> linear(5):
    make_torch_models' mul.pt with its source rewritten (Python torch is not installed)."""
    w, b, fw, fb = classifier_weights()
    lit = lambda a: "[" + ", ".join(repr(float(v)) for v in a.ravel()) + "]"  # noqa: E731
    source = f"""class Mul(Module):
  __parameters__ = []
  __buffers__ = []
  def forward(self: __torch__.Mul,
    x: Tensor) -> Tensor:
    w = torch.reshape(torch.tensor({lit(w)}), [4, 3, 3, 3])
    b = torch.tensor({lit(b)})
    h = torch.relu(torch.conv2d(x, w, b))
    h = torch.mean(h, [2, 3])
    fw = torch.reshape(torch.tensor({lit(fw)}), [5, 4])
    fb = torch.tensor({lit(fb)})
    return torch.add(torch.matmul(h, torch.t(fw)), fb)
"""
    make = ROOT / "target" / "release" / "make_torch_models"
    if not make.exists():
        pytest.fail(f"{make} missing: run `cargo build --release -p shardai-tests`")
    subprocess.run([str(make), str(tmp)], check=True, capture_output=True)
    sys.path.insert(0, str(ROOT / "tests" / "models"))
    try:
        from make_torch_two_outputs import rewrite
    finally:
        sys.path.pop(0)
    rewrite(str(tmp / "mul.pt"), str(path), source)


def classify_numpy(image):
    """The same computation in numpy (float64): logits and the argmax."""
    w, b, fw, fb = (a.astype(np.float64) for a in classifier_weights())
    x = (image.astype(np.float32) / np.float32(255)).astype(np.float64).transpose(2, 0, 1)
    H, W = x.shape[1] - 2, x.shape[2] - 2
    h = np.zeros((4, H, W))
    for o in range(4):
        for i in range(H):
            for j in range(W):
                h[o, i, j] = (x[:, i:i + 3, j:j + 3] * w[o]).sum() + b[o]
    h = np.maximum(h, 0).mean(axis=(1, 2))
    logits = h @ fw.T + fb
    return logits[None, :], int(np.argmax(logits))


def test_image_classification_dag_with_a_generated_model(c, tmp_path):
    make_classifier(tmp_path / "classifier.pt", tmp_path / "gen")
    assert ok(c.execute_command("AI.MODELSTORE", "imagenet_model{tag}", "TORCH", "CPU", "BLOB",
                                (tmp_path / "classifier.pt").read_bytes()))
    store(c, "imagenet_script{tag}", CLASSIFIER_SCRIPT, "pre_process", "post_process")
    image = np.random.default_rng(3).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    want_logits, want_label = classify_numpy(image)
    margin = np.sort(want_logits[0])[-1] - np.sort(want_logits[0])[-2]
    assert margin > 1e-3, "the generated image must have a clear winner"
    c.execute_command("AI.TENSORSET", "image{tag}", "UINT8", 8, 8, 3, "BLOB", image.tobytes())
    # Script -> model -> script, intermediates local to the DAG, two outputs persisted.
    got = c.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "image{tag}", "PERSIST", 2, "logits{tag}", "label{tag}",
        "|>", "AI.SCRIPTEXECUTE", "imagenet_script{tag}", "pre_process", "INPUTS", 1, "image{tag}",
        "OUTPUTS", 1, "temp_key1",
        "|>", "AI.MODELEXECUTE", "imagenet_model{tag}", "INPUTS", 1, "temp_key1", "OUTPUTS", 1,
        "logits{tag}",
        "|>", "AI.SCRIPTEXECUTE", "imagenet_script{tag}", "post_process", "INPUTS", 1,
        "logits{tag}", "OUTPUTS", 1, "label{tag}",
        "|>", "AI.TENSORGET", "label{tag}", "VALUES")
    assert got == [b"OK", b"OK", b"OK", [want_label]]
    assert meta(c, "label{tag}") == ("INT64", [1])
    m = c.execute_command("AI.TENSORGET", "logits{tag}", "META", "BLOB")
    assert m[:4] == [b"dtype", b"FLOAT", b"shape", [1, 5]]
    np.testing.assert_allclose(np.frombuffer(m[5], dtype="<f4").reshape(1, 5), want_logits,
                               rtol=1e-5, atol=1e-5)
    assert c.exists("temp_key1") == 0
    # The spec's form: the image set inside the DAG, ROUTING only, nothing persisted.
    got = c.execute_command(
        "AI.DAGEXECUTE", "ROUTING", "{tag}",
        "|>", "AI.TENSORSET", "image", "UINT8", 8, 8, 3, "BLOB", image.tobytes(),
        "|>", "AI.SCRIPTEXECUTE", "imagenet_script{tag}", "pre_process", "INPUTS", 1, "image",
        "OUTPUTS", 1, "temp_key1",
        "|>", "AI.MODELEXECUTE", "imagenet_model{tag}", "INPUTS", 1, "temp_key1", "OUTPUTS", 1,
        "temp_key2",
        "|>", "AI.SCRIPTEXECUTE", "imagenet_script{tag}", "post_process", "INPUTS", 1,
        "temp_key2", "OUTPUTS", 1, "output",
        "|>", "AI.TENSORGET", "output", "VALUES")
    assert got == [b"OK", b"OK", b"OK", b"OK", [want_label]]
    assert c.exists("image", "temp_key1", "temp_key2", "output") == 0
    s = info(c, "imagenet_script{tag}")
    assert (s["calls"], s["errors"]) == (4, 0)
    assert info(c, "imagenet_model{tag}")["calls"] == 2


def test_dag_script_ops_and_deprecated_dagrun(c):
    store(c, "s", SCRIPT, "bar", "bar_variadic")
    c.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT)
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    # No first-scope rule in a DAG; KEYS allowed; an op may start with OUTPUTS.
    got = c.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "d", "|>",
                            "AI.SCRIPTEXECUTE", "s", "bar", "OUTPUTS", 1, "b", "INPUTS", 2, "a", "a",
                            "|>", "AI.SCRIPTEXECUTE", "s", "bar_variadic", "KEYS", 1, "a", "INPUTS",
                            3, "b", "a", "a", "OUTPUTS", 1, "d",
                            "|>", "AI.TENSORGET", "d", "VALUES")
    assert got == [b"OK", b"OK", [b"3", b"6"]]
    assert values(c, "d") == [3, 6] and c.exists("b") == 0
    # A failure inside the function: its element is the error, the rest NA, nothing persisted.
    got = c.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "e", "|>",
                            "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "b",
                            "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "b", "OUTPUTS", 1, "e",
                            "|>", "AI.TENSORGET", "e", "VALUES")
    assert got[0] == b"OK" and got[2] == b"NA"
    assert isinstance(got[1], redis.ResponseError)
    assert str(got[1]).startswith("The following operation failed in the TorchScript interpreter.")
    assert c.exists("e") == 0
    # AI.DAGRUN with AI.SCRIPTRUN ops (best effort and `$`), and AI.DAGRUN_RO.
    got = c.execute_command("AI.DAGRUN", "LOAD", 1, "a", "PERSIST", 1, "f", "|>",
                            "AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "a", "OUTPUTS", "t", "|>",
                            "AI.SCRIPTRUN", "old", "bar_variadic", "INPUTS", "a", "$", "t", "t",
                            "OUTPUTS", "f", "|>", "AI.TENSORGET", "f", "VALUES")
    assert got == [b"OK", b"OK", [b"4", b"8"]]
    assert values(c, "f") == [4, 8]
    # A DAG whose only ops are AI.TENSORGETs is still fine as read-only.
    assert c.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "d", "|>", "AI.TENSORGET", "d",
                             "VALUES") == [[b"3", b"6"]]


def test_dagrun_ro_accepts_scriptrun(c):
    """Doc section 7: RedisAI does not refuse AI.SCRIPTRUN inside AI.DAGRUN_RO."""
    store(c, "s", SCRIPT, "bar", "bar_variadic")
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    got = c.execute_command("AI.DAGRUN_RO", "LOAD", 1, "a", "|>",
                            "AI.SCRIPTRUN", "s", "bar", "INPUTS", "a", "a", "OUTPUTS", "t", "|>",
                            "AI.TENSORGET", "t", "VALUES")
    assert got == [b"OK", [b"2", b"4"]]
    assert c.exists("t") == 0


@pytest.mark.parametrize("dag,fn,text", [
    ("AI.DAGEXECUTE", "wrong_fn", "Function does not exist: wrong_fn"),
    ("AI.DAGEXECUTE", "bar", "Wrong number of inputs provided to function: bar"),
    ("AI.DAGRUN", "wrong_fn", "Function does not exist: wrong_fn"),
])
def test_dag_op_whose_function_fails_at_run_time_is_an_element_error(c, dag, fn, text):
    """Doc section 7: the function is looked up when the op runs; earlier ops run (`OK`),
    the op's element is the error and later ops are `NA`."""
    c.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT)
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    if dag == "AI.DAGEXECUTE":
        op = ["AI.SCRIPTEXECUTE", "old", fn, "INPUTS", 1, "t", "OUTPUTS", 1, "u"]
        first = ["AI.SCRIPTEXECUTE", "old", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "t"]
    else:
        op = ["AI.SCRIPTRUN", "old", fn, "INPUTS", "t", "OUTPUTS", "u"]
        first = ["AI.SCRIPTRUN", "old", "bar", "INPUTS", "a", "a", "OUTPUTS", "t"]
    got = c.execute_command(dag, "LOAD", 1, "a", "PERSIST", 1, "u", "|>", *first, "|>", *op,
                            "|>", "AI.TENSORGET", "u", "VALUES")
    assert isinstance(got, list) and len(got) == 3, got
    assert got[0] == b"OK" and got[2] == b"NA"
    assert isinstance(got[1], redis.ResponseError) and str(got[1]) == text
    assert c.exists("u") == 0
    i = info(c, "old")
    assert (i["calls"], i["errors"]) == (2, 1)


# ------------------------------------------------------------------ replication and cluster

def test_script_survives_leader_failover_in_a_three_replica_shard():
    cluster = Cluster(3, extra=["--snapshot-entries", "20"])
    try:
        lead = cluster.leader()
        lead_id = lead.replication()["raft_node_id"]
        r = lead.client()
        store(r, "s{x}", SCRIPT, "bar", "bar_variadic", tag="v1")
        r.execute_command("AI.TENSORSET", "a{x}", "FLOAT", 2, "VALUES", 1, 2)
        r.execute_command("AI.TENSORSET", "b{x}", "FLOAT", 2, "VALUES", 3, 4)
        # Every replica compiled it as it applied the entry: a READONLY follower serves it.
        for f in cluster.followers():
            cluster.wait_caught_up(f)
            fr = f.client(single_connection_client=True)
            assert fr.execute_command("READONLY") in (True, b"OK")
            assert fr.execute_command("AI.SCRIPTGET", "s{x}", "META") == [
                b"device", b"CPU", b"tag", b"v1", b"Entry Points", [b"bar", b"bar_variadic"]]
            assert fr.execute_command("AI.SCRIPTGET", "s{x}", "SOURCE") == SCRIPT.encode()
            assert fr.type("s{x}") == b"AI_SCRIPT"
            # A script op may write: a follower sends it to the leader.
            with pytest.raises(redis.exceptions.MovedError):
                fr.execute_command("AI.SCRIPTEXECUTE", "s{x}", "bar", "INPUTS", 2, "a{x}", "b{x}",
                                   "OUTPUTS", 1, "c{x}")
            fr.close()
        r.close()
        lead.kill()
        new = cluster.leader()
        assert new is not lead
        r = new.client()
        assert ok(r.execute_command("AI.SCRIPTEXECUTE", "s{x}", "bar", "INPUTS", 2, "a{x}", "b{x}",
                                    "OUTPUTS", 1, "c{x}"))
        assert values(r, "c{x}") == [4, 6]
        assert info(r, "s{x}")["calls"] == 1
        # Outputs written on the new leader reach its follower.
        f = [x for x in cluster.followers()][0]
        cluster.wait_caught_up(f)
        fr = f.client(single_connection_client=True)
        fr.execute_command("READONLY")
        assert values(fr, "c{x}") == [4, 6]
        # A store and a delete through the new leader replicate too.
        store(r, "s2{x}", ADDN, "addn")
        assert ok(r.execute_command("AI.SCRIPTDEL", "s{x}"))
        cluster.wait_caught_up(f)
        assert fr.execute_command("AI._SCRIPTSCAN") == [[b"s2{x}", b""]]
        fr.close()
        # The killed leader, wiped, rejoins under a new id and gets the script in a snapshot.
        for i in range(60):
            r.execute_command("AI.TENSORSET", f"t{i}{{x}}", "UINT8", 64, "BLOB", bytes([i]) * 64)
        cluster_cli("del-node", new.addr, str(lead_id))
        # Once the leader's log no longer starts at the beginning, a new replica needs the
        # snapshot.
        deadline = time.time() + 30
        while int(new.replication()["raft_log_first_index"]) <= 1:
            assert time.time() < deadline, "the leader kept its whole log"
            time.sleep(0.05)
        lead.wipe()
        lead.start()
        cluster_cli("add-node", lead.addr, new.addr)
        cluster.wait_caught_up(lead)
        assert "snapshot installed" in lead.log_text()
        lr = lead.client(single_connection_client=True)
        lr.execute_command("READONLY")
        assert lr.execute_command("AI._SCRIPTSCAN") == [[b"s2{x}", b""]]
        assert lr.execute_command("AI.SCRIPTGET", "s2{x}") == [
            b"device", b"CPU", b"tag", b"", b"Entry Points", [b"addn"], b"source", ADDN.encode()]
        lr.close()
        r.close()
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def shards():
    """Two shards of three replicas each."""
    c = Cluster(6, replicas=2)
    try:
        yield c
    finally:
        c.close()


def shard_of(cluster, key, slots=None):
    """(leader port, [follower ports]) of the shard owning `key`'s slot."""
    slot = key_slot(key.encode())
    for e in slots or cluster.nodes[0].client().execute_command("CLUSTER", "SLOTS"):
        if e[0] <= slot <= e[1]:
            return e[2][1], [x[1] for x in e[3:]]
    raise AssertionError(slot)


def leader_ports(cluster):
    return sorted(e[2][1] for e in cluster.nodes[0].client().execute_command("CLUSTER", "SLOTS"))


def tag_in(cluster, port, prefix):
    """A hash tag whose slot the shard led by `port` owns."""
    slots = cluster.nodes[0].client().execute_command("CLUSTER", "SLOTS")
    n = 0
    while shard_of(cluster, f"{{{prefix}{n}}}", slots)[0] != port:
        n += 1
    return f"{prefix}{n}"


def test_cluster_routes_scripts_by_their_keys(shards):
    ports = leader_ports(shards)
    assert len(ports) == 2
    t = tag_in(shards, ports[0], "a")
    u = tag_in(shards, ports[0], "b")  # same shard, another slot
    v = tag_in(shards, ports[1], "c")  # the other shard
    assert key_slot(t.encode()) != key_slot(u.encode())
    rc = RedisCluster(host="127.0.0.1", port=shards.nodes[0].port)
    try:
        # A real cluster client finds the node from COMMAND GETKEYS.
        assert ok(rc.execute_command("AI.SCRIPTSTORE", f"s{{{t}}}", "CPU", "ENTRY_POINTS", 2, "bar",
                                     "bar_variadic", "SOURCE", SCRIPT))
        rc.execute_command("AI.TENSORSET", f"a{{{t}}}", "FLOAT", 2, "VALUES", 1, 2)
        rc.execute_command("AI.TENSORSET", f"a{{{u}}}", "FLOAT", 2, "VALUES", 1, 2)
        assert ok(rc.execute_command("AI.SCRIPTEXECUTE", f"s{{{t}}}", "bar", "KEYS", 1, f"k{{{t}}}",
                                     "INPUTS", 2, f"a{{{t}}}", f"a{{{t}}}", "ARGS", 1, f"x{{{v}}}",
                                     "OUTPUTS", 1, f"o{{{t}}}"))
        assert values(rc, f"o{{{t}}}") == [2, 4]
        # AI.SCRIPTRUN's `$` is no key, and its TIMEOUT value neither.
        assert ok(rc.execute_command("AI.SCRIPTRUN", f"s{{{t}}}", "bar_variadic", "TIMEOUT", 5000,
                                     "INPUTS", f"a{{{t}}}", "$", f"a{{{t}}}", "OUTPUTS",
                                     f"p{{{t}}}"))
        assert values(rc, f"p{{{t}}}") == [2, 4]
        assert rc.execute_command("AI.SCRIPTGET", f"s{{{t}}}", "META")[5] == [b"bar", b"bar_variadic"]
    finally:
        rc.close()
    r = redis.Redis(port=ports[0])
    s, a, o = f"s{{{t}}}", f"a{{{t}}}", f"o{{{t}}}"
    crossslot = "Keys in request don't hash to the same slot"
    cases = [
        ["AI.SCRIPTEXECUTE", s, "bar", "KEYS", 1, f"k{{{u}}}", "INPUTS", 2, a, a, "OUTPUTS", 1, o],
        ["AI.SCRIPTEXECUTE", s, "bar", "INPUTS", 2, a, f"a{{{u}}}", "OUTPUTS", 1, o],
        ["AI.SCRIPTEXECUTE", s, "bar", "INPUTS", 2, a, a, "OUTPUTS", 1, f"o{{{u}}}"],
        ["AI.SCRIPTEXECUTE", s, "bar", "KEYS", 2, f"k{{{t}}}", f"k{{{v}}}", "INPUTS", 2, a, a],
        ["AI.SCRIPTRUN", s, "bar", "INPUTS", a, f"a{{{u}}}", "OUTPUTS", o],
        ["AI.DAGEXECUTE", "LOAD", 1, a, "PERSIST", 1, f"o{{{u}}}", "|>",
         "AI.SCRIPTEXECUTE", s, "bar", "INPUTS", 2, a, a, "OUTPUTS", 1, f"o{{{u}}}"],
        # A DAG script op's KEYS are keys too.
        ["AI.DAGEXECUTE", "LOAD", 1, a, "|>",
         "AI.SCRIPTEXECUTE", s, "bar", "KEYS", 1, f"k{{{u}}}", "INPUTS", 2, a, a, "OUTPUTS", 1, "x"],
    ]
    for cmd in cases:
        with pytest.raises(redis.exceptions.ClusterCrossSlotError) as e:
            r.execute_command(*cmd)
        assert str(e.value) == crossslot, cmd
        assert wire(ports[0], *cmd) == "-CROSSSLOT " + crossslot
    assert r.exists(o) == 1 and r.exists(f"o{{{u}}}") == 0
    # The other shard sends every script command for these keys to their owner.
    other = redis.Redis(port=ports[1])
    for cmd in (["AI.SCRIPTEXECUTE", s, "bar", "INPUTS", 2, a, a, "OUTPUTS", 1, o],
                ["AI.SCRIPTGET", s], ["AI.SCRIPTDEL", s],
                ["AI.SCRIPTSTORE", s, "CPU", "TAG", "t", "ENTRY_POINTS", 0, "SOURCE", OLD_SCRIPT]):
        with pytest.raises(redis.exceptions.MovedError) as e:
            other.execute_command(*cmd)
        assert (e.value.slot_id, e.value.port) == (key_slot(t.encode()), ports[0]), cmd
    # AI._SCRIPTSCAN lists the scripts of the shard it is sent to.
    assert r.execute_command("AI._SCRIPTSCAN") == [[s.encode(), b""]]
    assert other.execute_command("AI._SCRIPTSCAN") == []
    r.close()
    other.close()


def node_ids(cluster):
    """{port: node id} from CLUSTER NODES."""
    out = {}
    for ln in cluster.nodes[0].client().execute_command("CLUSTER", "NODES").decode().splitlines():
        f = ln.split()
        out[int(f[1].split("@")[0].split(":")[1])] = f[0]
    return out


def test_migrate_moves_a_script_that_stays_usable(shards):
    src_port, dst_port = leader_ports(shards)
    tag = tag_in(shards, src_port, "mig")
    slot = key_slot(tag.encode())
    s, a, b = f"s{{{tag}}}", f"a{{{tag}}}", f"b{{{tag}}}"
    src, dst = redis.Redis(port=src_port), redis.Redis(port=dst_port)
    store(src, s, SCRIPT, "bar", "bar_variadic", tag="m1")
    src.execute_command("AI.TENSORSET", a, "FLOAT", 2, "VALUES", 1, 2)
    src.execute_command("AI.TENSORSET", b, "FLOAT", 2, "VALUES", 3, 4)
    src.execute_command("AI.SCRIPTEXECUTE", s, "bar", "INPUTS", 2, a, b, "OUTPUTS", 1, f"c{{{tag}}}")
    ids = node_ids(shards)
    assert ok(dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src_port]))
    assert ok(src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst_port]))
    assert ok(src.execute_command("MIGRATE", "127.0.0.1", dst_port, "", 0, 5000, "KEYS", s, a, b,
                                  f"c{{{tag}}}"))
    assert src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    for r in (dst, src):
        assert ok(r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst_port]))
    # On the target: the same script (source, tag, entry points), and it runs.
    assert dst.execute_command("AI.SCRIPTGET", s) == [
        b"device", b"CPU", b"tag", b"m1", b"Entry Points", [b"bar", b"bar_variadic"], b"source",
        SCRIPT.encode()]
    assert dst.type(s) == b"AI_SCRIPT"
    assert ok(dst.execute_command("AI.SCRIPTEXECUTE", s, "bar_variadic", "INPUTS", 3, b, a, a,
                                  "OUTPUTS", 1, f"d{{{tag}}}"))
    assert values(dst, f"d{{{tag}}}") == [4, 6]
    assert info(dst, s)["calls"] == 1
    assert dst.execute_command("AI._SCRIPTSCAN").count([s.encode(), b"m1"]) == 1
    # The source no longer has it; it sends clients to the target.
    with pytest.raises(redis.exceptions.MovedError):
        src.execute_command("AI.SCRIPTGET", s)
    assert [s.encode(), b"m1"] not in src.execute_command("AI._SCRIPTSCAN")
    # The target's followers got it through their shard's log.
    _, followers = shard_of(shards, s)
    for fp in followers:
        fr = redis.Redis(port=fp, single_connection_client=True)
        fr.execute_command("READONLY")
        end = time.time() + 30
        while True:
            try:
                if fr.execute_command("AI.SCRIPTGET", s, "SOURCE") == SCRIPT.encode():
                    break
            except redis.ResponseError:
                pass
            assert time.time() < end, f"follower {fp} did not get {s}"
            time.sleep(0.05)
        fr.close()
    src.close()
    dst.close()


# ------------------------------------------------------- redis.execute and redisAI.model_execute

EXTENSIONS = """
def redis_string_int_to_tensor(redis_value: Any):
    return torch.tensor(int(str(redis_value)))


def redis_string_float_to_tensor(redis_value: Any):
    return torch.tensor(float(str((redis_value))))


def test_redis_error(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    redis.execute("SET", key)


def test_int_set_get(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    value = args[0]
    redis.execute("SET", key, value)
    res = redis.execute("GET", key)
    redis.execute("DEL", key)
    return redis_string_int_to_tensor(res)


def test_int_set_incr(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    value = args[0]
    redis.execute("SET", key, value)
    res = redis.execute("INCR", key)
    redis.execute("DEL", key)
    return redis_string_int_to_tensor(res)


def test_float_set_get(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    value = args[0]
    redis.execute("SET", key, value)
    res = redis.execute("GET", key)
    redis.execute("DEL", key)
    return redis_string_float_to_tensor(res)


def test_set_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    value = args[0]
    redis.execute("SET", [key, value])


def test_del_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    key = keys[0]
    redis.execute("DEL", [key])


def count_mget(tensors: List[Tensor], keys: List[str], args: List[str]):
    values = redis.asList(redis.execute("MGET", keys))
    n = 0
    for v in values:
        if str(v) == "1":
            n += 1
    return torch.tensor([len(values), n])


def touch_other_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", "not-declared", "1")


def run_a_model_command(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("AI.MODELEXECUTE", keys[0], "INPUTS", "1", keys[1], "OUTPUTS", "1", keys[1])


def read_then_write(tensors: List[Tensor], keys: List[str], args: List[str]):
    n = redis_string_int_to_tensor(redis.execute("GET", keys[0]))
    redis.execute("SET", keys[0], "changed")
    return n


def read_then_write_n(tensors: List[Tensor], keys: List[str], args: List[str]):
    n = redis_string_int_to_tensor(redis.execute("GET", "n{1}"))
    redis.execute("SET", "n{1}", "changed")
    return n


def slow_then_write(tensors: List[Tensor], keys: List[str], args: List[str]):
    s = 0
    for i in range(int(args[0])):
        s += 1
    redis.execute("SET", keys[0], "late")


def flush_everything(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("FLUSHALL", "SYNC")


def test_model_execute(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = torch.tensor([[2.0, 3.0], [2.0, 3.0]])
    b = torch.tensor([[2.0, 3.0], [2.0, 3.0]])
    return redisAI.model_execute(keys[0], [a, b], 1)


def model_then_scale(tensors: List[Tensor], keys: List[str], args: List[str]):
    out = redisAI.model_execute(keys[0], [tensors[0], tensors[0]], 1)
    return out[0] * float(args[0])
"""

EXTENSIONS_ENTRY = ["test_redis_error", "test_int_set_get", "test_int_set_incr",
                    "test_float_set_get", "test_set_key", "test_del_key", "count_mget",
                    "touch_other_key", "run_a_model_command", "read_then_write", "read_then_write_n",
                    "slow_then_write", "flush_everything",
                    "test_model_execute", "model_then_scale"]

TF_MUL = (ROOT / "tests" / "models" / "redisai" / "graph.pb").read_bytes()


def in_traceback(err, text):
    """A script's error is libtorch's interpreter message, one line, ending with the error."""
    return "The following operation failed in the TorchScript interpreter." in err and text in err


def test_redis_execute_runs_commands_as_the_spec_shows(c):
    store(c, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_int_set_get", "KEYS", 1, "x{1}",
                                "ARGS", 1, 3, "OUTPUTS", 1, "y{1}"))
    assert meta(c, "y{1}") == ("INT64", [])
    assert values(c, "y{1}") == [3]
    assert c.exists("x{1}") == 0, "the script's DEL ran"
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_int_set_incr", "KEYS", 1,
                                "x{1}", "ARGS", 1, 1, "OUTPUTS", 1, "y{1}"))
    assert values(c, "y{1}") == [2]
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_float_set_get", "KEYS", 1,
                                "x{1}", "ARGS", 1, 1.1, "OUTPUTS", 1, "y{1}"))
    assert meta(c, "y{1}")[0] == "FLOAT"
    assert abs(float(c.execute_command("AI.TENSORGET", "y{1}", "VALUES")[0]) - 1.1) < 1e-6
    # A list of arguments, and a write whose result nothing reads, still run.
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_set_key", "KEYS", 1, "x{1}",
                                "ARGS", 1, 1))
    assert c.get("x{1}") == b"1"
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_del_key", "KEYS", 1, "x{1}"))
    assert c.exists("x{1}") == 0
    # Array replies are lists (missing keys are None in them).
    c.set("p{1}", "1")
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "count_mget", "KEYS", 3, "p{1}",
                                "q{1}", "x{1}", "OUTPUTS", 1, "n{1}"))
    assert values(c, "n{1}") == [3, 1]


def test_redis_execute_errors_raise_inside_the_script(c):
    store(c, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "test_redis_error", "KEYS", 1, "x{1}")
    assert in_traceback(err, "RuntimeError: Redis command returned an error: ERR wrong number of "
                             "arguments for 'set' command"), err
    c.execute_command("AI.TENSORSET", "t{1}", "FLOAT", 1, "VALUES", 1)
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "read_then_write", "KEYS", 1, "t{1}",
                   "OUTPUTS", 1, "y{1}")
    assert in_traceback(err, "Redis command returned an error: " + WRONGTYPE), err
    # Keys outside the slots of the command's keys are refused.
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "touch_other_key", "KEYS", 1, "x{1}")
    assert in_traceback(err, "Redis command returned an error: ERR CROSSSLOT a script may only "
                             "touch keys in the hash slots of its command's keys"), err
    assert c.exists("not-declared") == 0
    # Commands that wait on the run queues are refused.
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "run_a_model_command", "KEYS", 2, "m{1}",
                   "t{1}")
    assert in_traceback(err, "ERR AI.MODELEXECUTE cannot be run from a script"), err
    # Keyless commands that reach every slot are refused.
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "flush_everything", "KEYS", 1, "x{1}")
    assert in_traceback(err, "ERR FLUSHALL cannot be run from a script"), err
    assert c.exists("t{1}") == 1
    i = info(c, "rs{1}")
    assert (i["calls"], i["errors"]) == (5, 5)


def test_a_script_still_running_after_its_command_answered_changes_nothing(c):
    store(c, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
    got = c.execute_command("AI.DAGEXECUTE", "ROUTING", "k{1}", "TIMEOUT", 20, "|>",
                            "AI.SCRIPTEXECUTE", "rs{1}", "slow_then_write", "KEYS", 1, "k{1}",
                            "ARGS", 1, 3_000_000)
    assert got in (b"TIMEDOUT", "TIMEDOUT"), got
    # The script ends later; its SET then raises instead of writing.
    end = time.time() + 60
    while info(c, "rs{1}")["calls"] == 0:
        assert time.time() < end, "the script did not end"
        time.sleep(0.05)
    assert info(c, "rs{1}")["errors"] == 1
    assert c.exists("k{1}") == 0


def test_redis_execute_runs_with_the_callers_acl(server):
    admin = server.client()
    store(admin, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+@all", "-set")
    r = server.client(username="reader", password="pw")
    err = error_of(r, "AI.SCRIPTEXECUTE", "rs{1}", "test_set_key", "KEYS", 1, "x{1}", "ARGS", 1, 1)
    assert in_traceback(err, "NOPERM"), err
    assert admin.exists("x{1}") == 0
    # The denial is in ACL LOG, as a client's would be.
    log = admin.execute_command("ACL", "LOG")
    entry = dict(zip(log[0][::2], log[0][1::2]))
    assert entry[b"username"] == b"reader" and entry[b"object"] == b"set", entry
    r.close()
    admin.close()


GROW = """
def grow(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("AI.TENSORSET", keys[0], "FLOAT", "1000", "1000")
"""


def test_redis_execute_writes_are_held_to_maxmemory(server):
    c = server.client()
    store(c, "grow{1}", GROW, "grow")
    run = ("AI.SCRIPTEXECUTE", "grow{1}", "grow", "KEYS", 1, "t{1}")
    # Room for the request, not for the 4 MB tensor the script makes.
    used = c.info("memory")["used_memory"]
    c.config_set("maxmemory", used + 1_000_000)
    err = error_of(c, *run)
    assert in_traceback(err, "OOM command not allowed"), err
    assert c.exists("t{1}") == 0
    c.config_set("maxmemory", 0)
    assert ok(c.execute_command(*run))
    assert c.execute_command("AI.TENSORGET", "t{1}", "META")[3] == [1000, 1000]
    c.close()


def test_model_execute_from_a_script(c):
    store(c, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
    assert ok(c.execute_command("AI.MODELSTORE", "tf_mul{1}", "TF", "CPU", "INPUTS", 2, "a", "b",
                                "OUTPUTS", 1, "mul", "BLOB", TF_MUL))
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "test_model_execute", "KEYS", 1,
                                "tf_mul{1}", "OUTPUTS", 1, "y{1}"))
    assert values(c, "y{1}") == [4, 9, 4, 9]
    # Inputs from the command, the model's output used by the script.
    c.execute_command("AI.TENSORSET", "x{1}", "FLOAT", 2, "VALUES", 2, 3)
    assert ok(c.execute_command("AI.SCRIPTEXECUTE", "rs{1}", "model_then_scale", "KEYS", 1,
                                "tf_mul{1}", "INPUTS", 1, "x{1}", "ARGS", 1, 0.5, "OUTPUTS", 1,
                                "z{1}"))
    assert values(c, "z{1}") == [2, 4.5]
    # The model's runs count in its own AI.INFO.
    assert info(c, "tf_mul{1}")["calls"] == 2
    err = error_of(c, "AI.SCRIPTEXECUTE", "rs{1}", "test_model_execute", "KEYS", 1, "nope{1}",
                   "OUTPUTS", 1, "y{1}")
    assert in_traceback(err, "RuntimeError: ERR model key is empty"), err


def test_a_script_on_a_replica_reads_and_never_writes():
    cluster = Cluster(3)
    try:
        lead = cluster.leader()
        r = lead.client()
        store(r, "rs{1}", EXTENSIONS, *EXTENSIONS_ENTRY)
        r.set("n{1}", "7")
        f = cluster.followers()[0]
        cluster.wait_caught_up(f)
        fr = f.client(single_connection_client=True)
        assert fr.execute_command("READONLY") in (True, b"OK")
        # AI.DAGRUN_RO runs on a READONLY replica; the script's GET is served there, its SET
        # is refused.
        r.execute_command("AI.TENSORSET", "t{1}", "FLOAT", 1, "VALUES", 1)
        cluster.wait_caught_up(f)
        got = fr.execute_command("AI.DAGRUN_RO", "LOAD", 1, "t{1}", "|>",
                                 "AI.SCRIPTRUN", "rs{1}", "read_then_write_n", "INPUTS", "t{1}",
                                 "OUTPUTS", "k{1}")
        assert isinstance(got[0], redis.ResponseError), got
        assert "READONLY You can't write against a read only replica." in str(got[0])
        assert r.get("n{1}") == b"7"
        fr.close()
        r.close()
    finally:
        cluster.close()
