#!/usr/bin/env python3
"""Benchmark: reads on a shard's leader with `--raft-read-policy read-index` (the default: a
heartbeat round to a majority confirms the leadership for the reads that arrived before it)
against `--raft-read-policy lease` (served locally while the lease holds), in one run.

Two 3-replica shards on this machine, one per policy; one INT64 scalar tensor; redis-benchmark
sends AI.TENSORGET ... VALUES to each leader with 1 client (the latency one read adds) and
with 50 clients (throughput), the two shards alternating for --reps repetitions; medians
of requests/s, p50 and p99 are printed with the ratio read-index / lease.

Usage: .venv/bin/python tests/bench/read_policy_bench.py [--quick] [--reps N]
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))

from shardcluster import Cluster  # noqa: E402
from tensor_vs_redis import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests, one repetition")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    reps = 1 if a.quick else a.reps
    requests = {1: 5_000 if a.quick else 20_000, 50: 50_000 if a.quick else 200_000}
    shards = {}
    try:
        for policy in ("read-index", "lease"):
            c = Cluster(3, extra=["--raft-read-policy", policy])
            shards[policy] = c
            leader = c.leader()
            leader.client().execute_command("AI.TENSORSET", "t", "INT64", 1, "VALUES", 7)
        results = {}
        for clients in (1, 50):
            for _ in range(reps):
                for policy, c in shards.items():
                    leader = c.leader()
                    r = bench(leader.port, ["AI.TENSORGET", "t", "VALUES"], None,
                              requests[clients], 1, clients=clients)
                    results.setdefault((clients, policy), []).append(r)
        print("| clients | read-index req/s (p50 / p99 ms) | lease req/s (p50 / p99 ms) "
              "| ratio |")
        print("|---|---|---|---|")
        for clients in (1, 50):
            med = {}
            for policy in shards:
                rows = results[(clients, policy)]
                med[policy] = tuple(statistics.median(r[i] for r in rows) for i in range(3))
            ri, le = med["read-index"], med["lease"]
            print(f"| {clients} | {ri[0]:,.0f} ({ri[1]:.3f} / {ri[2]:.3f}) "
                  f"| {le[0]:,.0f} ({le[1]:.3f} / {le[2]:.3f}) | {ri[0] / le[0]:.2f} |")
    finally:
        for c in shards.values():
            c.close()


if __name__ == "__main__":
    main()
