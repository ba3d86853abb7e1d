#!/usr/bin/env python3
"""Benchmark: cluster-wide models (names starting with '@') on 3 shards x 3 replicas.

1. Propagation: a generated ONNX MatMul model of --size-mb MB (default 100) stored once
   for the whole cluster (AI.MODELSTORE @big ...): the time from the store's acknowledgement
   until every one of the 9 nodes can run it (each node polled with AI.DAGEXECUTE_RO on a
   READONLY connection, on a tensor of its own shard), next to the same model stored as an
   ordinary key of one shard (AI.MODELSTORE big{tag}) until that shard's 3 replicas can run
   it. p50 (and max) over --reps stores; the model is deleted between stores.
2. Throughput: AI.MODELEXECUTE of linear_iris.onnx from 50 clients spread over the 3
   shards' leaders (redis-benchmark --cluster, a {tag} per shard), with the cluster-wide
   model (@iris) versus the same model copied to every shard by hand under a hash-tagged
   name (iris{tag}); runs alternate for --reps repetitions; medians and the ratio.

On a 2-core machine all nine processes share two cores.

Usage: .venv/bin/python tests/bench/cluster_wide_bench.py [--quick] [--reps N] [--size-mb N]
"""
import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))

from harness import ROOT  # noqa: E402
from redis.crc import key_slot  # noqa: E402
from shardcluster import Cluster  # noqa: E402
from test_models_onnx import matmul_model  # noqa: E402

IRIS = ROOT / "tests" / "models" / "redisai" / "linear_iris.onnx"


def slot_ranges(port):
    """[(start, end, master port, [replica ports])] from CLUSTER SLOTS."""
    return sorted((e[0], e[1], e[2][1], sorted(r[1] for r in e[3:]))
                  for e in redis.Redis(port=port).execute_command("CLUSTER", "SLOTS"))


def tag_in(r):
    n = 0
    while not r[0] <= key_slot(f"t{n}".encode()) <= r[1]:
        n += 1
    return f"t{n}"


def until_runnable(ports_keys, model, store):
    """Polls each (port, input key) with AI.DAGEXECUTE_RO running `model` until it runs
    there, while `store()` stores it and returns when it sent the store and when the store
    was acknowledged. Returns those two times and each node's first successful run."""
    times = {}

    def poll(port, key):
        c = redis.Redis(port=port, single_connection_client=True, socket_timeout=60)
        c.execute_command("READONLY")
        while True:
            try:
                c.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, key, "|>", "AI.MODELEXECUTE",
                                  model, "INPUTS", 1, key, "OUTPUTS", 1, "o", "|>",
                                  "AI.TENSORGET", "o", "META")
                times[port] = time.perf_counter()
                break
            except redis.ResponseError:
                time.sleep(0.02)
        c.close()

    threads = [threading.Thread(target=poll, args=pk) for pk in ports_keys]
    for t in threads:
        t.start()
    sent, acked = store()
    for t in threads:
        t.join()
    return sent, acked, times


def propagation(c, ranges, blob, n, reps):
    tags = [tag_in(r) for r in ranges]
    x = np.ones((1, n), dtype=np.float32).tobytes()
    for (_, _, master, _), tag in zip(ranges, tags):
        redis.Redis(port=master).execute_command("AI.TENSORSET", f"in{{{tag}}}", "FLOAT", 1, n,
                                                 "BLOB", x)
    every = [(p, f"in{{{tag}}}") for r, tag in zip(ranges, tags) for p in [r[2], *r[3]]]
    one = [(p, f"in{{{tags[0]}}}") for p in [ranges[0][2], *ranges[0][3]]]
    seed = redis.Redis(port=ranges[1][2], socket_timeout=600)
    # The shard's leader may change under the load of a 100 MB store on 2 cores: a cluster
    # client follows MOVED.
    from redis.cluster import RedisCluster
    shard0 = RedisCluster(host="127.0.0.1", port=ranges[0][2], socket_timeout=600)
    wide, local = [], []
    for rep in range(reps):
        for name, client, nodes, out in (("@big", seed, every, wide),
                                         (f"big{{{tags[0]}}}", shard0, one, local)):
            def store():
                sent = time.perf_counter()
                client.execute_command("AI.MODELSTORE", name, "ONNX", "CPU", "BLOB", blob)
                return sent, time.perf_counter()
            sent, acked, t = until_runnable(nodes, name, store)
            last = max(t.values())
            out.append((max(0.0, last - acked), last - sent, acked - sent))
            print(f"  rep {rep + 1} {name}: acknowledged after {acked - sent:.2f} s; all "
                  f"{len(t)} nodes run it {last - acked:+.2f} s from the acknowledgement",
                  flush=True)
            client.execute_command("AI.MODELDEL", name)
            time.sleep(1)
    return wide, local


def bench(seed, command, requests):
    cmd = ["redis-benchmark", "--cluster", "-p", str(seed), "-c", "50", "-n", str(requests),
           "--csv", *command]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out[out.index('"test"'):])))
    return float(rows[-1]["rps"]), float(rows[-1]["p50_latency_ms"])


def calls(seed):
    """Model runs so far on the shards' leaders (AI.INFO calls, both names)."""
    total = 0
    for _, _, master, _ in slot_ranges(seed):
        r = redis.Redis(port=master)
        for name in ["@iris", *(k.decode().replace("x{", "iris{", 1) for k in r.keys("x{*}"))]:
            try:
                i = r.execute_command("AI.INFO", name)
            except redis.ResponseError:
                continue
            total += dict(zip(i[::2], i[1::2]))[b"calls"]
    return total


def throughput(seed, reps, requests):
    from redis.cluster import RedisCluster
    # redis-benchmark picks one {tag} per shard: its TENSORSETs show which.
    subprocess.run(["redis-benchmark", "--cluster", "-p", str(seed), "-c", "3", "-n", "30",
                    "AI.TENSORSET", "x{tag}", "FLOAT", "1", "4", "VALUES", "5.0", "3.4", "1.6",
                    "0.4"], capture_output=True, check=True)
    blob = IRIS.read_bytes()
    rc = RedisCluster(host="127.0.0.1", port=seed)
    for _, _, master, _ in slot_ranges(seed):
        for key in redis.Redis(port=master).keys("x{*}"):
            tag = key.decode()[1:]
            rc.execute_command("AI.MODELSTORE", f"iris{tag}", "ONNX", "CPU", "BLOB", blob)
    rc.close()
    redis.Redis(port=seed).execute_command("AI.MODELSTORE", "@iris", "ONNX", "CPU", "BLOB", blob)
    time.sleep(2)
    run = ["AI.MODELEXECUTE", None, "INPUTS", "1", "x{tag}", "OUTPUTS", "1", "y{tag}"]
    res = {"@iris": [], "iris{tag}": []}
    for _ in range(reps):
        for name in res:
            before = calls(seed)
            rps, p50 = bench(seed, [name if a is None else a for a in run], requests)
            # redis-benchmark counts error replies as requests: every one must have run.
            assert calls(seed) - before >= requests, (name, calls(seed) - before)
            res[name].append((rps, p50))
            print(f"  {name}: {rps:,.0f} runs/s, p50 {p50:.3f} ms", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 rep, a 10 MB model, fewer runs")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--part", choices=["all", "propagation", "throughput"], default="all")
    a = ap.parse_args()
    if a.quick:
        a.reps, a.size_mb, a.requests = 1, 10, 3000
    n = int((a.size_mb * 1e6 / 4) ** 0.5)
    blob = matmul_model(n)
    print(f"model: ONNX MatMul {n}x{n}, {len(blob) / 1e6:.1f} MB; {os.cpu_count()} cores")
    c = Cluster(9, replicas=2)
    try:
        ranges = slot_ranges(c.nodes[0].port)
        wide = local = res = None
        if a.part in ("all", "propagation"):
            print("1. propagation")
            wide, local = propagation(c, ranges, blob, n, a.reps)
        if a.part in ("all", "throughput"):
            print("2. throughput")
            res = throughput(c.nodes[0].port, a.reps, a.requests)
    finally:
        c.close()
    if wide:
        report_propagation(blob, wide, local)
    if res:
        report_throughput(res)


def report_propagation(blob, wide, local):
    print()
    print("| store of a %.0f MB model | acknowledged (s, p50) | ack → runnable on every node "
          "(s, p50 / max; 0: already at the ack) | sent → runnable on every node (s, p50) |"
          % (len(blob) / 1e6))
    print("|---|---|---|---|")
    for label, rows in (("cluster-wide (@big), 9 nodes of 3x3", wide),
                        ("one shard's key (big{tag}), its 3 replicas", local)):
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        print(f"| {label} | {med[2]:.2f} | {med[0]:.2f} / {max(r[0] for r in rows):.2f} | "
              f"{med[1]:.2f} |")
    print("ratio cluster-wide / one shard, sent → runnable everywhere: %.2f"
          % (statistics.median(r[1] for r in wide) / statistics.median(r[1] for r in local)))


def report_throughput(res):
    rw = statistics.median(r for r, _ in res["@iris"])
    rl = statistics.median(r for r, _ in res["iris{tag}"])
    print()
    print("| AI.MODELEXECUTE, 50 clients over 3 shards | runs/s (median) | p50 ms (median) |")
    print("|---|---|---|")
    print(f"| cluster-wide @iris | {rw:,.0f} | "
          f"{statistics.median(p for _, p in res['@iris']):.3f} |")
    print(f"| copied per shard iris{{tag}} | {rl:,.0f} | "
          f"{statistics.median(p for _, p in res['iris{tag}']):.3f} |")
    print(f"ratio cluster-wide / copies: {rw / rl:.2f}")


if __name__ == "__main__":
    main()
