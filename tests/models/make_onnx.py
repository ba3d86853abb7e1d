"""Builds the ONNX test models with the `onnx` package (no framework needed).

    .venv/bin/python tests/models/make_onnx.py OUT_DIR [--big-mb N]

Writes to OUT_DIR:
- mul.onnx: two float inputs a, b of any shape, output a*b.
- two_outputs.onnx: input x, outputs x+1 and x*2.
- string_identity.onnx: a string tensor in, the same tensor out.
- batch_mismatch.onnx: input [N, 4], output [1, 4] (reduces the batch away).
- big.onnx (only with --big-mb): x + a constant of N MB, for chunked MODELSTORE/MODELGET.
"""
import argparse
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def save(model, path):
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save_model(model, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--big-mb", type=int, default=0)
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    f = TensorProto.FLOAT

    g = helper.make_graph(
        [helper.make_node("Mul", ["a", "b"], ["c"])], "mul",
        [helper.make_tensor_value_info("a", f, ["N", "M"]), helper.make_tensor_value_info("b", f, ["N", "M"])],
        [helper.make_tensor_value_info("c", f, ["N", "M"])])
    save(helper.make_model(g, opset_imports=OPSET), out / "mul.onnx")

    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["plus"]), helper.make_node("Mul", ["x", "two"], ["times"])],
        "two_outputs", [helper.make_tensor_value_info("x", f, ["N", "M"])],
        [helper.make_tensor_value_info("plus", f, ["N", "M"]), helper.make_tensor_value_info("times", f, ["N", "M"])],
        initializer=[one, two])
    save(helper.make_model(g, opset_imports=OPSET), out / "two_outputs.onnx")

    s = TensorProto.STRING
    g = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"])], "string_identity",
        [helper.make_tensor_value_info("s", s, ["N"])], [helper.make_tensor_value_info("t", s, ["N"])])
    save(helper.make_model(g, opset_imports=OPSET), out / "string_identity.onnx")

    # Sums over the batch axis: the output's batch dimension is 1 whatever the input's.
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    g = helper.make_graph(
        [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)], "batch_mismatch",
        [helper.make_tensor_value_info("x", f, ["N", 4])], [helper.make_tensor_value_info("y", f, [1, 4])],
        initializer=[axes])
    save(helper.make_model(g, opset_imports=OPSET), out / "batch_mismatch.onnx")

    if a.big_mb:
        n = a.big_mb * 1024 * 1024 // 4
        w = numpy_helper.from_array(np.arange(n, dtype=np.float32) % 1000, "w")
        g = helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])], "big",
            [helper.make_tensor_value_info("x", f, [n])], [helper.make_tensor_value_info("y", f, [n])],
            initializer=[w])
        model = helper.make_model(g, opset_imports=OPSET)
        model.ir_version = 9
        onnx.save_model(model, out / "big.onnx")


if __name__ == "__main__":
    main()
