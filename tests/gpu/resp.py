"""A minimal RESP2 client and a shardai launcher for the GPU proofs (the GPU machine's Python has
torch but no redis-py)."""
import os, socket, subprocess, time


def enc(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            return (t + rest).decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise ValueError(line)

    def cmd(self, *args):
        self.s.sendall(enc(*args))
        return self.read()


def start(binary, site, lib, workdir):
    """Starts `binary` on a free port with libtorch from `lib`; (process, connection, log path)."""
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    log = os.path.join(workdir, "log")
    env = dict(os.environ, LD_LIBRARY_PATH=lib)
    p = subprocess.Popen([binary, "--port", str(port), "--dir", workdir, "--backends-path", site],
                         env=env, stderr=open(log, "wb"))
    for _ in range(100):
        try:
            c = Conn(port); c.cmd("PING")
            return p, c, log
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("shardai did not start: " + open(log).read()[-2000:])
