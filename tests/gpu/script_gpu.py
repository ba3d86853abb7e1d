"""GPU proof for TorchScript scripts, for a machine with an NVIDIA GPU and Python torch (CUDA):
a real shardai on loopback, scripts stored on GPU:0 and called through AI.SCRIPTEXECUTE, from a
DAG with a TORCH model on the GPU, and calling that model through redisAI.model_execute; each
output compared with Python torch's on the same GPU. Not part of CI (it needs a GPU).

    cargo build --release -p shardai-node -p shardai-tests
    mkdir -p gpu && target/release/make_torch_models gpu
    strip -o gpu/shardai target/release/shardai
    # on the GPU machine, from the checkout (libtorch is Python torch's):
    python3 tests/gpu/script_gpu.py gpu
"""
import os, subprocess, sys, tempfile
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp import start  # noqa: E402

HERE = os.path.abspath(sys.argv[1])
LIB = os.path.join(os.path.dirname(torch.__file__), "lib")
SITE = os.path.dirname(os.path.dirname(torch.__file__))

SOURCE = """
def normalise(tensors: List[Tensor], keys: List[str], args: List[str]):
    image = tensors[0].float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406], device=image.device)
    std = torch.tensor([0.229, 0.224, 0.225], device=image.device)
    return image.sub(mean).div(std).permute(2, 0, 1).unsqueeze(0).contiguous()

def where(tensors: List[Tensor], keys: List[str], args: List[str]):
    t = tensors[0]
    return torch.tensor([int(t.is_cuda), t.get_device()])

def mnist_pre(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].float().div(255.0).reshape(1, 1, 28, 28)

def post(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].argmax(1)

def classify(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = tensors[0].float().div(255.0).reshape(1, 1, 28, 28)
    out = redisAI.model_execute(keys[0], [x], 1)
    return [out[0], out[0].argmax(1)]
"""

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what, detail)
    if not ok:
        failures.append(what)


d = tempfile.mkdtemp()
p, c, logpath = start(os.path.join(HERE, "shardai"), SITE, LIB, d)
dev = torch.device("cuda:0")
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0))

r = c.cmd("AI.SCRIPTSTORE", "s", "GPU:0", "ENTRY_POINTS", 5, "normalise", "where", "mnist_pre", "post",
          "classify", "SOURCE", SOURCE)
check("SCRIPTSTORE s GPU:0", r == "+OK", r)
r = c.cmd("AI.SCRIPTSTORE", "bad", "GPU:7", "ENTRY_POINTS", 1, "post", "SOURCE", SOURCE)
check("SCRIPTSTORE on a GPU that does not exist is an error", isinstance(r, str) and r.startswith("-"), r)

# Tensors inside the script are on the GPU.
c.cmd("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2)
c.cmd("AI.SCRIPTEXECUTE", "s", "where", "INPUTS", 1, "t", "OUTPUTS", 1, "w")
w = c.cmd("AI.TENSORGET", "w", "VALUES")
check("the script's input tensor is on cuda:0", w == [1, 0], w)

# Normalisation on the GPU versus Python torch on the GPU.
pixels = (np.arange(224 * 224 * 3) * 7 % 256).astype(np.uint8)
c.cmd("AI.TENSORSET", "image", "UINT8", 224, 224, 3, "BLOB", pixels.tobytes())
r = c.cmd("AI.SCRIPTEXECUTE", "s", "normalise", "INPUTS", 1, "image", "OUTPUTS", 1, "x")
check("SCRIPTEXECUTE normalise", r == "+OK", r)
meta = c.cmd("AI.TENSORGET", "x", "META")
got = np.frombuffer(c.cmd("AI.TENSORGET", "x", "BLOB"), dtype="<f4").reshape(1, 3, 224, 224)
img = torch.from_numpy(pixels.reshape(224, 224, 3)).to(dev).float().div(255.0)
mean = torch.tensor([0.485, 0.456, 0.406], device=dev)
std = torch.tensor([0.229, 0.224, 0.225], device=dev)
ref = img.sub(mean).div(std).permute(2, 0, 1).unsqueeze(0).cpu().numpy()
check("normalise matches Python torch on the GPU", np.abs(got - ref).max() < 1e-5,
      f"meta {meta} max |diff| {np.abs(got - ref).max()}")

# A model on the GPU between two script steps, in one DAG, and from the script itself.
cnn = open(os.path.join(HERE, "mnist_cnn.pt"), "rb").read()
check("MODELSTORE cnn TORCH GPU:0", c.cmd("AI.MODELSTORE", "cnn", "TORCH", "GPU:0", "BLOB", cnn) == "+OK")
floats = np.frombuffer(open(os.path.join(HERE, "mnist_cnn.input"), "rb").read(), dtype="<f4")
raw = np.clip(np.round(floats * 255.0), 0, 255).astype(np.uint8)
c.cmd("AI.TENSORSET", "raw", "UINT8", 28, 28, "BLOB", raw.tobytes())
m = torch.jit.load(os.path.join(HERE, "mnist_cnn.pt"), map_location="cuda:0")
x = torch.from_numpy(raw.copy()).to(dev).float().div(255.0).reshape(1, 1, 28, 28)
scores = m(x).detach()
label = int(scores.argmax(1).item())
r = c.cmd("AI.DAGEXECUTE", "LOAD", 1, "raw", "|>",
          "AI.SCRIPTEXECUTE", "s", "mnist_pre", "INPUTS", 1, "raw", "OUTPUTS", 1, "x", "|>",
          "AI.MODELEXECUTE", "cnn", "INPUTS", 1, "x", "OUTPUTS", 1, "y", "|>",
          "AI.SCRIPTEXECUTE", "s", "post", "INPUTS", 1, "y", "OUTPUTS", 1, "label", "|>",
          "AI.TENSORGET", "label", "VALUES")
check("DAG script -> GPU model -> script gives Python torch's label", r == ["+OK", "+OK", "+OK", [label]],
      f"{r} expected label {label}")
r = c.cmd("AI.SCRIPTEXECUTE", "s", "classify", "KEYS", 1, "cnn", "INPUTS", 1, "raw", "OUTPUTS", 2, "sc", "lb")
got = np.frombuffer(c.cmd("AI.TENSORGET", "sc", "BLOB"), dtype="<f4")
check("redisAI.model_execute from a GPU script", r == "+OK" and c.cmd("AI.TENSORGET", "lb", "VALUES") == [label]
      and np.abs(got - scores.cpu().numpy().ravel()).max() < 1e-4,
      f"{r} max |diff| {np.abs(got - scores.cpu().numpy().ravel()).max()}")
info = c.cmd("AI.INFO", "s")
print("AI.INFO s ->", info)
print("AI.INFO cnn ->", c.cmd("AI.INFO", "cnn"))
print(subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv"],
                     capture_output=True, text=True).stdout, "server pid", p.pid)
p.terminate(); p.wait()
print(open(logpath).read()[-1500:])
print("FAILURES:", failures if failures else "none")
sys.exit(1 if failures else 0)
