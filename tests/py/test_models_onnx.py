"""ONNX models through the real server, checked against ONNX Runtime run in-process on the
same inputs (the same library the server loads)."""
import pathlib

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
