"""Harness for the Python end-to-end tests: a real shardai process on a free port.

The binary is $SHARDAI_BIN (set by scripts/test), else target/release/shardai.
Every server is stopped by its PID when the test that started it ends.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import redis

from harness import ROOT, binary, free_port  # noqa: F401 - re-exported for the tests


class Server:
    """A shardai process; `dir` reuses a data folder (a restart), else a fresh one is made."""

    def __init__(self, *extra, dir=None):
        self.dir = dir or tempfile.mkdtemp(prefix="shardai-py-")
        for _ in range(5):
            self.port = free_port()
            self.log = open(os.path.join(self.dir, "shardai.log"), "ab")
            self.proc = subprocess.Popen(
                [binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, *extra],
                stdout=subprocess.DEVNULL, stderr=self.log)
            if self._ready():
                return
            self.stop()
        raise RuntimeError("shardai did not start")

    def _ready(self, limit=10.0):
        end = time.time() + limit
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                if redis.Redis(port=self.port, socket_timeout=2).ping():
                    return True
            except redis.AuthenticationError:
                return True  # serving, and asking for a password
            except redis.ConnectionError:
                time.sleep(0.02)
        return False

    def client(self, protocol=2, **kw):
        return redis.Redis(port=self.port, protocol=protocol, socket_timeout=30, **kw)

    def kill(self):
        """SIGKILL: no shutdown, nothing flushed by the server itself."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def log_text(self):
        with open(os.path.join(self.dir, "shardai.log"), "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def floats(r, key):
    """A FLOAT tensor read back with AI.TENSORGET META BLOB, as a numpy array of its shape."""
    m = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    if isinstance(m, dict):  # RESP3 map
        m = [x for kv in m.items() for x in kv]
    return np.frombuffer(m[5], dtype="<f4").reshape(m[3])


def make_models(tmp_path_factory, script, name):
    """Runs a model generator from tests/models/ into a fresh temporary folder."""
    out = tmp_path_factory.mktemp(name)
    subprocess.run([sys.executable, str(ROOT / "tests/models" / script), str(out)], check=True)
    return out


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, server):
    c = server.client(protocol=request.param)
    c.protocol = request.param
    yield c
    c.close()


@pytest.fixture(scope="module")
def redis7():
    """Debian's redis-server, nothing saved, DEBUG allowed."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server missing: run scripts/setup")
    d = tempfile.mkdtemp(prefix="redis7-")
    port = free_port()
    p = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
         "--appendonly", "no", "--enable-debug-command", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)
