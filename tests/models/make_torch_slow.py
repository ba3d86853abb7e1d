"""Writes a TorchScript module that runs for a very long time (a loop of two billion adds),
to stand for a model whose backend call hangs, without Python torch.

    python3 tests/models/make_torch_slow.py MUL_PT OUT_PT

Like make_torch_two_outputs.py, it rewrites the TorchScript source inside the archive that
make_torch_models traced for `a * b`; libtorch compiles that source when it loads the module.
"""
import sys

from make_torch_two_outputs import rewrite

SOURCE = """class Mul(Module):
  __parameters__ = []
  __buffers__ = []
  def forward(self: __torch__.Mul,
    a: Tensor,
    b: Tensor) -> Tensor:
    x = a
    for _0 in range(2000000000):
      x = torch.add(x, b)
    return x
"""


def main():
    rewrite(sys.argv[1], sys.argv[2], SOURCE)


if __name__ == "__main__":
    main()
