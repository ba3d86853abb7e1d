"""Generated ONNX models (tests/models/make_onnx.py) through the real server: two inputs,
two outputs, STRING tensors, a 200 MB model stored in chunks, and AI.INFO statistics."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import redis

MAKE = pathlib.Path(__file__).resolve().parents[1] / "models" / "make_onnx.py"


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    subprocess.run([sys.executable, str(MAKE), str(out), "--big-mb", "200"], check=True)
    return out


def store(r, key, path, *extra):
    assert r.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *extra, "BLOB", path.read_bytes()) in (b"OK", True)


def floats(r, key):
    m = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    return np.frombuffer(m[5], dtype="<f4").reshape(m[3])


def test_two_inputs_and_two_outputs(r, models):
    store(r, "mul", models / "mul.onnx")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 1.5, dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", b.tobytes())
    r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
    np.testing.assert_array_equal(floats(r, "c"), a * b)
    store(r, "two", models / "two_outputs.onnx")
    r.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 1, "a", "OUTPUTS", 2, "p", "t")
    np.testing.assert_array_equal(floats(r, "p"), a + 1)
    np.testing.assert_array_equal(floats(r, "t"), a * 2)


def test_string_tensors_through_a_model(r, models):
    store(r, "sid", models / "string_identity.onnx")
    r.execute_command("AI.TENSORSET", "s", "STRING", 3, "VALUES", "alpha", "", "gamma")
    r.execute_command("AI.MODELEXECUTE", "sid", "INPUTS", 1, "s", "OUTPUTS", 1, "t")
    assert r.execute_command("AI.TENSORGET", "t", "VALUES") == [b"alpha", b"", b"gamma"]
    assert r.execute_command("AI.TENSORGET", "t", "META")[1] == b"STRING"


def test_output_batch_can_differ_from_input(r, models):
    store(r, "red", models / "batch_mismatch.onnx")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 3, 4, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "red", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    np.testing.assert_array_equal(floats(r, "y"), x.sum(axis=0, keepdims=True))


def test_ai_info_statistics(r, models):
    store(r, "mul", models / "mul.onnx", "TAG", "v2")
    for n in (1, 3, 4):
        r.execute_command("AI.TENSORSET", "a", "FLOAT", n, 2, "VALUES", *range(2 * n))
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c")
    r.execute_command("AI.TENSORSET", "bad", "FLOAT", 2, 3)
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "bad", "OUTPUTS", 1, "c")
    info = r.execute_command("AI.INFO", "mul")
    d = dict(zip(info[::2], info[1::2]))
    assert [k for k in info[::2]] == [b"key", b"type", b"backend", b"device", b"tag", b"duration",
                                     b"samples", b"calls", b"errors"]
    assert (d[b"key"], d[b"type"], d[b"backend"], d[b"device"], d[b"tag"]) == (b"mul", b"MODEL", b"ONNX", b"CPU", b"v2")
    assert (d[b"samples"], d[b"calls"], d[b"errors"]) == (8, 4, 1)
    assert d[b"duration"] > 0
    assert r.execute_command("AI.INFO", "mul", "RESETSTAT") in (b"OK", True)
    info = r.execute_command("AI.INFO", "mul")
    assert info[11::2] == [0, 0, 0, 0]
    r.execute_command("AI.MODELDEL", "mul")
    with pytest.raises(redis.ResponseError, match="^cannot find run info for key$"):
        r.execute_command("AI.INFO", "mul")
    with pytest.raises(redis.ResponseError, match="^cannot find run info for key$"):
        r.execute_command("AI.INFO", "a")


def test_200_mb_model_in_chunks(server, models):
    r = server.client()
    blob = (models / "big.onnx").read_bytes()
    assert len(blob) >= 200 * 1024 * 1024
    step = 64 * 1024 * 1024
    chunks = [blob[i:i + step] for i in range(0, len(blob), step)]
    assert len(chunks) == 4
    assert r.execute_command("AI.MODELSTORE", "big", "ONNX", "CPU", "BLOB", *chunks) in (b"OK", True)
    assert r.execute_command("AI.MODELGET", "big", "BLOB") == blob
    r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", step)
    back = r.execute_command("AI.MODELGET", "big", "BLOB")
    assert isinstance(back, list) and len(back) == 4 and b"".join(back) == blob
    x = np.ones(200 * 1024 * 1024 // 4, dtype=np.float32)  # the generator's weight count
    r.execute_command("AI.TENSORSET", "x", "FLOAT", x.size, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "big", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    y = np.frombuffer(r.execute_command("AI.TENSORGET", "y", "BLOB"), dtype="<f4")
    np.testing.assert_array_equal(y[:2000], (np.arange(2000) % 1000 + 1).astype(np.float32))
