"""AI.DAGEXECUTE / _RO and the deprecated AI.DAGRUN / _RO through the real server."""
import pathlib
import subprocess

import numpy as np
import pytest
import redis

from conftest import make_models

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRAPH = (ROOT / "tests/models/redisai/graph.pb").read_bytes()


@pytest.fixture(scope="session")
def onnx(tmp_path_factory):
    return make_models(tmp_path_factory, "make_onnx.py", "onnx-dag")


def cli(server, *args):
    return subprocess.run(["redis-cli", "-p", str(server.port), *map(str, args)], capture_output=True,
                          text=True, check=True).stdout


def info(r, key):
    i = r.execute_command("AI.INFO", key)
    return dict(zip([k.decode() for k in i[::2]], i[1::2]))


def test_spec_example_through_redis_cli(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mymodel{tag}", "ONNX", "CPU", "BLOB", (onnx / "two_outputs.onnx").read_bytes())
    out = cli(server, "AI.DAGEXECUTE", "PERSIST", 1, "predictions{tag}", "|>",
              "AI.TENSORSET", "mytensor", "FLOAT", 1, 2, "VALUES", 5, 10, "|>",
              "AI.MODELEXECUTE", "mymodel{tag}", "INPUTS", 1, "mytensor", "OUTPUTS", 2, "classes", "predictions{tag}",
              "|>", "AI.TENSORGET", "predictions{tag}", "VALUES")
    # The spec's first two replies exactly; the third is predictions' values (x * 2).
    assert out == "OK\nOK\n10\n20\n", out
    # Only the PERSISTed output reaches the keyspace; DAG-local tensors stay local.
    assert r.execute_command("AI.TENSORGET", "predictions{tag}", "VALUES") in ([b"10", b"20"], [10.0, 20.0])
    assert r.exists("mytensor", "classes") == 0
    s = info(r, "mymodel{tag}")
    assert (s["calls"], s["samples"]) == (1, 1), "runs inside DAGs are counted"


def test_ops_replies_and_deprecated_forms(r):
    r.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul", "BLOB", GRAPH)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 2, 3)
    ret = r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>",
                            "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "sq", "|>",
                            "AI.TENSORGET", "sq", "META", "|>", "AI.TENSORGET", "sq", "BLOB")
    assert ret[0] in (b"OK", "OK")
    meta = ret[1] if isinstance(ret[1], list) else [x for kv in ret[1].items() for x in kv]
    assert meta[:4] == [b"dtype", b"FLOAT", b"shape", [2]]
    np.testing.assert_array_equal(np.frombuffer(ret[2], dtype="<f4"), [4, 9])
    assert r.exists("sq") == 0
    ret = r.execute_command("AI.DAGRUN", "PERSIST", 1, "x", "|>", "AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2,
                            "|>", "AI.MODELRUN", "m", "INPUTS", "t", "t", "OUTPUTS", "x")
    assert ret == [b"OK", b"OK"]
    assert r.execute_command("AI.TENSORGET", "x", "BLOB") == np.array([1, 4], dtype="<f4").tobytes()
    ret = r.execute_command("AI.DAGRUN_RO", "|>", "AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 3, "|>",
                            "AI.TENSORGET", "t", "BLOB")
    assert ret == [b"OK", np.array([3], dtype="<f4").tobytes()]


def test_failure_half_way_persists_nothing(r):
    r.execute_command("AI.MODELSTORE", "tf_model", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul", "BLOB", GRAPH)
    ret = r.execute_command("AI.DAGEXECUTE", "PERSIST", 2, "a", "tD", "|>",
                            "AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 2, 3, "|>",
                            "AI.TENSORSET", "b", "FLOAT", 2, 2, 3, "|>",
                            "AI.MODELEXECUTE", "tf_model", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "tD", "|>",
                            "AI.TENSORGET", "tD", "VALUES")
    assert ret[0] == b"OK" and ret[1] == b"OK" and ret[3] == b"NA"
    assert isinstance(ret[2], redis.ResponseError) and "Incompatible shapes: [2] vs. [2,2,3]" in str(ret[2])
    assert r.exists("a", "tD") == 0, "a DAG that failed half-way persists nothing"
    assert info(r, "tf_model")["errors"] == 1


def test_timeout(r):
    r.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul", "BLOB", GRAPH)
    # A model waiting for MINBATCHSIZE never runs alone: the DAG's TIMEOUT answers.
    r.execute_command("AI.MODELSTORE", "waits", "TF", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 4, "INPUTS", 2, "a",
                      "b", "OUTPUTS", 1, "mul", "BLOB", GRAPH)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, "VALUES", 2)
    assert r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "TIMEOUT", 100, "|>",
                             "AI.MODELEXECUTE", "waits", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "o", "|>",
                             "AI.TENSORGET", "o", "VALUES") == b"TIMEDOUT"


@pytest.mark.parametrize("args,text", [
    (["AI.DAGEXECUTE", "ROUTING", "x", "|>", "AI.TENSORGET", "nope", "VALUES"], "INPUT key cannot be found in DAG"),
    (["AI.DAGEXECUTE", "PERSIST", 1, "nope", "|>", "AI.TENSORSET", "a", "FLOAT", 1], "PERSIST key cannot be found in DAG"),
    (["AI.DAGEXECUTE", "ROUTING", "v", "TIMEOUT", 5, "|>"], "DAG is empty"),
    # A LOAD key is looked up as LOAD is read, before the ops are (RedisAI's order).
    (["AI.DAGEXECUTE", "ROUTING", "v", "LOAD", 1, "v"], "tensor key is empty or in a different shard"),
    (["AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 1, "a", "BAD_ARG"], "Invalid DAG command. Unexpected argument:  BAD_ARG"),
    (["AI.DAGEXECUTE", "|>", "AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 5, 10],
     "AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords"),
    (["AI.DAGEXECUTE_RO", "PERSIST", 1, "t", "|>", "AI.TENSORSET", "t", "FLOAT", 1, 2, "VALUES", 5, 10],
     "PERSIST cannot be specified in a read-only DAG"),
    (["AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.NOCOMMAND", "a"], "Unsupported command within DAG"),
    (["AI.DAGEXECUTE"], "missing arguments for 'AI.DAGEXECUTE' command"),
    (["AI.DAGEXECUTE", "LOAD", 1, "missing", "|>", "AI.TENSORGET", "missing", "VALUES"],
     "tensor key is empty or in a different shard"),
    (["AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "a", "FLOAT", 1, "|>", "AI.MODELEXECUTE", "nomodel",
      "INPUTS", 1, "a", "OUTPUTS", 1, "b"], "model key is empty"),
    (["AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "a", "FLOAT", 1, "|>", "AI.MODELEXECUTE", "m",
      "INPUTS", 1, "a", "OUTPUTS", 1, "b"], "Number of keys given as INPUTS here does not match model definition"),
])
def test_dag_errors(r, args, text):
    r.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul", "BLOB", GRAPH)
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    assert str(e.value) == text
    assert r.dbsize() == 1, "an invalid DAG writes nothing"


def test_getkeys_names_the_dag_keys(r):
    keys = r.command_getkeys("AI.DAGEXECUTE", "LOAD", 1, "in{t}", "PERSIST", 1, "out{t}",
                             "|>", "AI.MODELEXECUTE", "m{t}", "INPUTS", 1, "in{t}", "OUTPUTS", 1, "out{t}")
    assert {k.decode() if isinstance(k, bytes) else k for k in keys} == {"in{t}", "out{t}", "m{t}"}
