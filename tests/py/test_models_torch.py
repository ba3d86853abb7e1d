"""TorchScript models through the real server. The models are built by libtorch itself
(target/release/make_torch_models, tch's tracer), and the MNIST-sized CNN's expected output
is what libtorch computed for the same input in that process."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import redis

from conftest import floats

ROOT = pathlib.Path(__file__).resolve().parents[2]
MAKE = ROOT / "target" / "release" / "make_torch_models"


@pytest.fixture(scope="session")
def pt(tmp_path_factory):
    if not MAKE.exists():
        pytest.fail(f"{MAKE} missing: run `cargo build --release -p shardai-tests`")
    out = tmp_path_factory.mktemp("torch")
    subprocess.run([str(MAKE), str(out)], check=True)
    subprocess.run([sys.executable, str(ROOT / "tests/models/make_torch_two_outputs.py"), str(out / "mul.pt"),
                    str(out / "two_outputs.pt")], check=True)
    subprocess.run([sys.executable, str(ROOT / "tests/models/make_torch_slow.py"), str(out / "mul.pt"),
                    str(out / "slow.pt")], check=True)
    return out


def test_a_run_past_the_execution_timeout_answers_and_the_device_keeps_serving(pt):
    import shutil
    import time

    from conftest import Server
    s = Server("--model-execution-timeout", "1000")
    try:
        r = s.client()
        r.execute_command("AI.MODELSTORE", "slow", "TORCH", "CPU", "BLOB", (pt / "slow.pt").read_bytes())
        r.execute_command("AI.MODELSTORE", "mul", "TORCH", "CPU", "BLOB", (pt / "mul.pt").read_bytes())
        r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
        r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
        start = time.time()
        with pytest.raises(redis.ResponseError, match="timed out after 1000 ms"):
            r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
        assert time.time() - start < 10
        assert r.exists("c") == 0
        # libtorch cannot stop the run: a fresh worker serves the device meanwhile.
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
        assert floats(r, "c").tolist() == [3.0, 8.0]
        # The hung model answers at once while its run goes on; a DAG stops at it.
        with pytest.raises(redis.ResponseError, match="has not ended"):
            r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
        got = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "y",
                                "|>", "AI.MODELEXECUTE", "slow", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "x",
                                "|>", "AI.MODELEXECUTE", "mul", "INPUTS", 2, "x", "b", "OUTPUTS", 1, "y")
        assert isinstance(got[0], redis.ResponseError) and "has not ended" in str(got[0]), got
        assert got[1] == b"NA" and r.exists("y") == 0
        assert r.info("ai_runs")["ai_abandoned_runs"] == 1
        with open(os.path.join(s.dir, "shardai.log")) as f:
            assert "passed MODEL_EXECUTION_TIMEOUT" in f.read()
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_mul_two_inputs(r, pt):
    assert r.execute_command("AI.MODELSTORE", "mul", "TORCH", "CPU", "BLOB", (pt / "mul.pt").read_bytes()) in (b"OK", True)
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.5, dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", b.tobytes())
    r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
    np.testing.assert_array_equal(floats(r, "c"), a * b)
    meta = r.execute_command("AI.MODELGET", "mul", "META")
    assert meta[:4] == [b"backend", b"TORCH", b"device", b"CPU"]
    info = r.execute_command("AI.INFO", "mul")
    assert info[3] == b"MODEL" and info[5] == b"TORCH" and info[15] == 1


def test_two_outputs(r, pt):
    r.execute_command("AI.MODELSTORE", "two", "TORCH", "CPU", "BLOB", (pt / "two_outputs.pt").read_bytes())
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, 3, "BLOB", b.tobytes())
    r.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "p", "s")
    np.testing.assert_array_equal(floats(r, "p"), a * b)
    np.testing.assert_array_equal(floats(r, "s"), a + b)
    # Asking for one output of two is refused and writes nothing.
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELEXECUTE", "two", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "q")
    assert r.exists("q") == 0


def test_mnist_cnn_matches_libtorch(r, pt):
    r.execute_command("AI.MODELSTORE", "cnn", "TORCH", "CPU", "BLOB", (pt / "mnist_cnn.pt").read_bytes())
    r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28, "BLOB", (pt / "mnist_cnn.input").read_bytes())
    r.execute_command("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "img", "OUTPUTS", 1, "out")
    want = np.frombuffer((pt / "mnist_cnn.expected").read_bytes(), dtype="<f4").reshape(1, 10)
    np.testing.assert_allclose(floats(r, "out"), want, rtol=1e-5, atol=1e-6)


def test_batch_can_change(r, pt):
    r.execute_command("AI.MODELSTORE", "red", "TORCH", "CPU", "BLOB", (pt / "batch_mismatch.pt").read_bytes())
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 4, 3, "BLOB", x.tobytes())
    r.execute_command("AI.MODELEXECUTE", "red", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    np.testing.assert_array_equal(floats(r, "y"), x.sum(axis=0, keepdims=True))


def test_torch_errors(r, pt):
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELSTORE", "bad", "TORCH", "CPU", "BLOB", b"not a torchscript archive")
    assert r.exists("bad") == 0
    with pytest.raises(redis.ResponseError, match="^GPU requested but Torch couldn't find CUDA$"):
        r.execute_command("AI.MODELSTORE", "g", "TORCH", "GPU:0", "BLOB", (pt / "mul.pt").read_bytes())
    r.execute_command("AI.MODELSTORE", "mul", "TORCH", "CPU", "BLOB", (pt / "mul.pt").read_bytes())
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3)
    with pytest.raises(redis.ResponseError, match="^Number of keys given as OUTPUTS here does not match model definition$"):
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "c", "d")
    # forward(self, a, b): the count is checked before the run, with RedisAI's text.
    with pytest.raises(redis.ResponseError, match="^Number of keys given as INPUTS here does not match model definition$"):
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 1, "a", "OUTPUTS", 1, "c")
    with pytest.raises(redis.ResponseError, match="^Number of keys given as INPUTS here does not match model definition$"):
        r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 3, "a", "a", "a", "OUTPUTS", 1, "c")
    assert r.execute_command("AI.INFO", "mul")[-1] == 0, "refused before it ran"
    assert r.exists("c") == 0 and r.exists("d") == 0
    assert "ai_Torch_version" in r.info("ai_backends_info")
