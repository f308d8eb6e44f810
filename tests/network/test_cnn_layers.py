"""Convolutional layers (NCHW) on both backends against TensorFlow's ops (NHWC, transposed),
with distinct values in every weight; shape inference and bad parameters."""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt.errors import ShapeError
from tf2rt.network import Network
from tf2rt.network.layers_cnn import same_padding

BACKENDS = ("onnxruntime", "reference")


def run_both(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    from tf2rt.engine import build_engine

    engine = build_engine(net)
    out = net.outputs[0].name
    return {b: engine.run({net.inputs[0].name: x}, backend=b)[out] for b in BACKENDS}


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


def check(got: dict[str, np.ndarray], want: np.ndarray, tol: float = 1e-5) -> None:
    for backend, y in got.items():
        assert y.shape == want.shape, (backend, y.shape, want.shape)
        err = float(np.abs(y - want).max() / max(np.abs(want).max(), 1e-6))
        assert err < tol, f"{backend}: relative error {err:.3g}"


CONV_CASES = [  # (H, W, C, K, kh, kw, stride, dilation, padding, groups)
    (9, 11, 3, 5, 3, 3, 1, 1, "SAME", 1),
    (10, 13, 4, 6, 3, 2, 2, 1, "SAME", 1),  # asymmetric SAME padding (extra pixel at the end)
    (12, 12, 4, 8, 3, 3, 1, 2, "SAME", 1),  # dilation
    (8, 9, 6, 4, 2, 3, (2, 1), 1, "VALID", 1),
    (9, 9, 6, 6, 3, 3, 2, 1, "SAME", 6),  # depthwise
    (9, 9, 6, 12, 3, 3, 1, 1, "SAME", 6),  # depthwise, multiplier 2
    (7, 8, 8, 6, 1, 1, 1, 1, "VALID", 2),  # grouped 1x1
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_matches_tf(tf, case):
    h, w, c, k, kh, kw, stride, dil, padding, groups = case
    rng = np.random.default_rng(hash(case) % 1000)
    x = rng.normal(size=(2, c, h, w)).astype(np.float32)
    kernel = rng.normal(size=(k, c // groups, kh, kw)).astype(np.float32)
    bias = rng.normal(size=k).astype(np.float32)
    st = stride if isinstance(stride, tuple) else (stride, stride)
    if padding == "SAME":
        ph, pw = same_padding(h, kh, st[0], dil), same_padding(w, kw, st[1], dil)
        pre, post = (ph[0], pw[0]), (ph[1], pw[1])
    else:
        pre = post = (0, 0)
    net = Network("conv")
    t = net.add_input("x", "float32", (None, c, h, w))
    conv = net.add_convolution_nd(t, k, (kh, kw), kernel, bias, stride=st, pre_padding=pre, post_padding=post,
                                  dilation=dil, num_groups=groups, name="conv")
    net.mark_output(conv.output, "y")
    # oracle: TensorFlow, NHWC; groups == C uses depthwise_conv2d (filter [kh, kw, C, multiplier])
    if groups == 1:
        want = tf.nn.conv2d(nhwc(x), kernel.transpose(2, 3, 1, 0), strides=[1, *st, 1], padding=padding,
                            dilations=dil)
    elif groups == c:
        mult = k // c
        f = kernel.reshape(c, mult, kh, kw).transpose(2, 3, 0, 1)
        want = tf.nn.depthwise_conv2d(nhwc(x), f, strides=[1, *st, 1], padding=padding)
    else:
        parts = np.split(nhwc(x), groups, axis=3)
        ks = np.split(kernel, groups, axis=0)
        want = tf.concat([tf.nn.conv2d(p, kk.transpose(2, 3, 1, 0), [1, *st, 1], padding)
                          for p, kk in zip(parts, ks)], axis=3)
    want = nchw(want.numpy() + bias)
    assert conv.output.shape == (None, *want.shape[1:])
    check(run_both(net, x), want)


@pytest.mark.parametrize("kind,window,stride,padding", [
    ("max", (3, 3), (2, 2), "SAME"), ("average", (3, 3), (2, 2), "SAME"), ("average", (2, 3), (1, 2), "VALID"),
    ("max", (2, 2), (2, 2), "VALID"), ("average", (3, 2), (2, 1), "SAME"),
])
def test_pooling_matches_tf(tf, kind, window, stride, padding):
    """TensorFlow's average pooling divides by the number of real (unpadded) cells."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, 10, 11)).astype(np.float32)
    if padding == "SAME":
        ph, pw = same_padding(10, window[0], stride[0]), same_padding(11, window[1], stride[1])
        pre, post = (ph[0], pw[0]), (ph[1], pw[1])
    else:
        pre = post = (0, 0)
    net = Network("pool")
    t = net.add_input("x", "float32", (None, 3, 10, 11))
    pool = net.add_pooling_nd(t, kind, window, stride, pre, post, name="pool")
    net.mark_output(pool.output, "y")
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    want = nchw(fn(nhwc(x), window, stride, padding).numpy())
    check(run_both(net, x), want)


def test_padding_prelu_and_scale(tf):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 4, 5, 6)).astype(np.float32)
    slope = rng.uniform(0.05, 0.5, (4, 1, 1)).astype(np.float32)
    scale, shift = rng.uniform(0.5, 2, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    net = Network("misc")
    t = net.add_input("x", "float32", (None, 4, 5, 6))
    p = net.add_padding_nd(t, (1, 0), (2, 3), name="pad")
    r = net.add_parametric_relu(p.output, slope, name="prelu")
    s = net.add_scale(r.output, "channel", shift=shift, scale=scale, name="bn")
    net.mark_output(s.output, "y")
    xp = tf.pad(nhwc(x), [[0, 0], [1, 2], [0, 3], [0, 0]])
    y = tf.keras.layers.PReLU(alpha_initializer=tf.constant_initializer(slope.reshape(1, 1, 4)),
                              shared_axes=[1, 2])(xp)
    want = nchw((y * scale + shift).numpy())
    assert p.output.shape == (None, 4, 8, 9)
    check(run_both(net, x), want)


def test_parameters_settable_after_adding():
    net = Network("n")
    t = net.add_input("x", "float32", (1, 3, 16, 16))
    conv = net.add_convolution_nd(t, 4, (3, 3), np.ones((4, 3, 3, 3), np.float32))
    assert conv.output.shape == (1, 4, 14, 14)
    conv.stride_nd = 2
    assert conv.output.shape == (1, 4, 7, 7)
    conv.padding_nd = (1, 1)
    assert conv.output.shape == (1, 4, 8, 8)


@pytest.mark.parametrize("kwargs,match", [
    ({"kernel": np.ones((4, 2, 3, 3))}, "kernel has 72 values"),
    ({"num_groups": 2}, "num_groups 2 must divide"),
    ({"stride": 0}, "stride_nd must be >= 1"),
    ({"kernel_shape": (20, 3), "kernel": np.ones((4, 3, 20, 3))}, "larger than the padded input"),
    ({"bias": np.ones(3)}, "bias has 3 values"),
])
def test_bad_convolutions(kwargs, match):
    net = Network("n")
    t = net.add_input("x", "float32", (1, 3, 16, 16))
    args = {"num_output_maps": 4, "kernel_shape": (3, 3), "kernel": np.ones((4, 3, 3, 3), np.float32)}
    args.update(kwargs)
    with pytest.raises(ShapeError, match=match):
        net.add_convolution_nd(t, **args)


def test_conv_needs_nchw():
    net = Network("n")
    t = net.add_input("x", "float32", (1, 16, 3))
    with pytest.raises(ShapeError, match="NCHW"):
        net.add_convolution_nd(t, 4, (3, 3), np.ones((4, 3, 3, 3), np.float32))
