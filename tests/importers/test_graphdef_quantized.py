"""Quantized weights in GraphDefs: Dequantize of uint8/int8/int32 constants in every mode,
QuantizeV2 of constants, and a res10-SSD-style conv net whose weights were stored the way
TensorFlow's quantize_weights transform stores them (quint8 Const + min/max + Dequantize
MIN_FIRST) with an L2-normalised head; all compared with TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, check_case, rand

QTYPES = {"quint8": (np.uint8, 0, 255), "qint8": (np.int8, -128, 127), "qint32": (np.int32, -(1 << 31), (1 << 31) - 1)}


def _codes(np_t, lo, hi, shape, seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(max(lo, -200), min(hi, 200) + 1, shape) if np_t == np.int32 else rng.integers(lo, hi + 1, shape)
    q = q.astype(np_t)
    q.flat[0], q.flat[1] = max(lo, -(1 << 20)), min(hi, 1 << 20)  # both ends of the code range
    return q


def _dequant_graph(tf, p, tname, mode, narrow):
    np_t, lo, hi = QTYPES[tname]
    q = _codes(np_t, lo, hi, (6, 4), 1)
    w = tf.raw_ops.Dequantize(input=tf.constant(q, dtype=getattr(tf, tname)), min_range=-1.3, max_range=2.9,
                              mode=mode, narrow_range=narrow)
    return [tf.matmul(p["x"], w)]


def _quantize_graph(tf, p, tname, mode):
    w = tf.constant(rand(6, 4, lo=-1.7, hi=2.3))
    q, mn, mx = tf.raw_ops.QuantizeV2(input=w, min_range=-1.7, max_range=2.3, T=getattr(tf, tname), mode=mode)
    back = tf.raw_ops.Dequantize(input=q, min_range=mn, max_range=mx, mode=mode)
    return [tf.matmul(p["x"], back)]


def quantized_const(tf, w: np.ndarray, name: str):
    """The quantize_weights transform's form of a float weight: quint8 codes, min, max, Dequantize MIN_FIRST."""
    mn, mx = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    q = np.clip(np.round((w - mn) / (mx - mn) * 255), 0, 255).astype(np.uint8)
    return tf.raw_ops.Dequantize(input=tf.constant(q, dtype=tf.quint8, name=f"{name}_quantized_const"),
                                 min_range=tf.constant(mn, name=f"{name}_quantized_min"),
                                 max_range=tf.constant(mx, name=f"{name}_quantized_max"), mode="MIN_FIRST", name=name)


def _ssd_like(tf, p):
    x = p["image"]
    conv = lambda h, k, cin, cout, name, stride=1: tf.nn.relu(  # noqa: E731
        tf.nn.conv2d(h, quantized_const(tf, rand(k, k, cin, cout, lo=-0.4, hi=0.4), f"{name}/weights"), stride,
                     "SAME") + tf.constant(rand(cout, lo=-0.1, hi=0.1)))
    h = conv(x, 3, 3, 8, "conv1", 2)
    h = tf.nn.max_pool2d(h, 2, 2, "SAME")
    h = conv(h, 3, 8, 16, "conv2")
    # L2-normalised head, as SSD's conv4_3_norm: x * rsqrt(max(sum(x²), eps)) * scale
    norm = h * tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(h), axis=3, keepdims=True), 1e-10))
    norm = norm * tf.constant(rand(16, lo=10, hi=20))
    boxes = tf.nn.conv2d(norm, quantized_const(tf, rand(3, 3, 16, 4 * 2, lo=-0.2, hi=0.2), "loc/weights"), 1, "SAME")
    classes = tf.nn.conv2d(norm, quantized_const(tf, rand(3, 3, 16, 3 * 2, lo=-0.2, hi=0.2), "conf/weights"), 1,
                           "SAME")
    n = tf.shape(x)[0]
    return [tf.reshape(boxes, [n, -1, 4]), tf.nn.softmax(tf.reshape(classes, [n, -1, 3]))]


CASES = {}
for _t in QTYPES:
    for _m in ("MIN_COMBINED", "MIN_FIRST", "SCALED"):
        for _narrow in ((False, True) if _m == "SCALED" and _t != "quint8" else (False,)):
            CASES[f"dequantize_{_t}_{_m}{'_narrow' if _narrow else ''}"] = (
                (lambda tf, p, t=_t, m=_m, nr=_narrow: _dequant_graph(tf, p, t, m, nr)), {"x": rand(3, 6)}, None)
for _t in ("quint8", "qint8"):
    for _m in ("MIN_COMBINED", "MIN_FIRST", "SCALED"):
        CASES[f"quantize_{_t}_{_m}"] = ((lambda tf, p, t=_t, m=_m: _quantize_graph(tf, p, t, m)), {"x": rand(3, 6)},
                                        None)
def _fake_quant(tf, p):
    x = p["x"] * 3.0
    return [tf.quantization.fake_quant_with_min_max_vars(x, -1.7, 2.3, num_bits=8),
            tf.quantization.fake_quant_with_min_max_vars(x, -0.3, 4.1, num_bits=4, narrow_range=True),
            tf.quantization.fake_quant_with_min_max_args(x, min=-2.5, max=1.5),
            tf.quantization.fake_quant_with_min_max_vars_per_channel(x, [-1.0, -2.0, -0.5, -3.0, -1.2, -0.1],
                                                                     [1.0, 2.5, 0.7, 3.0, 2.2, 0.9])]


CASES["fake_quant"] = (_fake_quant, {"x": rand(3, 6)}, None)
CASES["ssd_like"] = (_ssd_like, {"image": rand(2, 24, 20, 3, lo=0, hi=1)}, {"image": [None, 24, 20, 3]})


@pytest.fixture(scope="module")
def cases(tf, tmp_path_factory):
    d = tmp_path_factory.mktemp("quantized")
    return {name: build_case(tf, d / f"{name}.pb", fn, feeds, shapes) for name, (fn, feeds, shapes) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_against_tensorflow(cases, name):
    check_case(cases[name])


def test_ssd_like_graph_has_quantized_weights_and_l2_head(cases):
    from tf2rt.importers.graphdef import read_graphdef

    nodes = read_graphdef(cases["ssd_like"].pb).nodes
    ops = {n.op for n in nodes.values()}
    assert {"Dequantize", "Square", "Sum", "Rsqrt", "Maximum"} <= ops
    assert "conv1/weights_quantized_const" in nodes and nodes["conv1/weights"].op == "Dequantize"
    net = check_case(cases["ssd_like"])
    assert sum(layer.type == "convolution" for layer in net.layers) == 4  # weights folded back to float


def test_dequantize_of_a_tensor_is_refused(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def fn(tf, p):
        q, mn, mx = tf.raw_ops.QuantizeV2(input=p["x"], min_range=-1.0, max_range=1.0, T=tf.quint8)
        return [tf.raw_ops.Dequantize(input=q, min_range=mn, max_range=mx)]

    case = build_case(tf, tmp_path / "qt.pb", fn, {"x": rand(2, 3)})
    with pytest.raises(UnsupportedError, match="QuantizeV2"):
        import_graphdef(case.pb, outputs=case.outputs)


def test_fake_quant_graph_has_each_op(cases):
    from tf2rt.importers.graphdef import read_graphdef

    ops = {n.op for n in read_graphdef(cases["fake_quant"].pb).nodes.values()}
    assert {"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVarsPerChannel"} <= ops
