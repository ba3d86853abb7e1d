"""redisai-py, RedisAI's own Python client, against shardai: its documented tensor, model,
script, DAG and pipeline calls, as its README and docstrings show them."""
import numpy as np
import pytest
from redis.exceptions import ResponseError
from redisai import Client

SCRIPT = """
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def bar_variadic(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1] + tensors[2]
"""


@pytest.fixture
def con(port):
    return Client(port=port)


def test_tensors(con):
    assert con.tensorset("x", (2, 3, 4, 5), dtype="float", shape=(2, 2)) == "OK"
    assert con.tensorget("x", as_numpy=False) == {"dtype": "FLOAT", "shape": [2, 2], "values": [2.0, 3.0, 4.0, 5.0]}
    arr = np.array([[1, 2], [3, 4]], dtype=np.int32)
    con.tensorset("n", arr)
    np.testing.assert_array_equal(con.tensorget("n"), arr)
    assert con.tensorget("n", meta_only=True) == {"dtype": "INT32", "shape": [2, 2]}
    with pytest.raises(ResponseError, match="tensor key is empty"):
        con.tensorget("missing")


def test_onnx_model(con, models):
    blob = (models / "linear_iris.onnx").read_bytes()
    assert con.modelstore("m", "onnx", "cpu", blob, tag="v1") == "OK"
    meta = con.modelget("m", meta_only=True)
    assert (meta["backend"], meta["device"], meta["tag"], meta["inputs"]) == ("ONNX", "cpu", "v1", ["float_input"])
    assert con.modelget("m")["blob"] == blob
    con.tensorset("f", np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    assert con.modelexecute("m", inputs=["f"], outputs=["o"]) == "OK"
    assert con.tensorget("o")[0] == pytest.approx(-0.0905240774)
    assert con.modelscan() == [["m", "v1"]]
    info = con.infoget("m")
    assert (info["key"], info["type"], info["backend"], info["calls"]) == ("m", "MODEL", "ONNX", 1)
    assert con.inforeset("m") == "OK" and con.infoget("m")["calls"] == 0
    assert con.modeldel("m") == "OK"
    with pytest.raises(ResponseError, match="model key is empty"):
        con.modelget("m")


def test_tf_model_with_inputs_and_outputs(con, models):
    graph = (models / "graph.pb").read_bytes()
    assert con.modelstore("tf", "tf", "cpu", graph, inputs=["a", "b"], outputs=["mul"], tag="v1.0") == "OK"
    con.tensorset("a", (2, 3), dtype="float")
    con.tensorset("b", (2, 3), dtype="float")
    assert con.modelexecute("tf", ["a", "b"], ["c"]) == "OK"
    assert con.tensorget("c", as_numpy=False)["values"] == [4.0, 9.0]
    assert con.modelget("tf", meta_only=True)["outputs"] == ["mul"]


def test_scripts(con):
    assert con.scriptstore("s", "cpu", SCRIPT, entry_points=["bar", "bar_variadic"], tag="t") == "OK"
    con.tensorset("a", (2, 3), dtype="float")
    con.tensorset("b", (2, 3), dtype="float")
    assert con.scriptexecute("s", "bar", inputs=["a", "b"], outputs=["c"]) == "OK"
    assert con.tensorget("c", as_numpy=False)["values"] == [4.0, 6.0]
    assert con.scriptexecute("s", "bar_variadic", inputs=["a", "b", "b"], outputs=["v"]) == "OK"
    assert con.tensorget("v", as_numpy=False)["values"] == [6.0, 9.0]
    got = con.scriptget("s")
    assert (got["device"], got["tag"], got["source"]) == ("cpu", "t", SCRIPT)
    assert got["entry points"] == [b"bar", b"bar_variadic"]
    assert con.scriptscan() == [["s", "t"]]
    assert con.infoget("s")["type"] == "SCRIPT"
    assert con.scriptdel("s") == "OK"
    with pytest.raises(ResponseError, match="script key is empty"):
        con.scriptexecute("s", "bar", inputs=["a", "b"], outputs=["c"])


def test_dag(con, models):
    graph = (models / "graph.pb").read_bytes()
    con.modelstore("tf", "tf", "cpu", graph, inputs=["a", "b"], outputs=["mul"])
    con.tensorset("a", (2, 3), dtype="float")
    dag = con.dag(load=["a"], persist=["out"])
    dag.tensorset("b", (5, 7), dtype="float")
    dag.modelexecute("tf", inputs=["a", "b"], outputs=["out"])
    dag.tensorget("out")
    result = dag.execute()
    assert result[:2] == ["OK", "OK"]
    np.testing.assert_array_equal(result[2], np.array([10.0, 21.0], dtype=np.float32))
    assert con.tensorget("out", as_numpy=False)["values"] == [10.0, 21.0]
    ro = con.dag(load=["a"], readonly=True)
    ro.tensorget("a")
    np.testing.assert_array_equal(ro.execute()[0], np.array([2.0, 3.0], dtype=np.float32))


def test_non_transaction_pipeline(con):
    pipe = con.pipeline(transaction=False)
    pipe.tensorset("p", (1, 2), dtype="float")
    pipe.tensorget("p", as_numpy=False)
    pipe.set("plain", "v")
    pipe.get("plain")
    got = pipe.execute()
    assert got[0] in (True, "OK", b"OK")
    assert got[1] == {"dtype": "FLOAT", "shape": [2], "values": [1.0, 2.0]}
    assert got[3] == b"v"


def test_config(con):
    assert con.config("MODEL_CHUNK_SIZE") in (535822336, "535822336", b"535822336")
