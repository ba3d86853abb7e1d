"""SECURITY.md's deployment, followed with real processes: three shards of three replicas
whose bus is mutual TLS (certificates from `shardai cert`) plus a cluster secret, clients on
TLS only with certificates of a second CA, users from an ACL file (`default` off). The
administrator forms the cluster with `shardai cluster`; the application user works through
redis-py's cluster client; a connection without credentials can do nothing but authenticate."""
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest
import redis
from redis.cluster import RedisCluster

import certs
from harness import binary, free_port
from shardcluster import Node, cli

ADMIN_PW = "long-admin-password"
APP_PW = "long-app-password"
USERS = f"""user default off
user admin on >{ADMIN_PW} ~* &* +@all
user app on >{APP_PW} ~app:* +@all -@admin -@dangerous -ai.modelstore -ai.modelset
"""


@pytest.fixture(scope="module")
def deployment():
    d = tempfile.mkdtemp(prefix="shardai-deploy-")
    nodes = []
    try:
        subprocess.run([binary(), "cert", "--out", f"{d}/bus", "--nodes", "9"], check=True,
                       capture_output=True)
        certs.make_ca(d, "clients-ca")
        certs.make_cert(d, "server", "clients-ca")
        certs.make_cert(d, "app", "clients-ca")
        with open(f"{d}/secret", "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        with open(f"{d}/users.acl", "w") as f:
            f.write(USERS)
        tls = {}
        for i in range(1, 10):
            tls_port = free_port()
            n = Node(["--tls-port", str(tls_port), "--tls-cert-file", f"{d}/server.crt",
                      "--tls-key-file", f"{d}/server.key",
                      "--tls-ca-cert-file", f"{d}/clients-ca.crt", "--aclfile", f"{d}/users.acl"],
                     bus=["--cluster-tls-cert-file", f"{d}/bus/node-{i}.crt",
                          "--cluster-tls-key-file", f"{d}/bus/node-{i}.key",
                          "--cluster-tls-ca-cert-file", f"{d}/bus/ca.crt",
                          "--cluster-secret-file", f"{d}/secret"],
                     username="admin", password=ADMIN_PW)
            nodes.append(n)
            tls[n.port] = tls_port
        cli("create", *[n.addr for n in nodes], "--replicas", "2", user="admin",
            password=ADMIN_PW, timeout=120)
        yield d, nodes, tls
    finally:
        for n in nodes:
            n.kill()
            shutil.rmtree(n.dir, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)


def app_tls(d, port, **kw):
    return dict(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=f"{d}/clients-ca.crt",
                ssl_certfile=f"{d}/app.crt", ssl_keyfile=f"{d}/app.key", socket_timeout=30,
                **kw)


def test_three_shards_over_mutual_tls_serve_the_application_user(deployment):
    d, nodes, tls = deployment
    rc = RedisCluster(**app_tls(d, tls[nodes[4].port], username="app", password=APP_PW))
    try:
        shards = rc.execute_command("CLUSTER", "SLOTS", target_nodes=RedisCluster.RANDOM)
        assert len(shards) == 3 and all(len(s) == 5 for s in shards)
        # Every node announced to a TLS client is a TLS port.
        assert {m[1] for s in shards for m in s[2:]} == set(tls.values())
        for i in range(60):
            key = f"app:t{i}"
            node = rc.get_node_from_key(key)
            assert rc.execute_command("AI.TENSORSET", key, "FLOAT", 2, "VALUES", i, -i,
                                      target_nodes=node) == b"OK"
        hosts = {rc.get_node_from_key(f"app:t{i}").port for i in range(60)}
        assert len(hosts) == 3, hosts
        for i in range(60):
            key = f"app:t{i}"
            got = rc.execute_command("AI.TENSORGET", key, "VALUES",
                                     target_nodes=rc.get_node_from_key(key))
            assert [float(x) for x in got] == [i, -i]
        # The application user may not leave its keys, store models or administer.
        with pytest.raises(redis.exceptions.NoPermissionError, match="access a key"):
            rc.execute_command("AI.TENSORSET", "other:t", "FLOAT", 1, "VALUES", 1,
                               target_nodes=rc.get_node_from_key("other:t"))
        with pytest.raises(redis.exceptions.NoPermissionError, match="ai.modelstore"):
            rc.execute_command("AI.MODELSTORE", "app:m", "ONNX", "CPU", "BLOB", b"x",
                               target_nodes=rc.get_node_from_key("app:m"))
        with pytest.raises(redis.exceptions.NoPermissionError, match="cluster\\|setslot"):
            rc.execute_command("CLUSTER", "SETSLOT", 1, "STABLE",
                               target_nodes=RedisCluster.RANDOM)
    finally:
        rc.close()
    # Each write reached the shard's replicas over the encrypted bus.
    by_port = {n.port: n for n in nodes}
    plain_of = {v: k for k, v in tls.items()}
    for start, end, master, *replicas in shards:
        assert len(replicas) == 2
        for rep in replicas:
            r = redis.Redis(**app_tls(d, rep[1], username="app", password=APP_PW),
                            single_connection_client=True)
            r.execute_command("READONLY")
            key = next(f"app:t{i}" for i in range(60)
                       if start <= rc.keyslot(f"app:t{i}") <= end)
            deadline = time.time() + 20
            while True:
                try:
                    got = r.execute_command("AI.TENSORGET", key, "VALUES")
                    break
                except redis.exceptions.ResponseError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            assert len(got) == 2
            r.close()
            assert "(mutual TLS;" in by_port[plain_of[rep[1]]].log_text()


@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
def test_without_credentials_only_authentication_answers(deployment):
    d, nodes, tls = deployment
    kw = app_tls(d, tls[nodes[0].port])
    # RESP2 and no CLIENT SETINFO on connect: before AUTH, Redis refuses HELLO 3 and CLIENT
    # SETINFO too, so redis-py's connect would fail before the commands under test.
    r = redis.Redis(**kw, protocol=2, lib_name=None, lib_version=None,
                    single_connection_client=True)
    for args in (("PING",), ("AI.TENSORGET", "app:t1", "META"), ("CLUSTER", "SLOTS"),
                 ("ACL", "WHOAMI"), ("CONFIG", "GET", "port")):
        with pytest.raises(redis.exceptions.AuthenticationError,
                           match="Authentication required"):
            r.execute_command(*args)
    # default is off: no password makes it usable.
    with pytest.raises(redis.exceptions.AuthenticationError, match="invalid username-password pair"):
        r.execute_command("AUTH", "anything")
    assert r.execute_command("AUTH", "app", APP_PW) is True
    assert r.execute_command("ACL", "WHOAMI") == b"app"
    r.close()
    # Without a client certificate of the clients' CA, TLS itself is refused.
    no_cert = redis.Redis(host="127.0.0.1", port=tls[nodes[0].port], ssl=True,
                          ssl_ca_certs=f"{d}/clients-ca.crt", socket_timeout=10,
                          username="app", password=APP_PW)
    with pytest.raises(redis.ConnectionError):
        no_cert.ping()
    # A bus certificate is not a client certificate: the two CAs are separate.
    bus_cert = redis.Redis(host="127.0.0.1", port=tls[nodes[0].port], ssl=True,
                           ssl_ca_certs=f"{d}/clients-ca.crt", ssl_certfile=f"{d}/bus/node-1.crt",
                           ssl_keyfile=f"{d}/bus/node-1.key", socket_timeout=10,
                           username="app", password=APP_PW)
    with pytest.raises(redis.ConnectionError):
        bus_cert.ping()


def test_users_changed_on_one_node_hold_on_every_node(deployment):
    d, nodes, tls = deployment
    admin = nodes[8].client()
    assert admin.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pw", "~app:*",
                                 "+@read", "+@connection") == b"OK"
    try:
        for n in nodes[:3]:
            r = redis.Redis(**app_tls(d, tls[n.port], username="reader", password="reader-pw"))
            end = time.time() + 5
            while True:
                try:
                    assert r.ping()
                    break
                except redis.AuthenticationError:
                    if time.time() > end:
                        raise
                    time.sleep(0.05)
            with pytest.raises(redis.exceptions.NoPermissionError, match="ai.tensorset"):
                r.execute_command("AI.TENSORSET", "app:x", "FLOAT", 1, "VALUES", 1)
            r.close()
    finally:
        admin.execute_command("ACL", "DELUSER", "reader")
