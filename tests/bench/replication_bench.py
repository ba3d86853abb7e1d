#!/usr/bin/env python3
"""Benchmark: replicated AI.TENSORSET on a 3-replica shardai shard against Debian's
redis-server with `appendonly yes` and `appendfsync always`, and failover time.

--replicas 1 runs one durable node instead (a one-node cluster: every acknowledgement means
its Raft log was fsync'd), without the failover rounds.

Throughput: redis-benchmark, 50 clients, UINT8 BLOBs of 64 B and 16 KiB, random keys, sent to
the shard's leader (every acknowledgement means: on a majority of three replicas and
fsync'd) and to redis-server (SET of the same payload; acknowledged after its AOF fsync).
The two alternate for --reps repetitions; medians of requests/s, p50 and p99 are printed.
Before and after each run the benchmark waits until the disk has been quiet for half a second,
so that what one server still writes (a snapshot, an AOF rewrite) does not slow the other's run.

Failover: --kills times, a writer (following MOVED) writes continuously; the leader is
killed with SIGKILL; the time from the kill to the first write acknowledged by another node
is recorded; the killed node restarts and catches up before the next round.

--sweep 1,4,16,50 adds 64 B writes at those client counts (one run each, alternating): with
one client it shows the latency of one replicated, fsync'd write against one AOF fsync.

--baseline PATH compares cluster bus security instead, in one run: the same writes on four
3-replica shards at once, alternating, the baseline binary's (an earlier build, its bus as it
was) and this build's with the bus secret, with mutual TLS, and with both; medians of
requests/s and of the CPU the three replicas spent per write, each with its ratio to the
baseline's (no redis-server, no failover). On a small shared machine the CPU per write is
the steadier of the two.

Usage: .venv/bin/python tests/bench/replication_bench.py [--quick] [--shardai PATH] [--sweep N,..]
                                                          [--replicas 1]
       .venv/bin/python tests/bench/replication_bench.py --baseline target/release/shardai-base
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))

from shardcluster import BUS_SECRET, Client, Cluster, make_ca, make_cert, tls_args  # noqa: E402
from tensor_vs_redis import bench, start_redis, stop  # noqa: E402


def start_redis_aof(tmp):
    return start_redis(tmp, "--appendonly", "yes", "--appendfsync", "always")


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy():
    """(busy, total) jiffies of the whole machine so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


# The block device the servers write to (see `settle`): set from the benchmark's folder.
DISK = None


def sectors_written():
    """Sectors written so far to DISK (to every block device when it is not found)."""
    with open("/proc/diskstats") as f:
        rows = [line.split() for line in f if len(line.split()) > 9]
    mine = [r for r in rows if DISK is not None and (int(r[0]), int(r[1])) == DISK]
    return sum(int(r[9]) for r in (mine or rows))


def settle(quiet=0.5, longest=20.0):
    """Waits until the disk has not been written for `quiet` seconds (at most `longest`):
    what a server still writes after its run (a snapshot, an AOF rewrite) is then done, and
    the next run, of the other server, does not share the disk with it."""
    end = time.monotonic() + longest
    last, since = sectors_written(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() >= end:
            print(f"  (the disk was still being written after {longest:.0f} s: the next run "
                  "may share it)", flush=True)
            return
        time.sleep(0.05)
        now = sectors_written()
        if now != last:
            last, since = now, time.monotonic()


def measured(run, pids, n):
    """Runs `run()`, returning its result, CPU µs per request of each pid, machine busy %
    during the run. Each pid's CPU is counted until the disk is quiet again (see `settle`),
    so the work a run leaves behind counts against it."""
    settle()
    c0 = {p: cpu_seconds(p) for p in pids}
    b0 = machine_busy()
    out = run()
    b1 = machine_busy()
    settle()
    us = {p: (cpu_seconds(p) - c0[p]) / n * 1e6 for p in pids}
    busy = 100 * (b1[0] - b0[0]) / max(1, b1[1] - b0[1])
    return out, us, busy


def sweep(cluster, r_port, tmp, counts):
    data = os.path.join(tmp, "blob64")
    with open(data, "wb") as f:
        f.write(b"a" * 64)
    lines = []
    for c in counts:
        n = 2000 * min(c, 10)
        s = bench(cluster.leader().port, ["-r", "1000000", "AI.TENSORSET", "k:__rand_int__", "UINT8",
                                          "64", "BLOB"], data, n, 1, clients=c)
        r = bench(r_port, ["-r", "1000000", "SET", "k:__rand_int__"], data, n, 1, clients=c)
        lines.append(f"  {c:>3} clients: shardai {s[0]:>8,.0f}/s p50 {s[1]:.3f} ms | redis AOF always "
                     f"{r[0]:>8,.0f}/s p50 {r[1]:.3f} ms | ratio {s[0] / r[0]:.2f}")
        print(lines[-1], flush=True)
    return lines


def failover_times(cluster, kills):
    times = []
    for k in range(kills):
        old = cluster.leader()
        for f in cluster.followers():
            cluster.wait_caught_up(f)
        acks = []
        stop_flag = threading.Event()

        def writer():
            c = Client(cluster.nodes, patience=60)
            i = 0
            while not stop_flag.is_set():
                c.execute("AI.TENSORSET", f"fo:{k}:{i}", "UINT8", 4, "BLOB", b"abcd")
                acks.append((time.monotonic(), c.port))
                i += 1
            c.close()

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        old.kill()
        deadline = killed_at + 30
        first = None
        while time.monotonic() < deadline and first is None:
            for at, port in list(acks):
                if at > killed_at and port != old.port:
                    first = at
                    break
            time.sleep(0.005)
        stop_flag.set()
        t.join(60)
        if first is None:
            raise RuntimeError("no write was acknowledged within 30 s of the kill")
        times.append(first - killed_at)
        print(f"  kill {k + 1}: first acknowledged write on the new leader after "
              f"{times[-1] * 1000:.0f} ms", flush=True)
        old.start()
        cluster.wait_caught_up(old)
    return times


def compare_bus(baseline, tmp, reps, scale):
    """Throughput of the baseline's shard against this build's with each bus security."""
    certs = os.path.join(tmp, "certs")
    os.makedirs(certs)
    make_ca(certs, "ca")
    for i in range(3):
        make_cert(certs, f"node-{i}", "ca")
    variants = [
        ("baseline", baseline, lambda i: []),
        ("secret", None, lambda i: list(BUS_SECRET)),
        ("mTLS", None, lambda i: tls_args(certs, f"node-{i}")),
        ("mTLS + secret", None, lambda i: tls_args(certs, f"node-{i}") + list(BUS_SECRET)),
    ]
    clusters = []
    try:
        for label, b, bus in variants:
            clusters.append((label, Cluster(3, extra=["--log", "warn"], bus=bus, bin=b)))
        print(f"cluster bus security: 3-replica shards, 50 clients, median of {reps} alternating "
              f"runs; {os.cpu_count()} cores; baseline {baseline}")
        rows = []
        for size, label, n in ((64, "64 B", 40_000), (16 * 1024, "16 KiB", 10_000)):
            data = os.path.join(tmp, f"blob{size}")
            with open(data, "wb") as f:
                f.write(bytes(b % 255 + 1 for b in os.urandom(size)))
            n = max(1000, int(n * scale))
            runs = {v: [] for v, _ in clusters}
            cpu = {v: [] for v, _ in clusters}
            for _ in range(reps):
                for v, c in clusters:
                    lead = c.leader()
                    pids = [x.proc.pid for x in c.nodes]
                    out, us, _ = measured(lambda: bench(
                        lead.port, ["-r", "1000000", "AI.TENSORSET", "k:__rand_int__", "UINT8",
                                    str(size), "BLOB"], data, n, 1), pids, n)
                    runs[v].append(out)
                    cpu[v].append(sum(us.values()))
            base = statistics.median(x[0] for x in runs["baseline"])
            base_cpu = statistics.median(cpu["baseline"])
            for v, _ in clusters:
                m = [statistics.median(x[i] for x in runs[v]) for i in range(3)]
                u = statistics.median(cpu[v])
                rows.append((label, v, m, m[0] / base, u, u / base_cpu))
                print(f"  {label:>7} {v:>14}: {m[0]:>9,.0f}/s p50 {m[1]:.2f} p99 {m[2]:.2f} ms "
                      f"| vs baseline {m[0] / base:.2f} | CPU per write (3 replicas) {u:.0f} µs, "
                      f"vs baseline {u / base_cpu:.2f} | runs "
                      + ", ".join(f"{x[0]:,.0f}" for x in runs[v]), flush=True)
    finally:
        for _, c in clusters:
            c.close()
    print()
    print("| payload | bus | req/s | p50 / p99 ms | vs baseline | CPU µs per write | vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for label, v, m, ratio, u, u_ratio in rows:
        print(f"| {label} | {v} | {m[0]:,.0f} | {m[1]:.2f} / {m[2]:.2f} | {ratio:.2f} | {u:.0f} "
              f"| {u_ratio:.2f} |")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shardai", help="shardai binary (default target/release/shardai)")
    ap.add_argument("--quick", action="store_true", help="fewer requests, one repetition, 3 kills")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--sweep", help="client counts for 64 B writes, e.g. 1,4,16,50")
    ap.add_argument("--replicas", type=int, choices=(1, 3), default=3,
                    help="nodes in the shard: 3 (default) or 1 (one durable node, no failover)")
    ap.add_argument("--baseline", help="an earlier shardai binary: compare bus security instead")
    a = ap.parse_args()
    if a.shardai:
        os.environ["SHARDAI_BIN"] = a.shardai
    reps = 1 if a.quick else a.reps
    kills = 0 if a.replicas == 1 else 3 if a.quick else a.kills
    scale = 0.25 if a.quick else 1.0

    tmp = tempfile.mkdtemp(prefix="shardai-repl-bench-")
    global DISK
    dev = os.stat(tmp).st_dev
    DISK = (os.major(dev), os.minor(dev))
    if a.baseline:
        try:
            return compare_bus(a.baseline, tmp, reps, scale)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    cluster = Cluster(a.replicas, extra=["--log", "warn"])
    r_port, r_proc = start_redis_aof(tmp)
    version = redis.Redis(port=r_port).info("server")["redis_version"]
    shape = "one durable shardai node" if a.replicas == 1 else "3-replica shardai shard"
    print(f"{shape} vs redis-server {version} (appendonly yes, appendfsync always); "
          f"50 clients; median of {reps} alternating runs; {os.cpu_count()} cores")
    rows, cpu_lines = [], []
    try:
        for size, label, n in ((64, "64 B", 40_000), (16 * 1024, "16 KiB", 10_000)):
            data = os.path.join(tmp, f"blob{size}")
            with open(data, "wb") as f:
                f.write(bytes(b % 255 + 1 for b in os.urandom(size)))
            n = max(1000, int(n * scale))
            s_runs, r_runs, cpu_rows = [], [], []
            for _ in range(reps):
                lead = cluster.leader()
                pids = [lead.proc.pid] + [f.proc.pid for f in cluster.followers()]
                out, us, s_busy = measured(lambda: bench(
                    lead.port, ["-r", "1000000", "AI.TENSORSET", "k:__rand_int__", "UINT8", str(size),
                                "BLOB"], data, n, 1), pids, n)
                s_runs.append(out)
                out, r_us, r_busy = measured(lambda: bench(
                    r_port, ["-r", "1000000", "SET", "k:__rand_int__"], data, n, 1), [r_proc.pid], n)
                r_runs.append(out)
                cpu_rows.append(([us[p] for p in pids], s_busy, r_us[r_proc.pid], r_busy))
            s = [statistics.median(x[i] for x in s_runs) for i in range(3)]
            r = [statistics.median(x[i] for x in r_runs) for i in range(3)]
            rows.append((label, s, r))
            print(f"  {label:>7}: shardai {s[0]:>9,.0f}/s p50 {s[1]:.2f} p99 {s[2]:.2f} ms | "
                  f"redis AOF always {r[0]:>9,.0f}/s p50 {r[1]:.2f} p99 {r[2]:.2f} ms | "
                  f"ratio {s[0] / r[0]:.2f}", flush=True)
            # Where the cores went: on a small machine the three replicas and the load generator
            # share them, and the comparison is bound by CPU rather than by fsync latency.
            med = lambda xs: statistics.median(xs)  # noqa: E731
            lead_us = med(x[0][0] for x in cpu_rows)
            fol_us = [med(x[0][i] for x in cpu_rows) for i in range(1, len(cpu_rows[0][0]))]
            fol = (" + followers " + " + ".join(f"{u:.0f}" for u in fol_us)
                   + f" = {lead_us + sum(fol_us):.0f} µs") if fol_us else ""
            cpu_lines.append(
                f"  {label:>7}: CPU per write: shardai leader {lead_us:.0f} µs{fol}"
                + f" (machine {med(x[1] for x in cpu_rows):.0f}% busy)"
                f" | redis-server {med(x[2] for x in cpu_rows):.0f} µs (machine "
                f"{med(x[3] for x in cpu_rows):.0f}% busy, the rest is redis-benchmark)")
        sweep_lines = sweep(cluster, r_port, tmp, [int(c) for c in a.sweep.split(",")]) if a.sweep else []
        stop(r_proc)
        times = failover_times(cluster, kills)
    finally:
        stop(r_proc)
        cluster.close()

    print()
    print("| payload | shardai req/s | p50 / p99 ms | redis (AOF always) req/s | p50 / p99 ms | ratio |")
    print("|---|---|---|---|---|---|")
    for label, s, r in rows:
        print(f"| {label} | {s[0]:,.0f} | {s[1]:.2f} / {s[2]:.2f} | {r[0]:,.0f} | {r[1]:.2f} / {r[2]:.2f} "
              f"| {s[0] / r[0]:.2f} |")
    print(f"\nCPU ({os.cpu_count()} cores; medians):")
    print("\n".join(cpu_lines))
    if sweep_lines:
        print("\n64 B writes by number of clients:")
        print("\n".join(sweep_lines))
    if not times:
        return 0
    ms = sorted(t * 1000 for t in times)
    print(f"\nfailover (kill -9 of the leader to first acknowledged write), {len(ms)} kills: "
          f"p50 {statistics.median(ms):.0f} ms, min {ms[0]:.0f}, max {ms[-1]:.0f}; all: "
          + ", ".join(f"{x:.0f}" for x in ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
