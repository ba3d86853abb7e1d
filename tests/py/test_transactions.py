"""MULTI / EXEC / DISCARD / WATCH through redis-py (its `pipeline()` sends MULTI/EXEC by
default): queued replies, EXEC's array, EXECABORT after a refused command, WATCH aborting on
another client's write (strings, hashes changed in place, tensors), and RedisAI's refusal to
run models and scripts inside a transaction."""
import pytest
import redis


def test_a_redis_py_pipeline_runs_as_one_transaction(r):
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.set("a", 1).incr("a").get("a").hset("h", mapping={"f": "v"}).hgetall("h")
    pipe.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    pipe.execute_command("AI.TENSORGET", "t", "META")
    got = pipe.execute()
    assert got[:5] == [True, 2, b"2", 1, {b"f": b"v"}]
    assert got[5] in (b"OK", True)
    meta = got[6] if isinstance(got[6], list) else [x for kv in got[6].items() for x in kv]
    assert meta == [b"dtype", b"FLOAT", b"shape", [2]]


def raw(server):
    """A client that returns replies as sent (redis-py's callbacks would turn QUEUED into False)."""
    c = server.client()
    c.response_callbacks.clear()
    return c


def test_queued_replies_and_exec(server):
    c = raw(server)
    assert c.execute_command("MULTI") in (b"OK", True)
    assert c.execute_command("SET", "k", "v") == b"QUEUED"
    assert c.execute_command("GET", "k") == b"QUEUED"
    assert c.get("k") == b"QUEUED", "nothing ran yet"
    assert c.execute_command("EXEC") == [b"OK", b"v", b"v"]
    with pytest.raises(redis.ResponseError, match="^EXEC without MULTI$"):
        c.execute_command("EXEC")
    with pytest.raises(redis.ResponseError, match="^DISCARD without MULTI$"):
        c.execute_command("DISCARD")
    c.execute_command("MULTI")
    with pytest.raises(redis.ResponseError, match="^MULTI calls can not be nested$"):
        c.execute_command("MULTI")
    c.execute_command("SET", "k", "w")
    assert c.execute_command("DISCARD") in (b"OK", True)
    assert c.get("k") == b"v"


def test_a_refused_command_aborts_the_transaction(server):
    c = server.client()
    c.execute_command("MULTI")
    c.execute_command("SET", "k", "v")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        c.execute_command("NOSUCH")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        c.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="^Transaction discarded because of previous errors.$"):
        c.execute_command("EXEC")
    assert c.get("k") is None


def test_redisai_run_commands_are_refused_inside_exec(server):
    c = server.client()
    c.execute_command("AI.TENSORSET", "a", "FLOAT", 1, "VALUES", 1)
    c.execute_command("MULTI")
    assert c.execute_command("AI.MODELEXECUTE", "no_model{1}", "INPUTS", 1, "no_input{1}",
                             "OUTPUTS", 1, "no_output{1}") == b"QUEUED"
    assert c.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "VALUES") == b"QUEUED"
    c.execute_command("AI.TENSORGET", "a", "VALUES")
    got = c.execute_command("EXEC")
    for e in got[:2]:
        assert isinstance(e, redis.ResponseError)
        assert str(e) == "Cannot run RedisAI command within a transaction or a LUA script"
    assert got[2] == [b"1"]
    # redis-py raises the first error of EXEC's array, as RedisAI's own test expects.
    pipe = c.pipeline()
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 1, "b")
    with pytest.raises(redis.ResponseError, match="Cannot run RedisAI command within a transaction"):
        pipe.execute()


@pytest.mark.parametrize("write", ["set", "hset", "rpush", "tensorset", "del"])
def test_watch_aborts_when_another_client_wrote(server, write):
    c, other = server.client(), server.client()
    c.set("s", "v")
    c.hset("h", "f", "v")
    c.rpush("l", "a")
    c.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
    key = {"set": "s", "hset": "h", "rpush": "l", "tensorset": "t", "del": "s"}[write]
    assert c.execute_command("WATCH", key) in (b"OK", True)
    {"set": lambda: other.set("s", "v"), "hset": lambda: other.hset("h", "g", "w"),
     "rpush": lambda: other.rpush("l", "b"),
     "tensorset": lambda: other.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1),
     "del": lambda: other.delete("s")}[write]()
    c.execute_command("MULTI")
    c.execute_command("SET", "marker", 1)
    assert c.execute_command("EXEC") is None
    assert c.get("marker") is None
    # Unchanged keys let it run; EXEC forgets the watches.
    c.execute_command("WATCH", "h", "nothing")
    c.execute_command("MULTI")
    c.execute_command("SET", "marker", 1)
    assert c.execute_command("EXEC") == [b"OK"]


def test_watch_with_redis_py_s_optimistic_locking(server):
    c = server.client()
    c.set("counter", 10)

    def incr(pipe):
        v = int(pipe.get("counter"))
        pipe.multi()
        pipe.set("counter", v + 1)

    assert c.transaction(incr, "counter") == [True]
    assert c.get("counter") == b"11"
    with c.pipeline() as pipe:
        pipe.watch("counter")
        c.set("counter", 100)
        pipe.multi()
        pipe.set("counter", 0)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert c.get("counter") == b"100"
    with pytest.raises(redis.ResponseError, match="WATCH inside MULTI is not allowed"):
        c.execute_command("MULTI")
        c.execute_command("WATCH", "x")


def log_index(node):
    return int(node.replication()["raft_last_log_index"])


def test_exec_is_one_replicated_entry_applied_on_every_replica_and_after_restart():
    from harness import ROOT
    from shardcluster import Cluster

    blob = (ROOT / "tests" / "models" / "redisai" / "linear_iris.onnx").read_bytes()
    cluster = Cluster(3)
    try:
        lead = cluster.leader()
        r = lead.client()
        before = log_index(lead)
        p = r.pipeline()
        p.set("a{t}", 1).incr("a{t}").get("a{t}").hset("h{t}", mapping={"f": "v"})
        p.rpush("l{t}", "x", "y").incr("h{t}")
        p.execute_command("AI.MODELSTORE", "m{t}", "ONNX", "CPU", "BLOB", blob)
        p.execute_command("AI.TENSORSET", "in{t}", "FLOAT", 1, 4, "VALUES", 5.0, 3.4, 1.6, 0.4)
        got = p.execute(raise_on_error=False)
        assert got[:5] == [True, 2, b"2", 1, 2], got
        assert isinstance(got[5], redis.ResponseError) and "WRONGTYPE" in str(got[5])
        assert got[6:] == [b"OK", b"OK"]
        # Six writes (one of them failing, as in Redis), one log entry.
        assert log_index(lead) == before + 1

        # Keys of two slots: CROSSSLOT for the whole transaction, nothing written.
        p = r.pipeline()
        p.set("x1", 1).set("x2", 2)
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            p.execute()
        assert r.exists("x1") == 0 and r.exists("x2") == 0
        assert log_index(lead) == before + 1

        run = ("AI.DAGEXECUTE_RO", "LOAD", 1, "in{t}", "|>", "AI.MODELEXECUTE", "m{t}",
               "INPUTS", 1, "in{t}", "OUTPUTS", 1, "o", "|>", "AI.TENSORGET", "o", "VALUES")
        want = r.execute_command(*run)

        def check(node):
            c = node.client()
            c.execute_command("READONLY")
            assert c.get("a{t}") == b"2"
            assert c.hgetall("h{t}") == {b"f": b"v"}
            assert c.lrange("l{t}", 0, -1) == [b"x", b"y"]
            assert c.execute_command(*run) == want
            c.close()

        for f in cluster.followers():
            cluster.wait_caught_up(f)
            check(f)

        # Every node killed and restarted: the entry is replayed from the logs.
        for x in cluster.nodes:
            x.kill()
        for x in cluster.nodes:
            x.start()
        lead = cluster.leader()
        for x in cluster.nodes:
            cluster.wait_caught_up(x)
            check(x)
    finally:
        cluster.close()


def test_reads_in_a_transaction_see_its_earlier_writes(server):
    r = server.client()
    r.set("gone", "x")
    p = r.pipeline()
    p.set("a", 1).get("a").flushall().get("a").get("gone").set("b", 2).exists("a", "b")
    assert p.execute() == [True, b"1", True, None, None, True, 1]
    assert r.get("b") == b"2" and r.exists("a", "gone") == 0
    # A command that reads the whole keyspace: the writes are proposed one by one, and the
    # replies are the same.
    p = r.pipeline()
    p.set("c", 3).dbsize().incr("c").keys("*")
    got = p.execute()
    assert got[:3] == [True, 2, 4] and sorted(got[3]) == [b"b", b"c"]


def test_a_failing_write_has_its_error_in_exec_s_array(server):
    c = raw(server)
    c.set("s", "x")
    c.execute_command("MULTI")
    c.execute_command("INCR", "s")
    got = c.execute_command("EXEC")
    assert isinstance(got, list) and len(got) == 1, got
    assert isinstance(got[0], redis.ResponseError) and "not an integer" in str(got[0])
    c.execute_command("MULTI")
    c.execute_command("SET", "k", "v")
    c.execute_command("MIGRATE", "127.0.0.1", 1, "k", 0, 1000)
    got = c.execute_command("EXEC")
    assert got[0] == b"OK" and str(got[1]) == "MIGRATE cannot run inside a transaction", got
    assert c.get("k") == b"v"
