#!/usr/bin/env python3
"""Benchmark: redis-benchmark's default tests (those of the types shardai has: not sets or
sorted sets) against a shardai node with `--appendfsync always` (every write fsync'd in its
log before its reply) and Debian's redis-server with `appendonly yes, appendfsync always`
(the same durability) and without persistence, side by side in one run, in turns, `--reps` times. Prints requests/s per test
(median of the reps) and the ratio shardai / redis-server AOF always.

With --pipeline P, each client sends P requests at a time (redis-benchmark -P). With
--baseline, an earlier shardai binary (kept beside target/release so it finds its libraries)
is measured in the same run, and the ratio shardai / baseline is printed too.

Usage: .venv/bin/python tests/bench/redis_benchmark_defaults.py [--requests N]
           [--clients C] [--reps R] [--pipeline P] [--tests set,get,...] [--baseline BIN]
"""
import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tensor_vs_redis import ROOT, start_redis, start_shardai, stop  # noqa: E402

TESTS = ("ping_inline,ping_mbulk,set,get,incr,lpush,rpush,lpop,rpop,hset,lrange_100,lrange_300,"
         "lrange_500,lrange_600,mset")


# shardai at redis-server's `appendfsync always` (a node outside a cluster defaults to everysec).
ALWAYS = ["--appendfsync", "always"]


def run(port, requests, clients, pipeline, tests):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
                          "-P", str(pipeline), "-t", tests, "--csv"],
                         capture_output=True, text=True, check=True)
    if "rror" in out.stdout + out.stderr:
        raise SystemExit(f"redis-benchmark reported an error:\n{out.stdout}{out.stderr}")
    return {r["test"]: float(r["rps"]) for r in csv.DictReader(io.StringIO(out.stdout))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--tests", default=TESTS, help="redis-benchmark -t list")
    ap.add_argument("--shardai", default=os.path.join(ROOT, "target", "release", "shardai"))
    ap.add_argument("--baseline", help="an earlier shardai binary to compare with, in the same run")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rb-defaults-")
    # name: (data folder under tmp, start)
    servers = {
        "shardai": ("shardai", lambda: start_shardai(a.shardai, tmp, ALWAYS)),
        "redis AOF always": ("redis-aof", lambda: start_redis(
            tmp, "--appendonly", "yes", "--appendfsync", "always", name="redis-aof")),
        "redis no persistence": ("redis-plain", lambda: start_redis(tmp, name="redis-plain")),
    }
    if a.baseline:
        servers["baseline"] = ("baseline",
                               lambda: start_shardai(a.baseline, tmp, ALWAYS, name="baseline"))
    results = {name: [] for name in servers}
    try:
        for _ in range(a.reps):
            for name, (folder, start) in servers.items():
                port, proc = start()
                try:
                    results[name].append(run(port, a.requests, a.clients, a.pipeline, a.tests))
                finally:
                    stop(proc)
                shutil.rmtree(os.path.join(tmp, folder), ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {n: {t: statistics.median(r[t] for r in rs) for t in rs[0]} for n, rs in results.items()}
    names = list(servers)
    print(f"redis-benchmark -n {a.requests} -c {a.clients} -P {a.pipeline}, median of {a.reps} "
          "(requests/s)\n")
    extra = " shardai / baseline |" if a.baseline else ""
    print("| test | " + " | ".join(names) + " | shardai / redis AOF always |" + extra)
    print("|---|" + "---|" * (len(names) + 1 + bool(a.baseline)))
    for t in med["shardai"]:
        row = [f"{med[n][t]:,.0f}" for n in names]
        ratio = f" {med['shardai'][t] / med['baseline'][t]:.2f} |" if a.baseline else ""
        print(f"| {t} | " + " | ".join(row) + f" | {med['shardai'][t] / med[names[1]][t]:.2f} |"
              + ratio)


if __name__ == "__main__":
    main()
