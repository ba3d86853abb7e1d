"""redis-py 8 against shardai over RESP2 and RESP3: RedisAI's tensor API, the Redis commands
clients send, and exact error texts. Tensors are checked against numpy's own layout."""
import shutil

import numpy as np
import pytest
import redis

from conftest import Server

DTYPES = {
    "FLOAT": np.float32, "DOUBLE": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "BOOL": np.bool_,
}


def test_spec_examples(r):
    assert r.execute_command("AI.TENSORSET", "mytensor", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4) in (b"OK", True)
    meta = r.execute_command("AI.TENSORGET", "mytensor", "META")
    assert meta == [b"dtype", b"FLOAT", b"shape", [2, 2]]
    values = r.execute_command("AI.TENSORGET", "mytensor", "VALUES")
    if r.protocol == 3:
        assert values == [1.0, 2.0, 3.0, 4.0] and all(isinstance(v, float) for v in values)
    else:
        assert values == [b"1", b"2", b"3", b"4"]
    blob = r.execute_command("AI.TENSORGET", "mytensor", "BLOB")
    assert blob == b"\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@"
    assert blob == np.array([[1, 2], [3, 4]], dtype="<f4").tobytes()
    both = r.execute_command("AI.TENSORGET", "mytensor", "META", "BLOB")
    assert both == [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", blob]
    assert r.execute_command("AI.TENSORGET", "mytensor") == both
    mv = r.execute_command("AI.TENSORGET", "mytensor", "META", "VALUES")
    assert mv[:5] == [b"dtype", b"FLOAT", b"shape", [2, 2], b"values"]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_dtype_matches_numpy(r, dtype):
    rng = np.random.default_rng(7)
    npt = DTYPES[dtype]
    if dtype == "BOOL":
        arr = rng.integers(0, 2, size=(3, 4)).astype(np.bool_)
    elif np.issubdtype(npt, np.integer):
        info = np.iinfo(npt)
        arr = rng.integers(info.min, info.max, size=(3, 4), dtype=npt, endpoint=True)
    else:
        arr = (rng.standard_normal((3, 4)) * 1000).astype(npt)
    le = arr.astype(arr.dtype.newbyteorder("<"))
    r.execute_command("AI.TENSORSET", "b", dtype, 3, 4, "BLOB", le.tobytes())
    assert r.execute_command("AI.TENSORGET", "b", "BLOB") == le.tobytes()
    vals = [int(x) if not np.issubdtype(npt, np.floating) else repr(float(x)) for x in arr.ravel()]
    r.execute_command("AI.TENSORSET", "v", dtype, 3, 4, "VALUES", *vals)
    assert r.execute_command("AI.TENSORGET", "v", "BLOB") == le.tobytes()
    got = r.execute_command("AI.TENSORGET", "v", "VALUES")
    if np.issubdtype(npt, np.floating):
        got = [float(g) for g in got]
        assert np.array(got, dtype=npt).tobytes() == le.tobytes()
    else:
        assert got == [int(x) for x in arr.ravel()]
    assert r.execute_command("AI.TENSORGET", "v", "META")[1] == dtype.encode()


def test_string_tensors(r):
    r.execute_command("AI.TENSORSET", "s", "STRING", 3, "VALUES", "a", "bc", "")
    assert r.execute_command("AI.TENSORGET", "s", "VALUES") == [b"a", b"bc", b""]
    assert r.execute_command("AI.TENSORGET", "s", "BLOB") == b"a\0bc\0\0"
    r.execute_command("AI.TENSORSET", "s2", "STRING", 2, "BLOB", b"x\0yz\0")
    assert r.execute_command("AI.TENSORGET", "s2", "VALUES") == [b"x", b"yz"]


@pytest.mark.parametrize("args,text", [
    (("AI.TENSORSET", "t", "FLOAT16", 1), "invalid data type"),
    (("AI.TENSORSET", "t", "FLOAT", 0), "invalid or negative value found in tensor shape"),
    (("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1), "wrong number of values was given in 'AI.TENSORSET' command"),
    (("AI.TENSORSET", "t", "FLOAT", 2, "BLOB", b"\0" * 7), "data length does not match tensor shape and type"),
    (("AI.TENSORSET", "t", "INT8", 1, "VALUES", 128), "invalid value"),
    (("AI.TENSORSET", "t", "BOOL", 1, "VALUES", 5), "invalid value"),
    (("AI.TENSORSET", "t"), "wrong number of arguments for 'AI.TENSORSET' command"),
    (("AI.TENSORGET", "missing"), "tensor key is empty or in a different shard"),
    # The key is looked up before the format (RedisAI's order).
    (("AI.TENSORGET", "t", "CSV"), "tensor key is empty or in a different shard"),
])
def test_error_texts(r, args, text):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    assert str(e.value) == text


def test_wrongtype(r):
    r.set("plain", "x")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE Operation against a key holding the wrong kind of value$"):
        r.execute_command("AI.TENSORGET", "plain")
    r.execute_command("AI.TENSORSET", "t", "FLOAT", 1)
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.get("t")
    assert r.type("t") in (b"AI_TENSOR", "AI_TENSOR")


def test_redis_commands_clients_use(r):
    assert r.ping()
    assert r.echo("hi") == b"hi"
    assert r.set("a", 1) and r.get("a") == b"1"
    assert r.set("a", 2, nx=True) is None
    assert r.set("a", 3, xx=True, get=True) == b"1"
    assert r.incr("a") == 4 and r.incrby("a", 6) == 10 and r.decr("a") == 9 and r.decrby("a", 9) == 0
    assert r.mset({"x": 1, "y": 2}) and r.mget("x", "y", "z") == [b"1", b"2", None]
    assert r.set("e", "v", px=100000)
    assert r.exists("a", "x", "nope") == 2
    assert r.dbsize() == 4
    assert sorted(r.keys("*")) == [b"a", b"e", b"x", b"y"]
    assert sorted(r.scan_iter(match="[xy]")) == [b"x", b"y"]
    assert r.randomkey() in (b"a", b"e", b"x", b"y")
    assert r.delete("a", "x") == 2 and r.unlink("y") == 1
    r.flushall()
    assert r.dbsize() == 0


def test_server_introspection(r):
    info = r.info()
    assert info["redis_version"] and info["connected_clients"] >= 1
    assert "ai_RedisAI_version" in r.info("ai_versions")
    assert r.info("keyspace") == {}
    r.execute_command("AI.TENSORSET", "t", "UINT8", 2)
    assert r.info("keyspace")["db0"]["keys"] == 1
    cfg = r.config_get("*")
    assert cfg["proto-max-bulk-len"] == "536870912"
    assert r.config_set("proto-max-bulk-len", "64mb")
    assert r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(64 << 20)}
    r.client_setname("py")
    assert r.client_getname() in (b"py", "py")
    clients = r.client_list()
    assert any(c["name"] == "py" for c in clients)
    assert any(c.get("lib-name") == "redis-py" for c in clients), clients
    assert r.client_id() > 0


def test_command_table_as_redis_py_reads_it(r):
    cmds = r.command()
    assert cmds["ai.tensorset"]["first_key_pos"] == 1
    assert cmds["ai.tensorget"]["arity"] == -2
    assert "movablekeys" in cmds["ai.dagexecute"]["flags"]
    assert r.command_count() == len(cmds)
    keys = r.command_getkeys("AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 1, "b")
    assert [k.decode() if isinstance(k, bytes) else k for k in keys] == ["m", "a", "b"]


def test_pipeline_and_big_blob(r):
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.execute_command("AI.TENSORSET", f"t{i}", "INT32", 1, "VALUES", i)
    assert len(p.execute()) == 500
    assert r.execute_command("AI.TENSORGET", "t499", "VALUES") == [499]
    big = np.arange(8 * 1024 * 1024, dtype="<f4")
    r.execute_command("AI.TENSORSET", "big", "FLOAT", big.size, "BLOB", big.tobytes())
    back = r.execute_command("AI.TENSORGET", "big", "BLOB")
    assert np.array_equal(np.frombuffer(back, dtype="<f4"), big)


def test_hello_and_ai_config(r):
    hello = r.execute_command("HELLO", r.protocol)
    hello = {k.decode() if isinstance(k, bytes) else k: v for k, v in (hello.items() if isinstance(hello, dict) else zip(hello[::2], hello[1::2]))}
    assert hello["proto"] == r.protocol
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 535822336
    path = r.execute_command("AI.CONFIG", "GET", "BACKENDSPATH")
    assert path is None or path.endswith(b"site-packages")
    with pytest.raises(redis.ResponseError, match="--enable-backend-loading yes"):
        r.execute_command("AI.CONFIG", "LOADBACKEND", "TF", "tensorflow/libtensorflow_cc.so.2")
    s = Server("--enable-backend-loading", "yes")
    try:
        c = s.client(protocol=r.protocol)
        with pytest.raises(redis.ResponseError, match="^error loading backend: .*libtensorflow.so"):
            c.execute_command("AI.CONFIG", "LOADBACKEND", "TF", "libtensorflow.so")
        # A path relative to BACKENDSPATH, as RedisAI resolves it.
        assert c.execute_command("AI.CONFIG", "LOADBACKEND", "TF",
                                 "tensorflow/libtensorflow_cc.so.2") in (b"OK", True)
        assert c.info("ai_backends_info")["ai_TF_version"] == "2.21.0"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
