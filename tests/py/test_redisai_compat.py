"""Where RedisAI users' code depends on RedisAI's exact behaviour: the order in which it checks
keys and arguments, AI.MODELGET's default reply and the model's own input and output names,
device strings, VALUES texts, AI.INFO statistics that live and die with their model, the
scikit-learn iris classifiers of RedisAI's tests (a ZipMap output), INFO's RedisAI sections
and persistence fields, and SAVE / BGSAVE."""
import os
import shutil
import subprocess
import sys

import pytest
import redis

from conftest import ROOT, Server

IRIS = ROOT / "tests/models/redisai"
DAG_UNSUPPORTED = "Unsupported command within DAG"


def err(r, *args):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command(*args)
    return str(e.value)


def store_onnx(r, key, name):
    assert r.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", "BLOB", (IRIS / name).read_bytes()) == b"OK"


@pytest.fixture
def c(server):
    r = server.client()
    yield r
    r.close()


def test_the_key_is_checked_before_the_rest_of_the_arguments(c):
    c.set("s", "v")
    c.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    # AI.TENSORSET: a key of another type first, then the arguments.
    assert err(c, "AI.TENSORSET", "s", "NOTATYPE", 1).startswith("WRONGTYPE")
    assert err(c, "AI.TENSORSET", "new", "NOTATYPE", 1) == "invalid data type"
    # AI.TENSORGET: a missing key before a bad format.
    assert err(c, "AI.TENSORGET", "missing", "JSON") == "tensor key is empty or in a different shard"
    assert err(c, "AI.TENSORGET", "s", "JSON").startswith("WRONGTYPE")
    assert err(c, "AI.TENSORGET", "t", "JSON") == "unsupported data format"
    # The DAG's LOAD keys before its ops.
    assert err(c, "AI.DAGEXECUTE", "LOAD", 1, "missing", "|>", "AI.NOSUCH", "x") == \
        "tensor key is empty or in a different shard"
    assert err(c, "AI.DAGEXECUTE", "LOAD", 1, "s", "|>", "AI.TENSORGET").startswith("WRONGTYPE")
    assert err(c, "AI.DAGEXECUTE", "LOAD", 1, "t", "|>", "AI.NOSUCH", "x") == DAG_UNSUPPORTED
    assert err(c, "AI.DAGEXECUTE", "LOAD", 3, "missing", "t", "|>", "AI.NOSUCH", "x") == \
        "tensor key is empty or in a different shard", "each LOAD key is looked up as it is read"
    assert err(c, "AI.DAGEXECUTE_RO", "PERSIST", 1, "p", "LOAD", 1, "missing", "|>", "AI.NOSUCH") == \
        "PERSIST cannot be specified in a read-only DAG", "a section before LOAD is checked first"
    # AI.MODELEXECUTE: the model, then its INPUTS count, before OUTPUTS is parsed.
    assert err(c, "AI.MODELEXECUTE", "nomodel", "INPUTS", 1, "t", "OUTPUTS", "x", "y") == "model key is empty"
    store_onnx(c, "linear", "linear_iris.onnx")
    assert err(c, "AI.MODELEXECUTE", "linear", "INPUTS", 2, "t", "t", "OUTPUTS", "x") == \
        "Number of keys given as INPUTS here does not match model definition"
    assert err(c, "AI.MODELEXECUTE", "linear", "INPUTS", 1, "t", "OUTPUTS", "x", "y") == \
        "Invalid argument for output_count"


def test_modelget_returns_meta_and_blob_unless_told(c):
    blob = (IRIS / "linear_iris.onnx").read_bytes()
    store_onnx(c, "m", "linear_iris.onnx")
    both = c.execute_command("AI.MODELGET", "m")
    assert len(both) == 18 and both[16:] == [b"blob", blob]
    assert c.execute_command("AI.MODELGET", "m", "whatever") == both
    assert c.execute_command("AI.MODELGET", "m", "META", "BLOB") == both
    assert c.execute_command("AI.MODELGET", "m", "META") == both[:16]
    assert c.execute_command("AI.MODELGET", "m", "BLOB") == blob
    assert err(c, "AI.MODELGET", "nope") == "model key is empty"


def test_meta_lists_the_model_s_own_names(c, tmp_path):
    store_onnx(c, "m", "logreg_iris.onnx")
    meta = c.execute_command("AI.MODELGET", "m", "META")
    assert meta[10:14] == [b"inputs", [b"float_input"], b"outputs", [b"output_label", b"output_probability"]]
    make = ROOT / "target/release/make_torch_models"
    subprocess.run([str(make), str(tmp_path)], check=True, capture_output=True)
    pt = (tmp_path / "mul.pt").read_bytes()
    assert c.execute_command("AI.MODELSTORE", "pt", "TORCH", "CPU", "BLOB", pt) == b"OK"
    meta = c.execute_command("AI.MODELGET", "pt", "META")
    inputs, outputs = meta[11], meta[13]
    assert len(inputs) == 2 and all(n for n in inputs), inputs
    assert outputs == [b""]


@pytest.mark.parametrize("device", ["CPU:1.8", "CPU:123456", "GPU:-1", "CPUx", "bad_device", "CPU::"])
def test_devices_redisai_refuses(c, device):
    assert err(c, "AI.MODELSTORE", "m", "ONNX", device, "BLOB", b"x") == "Invalid DEVICE"


def test_devices_redisai_accepts(c):
    for device in ("cpu", "CPU:0", "CPU:12345"):
        blob = (IRIS / "linear_iris.onnx").read_bytes()
        assert c.execute_command("AI.MODELSTORE", "m", "ONNX", device, "BLOB", blob) == b"OK"


def test_values_out_of_range_answer_invalid_value(c):
    assert err(c, "AI.TENSORSET", "b", "BOOL", 2, "VALUES", 1, 2) == "invalid value"
    assert err(c, "AI.TENSORSET", "b", "INT8", 1, "VALUES", 300) == "invalid value"
    assert err(c, "AI.TENSORSET", "b", "BOOL", 2, "BLOB", b"\x01\x02") == "BOOL tensor elements must be 0 or 1"


def info(c, key):
    i = c.execute_command("AI.INFO", key)
    return dict(zip(i[::2], i[1::2]))


def test_ai_info_statistics_live_and_die_with_their_model(c):
    store_onnx(c, "m", "linear_iris.onnx")
    assert (info(c, "m")[b"calls"], info(c, "m")[b"samples"]) == (0, 0), "zeros from the start"
    c.execute_command("AI.TENSORSET", "f", "FLOAT", 1, 4, "VALUES", 5.1, 3.5, 1.4, 0.2)
    c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "f", "OUTPUTS", 1, "o")
    assert info(c, "m")[b"calls"] == 1
    store_onnx(c, "m", "linear_iris.onnx")
    assert info(c, "m")[b"calls"] == 0, "storing over the key resets them"
    c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "f", "OUTPUTS", 1, "o")
    assert c.delete("m") == 1
    assert err(c, "AI.INFO", "m") == "cannot find run info for key"
    store_onnx(c, "m", "linear_iris.onnx")
    assert info(c, "m")[b"calls"] == 0, "DEL dropped them"
    c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "f", "OUTPUTS", 1, "o")
    c.flushall()
    assert err(c, "AI.INFO", "m") == "cannot find run info for key"
    store_onnx(c, "m", "linear_iris.onnx")
    assert info(c, "m")[b"calls"] == 0, "FLUSHALL dropped them"


def test_redisai_iris_classifiers(c):
    """RedisAI's test_onnx_modelrun_iris, with its exact commands and checks."""
    store_onnx(c, "linear{1}", "linear_iris.onnx")
    store_onnx(c, "logreg{1}", "logreg_iris.onnx")
    c.execute_command("AI.TENSORSET", "features{1}", "FLOAT", 1, 4, "VALUES", 5.1, 3.5, 1.4, 0.2)
    assert c.execute_command("AI.MODELEXECUTE", "linear{1}", "INPUTS", 1, "features{1}",
                             "OUTPUTS", 1, "linear_out{1}") == b"OK"
    assert c.execute_command("AI.MODELEXECUTE", "logreg{1}", "INPUTS", 1, "features{1}",
                             "OUTPUTS", 2, "logreg_out{1}", "logreg_probs{1}") == b"OK"
    linear_out = c.execute_command("AI.TENSORGET", "linear_out{1}", "VALUES")
    logreg_out = c.execute_command("AI.TENSORGET", "logreg_out{1}", "VALUES")
    assert float(linear_out[0]) == pytest.approx(-0.090524077415466309)
    assert logreg_out[0] == 0
    # The ZipMap output (a sequence of maps from class to probability) as a FLOAT tensor of
    # one row per input and one column per class.
    meta = c.execute_command("AI.TENSORGET", "logreg_probs{1}", "META")
    assert meta == [b"dtype", b"FLOAT", b"shape", [1, 3]]
    probs = [float(x) for x in c.execute_command("AI.TENSORGET", "logreg_probs{1}", "VALUES")]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5) and probs.index(max(probs)) == 0


def test_info_sections_answer_to_their_own_names(c):
    v = c.info("ai_versions")
    assert list(v) == ["ai_RedisAI_version", "ai_low_level_API_version", "ai_rdb_version", "ai_shardai_version"]
    assert v["ai_RedisAI_version"] == "1.2.7" and v["ai_low_level_API_version"] == 1
    assert list(c.info("ai_git")) == ["ai_git_sha"]
    assert list(c.info("ai_load_time_configs")) == [
        "ai_threads_per_queue", "ai_inter_op_parallelism", "ai_intra_op_parallelism",
        "ai_model_execution_timeout", "ai_backend_memory_limit", "ai_batch_queue_delay_us"]
    p = c.info("persistence")
    for field in ("loading", "async_loading", "rdb_changes_since_last_save", "rdb_bgsave_in_progress",
                  "rdb_last_bgsave_status", "aof_enabled", "aof_rewrite_in_progress", "aof_last_write_status"):
        assert field in p, field
    assert (p["loading"], p["aof_enabled"], p["rdb_last_bgsave_status"]) == (0, 1, "ok")


def test_save_and_bgsave_write_a_snapshot_that_a_restart_reads():
    s = Server()
    try:
        r = s.client()
        for i in range(20):
            r.set(f"k{i}", i)
        r.hset("h", "f", "v")
        assert r.info("persistence")["rdb_changes_since_last_save"] > 0
        assert r.execute_command("SAVE") is True
        assert r.info("persistence")["rdb_changes_since_last_save"] == 0
        snaps = os.path.join(s.dir, "standalone", "snapshots")
        assert os.listdir(snaps), "SAVE wrote no snapshot"
        r.set("after", 1)
        raw = redis.Redis(port=s.port)
        raw.response_callbacks.pop("BGSAVE", None)
        assert raw.execute_command("BGSAVE") == b"Background saving started"
        # A write while that snapshot may still be built: SAVE waits for one covering it.
        r.set("later", 2)
        assert r.execute_command("SAVE") is True
        assert r.info("persistence")["rdb_changes_since_last_save"] == 0
        assert r.info("persistence")["rdb_bgsave_in_progress"] == 0
        s.kill()
        s = Server(dir=s.dir)
        r = s.client()
        assert r.get("k19") == b"19" and r.get("after") == b"1" and r.hget("h", "f") == b"v"
        assert r.get("later") == b"2"
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
