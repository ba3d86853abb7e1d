"""Bounds on one replicated write, against real shardai processes: a write larger than
`--max-entry-size` (a tensor, a DAG's PERSISTed tensors) is refused before it is replicated;
batches of large entries still reach every replica (over several bus frames); a write its
shard's majority never acknowledges answers an error after `--raft-commit-timeout-ms` instead
of waiting for ever."""
import os
import signal
import time

import pytest
import redis

from shardcluster import Cluster


@pytest.fixture
def shard():
    c = Cluster(3, extra=["--max-entry-size", "1mb", "--raft-commit-timeout-ms", "2000",
                          "--raft-election-timeout-ms", "300"])
    yield c
    for n in c.nodes:
        if n.alive():
            os.kill(n.proc.pid, signal.SIGCONT)
    c.close()


def test_a_write_over_max_entry_size_is_refused_and_large_batches_replicate(shard):
    r = shard.leader().client()
    with pytest.raises(redis.ResponseError, match="more than max-entry-size"):
        r.execute_command("AI.TENSORSET", "big", "INT8", 2 << 20)
    with pytest.raises(redis.ResponseError, match="more than max-entry-size"):
        r.execute_command("AI.TENSORSET", "big", "INT8", 2 << 20, "BLOB", bytes(2 << 20))
    # Two tensors each under the limit, PERSISTed together over it.
    with pytest.raises(redis.ResponseError, match="PERSIST fewer or smaller"):
        r.execute_command("AI.DAGEXECUTE", "PERSIST", 2, "{d}a", "{d}b",
                          "|>", "AI.TENSORSET", "{d}a", "INT8", 600_000,
                          "|>", "AI.TENSORSET", "{d}b", "INT8", 600_000)
    assert r.exists("big") == 0 and r.exists("{d}a", "{d}b") == 0
    # Entries under the limit, written at once: batches larger than a frame carries.
    p = r.pipeline(transaction=False)
    for i in range(12):
        p.execute_command("AI.TENSORSET", f"t{i}", "INT8", 700_000, "BLOB", bytes([i]) * 700_000)
    assert p.execute() == [b"OK"] * 12
    for f in shard.followers():
        shard.wait_caught_up(f)
        assert int(f.replication()["raft_last_log_index"]) == \
            int(shard.leader().replication()["raft_last_log_index"])
    # The shard still commits.
    assert r.execute_command("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1) == b"OK"
    blob = r.execute_command("AI.TENSORGET", "t11", "BLOB")
    assert blob == bytes([11]) * 700_000


def test_a_write_without_its_majority_answers_after_the_commit_timeout(shard):
    leader = shard.leader()
    r = leader.client(socket_timeout=60)
    assert r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1) == b"OK"
    followers = shard.followers()
    for f in followers:
        os.kill(f.proc.pid, signal.SIGSTOP)
    try:
        start = time.time()
        with pytest.raises(redis.ResponseError, match="outcome is unknown"):
            r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 2)
        took = time.time() - start
        assert 1.5 < took < 20, took
    finally:
        for f in followers:
            os.kill(f.proc.pid, signal.SIGCONT)
    assert "did not commit in time" in leader.log_text()
    # The majority is back: writes commit again.
    end = time.time() + 20
    while True:
        try:
            c = shard.leader().client()
            assert c.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 3) == b"OK"
            break
        except (redis.ResponseError, redis.ConnectionError):
            assert time.time() < end
            time.sleep(0.2)


def test_max_entry_size_is_bounded():
    import subprocess
    from harness import binary
    for bad in ["2gb", "10", "x"]:
        p = subprocess.run([binary(), "--max-entry-size", bad], capture_output=True, text=True,
                           timeout=20)
        assert p.returncode != 0 and "--max-entry-size" in p.stderr, (bad, p.stderr)
