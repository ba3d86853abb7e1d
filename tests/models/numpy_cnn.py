"""The MNIST-sized CNN of the TF and TFLITE test models, computed by numpy in float64 as an
independent reference: conv 5x5 + bias, relu, max-pool 2, conv 5x5 + bias, relu, max-pool 2,
flatten (NHWC order), dense."""
import numpy as np


def conv_valid(x, w, b):
    """NHWC input, HWIO weights, VALID padding, stride 1."""
    n, h, wd, _ = x.shape
    k = w.shape[0]
    oh, ow = h - k + 1, wd - k + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,co->nhwo", x[:, i:i + oh, j:j + ow, :], w[i, j])
    return out + b


def pool2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def forward(x, w1, b1, w2, b2, w3, b3):
    """x NHWC; w1, w2 HWIO; w3 [in, out]. Returns [N, out]."""
    h = pool2(np.maximum(conv_valid(x.astype(np.float64), w1, b1), 0))
    h = pool2(np.maximum(conv_valid(h, w2, b2), 0))
    return h.reshape(x.shape[0], -1) @ w3.astype(np.float64) + b3
