"""Security across a real cluster: users are one cluster-wide setting (made on one node, they
work on every node at once), administration needs @admin, MIGRATE goes only to the
cluster's nodes, and TLS clients are told the nodes' TLS ports (CLUSTER SLOTS, MOVED) and
can use the cluster through redis-py's cluster client."""
import shutil
import tempfile
import time

import pytest
import redis
from redis.cluster import RedisCluster

import certs
from shardcluster import Cluster, Node, cli

PW = "cluster-pass"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(3, replicas=0, password=PW)
    yield c
    c.close()


def test_a_user_made_on_one_node_works_on_every_node(cluster):
    a, b, c = cluster.nodes
    admin = a.client()
    assert admin.execute_command("ACL", "SETUSER", "carol", "on", ">cpw", "~*", "+@all",
                                 "-@admin") == b"OK"
    for node, protocol in ((b, 2), (c, 3)):
        # AUTH carol cpw (RESP2) or HELLO 3 AUTH carol cpw (RESP3), sent by redis-py.
        r = node.client(username="carol", password="cpw", protocol=protocol)
        assert r.execute_command("ACL", "WHOAMI") == b"carol"
        # Reading cluster state is allowed; changing it is not.
        assert r.execute_command("CLUSTER", "SLOTS")
        with pytest.raises(redis.exceptions.NoPermissionError,
                           match="cluster\\|shardai-settopology"):
            r.execute_command("CLUSTER", "SHARDAI-SETTOPOLOGY", "{}")
        with pytest.raises(redis.exceptions.NoPermissionError, match="cluster\\|setslot"):
            r.execute_command("CLUSTER", "SETSLOT", 1, "STABLE")
        with pytest.raises(redis.exceptions.NoPermissionError, match="cluster\\|shardai-addnode"):
            r.execute_command("CLUSTER", "SHARDAI-ADDNODE", "data", "voter", 9, "h:1", "h:2")
        users = set(node.client().execute_command("ACL", "USERS"))
        assert {b"default", b"carol"} <= users
    # Deleted on one node: gone everywhere, and its connections are closed.
    carol_on_c = c.client(username="carol", password="cpw")
    assert carol_on_c.ping()
    assert b.client().execute_command("ACL", "DELUSER", "carol") == 1
    # Other nodes apply the deletion with the metadata group's next heartbeat.
    end = time.time() + 2
    while time.time() < end:
        try:
            a.client(username="carol", password="cpw", protocol=2).ping()
            time.sleep(0.05)
        except redis.AuthenticationError:
            break
    else:
        pytest.fail("carol still authenticates on another node")
    with pytest.raises((redis.ConnectionError, redis.AuthenticationError)):
        for _ in range(20):
            carol_on_c.ping()


def test_no_credentials_no_service_and_the_admin_tool_authenticates(cluster):
    a = cluster.nodes[0]
    anon = a.client(password=None, protocol=2)
    with pytest.raises(redis.AuthenticationError):
        anon.execute_command("CLUSTER", "SLOTS")
    out = cli("info", a.addr, password=PW)
    assert "leader" in out.stdout.lower() or out.stdout
    with pytest.raises(Exception):
        cli("info", a.addr)


def test_migrate_goes_only_to_nodes_of_the_cluster(cluster):
    a = cluster.nodes[0]
    r = a.client()
    # A key this node serves.
    for i in range(1000):
        k = f"m{i}"
        if r.execute_command("CLUSTER", "KEYSLOT", k) in owned_slots(r, a.port):
            break
    r.set(k, "v")
    with pytest.raises(redis.ResponseError, match="is not a node of this cluster"):
        r.execute_command("MIGRATE", "127.0.0.1", 1, k, 0, 1000)
    assert r.get(k) == b"v"


def test_resharding_with_credentials(cluster):
    a, b, _ = cluster.nodes
    r = a.client()
    mine = sorted(owned_slots(r, a.port))[:5]
    keys = []
    for i in range(20000):
        k = f"rs{i}"
        if r.execute_command("CLUSTER", "KEYSLOT", k) in mine:
            r.execute_command("AI.TENSORSET", k, "FLOAT", 1, "VALUES", i)
            keys.append(k)
        if len(keys) >= 10:
            break
    with pytest.raises(Exception):
        cli("reshard", a.addr, "--from", a.addr, "--to", b.addr, "--slots", "5")
    cli("reshard", a.addr, "--from", a.addr, "--to", b.addr, "--slots", "5", password=PW)
    moved = owned_slots(b.client(), b.port)
    assert set(mine) <= moved
    for k in keys:
        assert b.client().execute_command("AI.TENSORGET", k, "VALUES")


def owned_slots(r, port):
    slots = set()
    for start, end, master, *_ in r.execute_command("CLUSTER", "SLOTS"):
        if master[1] == port:
            slots.update(range(start, end + 1))
    return slots


@pytest.mark.parametrize("replicas", [0, 2], ids=["three-shards", "one-shard-of-three"])
def test_tls_clients_are_told_tls_ports(replicas):
    pki = tempfile.mkdtemp(prefix="shardai-pki-")
    certs.make_ca(pki)
    certs.make_cert(pki, "server")
    certs.make_cert(pki, "client")
    nodes = []
    try:
        from harness import free_port
        tls_ports = {}
        for _ in range(3):
            port = free_port()
            n = Node(["--tls-port", str(port), "--tls-cert-file", f"{pki}/server.crt",
                      "--tls-key-file", f"{pki}/server.key", "--tls-ca-cert-file",
                      f"{pki}/ca.crt", "--requirepass", PW], password=PW)
            nodes.append(n)
            tls_ports[n.port] = port
        cli("create", *[n.addr for n in nodes], "--replicas", str(replicas), password=PW)
        ssl_kw = dict(ssl=True, ssl_ca_certs=f"{pki}/ca.crt", ssl_certfile=f"{pki}/client.crt",
                      ssl_keyfile=f"{pki}/client.key", password=PW, socket_timeout=10)
        plain = nodes[0].client()
        tls = redis.Redis(port=tls_ports[nodes[0].port], **ssl_kw)
        plain_ports = {n[1] for _, _, *ns in plain.execute_command("CLUSTER", "SLOTS") for n in ns}
        tls_seen = {n[1] for _, _, *ns in tls.execute_command("CLUSTER", "SLOTS") for n in ns}
        assert plain_ports == set(tls_ports)
        assert tls_seen == set(tls_ports.values())
        # MOVED names the TLS port to a TLS client: to another shard's leader, and from a
        # follower to its own shard's leader.
        moved = None
        for n in nodes:
            c = redis.Redis(port=tls_ports[n.port], **ssl_kw)
            for i in range(200):
                try:
                    c.set(f"k{i}", 1)
                except redis.exceptions.MovedError as e:
                    moved = e
                    break
            c.close()
            if moved:
                break
        assert moved is not None and moved.port in tls_ports.values(), moved
        rc = RedisCluster(host="127.0.0.1", port=tls_ports[nodes[1].port], **ssl_kw)
        for i in range(50):
            rc.set(f"key{i}", i)
        assert [int(rc.get(f"key{i}")) for i in range(50)] == list(range(50))
        rc.close()
    finally:
        for n in nodes:
            n.kill()
            shutil.rmtree(n.dir, ignore_errors=True)
        shutil.rmtree(pki, ignore_errors=True)
