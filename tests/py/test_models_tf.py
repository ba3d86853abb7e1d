"""TF models (frozen GraphDefs) through the real server, on TensorFlow's C API from the
tensorflow-cpu wheel. The graphs are written by tests/models/make_tf.py; the CNN's expected
output is numpy's, computed independently of TensorFlow."""
import pathlib

import numpy as np
import pytest
import redis

from conftest import floats, make_models

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    return make_models(tmp_path_factory, "make_tf.py", "tf")


def store(r, key, path, inputs, outputs, *extra):
    return r.execute_command("AI.MODELSTORE", key, "TF", "CPU", *extra, "INPUTS", len(inputs), *inputs,
                             "OUTPUTS", len(outputs), *outputs, "BLOB", path.read_bytes())


def test_redisai_graph_mul(r):
    graph = (ROOT / "tests/models/redisai/graph.pb").read_bytes()
    assert r.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul",
                             "BLOB", graph) in (b"OK", True)
    a = np.array([[2, 3], [2, 3]], dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 2, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 2, "BLOB", a.tobytes())
    assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c") in (b"OK", True)
    np.testing.assert_array_equal(floats(r, "c"), a * a)
    # The deprecated forms: MODELSET with names but no counts, MODELRUN without counts.
    assert r.execute_command("AI.MODELSET", "m2", "TF", "CPU", "INPUTS", "a", "b", "OUTPUTS", "mul",
                             "BLOB", graph) in (b"OK", True)
    assert r.execute_command("AI.MODELRUN", "m2", "INPUTS", "a", "b", "OUTPUTS", "d") in (b"OK", True)
    np.testing.assert_array_equal(floats(r, "d"), a * a)
    meta = r.execute_command("AI.MODELGET", "m2", "META")
    assert meta[10:14] == [b"inputs", [b"a", b"b"], b"outputs", [b"mul"]]
    info = r.execute_command("AI.INFO", "m")
    assert info[5] == b"TF" and info[13] == 2 and info[15] == 1
    assert r.info("ai_backends_info")["ai_TF_version"] == "2.21.0"


def test_two_outputs_and_chunked_blob(r, pb):
    blob = (pb / "two_outputs.pb").read_bytes()
    chunks = [blob[i:i + 40] for i in range(0, len(blob), 40)]
    r.execute_command("AI.MODELSTORE", "two", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "mul", "add",
                      "BLOB", *chunks)
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", b.tobytes())
    r.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "p", "s")
    np.testing.assert_array_equal(floats(r, "p"), a * b)
    np.testing.assert_array_equal(floats(r, "s"), a + b)
    assert r.execute_command("AI.MODELGET", "two", "BLOB") == blob


def test_mnist_cnn_matches_numpy(r, pb):
    store(r, "cnn", pb / "mnist_cnn.pb", ["images"], ["output"])
    r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 28, 28, 1, "BLOB", (pb / "mnist_cnn.input").read_bytes())
    r.execute_command("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "img", "OUTPUTS", 1, "out")
    want = np.frombuffer((pb / "mnist_cnn.expected").read_bytes(), dtype="<f4").reshape(1, 10)
    np.testing.assert_allclose(floats(r, "out"), want, rtol=1e-4, atol=1e-5)
    # A batch of 3 images gives 3 rows, each the single image's answer.
    img = np.frombuffer((pb / "mnist_cnn.input").read_bytes(), dtype="<f4")
    r.execute_command("AI.TENSORSET", "imgs", "FLOAT", 3, 28, 28, 1, "BLOB", np.tile(img, 3).tobytes())
    r.execute_command("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "imgs", "OUTPUTS", 1, "outs")
    np.testing.assert_allclose(floats(r, "outs"), np.tile(want, (3, 1)), rtol=1e-4, atol=1e-5)


def test_batch_can_change(r, pb):
    store(r, "red", pb / "batch_mismatch.pb", ["x"], ["y"])
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 3, 4, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "red", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    np.testing.assert_array_equal(floats(r, "y"), x.sum(axis=0, keepdims=True))


def test_tf_errors(r, pb):
    graph = (ROOT / "tests/models/redisai/graph.pb").read_bytes()

    def err(match, *args):
        with pytest.raises(redis.ResponseError, match=match):
            r.execute_command(*args)

    err("^Invalid GraphDef$", "AI.MODELSTORE", "bad", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "mul",
        "add", "BLOB", (pb / "corrupt.pb").read_bytes())
    err('^Input node named "x" not found in TF graph.$', "AI.MODELSTORE", "bad", "TF", "CPU", "INPUTS", 2, "a",
        "x", "OUTPUTS", 1, "mul", "BLOB", graph)
    err('^Output node named "y" not found in TF graph$', "AI.MODELSTORE", "bad", "TF", "CPU", "INPUTS", 2, "a",
        "b", "OUTPUTS", 1, "y", "BLOB", graph)
    err("^INPUTS not specified for TF$", "AI.MODELSTORE", "bad", "TF", "CPU", "BLOB", graph)
    err("^OUTPUTS not specified for TF$", "AI.MODELSTORE", "bad", "TF", "CPU", "INPUTS", 2, "a", "b", "BLOB", graph)
    err("^Insufficient arguments, INPUTS and OUTPUTS not specified$", "AI.MODELSET", "bad", "TF", "CPU", "BLOB",
        graph)
    err("^GPU requested but TF couldn't find CUDA", "AI.MODELSTORE", "bad", "TF", "GPU:0", "INPUTS", 2, "a",
        "b", "OUTPUTS", 1, "mul", "BLOB", graph)
    assert r.exists("bad") == 0
    store(r, "m", ROOT / "tests/models/redisai/graph.pb", ["a", "b"], ["mul"])
    r.execute_command("AI.TENSORSET", "f", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    r.execute_command("AI.TENSORSET", "i", "INT32", 2, 2, "VALUES", 1, 2, 3, 4)
    r.execute_command("AI.TENSORSET", "f3", "FLOAT", 3, 3)
    err("^Number of keys given as INPUTS here does not match model definition$", "AI.MODELEXECUTE", "m",
        "INPUTS", 1, "f", "OUTPUTS", 1, "o")
    err("^Number of keys given as OUTPUTS here does not match model definition$", "AI.MODELEXECUTE", "m",
        "INPUTS", 2, "f", "f", "OUTPUTS", 2, "o", "p")
    err("^Expects arg\\[1\\] to be float but int32 is provided$", "AI.MODELEXECUTE", "m", "INPUTS", 2, "f", "i",
        "OUTPUTS", 1, "o")
    err("Incompatible shapes", "AI.MODELEXECUTE", "m", "INPUTS", 2, "f", "f3", "OUTPUTS", 1, "o")

    assert r.exists("o") == 0 and r.exists("p") == 0
    info = r.execute_command("AI.INFO", "m")
    assert info[17] >= 2, "failed runs count as errors"
