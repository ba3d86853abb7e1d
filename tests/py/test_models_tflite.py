"""TFLITE models through the real server, on LiteRT's C API from the ai-edge-litert wheel.
The flatbuffers are written by tests/models/make_tflite.py, which also computes the CNN's
expected output with the wheel's own interpreter (and checks it against numpy)."""
import pathlib

import numpy as np
import pytest
import redis

from conftest import floats, make_models

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tfl(tmp_path_factory):
    return make_models(tmp_path_factory, "make_tflite.py", "tflite")


def store(r, key, path):
    return r.execute_command("AI.MODELSTORE", key, "TFLITE", "CPU", "BLOB", path.read_bytes())


A = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
B = np.full((2, 3), 2.5, dtype=np.float32)


def test_mul_with_and_without_signature(r, tfl):
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", A.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", B.tobytes())
    for name in ["mul", "mul_nosig"]:
        assert store(r, name, tfl / f"{name}.tflite") in (b"OK", True)
        assert r.execute_command("AI.MODELEXECUTE", name, "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c") in (b"OK", True)
        np.testing.assert_array_equal(floats(r, "c"), A * B)
        r.delete("c")
    assert r.execute_command("AI.MODELRUN", "mul", "INPUTS", "a", "b", "OUTPUTS", "d") in (b"OK", True)
    np.testing.assert_array_equal(floats(r, "d"), A * B)
    # Another shape: the model's inputs are resized to the tensors'.
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 4, 3, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "x", "x", "OUTPUTS", 1, "xx")
    np.testing.assert_array_equal(floats(r, "xx"), x * x)
    info = r.execute_command("AI.INFO", "mul")
    assert info[5] == b"TFLITE" and info[15] == 3
    assert r.info("ai_backends_info")["ai_TFLite_version"] == "2.3.0"


def test_two_outputs(r, tfl):
    store(r, "two", tfl / "two_outputs.tflite")
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", A.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", B.tobytes())
    r.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "p", "s")
    np.testing.assert_array_equal(floats(r, "p"), A * B)
    np.testing.assert_array_equal(floats(r, "s"), A + B)


def test_mnist_cnn_matches_litert(r, tfl):
    store(r, "cnn", tfl / "mnist_cnn.tflite")
    r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 28, 28, 1, "BLOB", (tfl / "mnist_cnn.input").read_bytes())
    r.execute_command("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "img", "OUTPUTS", 1, "out")
    want = np.frombuffer((tfl / "mnist_cnn.expected").read_bytes(), dtype="<f4").reshape(1, 10)
    np.testing.assert_allclose(floats(r, "out"), want, rtol=1e-5, atol=1e-6)


def test_batch_can_change(r, tfl):
    store(r, "red", tfl / "batch_mismatch.tflite")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 3, 4, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "red", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    np.testing.assert_array_equal(floats(r, "y"), x.sum(axis=0, keepdims=True))


def test_tflite_errors(r, tfl):
    def err(match, *args):
        with pytest.raises(redis.ResponseError, match=match):
            r.execute_command(*args)

    mul = (tfl / "mul.tflite").read_bytes()
    err("^Failed to load model from buffer", "AI.MODELSTORE", "bad", "TFLITE", "CPU", "BLOB",
        (tfl / "corrupt.tflite").read_bytes())
    err("^Failed to load model from buffer", "AI.MODELSTORE", "bad", "TFLITE", "CPU", "BLOB", b"\0" * 64)
    err("^Auto-batching not supported by the TFLITE backend$", "AI.MODELSTORE", "bad", "TFLITE", "CPU",
        "BATCHSIZE", 4, "BLOB", mul)
    err("^INPUTS argument should not be specified for this backend$", "AI.MODELSTORE", "bad", "TFLITE", "CPU",
        "INPUTS", 2, "a", "b", "BLOB", mul)
    err("^GPU requested but the TFLITE backend runs on CPU only", "AI.MODELSTORE", "bad", "TFLITE", "GPU",
        "BLOB", mul)
    assert r.exists("bad") == 0
    store(r, "mul", tfl / "mul.tflite")
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", A.tobytes())
    r.execute_command("AI.TENSORSET", "i", "INT32", 2, 3, "VALUES", 1, 2, 3, 4, 5, 6)
    r.execute_command("AI.TENSORSET", "a4", "FLOAT", 4, 3)
    err("^Number of keys given as INPUTS here does not match model definition$", "AI.MODELEXECUTE", "mul",
        "INPUTS", 1, "a", "OUTPUTS", 1, "o")
    err("^Input tensor 1 type doesn't match the type expected by the model$", "AI.MODELEXECUTE", "mul",
        "INPUTS", 2, "a", "i", "OUTPUTS", 1, "o")
    err("^TFLITE model cannot run inputs of these shapes", "AI.MODELEXECUTE", "mul", "INPUTS", 2, "a4", "a",
        "OUTPUTS", 1, "o")
    assert r.exists("o") == 0
    # The model still runs after a failed run.
    r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "o")
    np.testing.assert_array_equal(floats(r, "o"), A * A)
