#!/usr/bin/env python3
"""Benchmark: CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT on a large keyspace, the commands
`redis-cli --cluster reshard` (and `shardai cluster reshard`) send once per slot moved.

Loads --keys random keys (64 B UINT8 tensors on shardai, 64 B strings on redis-server) into a
one-node shardai cluster and into Debian's redis-server with `cluster-enabled yes` owning all
slots, then times --slots calls of each command, one slot after another, on both, in one run.
Prints calls/s and the ratio (shardai / redis-server).

Usage: .venv/bin/python tests/bench/slot_keys_bench.py [--keys N] [--slots N]
"""
import argparse
import os
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))

from shardcluster import Cluster  # noqa: E402
from tensor_vs_redis import start_redis, stop  # noqa: E402


def start_redis_cluster(tmp):
    port, proc = start_redis(tmp, "--appendonly", "no", "--cluster-enabled", "yes")
    r = redis.Redis(port=port)
    r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    deadline = time.time() + 20
    while r.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") < 0:
        if time.time() > deadline:
            raise RuntimeError("redis-server cluster did not become ok")
        time.sleep(0.1)
    return port, proc


def load(port, args, data, keys):
    """Writes `keys` distinct keys k:0 .. k:keys-1 (pipelined)."""
    r = redis.Redis(port=port, socket_timeout=60)
    step = 1000
    for base in range(0, keys, step):
        p = r.pipeline(transaction=False)
        for i in range(base, min(keys, base + step)):
            p.execute_command(*args(f"k:{i}", data))
        p.execute()
    return r


def timed(r, sub, slots, extra=()):
    t = time.perf_counter()
    total = 0
    for s in slots:
        got = r.execute_command("CLUSTER", sub, s, *extra)
        total += got if isinstance(got, int) else len(got)
    return len(slots) / (time.perf_counter() - t), total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--slots", type=int, default=300)
    a = ap.parse_args()
    data = b"a" * 64
    slots = list(range(0, 16384, max(1, 16384 // a.slots)))[:a.slots]
    tmp = tempfile.mkdtemp(prefix="slot-keys-")
    rport, rproc = start_redis_cluster(tmp)
    c = Cluster(1, extra=["--log", "warn"])
    try:
        s = load(c.nodes[0].port, lambda k, d: ("AI.TENSORSET", k, "UINT8", 64, "BLOB", d), data, a.keys)
        r = load(rport, lambda k, d: ("SET", k, d), data, a.keys)
        print(f"{a.keys} keys, {len(slots)} slots")
        for sub, extra in [("COUNTKEYSINSLOT", ()), ("GETKEYSINSLOT", (100,))]:
            ss, st = timed(s, sub, slots, extra)
            rs, rt = timed(r, sub, slots, extra)
            assert st == rt, f"{sub}: shardai found {st} keys, redis-server {rt}"
            print(f"{sub:16} shardai {ss:9.0f} calls/s | redis-server {rs:9.0f} calls/s | "
                  f"ratio {ss / rs:.2f} ({st} keys found by both)")
    finally:
        c.close()
        stop(rproc)


if __name__ == "__main__":
    main()
