"""Who may connect and what they may do, against real shardai processes: requirepass and ACL
users with redis-cli and redis-py (RESP2 and RESP3), denials with Redis's NOPERM texts for
plain commands and for keys inside DAGs, the ACL log and file, guarded administration
(LOADBACKEND, MIGRATE, CONFIG SET), protected mode, and TLS on the client port."""
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import redis

import certs
from conftest import Server, free_port
from harness import binary

PW = "s3cret-pass"


@pytest.fixture
def locked():
    s = Server("--requirepass", PW)
    yield s
    s.stop()
    shutil.rmtree(s.dir, ignore_errors=True)


def cli(port, *args, password=None, extra=()):
    """redis-cli's output for one command (its errors print as `(error) ...` on a tty only:
    here they come as the raw text)."""
    cmd = ["redis-cli", "-p", str(port), *extra]
    env = dict(os.environ)
    if password:
        env["REDISCLI_AUTH"] = password
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=30, env=env)
    return (out.stdout + out.stderr).strip()


@pytest.mark.parametrize("protocol", [2, 3])
def test_requirepass_noauth_wrongpass_and_auth(locked, protocol):
    anon = redis.Redis(port=locked.port, protocol=2, socket_timeout=10)
    with pytest.raises(redis.AuthenticationError, match="^Authentication required.$"):
        anon.get("k")
    raw = socket.create_connection(("127.0.0.1", locked.port), timeout=10)
    raw.sendall(b"GET k\r\nHELLO 3\r\nAUTH nope\r\nAUTH default nope\r\nQUIT\r\n")
    text = b""
    while not text.endswith(b"+OK\r\n"):
        chunk = raw.recv(65536)
        if not chunk:
            break
        text += chunk
    raw.close()
    lines = text.decode().split("\r\n")
    assert lines[0] == "-NOAUTH Authentication required."
    assert lines[1].startswith("-NOAUTH HELLO must be called with the client already authenticated")
    assert lines[2] == "-WRONGPASS invalid username-password pair or user is disabled."
    assert lines[3] == "-WRONGPASS invalid username-password pair or user is disabled."
    assert lines[4] == "+OK"

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=locked.port, protocol=protocol, password="wrong").ping()
    good = redis.Redis(port=locked.port, protocol=protocol, password=PW, socket_timeout=10)
    assert good.ping()
    good.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
    assert good.execute_command("ACL", "WHOAMI") == b"default"
    # redis-cli, as a user types it.
    assert cli(locked.port, "GET", "k").startswith("NOAUTH")
    assert cli(locked.port, "AI.TENSORGET", "t", "VALUES", password=PW).split() == ["1", "2"]


def test_auth_without_a_password_configured(server):
    r = server.client()
    with pytest.raises(redis.AuthenticationError, match="without any password configured"):
        r.execute_command("AUTH", "x")
    assert r.execute_command("ACL", "WHOAMI") == b"default"


@pytest.mark.parametrize("protocol", [2, 3])
def test_acl_users_categories_keys_and_dags(locked, protocol):
    admin = redis.Redis(port=locked.port, protocol=protocol, password=PW, socket_timeout=10)
    assert admin.execute_command(
        "ACL", "SETUSER", "alice", "on", ">apw", "~t:*", "+@ai", "+@read", "-@admin",
        "+acl|whoami") == b"OK"
    admin.execute_command("AI.TENSORSET", "secret", "FLOAT", 1, "VALUES", 7)
    u = admin.execute_command("ACL", "GETUSER", "alice")
    if isinstance(u, list):
        u = dict(zip(u[::2], u[1::2]))
    u = {k.decode() if isinstance(k, bytes) else k: v for k, v in u.items()}
    assert u["flags"] == [b"on"]
    assert u["passwords"] == [hashlib.sha256(b"apw").hexdigest().encode()]
    assert u["keys"] == b"~t:*"

    alice = redis.Redis(port=locked.port, protocol=protocol, username="alice", password="apw",
                        socket_timeout=10)
    assert alice.execute_command("ACL", "WHOAMI") == b"alice"
    assert alice.execute_command("AI.TENSORSET", "t:in", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
    assert alice.get("t:nothing") is None
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match="User alice has no permissions to run the 'set' command"):
        alice.set("t:x", "v")
    with pytest.raises(redis.exceptions.NoPermissionError, match="No permissions to access a key"):
        alice.execute_command("AI.TENSORGET", "secret", "VALUES")
    # Keys inside a DAG: LOAD and PERSIST are checked like any key.
    with pytest.raises(redis.exceptions.NoPermissionError, match="No permissions to access a key"):
        alice.execute_command("AI.DAGEXECUTE", "LOAD", 1, "secret", "|>",
                              "AI.TENSORGET", "secret", "VALUES")
    with pytest.raises(redis.exceptions.NoPermissionError, match="No permissions to access a key"):
        alice.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t:in", "PERSIST", 1, "stolen", "|>",
                              "AI.TENSORSET", "stolen", "FLOAT", 1, "VALUES", 1)
    assert admin.exists("stolen") == 0
    out = alice.execute_command("AI.DAGEXECUTE", "LOAD", 1, "t:in", "PERSIST", 1, "t:out", "|>",
                                "AI.TENSORSET", "t:out", "FLOAT", 1, "VALUES", 5)
    assert out == [b"OK"]
    # Administration is @admin.
    for cmd in (["AI.CONFIG", "LOADBACKEND", "TORCH", "x.so"], ["CONFIG", "SET", "maxclients", "5"],
                ["ACL", "SETUSER", "alice", "+@all"], ["FLUSHALL"]):
        with pytest.raises(redis.exceptions.NoPermissionError, match="has no permissions to run"):
            alice.execute_command(*cmd)
    assert admin.exists("secret") == 1

    log = admin.execute_command("ACL", "LOG")
    entries = []
    for e in log:
        if isinstance(e, list):
            e = dict(zip(e[::2], e[1::2]))
        entries.append({k.decode(): v for k, v in e.items()})
    reasons = {(e["reason"], e["object"]) for e in entries}
    assert (b"command", b"set") in reasons
    assert (b"key", b"secret") in reasons
    assert all(e["username"] == b"alice" for e in entries)
    assert admin.execute_command("ACL", "LOG", "RESET") == b"OK"
    assert admin.execute_command("ACL", "LOG") == []

    # Deleting a user closes its connections.
    assert admin.execute_command("ACL", "DELUSER", "alice") == 1
    with pytest.raises((redis.ConnectionError, redis.AuthenticationError)):
        for _ in range(3):
            alice.execute_command("AI.TENSORGET", "t:in", "META")
    with pytest.raises(redis.ResponseError, match="The 'default' user cannot be removed"):
        admin.execute_command("ACL", "DELUSER", "default")


def test_acl_setuser_errors_and_cat(locked):
    admin = locked.client(password=PW)
    with pytest.raises(redis.ResponseError,
                       match="Error in ACL SETUSER modifier '\\+nosuch': Unknown command"):
        admin.execute_command("ACL", "SETUSER", "bob", "on", "+nosuch")
    assert admin.execute_command("ACL", "GETUSER", "bob") is None, "a bad rule changes nothing"
    assert b"ai" in admin.execute_command("ACL", "CAT")
    ai = admin.execute_command("ACL", "CAT", "ai")
    assert b"ai.modelexecute" in ai and b"get" not in ai
    assert b"cluster|shardai-settopology" in admin.execute_command("ACL", "CAT", "admin")
    with pytest.raises(redis.ResponseError, match="Unknown category 'nope'"):
        admin.execute_command("ACL", "CAT", "nope")
    assert len(admin.execute_command("ACL", "GENPASS")) == 64


def test_acl_file_save_load_and_restart():
    folder = tempfile.mkdtemp(prefix="shardai-acl-")
    path = os.path.join(folder, "users.acl")
    with open(path, "w") as f:
        f.write(f"user default on >{PW} ~* &* +@all\nuser reader on >rpw ~* +@read\n")
    s = Server("--aclfile", path)
    try:
        admin = s.client(password=PW)
        reader = s.client(username="reader", password="rpw")
        assert reader.get("x") is None
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.set("x", "1")
        admin.execute_command("ACL", "SETUSER", "writer", "on", ">wpw", "~w:*", "+@write")
        assert admin.execute_command("ACL", "SAVE") == b"OK"
        text = open(path).read()
        assert "user writer on #" in text and "wpw" not in text and PW not in text
        s.stop()
        s2 = Server("--aclfile", path)
        s.proc = s2.proc
        writer = s2.client(username="writer", password="wpw")
        assert writer.set("w:1", "v")
        # Edit the file and ACL LOAD it: all or nothing.
        with open(path, "a") as f:
            f.write("user broken on +nosuch\n")
        admin2 = s2.client(password=PW)
        with pytest.raises(redis.ResponseError, match="users.acl:4"):
            admin2.execute_command("ACL", "LOAD")
        assert admin2.execute_command("ACL", "GETUSER", "writer") is not None
        s2.stop()
    finally:
        s.stop()
        shutil.rmtree(folder, ignore_errors=True)
    # A broken file stops the server at start with the reason.
    folder = tempfile.mkdtemp(prefix="shardai-acl-")
    try:
        bad = os.path.join(folder, "bad.acl")
        with open(bad, "w") as f:
            f.write("user x on +nosuch\n")
        out = subprocess.run([binary(), "--port", str(free_port()), "--dir", folder,
                              "--aclfile", bad], capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "bad.acl:1" in out.stderr, out.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_backend_loading_is_off_by_default_and_confined(server):
    c = server.client()
    for args in (["LOADBACKEND", "ONNX", "x.so"], ["BACKENDSPATH", "/tmp"]):
        with pytest.raises(redis.ResponseError, match="--enable-backend-loading yes"):
            c.execute_command("AI.CONFIG", *args)
    assert c.execute_command("AI.CONFIG", "GET", "BACKENDSPATH") is not None
    on = Server("--enable-backend-loading", "yes")
    try:
        r = on.client()
        with pytest.raises(redis.ResponseError, match="error loading backend"):
            r.execute_command("AI.CONFIG", "LOADBACKEND", "TORCH", "/no/such/file.so")
        with pytest.raises(redis.ResponseError, match="outside the backends path"):
            r.execute_command("AI.CONFIG", "LOADBACKEND", "ONNX", "/bin/true")
        with pytest.raises(redis.ResponseError, match="outside the backends path"):
            r.execute_command("AI.CONFIG", "LOADBACKEND", "ONNX", "../../../../../../bin/true")
    finally:
        on.stop()
        shutil.rmtree(on.dir, ignore_errors=True)


def test_migrate_only_to_allowed_hosts(server):
    r = server.client()
    r.set("k", "v")
    with pytest.raises(redis.ResponseError, match="is not a loopback address"):
        r.execute_command("MIGRATE", "192.0.2.77", 6379, "k", 0, 1000)
    assert r.get("k") == b"v"


def test_config_set_limits_are_bounded(server):
    r = server.client()
    with pytest.raises(redis.ResponseError, match="between 1 and 1000000"):
        r.config_set("maxclients", 10**9)
    with pytest.raises(redis.ResponseError, match="from 1kb to 4gb"):
        r.config_set("proto-max-bulk-len", "100gb")


def outside_address():
    """A local address that is not loopback, for a client that is not on the loopback
    interface; made on a dummy interface when the machine has none."""
    for a in subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split():
        if "." in a and not a.startswith("127."):
            return a, None
    name = f"shardai{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "dummy"], check=True)
    subprocess.run(["ip", "addr", "add", "10.254.77.1/32", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    return "10.254.77.1", name


def test_protected_mode():
    addr, made = outside_address()
    folder = tempfile.mkdtemp(prefix="shardai-pm-")
    procs = []
    try:
        def start(*extra):
            port = free_port()
            # Each server its own data folder: one process per folder.
            p = subprocess.Popen([binary(), "--port", str(port), "--bind", "0.0.0.0", "--dir",
                                  os.path.join(folder, str(port)), *extra],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            end = time.time() + 10
            while time.time() < end:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return port
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("no server")

        def first_reply(port):
            s = socket.create_connection((addr, port), timeout=10)
            s.sendall(b"PING\r\n")
            data = s.recv(4096)
            s.close()
            return data.decode()

        port = start()
        assert first_reply(port).startswith("-DENIED Redis is running in protected mode")
        assert redis.Redis(port=port).ping(), "loopback clients are served"
        assert first_reply(start("--requirepass", PW)).startswith("-NOAUTH")
        assert first_reply(start("--protected-mode", "no")) == "+PONG\r\n"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)
        if made:
            subprocess.run(["ip", "link", "del", made])


@pytest.fixture(scope="module")
def pki():
    folder = tempfile.mkdtemp(prefix="shardai-pki-")
    certs.make_ca(folder)
    certs.make_ca(folder, "otherca")
    certs.make_cert(folder, "server")
    certs.make_cert(folder, "client")
    certs.make_cert(folder, "stranger", ca="otherca")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class TlsServer:
    """shardai serving TLS only (--port 0) on a free port."""

    def __init__(self, pki, *extra):
        self.dir = tempfile.mkdtemp(prefix="shardai-tls-")
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "shardai.log"), "wb")
        self.proc = subprocess.Popen(
            [binary(), "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--tls-cert-file", f"{pki}/server.crt",
             "--tls-key-file", f"{pki}/server.key", "--tls-ca-cert-file", f"{pki}/ca.crt",
             *extra], stdout=subprocess.DEVNULL, stderr=self.log)
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("shardai (TLS) did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_tls_with_client_certificates(pki):
    s = TlsServer(pki, "--requirepass", PW)
    try:
        good = redis.Redis(port=s.port, ssl=True, ssl_ca_certs=f"{pki}/ca.crt",
                           ssl_certfile=f"{pki}/client.crt", ssl_keyfile=f"{pki}/client.key",
                           password=PW, protocol=3, socket_timeout=10)
        assert good.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
        tls = ["--tls", "--cacert", f"{pki}/ca.crt", "--cert", f"{pki}/client.crt",
               "--key", f"{pki}/client.key"]
        assert cli(s.port, "AI.TENSORGET", "t", "VALUES", password=PW, extra=tls).split() == \
            ["1", "2"]
        # No client certificate: refused during the handshake.
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=s.port, ssl=True, ssl_ca_certs=f"{pki}/ca.crt", password=PW,
                        socket_timeout=10).ping()
        # A certificate from another CA: refused too.
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=s.port, ssl=True, ssl_ca_certs=f"{pki}/ca.crt",
                        ssl_certfile=f"{pki}/stranger.crt", ssl_keyfile=f"{pki}/stranger.key",
                        password=PW, socket_timeout=10).ping()
        # Plain RESP on the TLS port gets nothing.
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=s.port, socket_timeout=5, password=PW).ping()
    finally:
        s.stop()


def test_tls_optional_client_certificates(pki):
    s = TlsServer(pki, "--tls-auth-clients", "optional")
    try:
        r = redis.Redis(port=s.port, ssl=True, ssl_ca_certs=f"{pki}/ca.crt", socket_timeout=10)
        assert r.ping()
        # The server's certificate is checked by the client against its CA.
        ctx = ssl.create_default_context(cafile=f"{pki}/otherca.crt")
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
                ctx.wrap_socket(raw, server_hostname="localhost")
    finally:
        s.stop()


def test_tls_flags_are_checked_at_start(pki):
    out = subprocess.run([binary(), "--port", "0"], capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "--tls-port" in out.stderr
    out = subprocess.run([binary(), "--port", str(free_port()), "--tls-port", str(free_port())],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "--tls-cert-file" in out.stderr
