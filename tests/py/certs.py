"""Test certificates made with the openssl command line: a CA, and certificates it signs for
servers and clients (localhost and 127.0.0.1 in their names). Nothing is committed; every
test run makes fresh ones in a temporary folder."""
import os
import subprocess

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(folder, name="ca"):
    """Writes `name`.crt and `name`.key; returns the certificate's path."""
    os.makedirs(folder, exist_ok=True)
    _run("req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
         "-subj", f"/CN=shardai test {name}", cwd=folder)
    return os.path.join(folder, f"{name}.crt")


def make_cert(folder, name, ca="ca"):
    """Writes `name`.crt and `name`.key signed by `ca`; returns (cert, key) paths."""
    ext = os.path.join(folder, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    _run("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
         cwd=folder)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
         "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext, cwd=folder)
    return os.path.join(folder, f"{name}.crt"), os.path.join(folder, f"{name}.key")
