"""A real shardai for redisai-py's tests (this venv has redis-py 4, which redisai-py needs, so
the redis-py 8 harness of tests/py is not imported here)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import redis

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "py"))
from harness import ROOT, binary, free_port  # noqa: E402


@pytest.fixture
def port():
    d = tempfile.mkdtemp(prefix="shardai-redisai-py-")
    port = free_port()
    log = open(os.path.join(d, "shardai.log"), "ab")
    p = subprocess.Popen([binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", d],
                         stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(500):
            try:
                if redis.Redis(port=port).ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError("shardai did not start: see " + os.path.join(d, "shardai.log"))
        yield port
    finally:
        os.kill(p.pid, signal.SIGTERM)
        p.wait(10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def models():
    return ROOT / "tests" / "models" / "redisai"
