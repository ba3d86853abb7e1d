"""Builds the TF test models: frozen GraphDefs, written as protobuf by hand (GraphDef is a
short message; TensorFlow's Python package is not needed, only numpy).

    .venv/bin/python tests/models/make_tf.py OUT_DIR

Writes to OUT_DIR:
- two_outputs.pb: float placeholders a, b; outputs mul = a*b and add = a+b.
- mul_c.pb: a, b -> c = a*b (the node names of the spec's AI.MODELGET example).
- mnist_cnn.pb: an MNIST-sized CNN on `images` [N, 28, 28, 1] (NHWC; the node names of the
  spec's AI.MODELSTORE example): conv 5x5 1->8, relu, max-pool 2,
  conv 5x5 8->16, relu, max-pool 2, reshape to 256, dense 256->10, output node `output`;
  fixed random weights. mnist_cnn.input (1x28x28x1 f32) and mnist_cnn.expected (1x10 f32,
  computed here by numpy in float64, independently of TensorFlow).
- batch_mismatch.pb: x [N, 4] -> y = sum over axis 0, keep dims ([1, 4]).
- corrupt.pb: the first half of two_outputs.pb.
RedisAI's own graph.pb (a*b, nodes a, b, mul) is in tests/models/redisai/.
"""
import pathlib
import struct
import sys

import numpy as np

import numpy_cnn

DT_FLOAT, DT_INT32 = 1, 3


# --- protobuf wire encoding -------------------------------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def vint(num, n):
    return field(num, 0, varint(n))


def ld(num, data):
    if isinstance(data, str):
        data = data.encode()
    return field(num, 2, varint(len(data)) + data)


# --- TensorFlow messages ----------------------------------------------------------------
def shape_proto(dims):
    return b"".join(ld(2, vint(1, d)) for d in dims)


def tensor_proto(arr):
    dtype = {np.float32: DT_FLOAT, np.int32: DT_INT32}[arr.dtype.type]
    return vint(1, dtype) + ld(2, shape_proto(arr.shape)) + ld(4, arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def attr_type(t):
    return vint(6, t)


def attr_s(s):
    return ld(2, s)


def attr_b(b):
    return vint(5, int(b))


def attr_ints(xs):
    return ld(1, ld(3, b"".join(varint(x) for x in xs)))


def attr_tensor(arr):
    return ld(8, tensor_proto(arr))


def node(name, op, inputs=(), **attrs):
    body = ld(1, name) + ld(2, op) + b"".join(ld(3, i) for i in inputs)
    for k, v in sorted(attrs.items()):
        body += ld(5, ld(1, k) + ld(2, v))
    return ld(1, body)


def graph(*nodes):
    # versions { producer: 1205 }
    return b"".join(nodes) + ld(4, vint(1, 1205))


def const(name, arr):
    dtype = {np.float32: DT_FLOAT, np.int32: DT_INT32}[arr.dtype.type]
    return node(name, "Const", value=attr_tensor(arr), dtype=attr_type(dtype))


def placeholder(name):
    return node(name, "Placeholder", dtype=attr_type(DT_FLOAT))


F = attr_type(DT_FLOAT)


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    two = graph(placeholder("a"), placeholder("b"),
                node("mul", "Mul", ["a", "b"], T=F), node("add", "AddV2", ["a", "b"], T=F))
    (out / "two_outputs.pb").write_bytes(two)
    (out / "corrupt.pb").write_bytes(two[: len(two) // 2])
    (out / "mul_c.pb").write_bytes(graph(placeholder("a"), placeholder("b"), node("c", "Mul", ["a", "b"], T=F)))

    axis = np.array([0], dtype=np.int32)
    (out / "batch_mismatch.pb").write_bytes(graph(
        placeholder("x"), const("axis", axis),
        node("y", "Sum", ["x", "axis"], T=F, Tidx=attr_type(DT_INT32), keep_dims=attr_b(True))))

    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((5, 5, 1, 8)) * 0.2).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((5, 5, 8, 16)) * 0.1).astype(np.float32)
    b2 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    w3 = (rng.standard_normal((256, 10)) * 0.1).astype(np.float32)
    b3 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    conv = dict(T=F, strides=attr_ints([1, 1, 1, 1]), padding=attr_s("VALID"))
    pool = dict(T=F, ksize=attr_ints([1, 2, 2, 1]), strides=attr_ints([1, 2, 2, 1]), padding=attr_s("VALID"))
    cnn = graph(
        placeholder("images"),
        const("w1", w1), const("b1", b1), const("w2", w2), const("b2", b2),
        const("w3", w3), const("b3", b3), const("flat_shape", np.array([-1, 256], dtype=np.int32)),
        node("c1", "Conv2D", ["images", "w1"], **conv), node("c1b", "BiasAdd", ["c1", "b1"], T=F),
        node("r1", "Relu", ["c1b"], T=F), node("p1", "MaxPool", ["r1"], **pool),
        node("c2", "Conv2D", ["p1", "w2"], **conv), node("c2b", "BiasAdd", ["c2", "b2"], T=F),
        node("r2", "Relu", ["c2b"], T=F), node("p2", "MaxPool", ["r2"], **pool),
        node("flat", "Reshape", ["p2", "flat_shape"], T=F, Tshape=attr_type(DT_INT32)),
        node("fc", "MatMul", ["flat", "w3"], T=F), node("output", "BiasAdd", ["fc", "b3"], T=F))
    (out / "mnist_cnn.pb").write_bytes(cnn)

    x = rng.random((1, 28, 28, 1)).astype(np.float32)
    y = numpy_cnn.forward(x, w1, b1, w2, b2, w3, b3)
    (out / "mnist_cnn.input").write_bytes(x.tobytes())
    (out / "mnist_cnn.expected").write_bytes(y.astype(np.float32).tobytes())


if __name__ == "__main__":
    main()
