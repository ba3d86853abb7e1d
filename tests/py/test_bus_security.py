"""The cluster bus's security with real processes: a shard formed over mutual TLS (certificates
made with the openssl CLI) and the secret replicates; a TLS client with a certificate of
another CA is refused by the bus; a plain TCP peer without the secret is refused and hears
neither the cluster id nor a node id; a cluster node does not start without a secured bus."""
import os
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest
import redis

from harness import binary, free_port
from shardcluster import SECRET, Cluster, cli, make_ca, make_cert, tls_args

PREAMBLE_V3 = b"shardai-bus\n" + struct.pack("<I", 3)


@pytest.fixture(scope="module")
def certs():
    """A CA and three node certificates; another CA and a certificate of it."""
    if not shutil.which("openssl"):
        pytest.fail("openssl missing")
    d = tempfile.mkdtemp(prefix="shardai-certs-")
    try:
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        for i in range(3):
            make_cert(d, f"node-{i}", "ca")
        make_cert(d, "rogue", "other-ca")
        with open(f"{d}/secret", "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_cluster(certs):
    c = Cluster(3, extra=["--snapshot-entries", "100"],
                bus=lambda i: tls_args(certs, f"node-{i}")
                + ["--cluster-secret-file", f"{certs}/secret"])
    try:
        yield c
    finally:
        c.close()


def tls_hello(port, certs, name):
    """What the bus at `port` answers a TLS client presenting `name`'s certificate (None:
    none) that does not check the server's, after sending a version 3 preamble: the bytes,
    or the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if name:
        ctx.load_cert_chain(f"{certs}/{name}.crt", f"{certs}/{name}.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        with ctx.wrap_socket(raw) as s:
            s.sendall(PREAMBLE_V3)
            got = b""
            while len(got) < 16:
                more = s.recv(4096)
                if not more:
                    break
                got += more
            return got
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
        return e
    finally:
        raw.close()


def test_a_shard_over_mutual_tls_replicates(tls_cluster):
    c = tls_cluster
    client = c.client()
    for i in range(200):
        client.execute("AI.TENSORSET", f"k{i}", "FLOAT", 1, "VALUES", i)
    # 3.2 MB of tensors: a snapshot of several 1 MiB chunks.
    for i in range(200):
        client.execute("AI.TENSORSET", f"b{i}", "UINT8", 16384, "BLOB", bytes([i]) * 16384)
    client.close()
    for f in c.followers():
        c.wait_caught_up(f)
        r = f.client(single_connection_client=True)
        r.execute_command("READONLY")
        assert [float(x) for x in r.execute_command("AI.TENSORGET", "k199", "VALUES")] == [199]
        r.close()
    # A wiped replica rejoins through a snapshot streamed over TLS.
    victim = c.followers()[0]
    cli("del-node", c.leader().addr, str(victim.replication()["raft_node_id"]))
    victim.kill()
    victim.wipe()
    victim.start()
    cli("add-node", victim.addr, c.leader().addr)
    c.wait_caught_up(victim)
    assert "snapshot installed" in victim.log_text()
    r = victim.client(single_connection_client=True)
    r.execute_command("READONLY")
    assert r.execute_command("AI.TENSORGET", "b199", "BLOB") == bytes([199]) * 16384
    r.close()


def test_the_bus_refuses_a_certificate_of_another_ca(tls_cluster, certs):
    port = tls_cluster.nodes[0].bus
    # A node's certificate: TLS holds, and the bus answers its preamble (then wants a proof).
    got = tls_hello(port, certs, "node-1")
    assert isinstance(got, bytes) and got.startswith(PREAMBLE_V3), got
    # Another CA's certificate, or none: the handshake fails, no bus byte is sent.
    for name in ["rogue", None]:
        got = tls_hello(port, certs, name)
        assert isinstance(got, ssl.SSLError), (name, got)
    # Plain TCP on a TLS bus: nothing from the bus either.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(PREAMBLE_V3)
        s.settimeout(5)
        try:
            got = s.recv(4096)
        except ConnectionResetError:
            got = b""
    assert not got.startswith(b"shardai-bus"), got


@pytest.fixture(scope="module")
def shard():
    c = Cluster(3)
    try:
        yield c
    finally:
        c.close()


def identities(c):
    """Every node's cluster id and node id, from its data folder."""
    out = []
    for x in c.nodes:
        with open(os.path.join(x.dir, "cluster.conf")) as f:
            kv = dict(line.split(" ", 1) for line in f.read().splitlines()
                      if line and not line.startswith("#"))
        out.append((kv["cluster-id"].strip(), int(kv["node-id"])))
    return out


def heard(port, sent):
    """Everything a raw TCP peer hears from the bus at `port` after sending `sent`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(sent)
        got = b""
        end = time.time() + 5
        while time.time() < end:
            try:
                more = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not more:
                break
            got += more
        return got


def hello(cluster, to):
    body = struct.pack("<I", 0)
    for s in [cluster, "data"]:
        body += struct.pack("<Q", len(s)) + s.encode()
    body += struct.pack("<Q", to)
    return struct.pack("<I", len(body)) + body


def test_a_peer_without_the_secret_is_refused_and_told_nothing(shard):
    ids = identities(shard)
    cluster_id = ids[0][0]
    leaks = [cluster_id.encode()]
    for _, n in ids:
        leaks += [str(n).encode(), struct.pack("<Q", n)]
    leaks += [shard.nodes[0].client().execute_command("CLUSTER", "MYID")]
    node = shard.nodes[0]

    # A version 3 peer guessing at a proof: our preamble, our nonce, then only "refused".
    proof = struct.pack("<I", 1) + os.urandom(64)
    got = heard(node.bus, PREAMBLE_V3 + struct.pack("<I", len(proof)) + proof)
    assert got.startswith(PREAMBLE_V3)
    assert got.endswith(struct.pack("<II", 4, 3)), got
    assert len(got) == 16 + 40 + 8, got
    # A version 2 peer sending a Hello of another cluster at once: our preamble only.
    got2 = heard(node.bus, b"shardai-bus\n" + struct.pack("<I", 2) + hello("beta", 1))
    assert got2 == PREAMBLE_V3, got2
    # A version 1 peer with the right cluster id even: nothing.
    assert heard(node.bus, hello(cluster_id, ids[0][1])) == b""
    for bytes_ in (got, got2):
        for leak in leaks:
            assert leak not in bytes_, (leak, bytes_)
    # The node says why in its own log.
    end = time.time() + 5
    while "did not prove it knows the cluster secret" not in node.log_text():
        assert time.time() < end, node.log_text()[-3000:]
        time.sleep(0.05)
    assert SECRET not in node.log_text()
    # The shard still works.
    c = shard.client()
    c.execute("AI.TENSORSET", "after", "FLOAT", 1, "VALUES", 1)
    c.close()


def start_fails(*args, env=None):
    d = tempfile.mkdtemp(prefix="shardai-refused-")
    # A bus port of its own, so a client port above 55535 does not decide the refusal.
    bus = ["--cluster-port", str(free_port())] if "--cluster-enabled" in args else []
    try:
        p = subprocess.run([binary(), "--port", str(free_port()), "--dir", d, *bus, *args],
                           capture_output=True, text=True, timeout=20,
                           env={**os.environ, **(env or {})})
        assert p.returncode != 0, p
        return p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_a_cluster_node_needs_a_secured_bus(certs):
    err = start_fails("--cluster-enabled", "yes")
    for flag in ["--cluster-secret", "--cluster-secret-file", "--cluster-tls-cert-file",
                 "--cluster-tls-key-file", "--cluster-tls-ca-cert-file"]:
        assert flag in err, err
    err = start_fails("--cluster-enabled", "yes", "--cluster-tls-cert-file", f"{certs}/node-0.crt")
    assert "all three or none" in err, err
    err = start_fails("--cluster-enabled", "yes", "--cluster-secret-file", f"{certs}/missing")
    assert "missing" in err, err


def test_the_secret_from_the_environment_and_the_config_file(certs):
    d = tempfile.mkdtemp(prefix="shardai-conf-")
    try:
        conf = os.path.join(d, "shardai.conf")
        with open(conf, "w") as f:
            f.write("cluster-secret from-the-file\n")
        c = Cluster(1, replicas=0, bus=lambda i: ["--config", conf])
        try:
            c.nodes[0].client().execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
        finally:
            c.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    # SHARDAI_CLUSTER_SECRET alone is enough to start.
    d = tempfile.mkdtemp(prefix="shardai-env-")
    port = free_port()
    p = subprocess.Popen([binary(), "--port", str(port), "--dir", d, "--cluster-enabled", "yes",
                          "--cluster-port", str(free_port())],
                         env={**os.environ, "SHARDAI_CLUSTER_SECRET": "from-the-env"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 20
        while True:
            try:
                assert redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                assert p.poll() is None and time.time() < end
                time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_shardai_cert_makes_certificates_a_shard_runs_on():
    d = tempfile.mkdtemp(prefix="shardai-cert-")
    try:
        out = subprocess.run([binary(), "cert", "--out", d, "--nodes", "3"], check=True,
                             capture_output=True, text=True, timeout=30).stdout
        assert f"{d}/node-3.key" in out, out
        assert oct(os.stat(f"{d}/node-1.key").st_mode & 0o777) == "0o600"
        # Never over existing files.
        again = subprocess.run([binary(), "cert", "--out", d], capture_output=True, text=True,
                               timeout=30)
        assert again.returncode != 0 and "not overwritten" in again.stderr, again
        c = Cluster(3, bus=lambda i: ["--cluster-tls-cert-file", f"{d}/node-{i + 1}.crt",
                                      "--cluster-tls-key-file", f"{d}/node-{i + 1}.key",
                                      "--cluster-tls-ca-cert-file", f"{d}/ca.crt"])
        try:
            client = c.client()
            client.execute("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 5)
            client.close()
            for f in c.followers():
                c.wait_caught_up(f)
        finally:
            c.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
