"""Auto-batching through the real server: BATCHSIZE, MINBATCHSIZE, MINBATCHTIMEOUT, TIMEOUT,
BATCH_QUEUE_DELAY_US and the batch-size check, with concurrent redis-py clients. Batching is
observed through AI.INFO (backend calls versus samples) and per-client outputs; waits are
checked only where a wait is the behaviour (a lower bound, or far below a second)."""
import threading
import time

import numpy as np
import pytest
import redis

from conftest import floats, make_models


@pytest.fixture(scope="session")
def onnx(tmp_path_factory):
    return make_models(tmp_path_factory, "make_onnx.py", "onnx-batching")


@pytest.fixture(scope="session")
def tf(tmp_path_factory):
    return make_models(tmp_path_factory, "make_tf.py", "tf-batching")


def info(r, key):
    i = r.execute_command("AI.INFO", key)
    return dict(zip([k.decode() for k in i[::2]], i[1::2]))


def in_threads(n, fn):
    """Runs fn(i) in n threads; returns their results (exceptions re-raised)."""
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - handed back to the test
            out[i] = e

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    for o in out:
        if isinstance(o, Exception):
            raise o
    return out


def test_eight_clients_each_get_their_own_rows(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 8, "MINBATCHSIZE", 8, "BLOB",
                      (onnx / "mul.onnx").read_bytes())

    def client(i):
        c = server.client()
        a = np.full((1, 3), i, dtype=np.float32)
        b = np.arange(3, dtype=np.float32).reshape(1, 3) + 1
        c.execute_command("AI.TENSORSET", f"a{i}", "FLOAT", 1, 3, "BLOB", a.tobytes())
        c.execute_command("AI.TENSORSET", f"b{i}", "FLOAT", 1, 3, "BLOB", b.tobytes())
        assert c.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, f"a{i}", f"b{i}", "OUTPUTS", 1,
                                 f"c{i}") == b"OK"
        return floats(c, f"c{i}")

    outs = in_threads(8, client)
    for i, o in enumerate(outs):
        np.testing.assert_array_equal(o, np.full((1, 3), i) * (np.arange(3) + 1))
    s = info(r, "mul")
    assert (s["calls"], s["samples"]) == (1, 8), s


def test_concurrent_clients_are_served_by_fewer_calls(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 8, "BLOB",
                      (onnx / "mul.onnx").read_bytes())

    def client(i):
        c = server.client()
        c.execute_command("AI.TENSORSET", f"a{i}", "FLOAT", 1, 256, "BLOB", np.ones((1, 256), np.float32).tobytes())
        for _ in range(100):
            c.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, f"a{i}", f"a{i}", "OUTPUTS", 1, f"c{i}")

    in_threads(8, client)
    s = info(r, "mul")
    assert s["samples"] == 800 and s["errors"] == 0
    assert s["calls"] < s["samples"], s


def test_minbatchsize_without_timeout_waits_for_the_batch(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2, "BLOB",
                      (onnx / "mul.onnx").read_bytes())
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
    done = []
    t = threading.Thread(target=lambda: done.append(server.client().execute_command(
        "AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c1")))
    t.start()
    t.join(0.5)
    assert t.is_alive() and not done, "a lone request waits for MINBATCHSIZE"
    assert info(r, "mul")["calls"] == 0
    assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c2") == b"OK"
    t.join(10)
    assert done == [b"OK"]
    s = info(r, "mul")
    assert (s["calls"], s["samples"]) == (1, 2)
    assert r.execute_command("AI.TENSORGET", "c1", "VALUES") == [b"1", b"4"]


def test_minbatchtimeout_runs_a_short_batch(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 3,
                      "MINBATCHTIMEOUT", 200, "BLOB", (onnx / "mul.onnx").read_bytes())
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
    start = time.monotonic()
    assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c") == b"OK"
    assert time.monotonic() - start >= 0.2, "it waited MINBATCHTIMEOUT for company first"
    s = info(r, "mul")
    assert (s["calls"], s["samples"]) == (1, 1)


def test_timeout_while_waiting_for_a_batch(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 4, "BLOB",
                      (onnx / "mul.onnx").read_bytes())
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
    assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c", "TIMEOUT",
                             100) == b"TIMEDOUT"
    assert r.exists("c") == 0 and info(r, "mul")["calls"] == 0


def test_timeout_on_a_saturated_queue(server, tf):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "cnn", "TF", "CPU", "INPUTS", 1, "images", "OUTPUTS", 1, "output",
                      "BLOB", (tf / "mnist_cnn.pb").read_bytes())
    r.execute_command("AI.TENSORSET", "big", "FLOAT", 4000, 28, 28, 1)
    r.execute_command("AI.TENSORSET", "one", "FLOAT", 1, 28, 28, 1)
    busy = threading.Thread(target=lambda: server.client().execute_command(
        "AI.MODELEXECUTE", "cnn", "INPUTS", 1, "big", "OUTPUTS", 1, "o1"))
    busy.start()
    # While the big batch occupies the CPU queue's worker, a request with TIMEOUT 1 waits
    # behind it and is answered TIMEDOUT. (One sent before the big batch reached the queue
    # would simply run; the loop sends again until the queue is busy.)
    replies = []
    while busy.is_alive() and b"TIMEDOUT" not in replies:
        replies.append(r.execute_command("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "one", "OUTPUTS", 1, "o2",
                                         "TIMEOUT", 1))
    busy.join(60)
    assert b"TIMEDOUT" in replies, replies
    assert r.exists("o1") == 1


def test_output_batch_mismatch_is_an_error(server, onnx):
    r = server.client()
    r.execute_command("AI.MODELSTORE", "red", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2, "BLOB",
                      (onnx / "batch_mismatch.onnx").read_bytes())
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 4, "VALUES", 1, 2, 3, 4)

    def client(i):
        try:
            return server.client().execute_command("AI.MODELEXECUTE", "red", "INPUTS", 1, "x", "OUTPUTS", 1,
                                                   f"y{i}")
        except redis.ResponseError as e:
            return str(e)

    assert in_threads(2, client) == ["Model did not generate the expected batch size"] * 2
    assert r.exists("y0") == 0 and r.exists("y1") == 0


def test_tflite_refuses_batching(server):
    r = server.client()
    with pytest.raises(redis.ResponseError, match="^Auto-batching not supported by the TFLITE backend$"):
        r.execute_command("AI.MODELSTORE", "m", "TFLITE", "CPU", "BATCHSIZE", 2, "BLOB", b"x")


def test_a_queue_delay_waits_to_fill_a_batch_but_not_past_a_timeout(onnx):
    from conftest import Server
    s = Server("--batch-queue-delay-us", "1000000")
    try:
        r = s.client()
        assert r.execute_command("AI.CONFIG", "GET", "BATCH_QUEUE_DELAY_US") == 1000000
        assert r.info("ai_load_time_configs")["ai_batch_queue_delay_us"] == 1000000
        r.execute_command("AI.MODELSTORE", "mul", "ONNX", "CPU", "BATCHSIZE", 4, "BLOB",
                          (onnx / "mul.onnx").read_bytes())
        r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2)
        done = []
        t = threading.Thread(target=lambda: done.append(s.client().execute_command(
            "AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c1")))
        t.start()
        t.join(0.1)
        assert t.is_alive() and not done, "a batch that is not full waits for company"
        assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c2") == b"OK"
        t.join(10)
        assert done == [b"OK"]
        i = info(r, "mul")
        assert (i["calls"], i["samples"]) == (1, 2), i
        assert r.execute_command("AI.TENSORGET", "c1", "VALUES") == [b"1", b"4"]

        # A request whose TIMEOUT ends before the delay does is run at once, not timed out.
        start = time.monotonic()
        assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c3",
                                 "TIMEOUT", 100) == b"OK"
        assert time.monotonic() - start < 0.5
        assert info(r, "mul")["calls"] == 2

        # Off at run time: a lone request runs at once again.
        assert r.execute_command("AI.CONFIG", "BATCH_QUEUE_DELAY_US", 0) == b"OK"
        assert r.execute_command("AI.CONFIG", "GET", "batch_queue_delay_us") == 0
        start = time.monotonic()
        assert r.execute_command("AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c4") == b"OK"
        assert time.monotonic() - start < 0.5
        for bad in ("-1", "1000001", "x"):
            with pytest.raises(redis.ResponseError, match="BATCH_QUEUE_DELAY_US: the delay must be a whole number"):
                r.execute_command("AI.CONFIG", "BATCH_QUEUE_DELAY_US", bad)
    finally:
        s.stop()
