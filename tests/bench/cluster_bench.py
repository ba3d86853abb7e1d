#!/usr/bin/env python3
"""Benchmark: how a shardai cluster scales, and how fast it reshards.

1. Writes: AI.TENSORSET of a 64 B UINT8 BLOB, 50 clients (redis-benchmark), on one shard of
   three replicas versus three shards of three replicas (redis-benchmark --cluster, which
   spreads the clients over the shards' leaders with a {tag} per shard). Every
   acknowledgement is on a majority of a shard's replicas and fsync'd.
2. Reads: AI.TENSORGET (64 B BLOB) from 50 clients on the shard's leader alone versus the
   same 50 clients spread over the shard's three replicas with READONLY
   (target/release/read_load).
3. Failover: kill -9 of a shard's leader (--kills times): time to the new leader, and until
   every node's CLUSTER SLOTS names it (the routing change reaching every node).
4. Resharding: --reshard-keys tensors of --reshard-size bytes, then 2,000 slots moved by
   `shardai cluster reshard`; and as many strings of the same size in a Redis 7 cluster
   (three redis-server masters, no replicas, no fsync) moved by `redis-cli --cluster
   reshard`: keys/s, MB/s and slots/s.

The runs alternate for --reps repetitions; medians are printed, with the ratios.
On a 2-core machine all nine processes share two cores: expect the scaling to be flat.

Usage: .venv/bin/python tests/bench/cluster_bench.py [--quick] [--reps N]
"""
import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))

from harness import ROOT  # noqa: E402
from shardcluster import Cluster, cli  # noqa: E402

READ_LOAD = os.path.join(ROOT, "target", "release", "read_load")


def masters(port):
    """[(first slot, master id, port)] from CLUSTER NODES, shardai's or Redis's."""
    out = []
    for ln in redis.Redis(port=port).execute_command("CLUSTER", "NODES").decode().splitlines():
        f = ln.split()
        if "master" in f[2].split(",") and len(f) > 8:
            out.append((int(f[8].split("-")[0]), f[0], int(f[1].split("@")[0].split(":")[1])))
    return sorted(out)


def write_bench(seed_port, cluster_mode, data, requests):
    cmd = ["redis-benchmark", "-p", str(seed_port), "-c", "50", "-n", str(requests), "--csv",
           "-x", "-r", "100000"]
    if cluster_mode:
        cmd.insert(1, "--cluster")
    cmd += ["AI.TENSORSET", "b:{tag}:__rand_int__" if cluster_mode else "b:__rand_int__",
            "UINT8", "64", "BLOB"]
    with open(data, "rb") as stdin:
        out = subprocess.run(cmd, stdin=stdin, capture_output=True, check=True, text=True).stdout
    # --cluster prints the masters before the CSV.
    rows = list(csv.DictReader(io.StringIO(out[out.index('"test"'):])))
    return float(rows[-1]["rps"]), float(rows[-1]["p50_latency_ms"]), float(rows[-1]["p99_latency_ms"])


def read_bench(addrs, readonly, secs):
    cmd = [READ_LOAD, "--addrs", ",".join(addrs), "--clients", "50", "--secs", str(secs),
           "--keys", "1000", "--prefix", "{rb}:"]
    if readonly:
        cmd.append("--readonly")
    cmd += ["--", "AI.TENSORGET", "__key__", "BLOB"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    assert r["errors"] == 0, r
    return r["rps"], r["p50_ms"], r["p99_ms"]


def fill(port, n, size, tensors=True):
    """n keys of `size` bytes: tensors on shardai, strings on Redis."""
    from redis.cluster import RedisCluster
    rc = RedisCluster(host="127.0.0.1", port=port)
    blob = os.urandom(size)
    pipe = rc.pipeline()
    for i in range(n):
        if tensors:
            pipe.execute_command("AI.TENSORSET", f"rs:{i}", "UINT8", size, "BLOB", blob)
        else:
            pipe.set(f"rs:{i}", blob)
        if i % 200 == 199:
            pipe.execute()
            pipe = rc.pipeline()
    pipe.execute()
    rc.close()


def redis7_cluster(tmp):
    from test_cluster import bus_capable_port
    procs, ports = [], []
    for i in range(3):
        d = os.path.join(tmp, f"redis7-{i}")
        os.makedirs(d)
        p = bus_capable_port()
        ports.append(p)
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", d,
             "--cluster-enabled", "yes", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in ports:
        for _ in range(200):
            try:
                redis.Redis(port=p).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-yes"], check=True, capture_output=True)
    while b"cluster_state:ok" not in redis.Redis(port=ports[0]).execute_command("CLUSTER", "INFO"):
        time.sleep(0.1)
    return procs, ports


def keys_in_slots(port, lo, hi):
    r = redis.Redis(port=port)
    return sum(r.execute_command("CLUSTER", "COUNTKEYSINSLOT", s) for s in range(lo, hi + 1))


def propagation(cluster, kills):
    """kill -9 of shard 1's leader, --kills times: the time to a new leader (its ROLE says
    so), and until every live node's CLUSTER SLOTS names it."""
    rows = []
    for _ in range(kills):
        first, mid, port = masters(cluster.nodes[0].port)[1]
        victim = [n for n in cluster.nodes if n.port == port][0]
        lines = cluster.nodes[0].client().execute_command("CLUSTER", "NODES").decode()
        peers = [int(ln.split()[1].split("@")[0].split(":")[1]) for ln in lines.splitlines()
                 if ln.split()[3] == mid]
        live = [n for n in cluster.nodes if n is not victim]
        t0 = time.monotonic()
        victim.kill()
        elected = agreed = None
        while agreed is None:
            now = time.monotonic()
            if elected is None:
                for p in peers:
                    try:
                        if redis.Redis(port=p, socket_timeout=1).execute_command(
                                "ROLE")[0] == b"master":
                            elected = now
                    except redis.RedisError:
                        pass
            named = set()
            for n in live:
                try:
                    for e in n.client(socket_timeout=1).execute_command("CLUSTER", "SLOTS"):
                        if e[0] <= first <= e[1]:
                            named.add(e[2][1])
                except redis.RedisError:
                    named.add(None)
            if elected is not None and len(named) == 1 and port not in named and None not in named:
                agreed = time.monotonic()
            time.sleep(0.002)
        rows.append(((elected - t0) * 1000, (agreed - t0) * 1000, (agreed - elected) * 1000))
        victim.start()
        end = time.time() + 60
        while b"cluster_state:ok" not in victim.client().execute_command("CLUSTER", "INFO"):
            assert time.time() < end
            time.sleep(0.1)
        time.sleep(1)
    return rows


def report(title, res, ratio_name):
    """Medians of (req/s, p50, p99) per variant, and the second variant's req/s over the
    first's."""
    print(f"\n{title}, 50 clients (req/s, p50 ms, p99 ms), medians:")
    med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in res.items()}
    for k, (rps, p50, p99) in med.items():
        print(f"  {k:10s} {rps:10.0f} {p50:7.2f} {p99:7.2f}")
    base, other = list(med)
    print(f"  {ratio_name} = {med[other][0] / med[base][0]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests, one repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reshard-keys", type=int, default=20000)
    ap.add_argument("--reshard-size", type=int, default=4096)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: write,read,failover,reshard")
    a = ap.parse_args()
    reps = 1 if a.quick else a.reps
    requests = 20000 if a.quick else 100000
    secs = 3 if a.quick else 10
    skip = set(a.skip.split(","))
    tmp = tempfile.mkdtemp(prefix="shardai-cluster-bench-")
    data = os.path.join(tmp, "blob64")
    with open(data, "wb") as f:
        # ASCII: redis-benchmark --cluster silently sends nothing for a payload with NUL bytes.
        f.write(b"x" * 64)
    one = Cluster(3)
    three = Cluster(9, replicas=2)
    try:
        if "write" not in skip:
            res = {"1 shard": [], "3 shards": []}
            for _ in range(reps):
                lead = one.leader()
                res["1 shard"].append(write_bench(lead.port, False, data, requests))
                res["3 shards"].append(write_bench(three.nodes[0].port, True, data, requests))
            # The writes really happened, on every shard.
            stored = [redis.Redis(port=p).dbsize() for _, _, p in masters(three.nodes[0].port)]
            assert all(n > 0 for n in stored) and one.leader().client().dbsize() > 0, stored
            report("AI.TENSORSET 64 B", res, "3 shards / 1 shard")
        if "read" not in skip:
            lead = one.leader()
            blob = os.urandom(64)
            r = lead.client()
            for i in range(1000):
                r.execute_command("AI.TENSORSET", f"{{rb}}:{i}", "UINT8", 64, "BLOB", blob)
            for f in one.followers():
                one.wait_caught_up(f)
            res = {"leader": [], "3 replicas": []}
            for _ in range(reps):
                res["leader"].append(read_bench([lead.addr], False, secs))
                res["3 replicas"].append(read_bench([n.addr for n in one.nodes], True, secs))
            report("AI.TENSORGET 64 B", res, "3 replicas (READONLY) / leader")
        if "failover" not in skip:
            rows = propagation(three, 3 if a.quick else a.kills)
            print("\nkill -9 of a shard leader (ms): new leader elected / every node's "
                  "CLUSTER SLOTS names it / the difference")
            for r in rows:
                print(f"  {r[0]:7.0f} {r[1]:7.0f} {r[2]:7.0f}")
            med = [statistics.median(r[i] for r in rows) for i in range(3)]
            print(f"  median {med[0]:.0f} / {med[1]:.0f} / {med[2]:.0f} "
                  f"(election timeout 400-800 ms)")
        if "reshard" not in skip:
            n, size = a.reshard_keys, a.reshard_size
            if a.quick:
                n //= 4
            for _, _, p in masters(three.nodes[0].port):
                redis.Redis(port=p).flushall()
            fill(three.nodes[0].port, n, size)
            src, dst = masters(three.nodes[0].port)[:2]
            keys = keys_in_slots(src[2], 0, 1999)
            t = time.time()
            cli("reshard", three.nodes[0].addr, "--from", src[1], "--to", dst[1], "--slots",
                "2000", timeout=3600)
            ours = time.time() - t
            # The same tool as the Redis run below, on shardai: the third shard's first
            # 2,000 slots to the second shard.
            third = masters(three.nodes[0].port)[2]
            keys_cli = keys_in_slots(third[2], third[0], third[0] + 1999)
            t = time.time()
            subprocess.run(["redis-cli", "--cluster", "reshard", three.nodes[0].addr,
                            "--cluster-from", third[1], "--cluster-to", dst[1],
                            "--cluster-slots", "2000", "--cluster-yes"],
                           check=True, capture_output=True, timeout=3600)
            ours_cli = time.time() - t
            procs, ports = redis7_cluster(tmp)
            try:
                fill(ports[0], n, size, tensors=False)
                r7 = masters(ports[0])
                keys7 = keys_in_slots(r7[0][2], 0, 1999)
                t = time.time()
                subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{ports[0]}",
                                "--cluster-from", r7[0][1], "--cluster-to", r7[1][1],
                                "--cluster-slots", "2000", "--cluster-yes"],
                               check=True, capture_output=True, timeout=3600)
                theirs = time.time() - t
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            mb = size / 1e6
            print(f"\nReshard of 2,000 slots holding {keys} tensors of {size} B "
                  f"({keys * mb:.1f} MB):")
            print(f"  shardai cluster reshard (3 replicas/shard, fsync'd): {ours:6.1f} s "
                  f"{keys / ours:8.0f} keys/s {keys * mb / ours:7.2f} MB/s "
                  f"{2000 / ours:6.0f} slots/s")
            print(f"  redis-cli reshard, shardai:                         {ours_cli:6.1f} s "
                  f"{keys_cli / ours_cli:8.0f} keys/s {keys_cli * mb / ours_cli:7.2f} MB/s "
                  f"{2000 / ours_cli:6.0f} slots/s")
            print(f"  redis-cli reshard, Redis 7 (no replicas, no fsync): {theirs:6.1f} s "
                  f"{keys7 / theirs:8.0f} keys/s {keys7 * mb / theirs:7.2f} MB/s "
                  f"{2000 / theirs:6.0f} slots/s")
            print(f"  ratio (slots/s), same tool (redis-cli): shardai / Redis = "
                  f"{theirs / ours_cli:.2f}; shardai cluster reshard / redis-cli on Redis = "
                  f"{theirs / ours:.2f}")
    finally:
        one.close()
        three.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
