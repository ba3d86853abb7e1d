"""Builds the ONNX test models with the `onnx` package (no framework needed).

    .venv/bin/python tests/models/make_onnx.py OUT_DIR [--big-mb N]

Writes to OUT_DIR:
- mul.onnx: two float inputs a, b of any shape, output a*b.
- two_outputs.onnx: input x, outputs x+1 and x*2.
- string_identity.onnx: a string tensor in, the same tensor out.
- batch_mismatch.onnx: input [N, 4], output [1, 4] (reduces the batch away).
- mnist_cnn.onnx: an MNIST-sized CNN with a free batch dimension (RedisAI's mnist.onnx is fixed
  at batch 1): x [N, 1, 28, 28] -> conv 5x5 1->8, relu, max-pool 2, conv 5x5 8->16, relu,
  max-pool 2, flatten, dense 256->10 -> y [N, 10]; fixed random weights.
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

    rng = np.random.default_rng(7)

    def init(name, *shape, scale=0.1):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[5, 5]),
         helper.make_node("Relu", ["c1"], ["r1"]), helper.make_node("MaxPool", ["r1"], ["p1"], **pool),
         helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[5, 5]),
         helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("MaxPool", ["r2"], ["p2"], **pool),
         helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w3", "b3"], ["y"])],
        "mnist_cnn", [helper.make_tensor_value_info("x", f, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", f, ["N", 10])],
        initializer=[init("w1", 8, 1, 5, 5, scale=0.2), init("b1", 8), init("w2", 16, 8, 5, 5), init("b2", 16),
                     init("w3", 256, 10), init("b3", 10)])
    save(helper.make_model(g, opset_imports=OPSET), out / "mnist_cnn.onnx")

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
