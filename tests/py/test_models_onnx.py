"""ONNX models through the real server, checked against ONNX Runtime run in-process on the
same inputs (the same library the server loads)."""
import pathlib
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import redis

MODELS = pathlib.Path(__file__).resolve().parents[1] / "models" / "redisai"


def model_bytes(name):
    path = MODELS / name
    if not path.exists():
        pytest.fail(f"missing test model {path}")
    return path.read_bytes()


def run_local(blob, feeds):
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, feeds)))


def get_float(r, key):
    meta = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    assert meta[0:2] == [b"dtype", b"FLOAT"]
    return np.frombuffer(meta[5], dtype="<f4").reshape(meta[3])


def test_mnist_matches_onnxruntime(r):
    blob = model_bytes("mnist.onnx")
    assert r.execute_command("AI.MODELSTORE", "mnist", "ONNX", "CPU", "TAG", "v1", "BLOB", blob) in (b"OK", True)
    rng = np.random.default_rng(3)
    x = rng.random((1, 1, 28, 28), dtype=np.float32)
    r.execute_command("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28, "BLOB", x.astype("<f4").tobytes())
    assert r.execute_command("AI.MODELEXECUTE", "mnist", "INPUTS", 1, "img", "OUTPUTS", 1, "out") in (b"OK", True)
    got = get_float(r, "out")
    want = run_local(blob, [x])[0]
    assert got.shape == want.shape == (1, 10)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Deprecated AI.MODELRUN gives the same result.
    assert r.execute_command("AI.MODELRUN", "mnist", "INPUTS", "img", "OUTPUTS", "out2") in (b"OK", True)
    np.testing.assert_array_equal(get_float(r, "out2"), got)


def test_linear_iris(r):
    blob = model_bytes("linear_iris.onnx")
    r.execute_command("AI.MODELSTORE", "lin", "ONNX", "CPU", "BLOB", blob)
    x = np.array([[5.0, 3.4, 1.6, 0.4]], dtype=np.float32)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 4, "VALUES", *x.ravel().tolist())
    r.execute_command("AI.MODELEXECUTE", "lin", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    np.testing.assert_allclose(get_float(r, "y").reshape(-1), run_local(blob, [x])[0].reshape(-1), rtol=1e-6)


def test_modelget_meta_and_blob_chunks(r):
    blob = model_bytes("mnist.onnx")
    # A blob sent in several chunks is stored whole.
    third = len(blob) // 3
    parts = [blob[:third], blob[third:2 * third], blob[2 * third:]]
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "t1", "BLOB", *parts)
    meta = r.execute_command("AI.MODELGET", "m", "META")
    # No names were given: the graph's own.
    assert meta == [b"backend", b"ONNX", b"device", b"CPU", b"tag", b"t1", b"batchsize", 0,
                    b"minbatchsize", 0, b"inputs", [b"Input3"], b"outputs", [b"Plus214_Output_0"],
                    b"minbatchtimeout", 0]
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == blob
    r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 10000)
    chunks = r.execute_command("AI.MODELGET", "m", "BLOB")
    assert isinstance(chunks, list) and len(chunks) == len(blob) // 10000 + 1
    assert b"".join(chunks) == blob
    both = r.execute_command("AI.MODELGET", "m", "META", "BLOB")
    assert len(both) == 18 and both[16] == b"blob" and b"".join(both[17]) == blob
    assert r.type("m") in (b"AI__MODEL", "AI__MODEL")
    assert r.execute_command("AI._MODELSCAN") == [[b"m", b"t1"]]
    assert r.execute_command("AI.MODELDEL", "m") in (b"OK", True)
    with pytest.raises(redis.ResponseError, match="^model key is empty$"):
        r.execute_command("AI.MODELGET", "m", "META")


def test_model_errors(r):
    mnist = model_bytes("mnist.onnx")
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELSTORE", "bad", "ONNX", "CPU", "BLOB", b"not a model")
    assert r.exists("bad") == 0, "a model that does not load is never stored"
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", mnist)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 1, 28, 28)
    with pytest.raises(redis.ResponseError, match="^Number of keys given as INPUTS here does not match model definition$"):
        r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "o")
    with pytest.raises(redis.ResponseError, match="^Number of keys given as OUTPUTS here does not match model definition$"):
        r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 2, "o", "p")
    with pytest.raises(redis.ResponseError, match="^tensor key is empty or in a different shard$"):
        r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "nope", "OUTPUTS", 1, "o")
    r.execute_command("AI.TENSORSET", "wrongshape", "FLOAT", 2, 3)
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "wrongshape", "OUTPUTS", 1, "o")
    assert r.exists("o") == 0, "a failed execution stores nothing"
    r.set("str", "x")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.execute_command("AI.MODELSTORE", "str", "ONNX", "CPU", "BLOB", mnist)
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.execute_command("AI.MODELDEL", "str")
    assert "ai_onnxruntime_version" in r.info("ai_backends_info")


def matmul_model(n):
    """An ONNX MatMul with an `n`×`n` FLOAT weight (4·n² bytes) and a batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((n, n), 0.5, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", n])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


LIMIT_TEXT = "Onnxruntime memory limit exceeded, memory allocation failed."


def test_backend_memory_limit_refuses_models_and_runs_past_it():
    from conftest import Server

    s = Server("--backend-memory-limit", "1")
    try:
        r = s.client()
        blob = matmul_model(1000)  # 4 MB of weights
        assert r.info("ai_load_time_configs")["ai_backend_memory_limit"] == 1
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", blob)
        assert str(e.value) == "Exception during initialization: " + LIMIT_TEXT
        assert r.exists("m") == 0

        # Raised at run time: the model fits, a run's 8 MB output does not.
        assert r.execute_command("AI.CONFIG", "BACKEND_MEMORY_LIMIT", 10) == b"OK"
        assert r.execute_command("AI.CONFIG", "GET", "BACKEND_MEMORY_LIMIT") == 10
        assert r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", blob) == b"OK"
        held = r.info("ai_backends_info")["ai_onnxruntime_memory"]
        assert 4_000_000 <= held < 10_000_000
        x = np.ones((2000, 1000), dtype=np.float32)
        r.execute_command("AI.TENSORSET", "x", "FLOAT", 2000, 1000, "BLOB", x.tobytes())
        with pytest.raises(redis.ResponseError, match=LIMIT_TEXT.replace(".", r"\.") + "$"):
            r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
        assert r.exists("y") == 0
        assert r.info("ai_backends_info")["ai_onnxruntime_memory"] == held

        # 0: no limit.
        assert r.execute_command("AI.CONFIG", "BACKEND_MEMORY_LIMIT", 0) == b"OK"
        assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1, "y") == b"OK"
        assert get_float(r, "y")[1999, 999] == 500.0
        for bad in ("-1", "ten"):
            with pytest.raises(redis.ResponseError, match="BACKEND_MEMORY_LIMIT"):
                r.execute_command("AI.CONFIG", "BACKEND_MEMORY_LIMIT", bad)
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)
