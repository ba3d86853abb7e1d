"""Writes a TorchScript module with two outputs, `(a * b, a + b)`, without Python torch.

    python3 tests/models/make_torch_two_outputs.py MUL_PT OUT_PT

Tracing (all libtorch offers without Python torch) saves a method that returns one value, so
this takes the archive make_torch_models traced for `a * b` and rewrites the TorchScript
source inside it (`code/__torch__.py`) to return a tuple. A TorchScript archive carries its
code as source that libtorch compiles when it loads the module, so the result is a module as
`torch.jit.save` writes it; its debug map (source ranges for error messages) is dropped
because it would no longer match the source.
"""
import sys
import zipfile

SOURCE = """class Mul(Module):
  __parameters__ = []
  __buffers__ = []
  def forward(self: __torch__.Mul,
    a: Tensor,
    b: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.mul(a, b), torch.add(a, b))
"""


def rewrite(src, dst, source):
    """Copies the TorchScript archive `src` to `dst` with `source` as its module's code (and
    without the debug map, which would no longer match it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename.endswith(".debug_pkl"):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith("code/__torch__.py"):
                data = source.encode()
            zout.writestr(info.filename, data)


def main():
    rewrite(sys.argv[1], sys.argv[2], SOURCE)


if __name__ == "__main__":
    main()
