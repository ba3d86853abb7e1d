"""GPU proof for the TORCH backend, for a machine with an NVIDIA GPU and Python torch (CUDA):
a real shardai on loopback, TorchScript models stored on GPU:0 and run through the server, the
output compared with Python torch's on the same GPU. Not part of CI (it needs a GPU).

    cargo build --release -p shardai-node -p shardai-tests
    mkdir -p gpu && target/release/make_torch_models gpu
    python3 tests/models/make_torch_two_outputs.py gpu/mul.pt gpu/two_outputs.pt
    strip -o gpu/shardai target/release/shardai
    # on the GPU machine, from the checkout (libtorch is Python torch's):
    python3 tests/gpu/torch_gpu.py gpu
"""
import os, subprocess, sys, tempfile
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import start  # noqa: E402

HERE = os.path.abspath(sys.argv[1])
LIB = os.path.join(os.path.dirname(torch.__file__), "lib")
SITE = os.path.dirname(os.path.dirname(torch.__file__))


d = tempfile.mkdtemp()
p, c, logpath = start(os.path.join(HERE, "shardai"), SITE, LIB, d)
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0))
cnn = open(os.path.join(HERE, "mnist_cnn.pt"), "rb").read()
print("MODELSTORE cnn TORCH GPU:0 ->", c.cmd("AI.MODELSTORE", "cnn", "TORCH", "GPU:0", "BLOB", cnn))
print("MODELSTORE two TORCH GPU ->", c.cmd("AI.MODELSTORE", "two", "TORCH", "GPU", "BLOB", open(os.path.join(HERE, "two_outputs.pt"), "rb").read()))
img = open(os.path.join(HERE, "mnist_cnn.input"), "rb").read()
print(c.cmd("AI.TENSORSET", "img", "FLOAT", 1, 1, 28, 28, "BLOB", img))
print("MODELEXECUTE ->", c.cmd("AI.MODELEXECUTE", "cnn", "INPUTS", 1, "img", "OUTPUTS", 1, "out"))
got = np.frombuffer(c.cmd("AI.TENSORGET", "out", "BLOB"), dtype="<f4")
cpu = np.frombuffer(open(os.path.join(HERE, "mnist_cnn.expected"), "rb").read(), dtype="<f4")  # libtorch, CPU
m = torch.jit.load(os.path.join(HERE, "mnist_cnn.pt"), map_location="cuda:0")
ref = m(torch.from_numpy(np.frombuffer(img, dtype="<f4").reshape(1, 1, 28, 28).copy()).cuda()).detach().cpu().numpy().ravel()
print("server GPU output  ", got)
print("python torch GPU   ", ref)
print("max |server - torch GPU| =", np.abs(got - ref).max(), " max |server GPU - libtorch CPU| =", np.abs(got - cpu).max())
c.cmd("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
c.cmd("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
print("two outputs ->", c.cmd("AI.MODELEXECUTE", "two", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "p", "s"),
      c.cmd("AI.TENSORGET", "p", "VALUES"), c.cmd("AI.TENSORGET", "s", "VALUES"))
print("GPU:7 ->", c.cmd("AI.MODELSTORE", "x", "TORCH", "GPU:7", "BLOB", cnn))
print("AI.INFO cnn ->", c.cmd("AI.INFO", "cnn"))
print("MODELGET META ->", c.cmd("AI.MODELGET", "cnn", "META")[:4])
print(subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv"],
                     capture_output=True, text=True).stdout, "server pid", p.pid)
print(c.cmd("INFO", "ai_backends_info").decode())
p.terminate(); p.wait()
print(open(logpath).read()[-1500:])
