"""The operator's view of one node: SLOWLOG (AI runs included), MONITOR, CLIENT LIST and
CLIENT KILL, --log-format json, and the metrics port's /metrics, /livez and /readyz."""
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import redis

from conftest import Server
from harness import free_port
from test_models_onnx import matmul_model


def http(port, path):
    """(status, body) of GET http://127.0.0.1:`port``path`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def node():
    port = free_port()
    s = Server("--metrics-port", str(port))
    s.metrics = port
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


def test_slowlog_records_a_slow_model_run(node):
    r = node.client()
    r.execute_command("AI.MODELSTORE", "mm", "ONNX", "CPU", "BLOB", matmul_model(512))
    x = np.ones((256, 512), dtype=np.float32)
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 256, 512, "BLOB", x.tobytes())
    # Time the fastest of a few runs, then log what takes at least half of that.
    took_us = 10**9
    for _ in range(4):
        t = time.perf_counter()
        r.execute_command("AI.MODELEXECUTE", "mm", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
        took_us = min(took_us, int((time.perf_counter() - t) * 1e6))
    assert r.config_get("slowlog-log-slower-than") == {"slowlog-log-slower-than": "10000"}
    r.config_set("slowlog-log-slower-than", max(took_us // 2, 1))
    r.slowlog_reset()
    r.execute_command("AI.MODELEXECUTE", "mm", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    entries = r.slowlog_get()
    runs = [e for e in entries if e["command"].startswith(b"AI.MODELEXECUTE")]
    assert runs, entries
    e = runs[0]
    assert e["command"] == b"AI.MODELEXECUTE mm INPUTS 1 x OUTPUTS 1 y"
    assert e["duration"] >= max(took_us // 2, 1)
    assert abs(e["start_time"] - time.time()) < 60
    assert r.slowlog_len() >= 1
    # A tensor's BLOB is cut to 128 bytes in the log.
    r.config_set("slowlog-log-slower-than", 0)
    r.execute_command("AI.TENSORSET", "big", "FLOAT", 1000, "BLOB", np.zeros(1000, np.float32).tobytes())
    raw = r.execute_command("SLOWLOG", "GET", 5)
    tset = next(e for e in raw if e[3][0] == b"AI.TENSORSET")
    assert tset[3][-1].endswith(b"... (3872 more bytes)")
    # slowlog-max-len bounds it; RESET empties it; negative thresholds turn it off.
    r.config_set("slowlog-max-len", 2)
    assert r.slowlog_len() == 2
    r.config_set("slowlog-log-slower-than", -1)
    r.slowlog_reset()
    r.get("nokey")
    assert r.slowlog_len() == 0
    with pytest.raises(redis.ResponseError, match="count should be greater than or equal to -1"):
        r.execute_command("SLOWLOG", "GET", -2)


def test_monitor_streams_other_clients_commands(node):
    lines = []
    ready = threading.Event()

    def watch():
        with node.client().monitor() as m:
            ready.set()
            for cmd in m.listen():
                lines.append(cmd)
                if cmd["command"].startswith("GET done"):
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert ready.wait(10)
    time.sleep(0.2)
    r = node.client()
    r.set("k", "v\n1")
    r.config_get("maxclients")  # an admin command: not shown
    r.get("done")
    t.join(10)
    assert not t.is_alive()
    commands = [l["command"] for l in lines]
    assert "SET k v\\n1" in commands, commands
    assert not any(c.startswith("CONFIG") for c in commands)
    assert all(l["client_address"] == "127.0.0.1" for l in lines)


def test_client_list_and_kill(node):
    import socket
    a = node.client()
    a.client_setname("killer")
    victim = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    victim.sendall(b"CLIENT SETNAME victim\r\nCLIENT ID\r\n")
    reply = b""
    while reply.count(b"\r\n") < 2:
        reply += victim.recv(100)
    b_id = int(reply.split(b"\r\n")[1][1:])
    listed = a.client_list()
    v = next(c for c in listed if c["name"] == "victim")
    assert int(v["fd"]) > 2 and int(v["id"]) == b_id
    assert v["laddr"] == f"127.0.0.1:{node.port}"
    assert [c["name"] for c in a.client_list(client_id=[b_id])] == ["victim"]
    assert a.execute_command("CLIENT", "LIST", "TYPE", "replica") == b""
    assert a.execute_command("CLIENT", "KILL", "ID", b_id) == 1
    # The server closes the victim's connection.
    assert victim.recv(100) == b""
    victim.close()
    ids = [int(c["id"]) for c in a.client_list()]
    assert b_id not in ids
    with pytest.raises(redis.ResponseError, match="No such client"):
        a.execute_command("CLIENT", "KILL", "127.0.0.1:1")
    # SKIPME yes (the default) spares the caller.
    me = a.client_id()
    assert a.execute_command("CLIENT", "KILL", "ID", me) == 0
    assert a.ping()


def test_json_logs():
    s = Server("--log-format", "json")
    try:
        s.client().ping()
    finally:
        s.stop()
    lines = [json.loads(l) for l in s.log_text().splitlines() if l.strip()]
    started = [l for l in lines if "listening" in l.get("message", "")]
    assert started and started[0]["level"] == "INFO" and "timestamp" in started[0]
    shutil.rmtree(s.dir, ignore_errors=True)


def test_metrics_livez_readyz(node):
    r = node.client()
    r.set("a", "1")
    r.get("a")
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.TENSORGET", "a", "META")
    assert http(node.metrics, "/livez") == (200, "ok\n")
    assert http(node.metrics, "/readyz") == (200, "ready\n")
    status, body = http(node.metrics, "/metrics")
    assert status == 200 and body.endswith("# EOF\n")
    assert 'shardai_commands_total{command="set"} 1' in body
    assert 'shardai_command_errors_total{command="ai.tensorget"} 1' in body
    assert "shardai_raft_is_leader{group=\"data\"} 1" in body
    assert "shardai_keys 1" in body
    assert http(node.metrics, "/nope")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{node.metrics}/metrics", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_readyz_waits_for_a_models_backend(tmp_path):
    empty = tmp_path / "no-backends"
    empty.mkdir()
    port = free_port()
    s = Server("--metrics-port", str(port))
    try:
        r = s.client()
        r.execute_command("AI.MODELSTORE", "mm", "ONNX", "CPU", "BLOB", matmul_model(4))
        path = r.execute_command("AI.CONFIG", "GET", "BACKENDSPATH").decode()
        s.stop()
        # Restarted where the ONNX library is not: the model is kept, not loaded.
        s = Server("--metrics-port", str(port), "--backends-path", str(empty),
                   "--enable-backend-loading", "yes", dir=s.dir)
        status, body = http(port, "/readyz")
        assert status == 503 and "wait for their backend" in body and "mm" in body, body
        assert "shardai_ready 0" in http(port, "/metrics")[1]
        s.client().execute_command("AI.CONFIG", "BACKENDSPATH", path)
        end = time.time() + 30
        while http(port, "/readyz")[0] != 200 and time.time() < end:
            time.sleep(0.1)
        assert http(port, "/readyz") == (200, "ready\n")
    finally:
        s.stop()
        shutil.rmtree(s.dir, ignore_errors=True)


def test_a_port_in_use_is_a_clear_error(tmp_path):
    import socket
    import subprocess
    from harness import binary
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        p = subprocess.run([binary(), "--port", str(free_port()), "--dir", str(tmp_path),
                            "--metrics-port", str(busy)], capture_output=True, text=True,
                           timeout=30)
    assert p.returncode != 0
    assert f"cannot listen on 127.0.0.1:{busy} (--metrics-port)" in p.stderr
