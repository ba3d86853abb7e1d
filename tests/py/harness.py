"""What the tests and the benchmarks share without pytest: the binary's path, free ports."""
import os
import pathlib
import socket

ROOT = pathlib.Path(__file__).resolve().parents[2]


def binary():
    """$SHARDAI_BIN (set by scripts/test), else target/release/shardai."""
    path = os.environ.get("SHARDAI_BIN") or str(ROOT / "target" / "release" / "shardai")
    if not os.path.exists(path):
        raise RuntimeError(f"no shardai binary at {path}: run `cargo build --release -p shardai-node`")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
