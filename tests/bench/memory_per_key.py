#!/usr/bin/env python3
"""Benchmark: memory per key. N small values (default 1,000,000 of 64 B) stored in a default
shardai node (AI.TENSORSET UINT8 64 BLOB) and in Debian's redis-server (SET of the same 64
bytes), side by side in one run; keys `k:<i>` in both.

Prints each server's idle RSS (started, nothing stored), its RSS after the N writes (once
it has not moved for 3 s, and at least 15 s after the load, as redis-server's allocator
returns freed pages over seconds), and
the bytes per key beyond the idle process ((after - idle) / N), with the ratio shardai /
redis-server. Each server is loaded through `redis-cli --pipe` from one generated stream,
so the load itself adds no client-side differences.

--strings stores the same bytes in shardai with SET as well, as strings.

Usage: .venv/bin/python tests/bench/memory_per_key.py [--keys N] [--size B] [--shardai PATH]
                                                      [--baseline PATH] [--strings]
With --baseline, an earlier shardai binary (kept beside target/release so it finds its
libraries) is measured in the same run; repeat it to measure several, each named by its
file name.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tensor_vs_redis import ROOT, rss_mb, start_redis, start_shardai, stop  # noqa: E402


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def stream(path, n, size, tensor):
    blob = bytes(i % 251 + 1 for i in range(size))
    with open(path, "wb") as f:
        for i in range(n):
            key = b"k:%d" % i
            if tensor:
                f.write(resp(b"AI.TENSORSET", key, b"UINT8", size, b"BLOB", blob))
            else:
                f.write(resp(b"SET", key, blob))


def rss_bytes(pid):
    return rss_mb(pid) * 1024 * 1024


def settle(pid, at_least=0.0):
    """RSS once it stopped moving for 3 s, and not before `at_least` seconds: redis-server's
    allocator (jemalloc) returns freed pages to the system over about 10 s."""
    t0 = time.monotonic()
    seen = []
    while True:
        seen = (seen + [rss_bytes(pid)])[-7:]
        waited = time.monotonic() - t0
        if waited > 60 or (waited >= at_least and len(seen) == 7
                           and max(seen) - min(seen) < 256 * 1024):
            return seen[-1]
        time.sleep(0.5)


def load(port, path, n):
    with open(path, "rb") as f:
        r = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, capture_output=True,
                           timeout=1200)
    out = r.stdout.decode()
    if r.returncode != 0 or "errors: 0" not in out:
        raise RuntimeError(f"load failed: {out.strip()} {r.stderr.decode().strip()}")
    keys = redis.Redis(port=port).dbsize()
    if keys != n:
        raise RuntimeError(f"{keys} keys after loading {n}")


def measure(name, port, pid, path, n):
    idle = settle(pid)
    t0 = time.monotonic()
    load(port, path, n)
    secs = time.monotonic() - t0
    after = settle(pid, at_least=15)
    per = (after - idle) / n
    print(f"  {name:>10}: idle RSS {idle / 2**20:7.1f} MB, after {n:,} keys {after / 2**20:7.1f} MB, "
          f"{per:6.0f} bytes per key (loaded in {secs:.1f} s)", flush=True)
    return idle, after, per


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--shardai", default=os.path.join(ROOT, "target", "release", "shardai"))
    ap.add_argument("--baseline", action="append", default=[],
                    help="an earlier shardai binary, measured in the same run (repeatable)")
    ap.add_argument("--strings", action="store_true",
                    help="store SET strings in shardai instead of AI.TENSORSET tensors")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shardai-mem-bench-")
    rows = []
    try:
        ts, ss = os.path.join(tmp, "tensorset.resp"), os.path.join(tmp, "set.resp")
        stream(ts, a.keys, a.size, True)
        stream(ss, a.keys, a.size, False)
        what = "strings" if a.strings else "tensors"
        print(f"{a.keys:,} keys of {a.size} B (shardai: {what}); RSS from /proc; {os.cpu_count()} cores")
        runs = [("redis", None, ss)]
        mine = ss if a.strings else ts
        for i, b in enumerate(a.baseline):
            # Each server's name is also its data folder: never two alike.
            name = f"{os.path.basename(b)}-{i + 1}" if len(a.baseline) > 1 else "baseline"
            runs.append((name, b, mine))
        runs.append(("shardai", a.shardai, mine))
        for name, binary, path in runs:
            if binary is None:
                port, proc = start_redis(tmp, name="redis")
            else:
                port, proc = start_shardai(binary, tmp, [], name=name)
            try:
                rows.append((name, *measure(name, port, proc.pid, path, a.keys)))
            finally:
                stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    redis_per = rows[0][3]
    print()
    print("| server | idle RSS MB | RSS after MB | bytes per key | vs redis-server |")
    print("|---|---|---|---|---|")
    for name, idle, after, per in rows:
        print(f"| {name} | {idle / 2**20:.1f} | {after / 2**20:.1f} | {per:.0f} | {per / redis_per:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
