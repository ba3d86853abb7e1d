"""Faults against real shardai processes: a node whose Raft log was lost while its
cluster.conf remains refuses to start; a leader cut off from its majority (its followers
paused with SIGSTOP) serves no read from its state, whether the read names keys, names none
(DBSIZE, KEYS, SCAN) or is a DAG that only LOADs and reads; once the followers return, it
serves again."""
import os
import shutil
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
            got = r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t", "|>",
                                    "AI.TENSORGET", "t", "VALUES")
            break
        except redis.ResponseError:
            # Leadership may still move: ask whoever leads now.
            assert time.time() < end
            time.sleep(0.1)
            r = shard.leader().client(socket_timeout=30)
    assert [float(x) for x in got[0]] == [7.0]


def test_a_node_whose_raft_log_was_lost_refuses_to_start(shard):
    victim = shard.followers()[0]
    # With its log, a node restarts as ever.
    victim.kill()
    victim.start()
    shard.wait_caught_up(victim)
    victim.kill()
    shutil.rmtree(os.path.join(victim.dir, "raft"))
    assert not victim.start(check=False)
    log = victim.log_text()
    assert "raft is gone" in log and "del-node" in log, log[-2000:]
    # Nothing was recreated behind the operator's back.
    assert not os.path.exists(os.path.join(victim.dir, "raft"))
    # The other two serve on.
    r = shard.leader().client()
    assert r.execute_command("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1) == b"OK"
