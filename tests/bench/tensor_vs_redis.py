#!/usr/bin/env python3
"""Benchmark: shardai's AI.TENSORSET / AI.TENSORGET against Debian's redis-server SET / GET.

Both servers run on loopback in the same run, each keeping its data as it does by default
for shardai: shardai's default node logs every write to --dir (appendfsync everysec), and
redis-server runs with `appendonly yes` and `appendfsync everysec` (`--redis-memory-only`:
redis-server with no persistence at all, as Debian's package starts it with saving off). For each payload (UINT8 BLOBs of 64 B, 16 KiB
and 1 MiB), each pipeline depth (1 and 16) and each operation, redis-benchmark (50 clients)
alternates between the servers for three repetitions; the table shows the median
requests/s of each and the shardai/redis ratio. Then both servers store 1 GiB as 1024 values of
1 MiB and the peak RSS of each is printed.

With `--baseline PATH`, a second shardai binary (an earlier build, kept in target/release/ so
that it finds libtorch) runs in the same alternation, and each row also shows the new build's throughput relative to it.

Usage: .venv/bin/python tests/bench/tensor_vs_redis.py [--quick] [--shardai PATH] [--baseline PATH]
"""
import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc):
    for _ in range(500):
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited")
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError(f"server on {port} did not start")


def start_shardai(binary, tmp, extra, name="shardai"):
    port = free_port()
    d = os.path.join(tmp, name)
    proc = subprocess.Popen([binary, "--port", str(port), "--dir", d, "--log", "warn", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return port, proc


def start_redis(tmp, *options, name="redis"):
    """Debian's redis-server on a free port with its files under `tmp`; `options` (e.g.
    "--appendonly", "yes") replace the default of no persistence."""
    port = free_port()
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                             "--save", "", *(options or ("--appendonly", "no")),
                             "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return port, proc


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def bench(port, args, data_file, requests, pipeline, clients=50):
    cmd = ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests), "-P", str(pipeline),
           "--csv"]
    if data_file:
        cmd += ["-x"]
    cmd += args
    with open(data_file, "rb") if data_file else open(os.devnull, "rb") as stdin:
        out = subprocess.run(cmd, stdin=stdin, capture_output=True, check=True, text=True).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    return float(rows[-1]["rps"]), float(rows[-1]["p50_latency_ms"]), float(rows[-1]["p99_latency_ms"])


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardai", default=os.path.join(ROOT, "target", "release", "shardai"))
    ap.add_argument("--baseline", help="an earlier shardai binary to compare with, in the same run")
    ap.add_argument("--quick", action="store_true", help="fewer requests, one repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="run only rows whose 'SIZE:PIPELINE:OP' contains this, e.g. 64:16:SET")
    ap.add_argument("--no-memory", action="store_true", help="skip the 1 GiB memory measurement")
    ap.add_argument("--shardai-arg", action="append", default=[], help="extra shardai argument (repeatable)")
    ap.add_argument("--redis-memory-only", action="store_true",
                    help="run redis-server without its append-only file")
    a = ap.parse_args()
    redis_opts = () if a.redis_memory_only else ("--appendonly", "yes", "--appendfsync", "everysec")
    reps = 1 if a.quick else a.reps
    scale = 0.2 if a.quick else 1.0

    tmp = tempfile.mkdtemp(prefix="shardai-bench-")
    s_port, s_proc = start_shardai(a.shardai, tmp, a.shardai_arg)
    r_port, r_proc = start_redis(tmp, *redis_opts)
    b_port, b_proc = None, None
    sizes = [(64, "64 B", 200_000), (16 * 1024, "16 KiB", 60_000), (1 << 20, "1 MiB", 2_000)]
    rows = []
    try:
        if a.baseline:
            b_port, b_proc = start_shardai(a.baseline, tmp, a.shardai_arg, "baseline")
        redis_version = redis.Redis(port=r_port).info("server")["redis_version"]
        print(f"shardai {a.shardai} {' '.join(a.shardai_arg)} vs redis-server {redis_version} "
              f"({' '.join(redis_opts) or 'no persistence'})"
              + (f" and baseline {a.baseline}" if a.baseline else "")
              + f"; 50 clients; median of {reps} alternating runs; {os.cpu_count()} cores")
        for size, label, n in sizes:
            data = os.path.join(tmp, f"blob{size}")
            with open(data, "wb") as f:
                # redis-benchmark -x stops at the first NUL byte: use bytes 1..255.
                f.write(bytes(b % 255 + 1 for b in os.urandom(size)))
            n = max(500, int(n * scale))
            # Seed the keys the GET / TENSORGET rows read.
            with open(data, "rb") as f:
                blob = f.read()
            redis.Redis(port=s_port).execute_command("AI.TENSORSET", "bench:get", "UINT8", size, "BLOB", blob)
            redis.Redis(port=r_port).set("bench:get", blob)
            if b_port:
                redis.Redis(port=b_port).execute_command("AI.TENSORSET", "bench:get", "UINT8", size, "BLOB", blob)
            for pipeline in (1, 16):
                for op in ("SET", "GET"):
                    if a.only and a.only not in f"{size}:{pipeline}:{op}":
                        continue
                    if op == "SET":
                        s_args, r_args, df = (["AI.TENSORSET", "bench:set", "UINT8", str(size), "BLOB"],
                                              ["SET", "bench:set"], data)
                    else:
                        s_args, r_args, df = (["AI.TENSORGET", "bench:get", "BLOB"], ["GET", "bench:get"], None)
                    requests = n * (pipeline if size < 16384 else 2)
                    s_runs, r_runs, b_runs = [], [], []
                    for _ in range(reps):
                        s_runs.append(bench(s_port, s_args, df, requests, pipeline))
                        r_runs.append(bench(r_port, r_args, df, requests, pipeline))
                        if b_port:
                            b_runs.append(bench(b_port, s_args, df, requests, pipeline))
                    b_rps = statistics.median(x[0] for x in b_runs) if b_runs else None
                    s_rps = statistics.median(x[0] for x in s_runs)
                    r_rps = statistics.median(x[0] for x in r_runs)
                    s_p99 = statistics.median(x[2] for x in s_runs)
                    r_p99 = statistics.median(x[2] for x in r_runs)
                    name = f"AI.TENSOR{op} vs {op}"
                    rows.append((name, label, pipeline, s_rps, r_rps, s_p99, r_p99, b_rps))
                    vs_base = f"  baseline {b_rps:>11,.0f}/s  new/baseline {s_rps / b_rps:5.2f}" if b_rps else ""
                    print(f"  {name:24} {label:>7} P={pipeline:<3} shardai {s_rps:>11,.0f}/s  redis {r_rps:>11,.0f}/s  "
                          f"ratio {s_rps / r_rps:5.2f}  (p99 {s_p99:.2f} / {r_p99:.2f} ms){vs_base}", flush=True)

        # Memory: 1 GiB as 1024 values of 1 MiB, each server freshly started so that the
        # peak is that of storing the data, not of the throughput runs above.
        stop(s_proc)
        stop(r_proc)
        if b_proc:
            stop(b_proc)
        s_port, s_proc = start_shardai(a.shardai, tmp, a.shardai_arg, "shardai-memory")
        r_port, r_proc = start_redis(tmp, *redis_opts, name="redis-memory")
        if a.baseline:
            b_port, b_proc = start_shardai(a.baseline, tmp, a.shardai_arg, "baseline-memory")
        blob = os.urandom(1 << 20)
        tensorset = lambda c, k: c.execute_command("AI.TENSORSET", k, "UINT8", len(blob), "BLOB", blob)  # noqa: E731
        servers = [("shardai", s_port, s_proc, tensorset), ("redis", r_port, r_proc, lambda c, k: c.set(k, blob))]
        if a.baseline:
            servers.append(("baseline", b_port, b_proc, tensorset))
        idle = {}
        for name, port, proc, store in servers:
            if a.no_memory:
                break
            c = redis.Redis(port=port)
            idle[name] = rss_mb(proc.pid)
            p = c.pipeline(transaction=False)
            for i in range(1024):
                store(p, f"mem:{i}")
                if i % 16 == 15:
                    p.execute()
            p.execute()
            assert c.dbsize() == 1024
            time.sleep(0.5)
            print(f"  idle before storing: {name:8} RSS {idle[name]:7.0f} MB")
            print(f"  1 GiB as 1024 x 1 MiB: {name:8} RSS {rss_mb(proc.pid):7.0f} MB, peak RSS "
                  f"{peak_rss_mb(proc.pid):7.0f} MB (target for shardai <= {1024 * 1.05 + 50:.0f} MB)")
    finally:
        stop(s_proc)
        stop(r_proc)
        if b_proc:
            stop(b_proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    base = a.baseline is not None
    print("| command | payload | pipeline | shardai req/s | redis req/s | ratio |"
          + (" baseline req/s | new/baseline |" if base else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if base else ""))
    for name, label, pipeline, s, r, _, _, b in rows:
        print(f"| {name} | {label} | {pipeline} | {s:,.0f} | {r:,.0f} | {s / r:.2f} |"
              + (f" {b:,.0f} | {s / b:.2f} |" if base else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
