"""Faults against real shardai processes: a leader cut off from its majority (its followers
paused with SIGSTOP) serves no read from its state, whether the read names keys, names none
(DBSIZE, KEYS, SCAN) or is a DAG that only LOADs and reads; once the followers return, it
serves again."""
import os
import signal
import time

import pytest
import redis

from shardcluster import Cluster


@pytest.fixture
def shard():
    c = Cluster(3, extra=["--raft-election-timeout-ms", "300"])
    yield c
    for n in c.nodes:
        if n.alive():
            os.kill(n.proc.pid, signal.SIGCONT)
    c.close()


def test_a_leader_without_its_majority_answers_no_reads(shard):
    leader = shard.leader()
    r = leader.client(socket_timeout=30)
    assert r.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 7) == b"OK"
    followers = shard.followers()
    for f in followers:
        os.kill(f.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)  # past the leader's lease
        reads = [
            ("AI.TENSORGET", "t", "VALUES"),
            ("DBSIZE",),
            ("KEYS", "*"),
            ("SCAN", 0),
            ("AI.DAGEXECUTE", "LOAD", 1, "t", "|>", "AI.TENSORGET", "t", "VALUES"),
        ]
        for args in reads:
            start = time.time()
            with pytest.raises((redis.exceptions.ClusterDownError, redis.exceptions.MovedError)):
                r.execute_command(*args)
            assert time.time() - start < 10, args
    finally:
        for f in followers:
            os.kill(f.proc.pid, signal.SIGCONT)
    # The majority is back: reads are served again, by whoever leads now.
    leader = shard.leader()
    r = leader.client(socket_timeout=30)
    end = time.time() + 10
    while True:
        try:
            assert r.dbsize() == 1
            break
        except redis.ResponseError:
            assert time.time() < end
            time.sleep(0.1)
    got = r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t", "|>", "AI.TENSORGET", "t", "VALUES")
    assert [float(x) for x in got[0]] == [7.0]
