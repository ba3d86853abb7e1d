"""Backend libraries that are missing: the backend answers `Could not load backend` with the
reason in the log, the others keep working, and BACKENDSPATH / LOADBACKEND fix it at run time."""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import redis

from conftest import Server
from harness import binary, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SITE = pathlib.Path(redis.__file__).resolve().parents[1]  # the venv's site-packages


@pytest.fixture
def onnx_only():
    """A server whose backends path holds onnxruntime and nothing else."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="shardai-backends-"))
    os.symlink(SITE / "onnxruntime", path / "onnxruntime")
    s = Server("--backends-path", str(path), "--enable-backend-loading", "yes")
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)


def test_missing_library_is_reported_and_others_work(onnx_only):
    r = onnx_only.client()
    graph = (ROOT / "tests/models/redisai/graph.pb").read_bytes()
    for args in (["TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"], ["TFLITE", "CPU"]):
        with pytest.raises(redis.ResponseError, match="^Could not load backend$"):
            r.execute_command("AI.MODELSTORE", "m", *args, "BLOB", graph)
    assert r.exists("m") == 0
    log = pathlib.Path(onnx_only.dir, "shardai.log").read_text()
    assert "libtensorflow_cc.so.2" in log and "libLiteRt.so" in log, log
    # ONNX (on the path) still works.
    r.execute_command("AI.MODELSTORE", "mnist", "ONNX", "CPU", "BLOB",
                      (ROOT / "tests/models/redisai/mnist.onnx").read_bytes())
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 1, 28, 28)
    assert r.execute_command("AI.MODELEXECUTE", "mnist", "INPUTS", 1, "x", "OUTPUTS", 1, "y") == b"OK"
    # Pointing BACKENDSPATH at the venv brings TF in without a restart.
    assert r.execute_command("AI.CONFIG", "BACKENDSPATH", str(SITE)) == b"OK"
    assert r.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul",
                             "BLOB", graph) == b"OK"
    a = np.array([1, 2], dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "BLOB", a.tobytes())
    r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")
    assert r.execute_command("AI.TENSORGET", "c", "VALUES") == [b"1", b"4"]
    info = r.info("ai_backends_info")
    assert info["ai_TF_version"] == "2.21.0" and "ai_TFLite_version" not in info


def test_thread_settings_reach_info_and_every_backend_runs_with_them(tmp_path):
    s = Server("--intra-op-parallelism", "1", "--inter-op-parallelism", "1", "--threads-per-queue", "2")
    try:
        r = s.client()
        cfg = r.info("ai_load_time_configs")
        assert (cfg["ai_threads_per_queue"], cfg["ai_intra_op_parallelism"], cfg["ai_inter_op_parallelism"]) == (2, 1, 1)
        assert cfg["ai_model_execution_timeout"] == 5000
        subprocess.run([sys.executable, str(ROOT / "tests/models/make_tflite.py"), str(tmp_path)],
                      check=True, capture_output=True)
        a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
        r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, 3, "BLOB", a.tobytes())
        r.execute_command("AI.MODELSTORE", "tfl", "TFLITE", "CPU", "BLOB", (tmp_path / "mul.tflite").read_bytes())
        r.execute_command("AI.MODELSTORE", "tf", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul", "BLOB",
                          (ROOT / "tests/models/redisai/graph.pb").read_bytes())
        r.execute_command("AI.MODELSTORE", "onnx", "ONNX", "CPU", "BLOB",
                          (ROOT / "tests/models/redisai/mnist.onnx").read_bytes())
        for key in ("tfl", "tf"):
            assert r.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, "a", "a", "OUTPUTS", 1, key + "_out") == b"OK"
            m = r.execute_command("AI.TENSORGET", key + "_out", "BLOB")
            np.testing.assert_array_equal(np.frombuffer(m, dtype="<f4").reshape(2, 3), a * a)
        r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28)
        assert r.execute_command("AI.MODELEXECUTE", "onnx", "INPUTS", 1, "img", "OUTPUTS", 1, "o") == b"OK"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def thread_names(pid):
    names = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:
            pass  # the thread exited meanwhile
    return names


def test_onnx_runtime_operator_threads_are_named_apart_from_the_io_threads():
    # Two threads per operator: ONNX Runtime starts one of its own beside the caller's.
    s = Server("--intra-op-parallelism", "2")
    try:
        r = s.client()
        assert "shardai-onnx-op" not in thread_names(s.proc.pid)
        r.execute_command("AI.MODELSTORE", "onnx", "ONNX", "CPU", "BLOB",
                          (ROOT / "tests/models/redisai/mnist.onnx").read_bytes())
        r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28)
        assert r.execute_command("AI.MODELEXECUTE", "onnx", "INPUTS", 1, "img", "OUTPUTS", 1, "o") == b"OK"
        names = thread_names(s.proc.pid)
        assert names.count("shardai-onnx-op") == 1, names
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_model_execution_timeout_stops_a_long_onnx_run(tmp_path):
    s = Server("--model-execution-timeout", "10")
    try:
        subprocess.run([sys.executable, str(ROOT / "tests/models/make_onnx.py"), str(tmp_path)], check=True)
        r = s.client()
        assert r.info("ai_load_time_configs")["ai_model_execution_timeout"] == 10
        r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", (tmp_path / "mnist_cnn.onnx").read_bytes())
        r.execute_command("AI.TENSORSET", "one", "FLOAT", 1, 1, 28, 28)
        r.execute_command("AI.TENSORSET", "big", "FLOAT", 10000, 1, 28, 28)  # about 75 ms of work
        assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "one", "OUTPUTS", 1, "o1") == b"OK"
        with pytest.raises(redis.ResponseError, match="Exiting due to terminate flag being set to true"):
            r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "big", "OUTPUTS", 1, "o2")
        assert r.exists("o2") == 0
        # The session still serves runs that fit the limit.
        assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "one", "OUTPUTS", 1, "o3") == b"OK"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


ADD = ("def add(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
       "    return tensors[0] + tensors[1]\n")


def mapped(pid):
    return pathlib.Path(f"/proc/{pid}/maps").read_text()


def add_twice(r):
    """Stores the script `add` and runs it on [1, 2] twice over."""
    assert r.execute_command("AI.SCRIPTSTORE", "add", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", ADD) == b"OK"
    r.execute_command("AI.TENSORSET", "v", "FLOAT", 2, "VALUES", 1, 2)
    r.execute_command("AI.SCRIPTEXECUTE", "add", "add", "INPUTS", 2, "v", "v", "OUTPUTS", 1, "o")
    return r.execute_command("AI.TENSORGET", "o", "VALUES")


def test_libtorch_is_mapped_only_once_a_torch_script_or_model_needs_it():
    s = Server()
    try:
        r = s.client()
        r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
        assert "libtorch_cpu.so" not in mapped(s.proc.pid)
        assert "ai_Torch_version" not in r.info("ai_backends_info")
        assert add_twice(r) == [b"2", b"4"]
        assert "libshardai_torch.so" in mapped(s.proc.pid)
        assert "libtorch_cpu.so" in mapped(s.proc.pid)
        assert str(r.info("ai_backends_info")["ai_Torch_version"]).startswith("2.")
        assert "TORCH backend loaded" in s.log_text()
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_a_server_without_its_torch_library_says_so_and_loadbackend_brings_it(tmp_path):
    # The binary alone in a folder of its own; the TORCH library in the backends path, where
    # it finds libtorch through LD_LIBRARY_PATH, as an installed server does.
    (tmp_path / "bin").mkdir()
    shutil.copy(binary(), tmp_path / "bin" / "shardai")
    (tmp_path / "backends").mkdir()
    shutil.copy(pathlib.Path(binary()).parent / "libshardai_torch.so", tmp_path / "backends")
    port = free_port()
    log = open(tmp_path / "shardai.log", "wb")
    env = {**os.environ, "LD_LIBRARY_PATH": str(SITE / "torch" / "lib")}
    proc = subprocess.Popen([str(tmp_path / "bin" / "shardai"), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path / "data"), "--backends-path", str(tmp_path / "backends"),
                             "--enable-backend-loading", "yes"],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        r = redis.Redis(port=port, protocol=2, socket_timeout=30)
        for _ in range(500):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, (tmp_path / "shardai.log").read_text()
                time.sleep(0.02)
        with pytest.raises(redis.ResponseError, match="^Could not load backend$"):
            r.execute_command("AI.SCRIPTSTORE", "add", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", ADD)
        text = (tmp_path / "shardai.log").read_text()
        assert "no libshardai_torch.so in" in text and "cargo build --release -p shardai-torch" in text, text
        assert r.execute_command("AI.CONFIG", "LOADBACKEND", "TORCH", "libshardai_torch.so") == b"OK"
        assert add_twice(r) == [b"2", b"4"]
        assert str(tmp_path / "backends" / "libshardai_torch.so") in mapped(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_a_torch_output_that_cannot_be_copied_out_is_an_error_and_the_server_stays_up(server):
    r = server.client()
    src = ("def sparse(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
           "    return tensors[0].to_sparse()\n"
           "def empty(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
           "    return tensors[0][0:0]\n")
    r.execute_command("AI.SCRIPTSTORE", "odd", "CPU", "ENTRY_POINTS", 2, "sparse", "empty", "SOURCE", src)
    r.execute_command("AI.TENSORSET", "v", "FLOAT", 2, "VALUES", 1, 2)
    with pytest.raises(redis.ResponseError, match="unsupported memory format"):
        r.execute_command("AI.SCRIPTEXECUTE", "odd", "sparse", "INPUTS", 1, "v", "OUTPUTS", 1, "o")
    with pytest.raises(redis.ResponseError, match="^model produced an empty tensor$"):
        r.execute_command("AI.SCRIPTEXECUTE", "odd", "empty", "INPUTS", 1, "v", "OUTPUTS", 1, "o")
    assert r.exists("o") == 0
    assert r.ping()
