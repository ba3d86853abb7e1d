#!/usr/bin/env python3
"""Benchmark: what Prometheus metrics cost. The tensor benchmark's rows (AI.TENSORSET and
AI.TENSORGET of 64 B and 16 KiB UINT8 BLOBs, pipelines 1 and 16, redis-benchmark with 50
clients) against two shardai nodes of the same binary in one run: one with --metrics-port,
scraped every second while it runs (Prometheus's default is every 15 s), one without. The
runs alternate between the two; the table shows the median requests/s of each and the
on/off ratio, and the time one scrape takes.

Usage: .venv/bin/python tests/bench/metrics_overhead.py [--quick] [--reps N] [--only 64:16:SET] [--shardai PATH]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(__file__))
from tensor_vs_redis import ROOT, bench, free_port, start_shardai, stop  # noqa: E402


def scraper(port, stop_flag, times, failures):
    """GETs /metrics every second until `stop_flag` is set, recording each scrape's time."""
    while not stop_flag.is_set():
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                r.read()
            times.append(time.perf_counter() - t)
        except OSError as e:
            failures.append(str(e))
        stop_flag.wait(1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardai", default=os.path.join(ROOT, "target", "release", "shardai"))
    ap.add_argument("--quick", action="store_true", help="fewer requests, one repetition")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="", help="run only rows whose 'SIZE:PIPELINE:OP' contains this, e.g. 64:16:SET")
    a = ap.parse_args()
    reps = 1 if a.quick else a.reps
    scale = 0.2 if a.quick else 1.0
    tmp = tempfile.mkdtemp(prefix="shardai-bench-")
    mport = free_port()
    procs = []
    stop_flag, scrapes, failures = threading.Event(), [], []
    t = threading.Thread(target=scraper, args=(mport, stop_flag, scrapes, failures), daemon=True)
    ratios = []
    try:
        on_port, on_proc = start_shardai(a.shardai, tmp, ["--metrics-port", str(mport)], "on")
        procs.append(on_proc)
        off_port, off_proc = start_shardai(a.shardai, tmp, [], "off")
        procs.append(off_proc)
        t.start()
        print(f"shardai {a.shardai}: --metrics-port (scraped every 1 s) vs none; 50 clients; "
              f"median of {reps} alternating runs; {os.cpu_count()} cores")
        for size, label, n in [(64, "64 B", 200_000), (16 * 1024, "16 KiB", 60_000)]:
            data = os.path.join(tmp, f"blob{size}")
            with open(data, "wb") as f:
                # redis-benchmark -x stops at the first NUL byte: use bytes 1..255.
                f.write(bytes(b % 255 + 1 for b in os.urandom(size)))
            with open(data, "rb") as f:
                blob = f.read()
            for port in (on_port, off_port):
                redis.Redis(port=port).execute_command("AI.TENSORSET", "bench:get", "UINT8",
                                                       size, "BLOB", blob)
            n = max(500, int(n * scale))
            for pipeline in (1, 16):
                for op in ("SET", "GET"):
                    if a.only and a.only not in f"{size}:{pipeline}:{op}":
                        continue
                    if op == "SET":
                        args, df = (["AI.TENSORSET", "bench:set", "UINT8", str(size), "BLOB"], data)
                    else:
                        args, df = (["AI.TENSORGET", "bench:get", "BLOB"], None)
                    requests = n * (pipeline if size < 16384 else 2)
                    on, off = [], []
                    for rep in range(reps):
                        # Alternating which goes first, so neither always runs second.
                        for which in ((on, on_port), (off, off_port))[::1 if rep % 2 == 0 else -1]:
                            which[0].append(bench(which[1], args, df, requests, pipeline)[0])
                    on_rps, off_rps = statistics.median(on), statistics.median(off)
                    ratios.append(on_rps / off_rps)
                    print(f"  AI.TENSOR{op:3} {label:>7} P={pipeline:<3} metrics on {on_rps:>11,.0f}/s  "
                          f"off {off_rps:>11,.0f}/s  on/off {on_rps / off_rps:5.3f}", flush=True)
        calls = redis.Redis(port=on_port).info("stats")["total_commands_processed"]
        print(f"geometric mean on/off: {statistics.geometric_mean(ratios):.3f}; "
              f"{len(scrapes)} scrapes ({len(failures)} failed), median "
              f"{statistics.median(scrapes or [0]) * 1000:.2f} ms, max "
              f"{max(scrapes or [0]) * 1000:.2f} ms; {calls:,} commands on the scraped node")
    finally:
        stop_flag.set()
        if t.is_alive():
            t.join(5)
        for p in procs:
            stop(p)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
