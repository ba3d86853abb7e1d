"""Builds the TFLITE test models as TFLite flatbuffers, with the schema bindings that ship in
the ai-edge-litert wheel (no converter or TensorFlow needed), and computes the expected
outputs with the wheel's own interpreter (LiteRT itself), checked against numpy.

    .venv/bin/python tests/models/make_tflite.py OUT_DIR

Writes to OUT_DIR:
- mul.tflite: float inputs a, b [2, 3]; output c = a*b (signature `serving_default`).
- two_outputs.tflite: a, b [2, 3]; outputs mul = a*b and add = a+b.
- mul_nosig.tflite: mul.tflite without a signature (inputs and outputs of the subgraph).
- mnist_cnn.tflite: x [1, 28, 28, 1] NHWC: conv 5x5 1->8 relu, max-pool 2, conv 5x5 8->16 relu,
  max-pool 2, reshape to 256, dense 256->10 (`output`); fixed random weights.
  mnist_cnn.input (f32) and mnist_cnn.expected (1x10 f32, from LiteRT's interpreter).
- batch_mismatch.tflite: x [3, 4] -> y = sum over axis 0 with keep_dims ([1, 4]).
- corrupt.tflite: the first half of mul.tflite.
"""
import pathlib
import sys

import flatbuffers
import numpy as np

import numpy_cnn
from ai_edge_litert import schema_py_generated as s
from ai_edge_litert.interpreter import Interpreter

T = s.TensorType
OP = s.BuiltinOperator


class Builder:
    """One subgraph: tensors, constant buffers and operators."""

    def __init__(self):
        self.buffers = [s.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors = []
        self.ops = []
        self.codes = []

    def tensor(self, name, shape, dtype=T.FLOAT32, data=None, signature=None):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, 0
        if signature is not None:
            t.shapeSignature = list(signature)
        if data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, opt_type=0, opt=None):
        if code not in self.codes:
            self.codes.append(code)
        o = s.OperatorT()
        o.opcodeIndex = self.codes.index(code)
        o.inputs, o.outputs = list(inputs), list(outputs)
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.ops.append(o)

    def finish(self, inputs, outputs, signature=True):
        g = s.SubGraphT()
        g.tensors, g.operators, g.inputs, g.outputs, g.name = self.tensors, self.ops, inputs, outputs, "main"
        m = s.ModelT()
        m.version, m.description, m.subgraphs, m.buffers = 3, "shardai test model", [g], self.buffers
        m.operatorCodes = []
        for c in self.codes:
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            m.operatorCodes.append(oc)
        if signature:
            sig = s.SignatureDefT()
            sig.signatureKey, sig.subgraphIndex = "serving_default", 0

            def tmap(i):
                tm = s.TensorMapT()
                tm.name, tm.tensorIndex = self.tensors[i].name, i
                return tm
            sig.inputs = [tmap(i) for i in inputs]
            sig.outputs = [tmap(i) for i in outputs]
            m.signatureDefs = [sig]
        fb = flatbuffers.Builder(1024)
        fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
        return bytes(fb.Output())


def binary(code, opt_type, opt_cls, outputs):
    b = Builder()
    a = b.tensor("a", [2, 3])
    c = b.tensor("b", [2, 3])
    outs = []
    for name, op, t, cls in zip(outputs, code, opt_type, opt_cls):
        o = b.tensor(name, [2, 3])
        b.op(op, [a, c], [o], t, cls())
        outs.append(o)
    return b, [a, c], outs


def run(model, inputs):
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    a = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.5, dtype=np.float32)

    bl, ins, outs = binary([OP.MUL], [s.BuiltinOptions.MulOptions], [s.MulOptionsT], ["c"])
    mul = bl.finish(ins, outs)
    (out / "mul.tflite").write_bytes(mul)
    (out / "corrupt.tflite").write_bytes(mul[: len(mul) // 2])
    np.testing.assert_array_equal(run(mul, [a, b])[0], a * b)
    bl, ins, outs = binary([OP.MUL], [s.BuiltinOptions.MulOptions], [s.MulOptionsT], ["c"])
    (out / "mul_nosig.tflite").write_bytes(bl.finish(ins, outs, signature=False))

    bl, ins, outs = binary([OP.MUL, OP.ADD], [s.BuiltinOptions.MulOptions, s.BuiltinOptions.AddOptions],
                           [s.MulOptionsT, s.AddOptionsT], ["mul", "add"])
    two = bl.finish(ins, outs)
    (out / "two_outputs.tflite").write_bytes(two)
    got = run(two, [a, b])
    np.testing.assert_array_equal(got[0], a * b)
    np.testing.assert_array_equal(got[1], a + b)

    bl = Builder()
    x = bl.tensor("x", [3, 4])
    axis = bl.tensor("axis", [1], T.INT32, np.array([0], dtype=np.int32))
    y = bl.tensor("y", [1, 4])
    opt = s.ReducerOptionsT()
    opt.keepDims = True
    bl.op(OP.SUM, [x, axis], [y], s.BuiltinOptions.ReducerOptions, opt)
    red = bl.finish([x], [y])
    (out / "batch_mismatch.tflite").write_bytes(red)
    xs = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(run(red, [xs])[0], xs.sum(axis=0, keepdims=True))

    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((8, 5, 5, 1)) * 0.2).astype(np.float32)  # OHWI
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((16, 5, 5, 8)) * 0.1).astype(np.float32)
    b2 = (rng.standard_normal(16) * 0.1).astype(np.float32)
    w3 = (rng.standard_normal((10, 256)) * 0.1).astype(np.float32)  # [out, in]
    b3 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    bl = Builder()
    x = bl.tensor("x", [1, 28, 28, 1])
    cur = x
    for i, (w, bias, size) in enumerate([(w1, b1, 24), (w2, b2, 8)]):
        wt = bl.tensor(f"w{i}", w.shape, data=w)
        bt = bl.tensor(f"b{i}", bias.shape, data=bias)
        c = bl.tensor(f"conv{i}", [1, size, size, w.shape[0]])
        opt = s.Conv2DOptionsT()
        opt.padding, opt.strideW, opt.strideH = s.Padding.VALID, 1, 1
        opt.dilationWFactor = opt.dilationHFactor = 1
        opt.fusedActivationFunction = s.ActivationFunctionType.RELU
        bl.op(OP.CONV_2D, [cur, wt, bt], [c], s.BuiltinOptions.Conv2DOptions, opt)
        p = bl.tensor(f"pool{i}", [1, size // 2, size // 2, w.shape[0]])
        opt = s.Pool2DOptionsT()
        opt.padding, opt.strideW, opt.strideH, opt.filterWidth, opt.filterHeight = s.Padding.VALID, 2, 2, 2, 2
        bl.op(OP.MAX_POOL_2D, [c], [p], s.BuiltinOptions.Pool2DOptions, opt)
        cur = p
    shape = bl.tensor("flat_shape", [2], T.INT32, np.array([1, 256], dtype=np.int32))
    flat = bl.tensor("flat", [1, 256])
    opt = s.ReshapeOptionsT()
    opt.newShape = [1, 256]
    bl.op(OP.RESHAPE, [cur, shape], [flat], s.BuiltinOptions.ReshapeOptions, opt)
    wt = bl.tensor("w3", w3.shape, data=w3)
    bt = bl.tensor("b3", b3.shape, data=b3)
    o = bl.tensor("output", [1, 10])
    bl.op(OP.FULLY_CONNECTED, [flat, wt, bt], [o], s.BuiltinOptions.FullyConnectedOptions,
          s.FullyConnectedOptionsT())
    cnn = bl.finish([x], [o])
    (out / "mnist_cnn.tflite").write_bytes(cnn)

    img = rng.random((1, 28, 28, 1)).astype(np.float32)
    got = run(cnn, [img])[0]
    # numpy_cnn takes HWIO convolution weights and [in, out] dense weights.
    want = numpy_cnn.forward(img, w1.transpose(1, 2, 3, 0), b1, w2.transpose(1, 2, 3, 0), b2, w3.T, b3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    (out / "mnist_cnn.input").write_bytes(img.tobytes())
    (out / "mnist_cnn.expected").write_bytes(got.astype(np.float32).tobytes())


if __name__ == "__main__":
    main()
