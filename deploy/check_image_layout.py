"""Checks the runtime image's file layout without a Docker engine (deploy/check runs it):
runs the Dockerfile's own staging step (the RUN that fills /stage) against this checkout's
.venv and the built binary, with the paths moved under a temporary folder, then starts the
staged binary with the runtime stage's ENV (and nothing from the checkout: its run path
into .venv leads nowhere there) and runs a model of each of the four backends on it.

Usage: .venv/bin/python deploy/check_image_layout.py SHARDAI_BINARY
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def instructions():
    """The Dockerfile's instructions as (keyword, text), continuation lines joined."""
    out, cur = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = cur.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def staging_and_env(stage):
    """The staging RUN, rewritten for this machine, and the runtime stage's ENV."""
    steps = instructions()
    runs = [t for k, t in steps if k == "RUN" and "/stage/" in t]
    if len(runs) != 1:
        sys.exit(f"expected one RUN that fills /stage in {DOCKERFILE}, found {len(runs)}")
    script = runs[0].replace("/src/", f"{ROOT}/").replace("/stage/", f"{stage}/")
    # Hard links instead of copies where the file system allows (the same files either way).
    probe = Path(stage).parent / "link-probe"
    try:
        os.link(DOCKERFILE, probe)
        probe.unlink()
        script = script.replace("cp -L ", "cp -lL ")
    except OSError:
        pass
    script = script.replace("install -D -m 0755 target/release/shardai ", f"install -D -m 0755 {BIN} ")
    script = script.replace("install -D -m 0644 target/release/libshardai_torch.so ",
                            f"install -D -m 0644 {Path(BIN).parent / 'libshardai_torch.so'} ")
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    env = {}
    for k, t in steps[last_from:]:
        if k == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", t):
                env[name] = value.replace("/opt/", f"{stage}/opt/")
    return script, env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    tmp = Path(tempfile.mkdtemp(prefix="shardai-image-"))
    stage = tmp / "stage"
    proc = None
    try:
        script, env = staging_and_env(stage)
        subprocess.run(["bash", "-o", "pipefail", "-ec", script], cwd=ROOT, check=True)
        binary = stage / "usr/local/bin/shardai"
        for need in ("LD_LIBRARY_PATH", "SHARDAI_BACKENDSPATH"):
            if need not in env:
                sys.exit(f"the runtime stage sets no {need}")
        run_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), **env}
        run_env["SHARDAI_DIR"] = str(tmp / "data")
        run_env["SHARDAI_BIND"] = "127.0.0.1"
        # Every library resolves, and only inside the stage or the system.
        torch_lib = stage / "usr/local/lib/shardai/libshardai_torch.so"
        for staged in (binary, torch_lib):
            ldd = subprocess.run(["ldd", str(staged)], env=run_env, capture_output=True,
                                 text=True, check=True).stdout
            for line in ldd.splitlines():
                if "not found" in line or (str(ROOT) in line):
                    sys.exit(f"staged {staged.name} resolves a library outside the image: "
                             f"{line.strip()}")
        models = tmp / "models"
        subprocess.run([sys.executable, str(ROOT / "tests/models/make_tflite.py"), str(models)],
                       check=True, capture_output=True)
        port = free_port()
        log = open(tmp / "shardai.log", "w")
        proc = subprocess.Popen([str(binary), "--port", str(port)], env=run_env, cwd=tmp,
                                stdout=log, stderr=subprocess.STDOUT)
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    sys.exit("the staged binary exited:\n" + (tmp / "shardai.log").read_text())
                time.sleep(0.1)
        red = ROOT / "tests/models/redisai"
        x = r.execute_command
        x("AI.TENSORSET", "a", "FLOAT", 2, 3, "VALUES", 1, 2, 3, 4, 5, 6)
        x("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28)
        x("AI.TENSORSET", "v", "FLOAT", 2, "VALUES", 1, 2)
        x("AI.MODELSTORE", "onnx", "ONNX", "CPU", "BLOB", (red / "mnist.onnx").read_bytes())
        x("AI.MODELEXECUTE", "onnx", "INPUTS", 1, "img", "OUTPUTS", 1, "onnx_out")
        x("AI.MODELSTORE", "tf", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul",
          "BLOB", (red / "graph.pb").read_bytes())
        x("AI.MODELEXECUTE", "tf", "INPUTS", 2, "v", "v", "OUTPUTS", 1, "tf_out")
        x("AI.MODELSTORE", "tfl", "TFLITE", "CPU", "BLOB", (models / "mul.tflite").read_bytes())
        x("AI.MODELEXECUTE", "tfl", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "tfl_out")
        x("AI.SCRIPTSTORE", "add", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE",
          "def add(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
          "    return tensors[0] + tensors[1]\n")
        x("AI.SCRIPTEXECUTE", "add", "add", "INPUTS", 2, "v", "v", "OUTPUTS", 1, "torch_out")
        def values(key):
            return [float(v) for v in x("AI.TENSORGET", key, "VALUES")]

        got = {
            "onnx": len(values("onnx_out")),
            "tf": values("tf_out"),
            "tflite": values("tfl_out"),
            "torch": values("torch_out"),
        }
        want = {
            "onnx": 10,
            "tf": [1, 4],
            "tflite": [1, 4, 9, 16, 25, 36],
            "torch": [2, 4],
        }
        if got != want:
            sys.exit(f"the staged backends computed {got}, expected {want}")
        versions = r.info("ai_backends_info")
        print("ok: the image's layout runs ONNX, TF, TFLITE and TORCH ("
              + ", ".join(f"{k[3:-8]} {v}" for k, v in sorted(versions.items())
                          if k.endswith("_version")) + ")")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    BIN = os.path.abspath(sys.argv[1])
    main()
