"""GraphDef ops of published TF graphs, each compared with TensorFlow on onnxruntime and the
reference backend: tensor maths, resize (every align_corners / half_pixel_centers pair), atrous
conv, LRN, DepthToSpace, transposed conv, StridedSlice masks, old-style ops, Einsum, Cumsum,
training-mode BatchNorm, an audio front end (RFFT / ComplexAbs / Log) with div_no_nan."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import build_case, check_case, rand


def _maths(tf, p):
    x, y = p["x"], p["y"]
    pos = tf.nn.relu(x) + 0.5
    return [tf.sqrt(pos), tf.math.rsqrt(pos), tf.exp(x), tf.math.log(pos), -x, tf.abs(x), tf.math.reciprocal(pos),
            tf.pow(pos, y), tf.minimum(x, y), tf.maximum(x, y), tf.math.erf(x), tf.math.erfc(x * 3.0),
            tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.3, clip_value_max=0.4),
            tf.square(x), tf.reduce_sum(x, axis=[1], keepdims=True), tf.reduce_sum(x * y, axis=-1),
            tf.reduce_max(x, axis=1), tf.reduce_mean(x, axis=[0, 2]), tf.math.reduce_prod(pos, axis=2),
            tf.math.divide_no_nan(x, tf.nn.relu(y)), tf.math.divide_no_nan(x, tf.constant([0.0, 2.0, 0.0, 4.0, 5.0]))]


def _resize(tf, p, bilinear, align, half, size):
    fn = tf.compat.v1.image.resize_bilinear if bilinear else tf.compat.v1.image.resize_nearest_neighbor
    return [fn(p["img"], size, align_corners=align, half_pixel_centers=half)]


def _atrous_lrn_d2s(tf, p):
    x = p["img"]
    w = tf.constant(rand(3, 3, 4, 8))
    a = tf.compat.v1.nn.atrous_conv2d(x, w, rate=2, padding="SAME")
    lrn = tf.nn.local_response_normalization(a, depth_radius=2, bias=1.5, alpha=0.3, beta=0.75)
    d2s = tf.nn.depth_to_space(tf.nn.relu(lrn), 2)
    s2d = tf.nn.space_to_depth(d2s, 2)
    return [lrn, d2s, s2d + lrn]


def _transpose_conv(tf, p, padding, stride, out_hw):
    x = p["img"]
    w = tf.constant(rand(3, 3, 5, 4))  # [kh, kw, out channels, in channels]
    n = tf.shape(x)[0]
    return [tf.nn.conv2d_transpose(x, w, tf.stack([n, out_hw[0], out_hw[1], 5]), strides=stride, padding=padding)]


def _strided(tf, p):
    x = p["x4"]
    return [x[1, ..., tf.newaxis, 1:4:2], x[:, -1, ::-1, 2:], x[..., 3], x[tf.newaxis, :, 1], x[:, :, :, ::-2]]


def _old_style(tf, p):
    raw = tf.raw_ops
    x = p["x"]  # [3, 4, 5]
    g = raw.Gather(params=x, indices=tf.constant([2, 0]))
    table = raw.Gather(params=tf.constant(rand(6, 5)), indices=p["ids"])
    a, b = raw.Split(axis=tf.constant(2), value=tf.nn.relu(x)[:, :, :4], num_split=2)
    c, d, e = raw.SplitV(value=x, size_splits=tf.constant([1, -1, 2]), axis=tf.constant(2), num_split=3)
    cat = raw.Concat(concat_dim=tf.constant(1), values=[a, b * 2.0])
    packed = raw.Pack(values=[x[0], x[1] * 3.0, x[2]], axis=1)
    u0, u1, u2 = raw.Unpack(value=x, num=3, axis=0)
    return [g, table, cat, c + e[:, :, :1], d, packed, u1 - u2 + u0]


def _einsum_cumsum_bn(tf, p):
    x, y = p["x"], p["y"]  # [3, 4, 5]
    w = tf.constant(rand(5, 6))
    img = p["img"]
    bn, _, _ = tf.compat.v1.nn.fused_batch_norm(img, tf.constant(rand(4, lo=0.5)), tf.constant(rand(4)),
                                                is_training=True, epsilon=1e-3)
    mean, var = tf.nn.moments(img, axes=[0, 1, 2])
    bn_rt, _, _ = tf.compat.v1.nn.fused_batch_norm(img, tf.constant(rand(4, lo=0.5)), tf.constant(rand(4)),
                                                   mean=mean, variance=var, is_training=False, epsilon=1e-3)
    return [tf.einsum("bij,bkj->bik", x, y), tf.einsum("bij,jk->bik", x, w), tf.einsum("bij,bij->bi", x, y),
            tf.einsum("ijk,ijl->kl", x, y),
            tf.math.cumsum(x, axis=1), tf.math.cumsum(x, axis=2, exclusive=True),
            tf.math.cumsum(x, axis=-1, reverse=True), tf.math.cumsum(x, axis=0, exclusive=True, reverse=True),
            bn, bn_rt]


def _audio(tf, p):
    frames = p["frames"]  # [N, T, 64]
    spec = tf.abs(tf.signal.rfft(frames))  # RFFT + ComplexAbs
    logmag = tf.math.log(spec + 1e-6)
    mean = tf.reduce_mean(logmag, axis=[1, 2], keepdims=True)
    centered = logmag - mean
    std = tf.sqrt(tf.reduce_mean(tf.square(centered), axis=[1, 2], keepdims=True))
    norm = tf.math.divide_no_nan(centered, std)
    h = tf.nn.relu(tf.nn.conv2d(norm[..., tf.newaxis], tf.constant(rand(3, 3, 1, 6)), 1, "SAME"))
    return [tf.reduce_mean(h, axis=[1, 2]), spec]


def _select(tf, p):
    x, y = p["num"], p["den"]
    rows = tf.reduce_sum(y, axis=1) > 1.0
    return [tf.math.divide_no_nan(x, y), tf.where(y > 0.5, x * 0.0 + 1.0, y),
            tf.compat.v1.where(rows, tf.nn.relu(y), -y), tf.math.divide_no_nan(tf.constant(3.0), y),
            tf.where(tf.logical_or(tf.logical_and(y >= 0.3, y <= 1.2), tf.logical_not(tf.not_equal(y, 0.0))),
                     y, tf.cast(tf.less(y, 1.5), tf.float32))]


def _misc(tf, p):
    x, img = p["x"], p["img"]  # [3, 4, 5], [2, 5, 6, 4]
    w = tf.constant(rand(3, 5, 2))
    return [tf.slice(x, [1, 0, 2], [2, -1, 3]), tf.argmax(x, axis=2), tf.argmin(x, axis=1, output_type=tf.int32),
            tf.matmul(x, tf.transpose(x, [0, 2, 1])), tf.matmul(x, w), tf.linalg.matmul(x, x, adjoint_a=True),
            tf.round(x * 3.0), tf.pad(img, [[0, 0], [2, 1], [1, 3], [0, 0]], mode="REFLECT"),
            tf.pad(img, [[0, 0], [1, 2], [0, 1], [0, 0]], mode="SYMMETRIC") * 2.0]


_NUM = rand(4, 3)
_NUM[0, 0], _NUM[1, 1], _NUM[2, 2] = np.inf, np.nan, -np.inf  # where the divisor is 0: 0 all the same
_DEN = rand(4, 3, lo=0, hi=2)
_DEN[0, 0] = _DEN[1, 1] = _DEN[2, 2] = _DEN[3, 0] = 0.0

CASES = {
    "select_div_no_nan": (_select, {"num": _NUM, "den": _DEN}, None),
    "misc": (_misc, {"x": rand(3, 4, 5), "img": rand(2, 5, 6, 4)}, None),
    # a Dense layer on a 3-D tensor of dynamic batch: Tensordot's Shape/Gather/Prod/Pack/Reshape
    "tensordot": ((lambda tf, p: [tf.tensordot(p["x"], tf.constant(rand(5, 6)), axes=[[2], [0]])]),
                  {"x": rand(3, 4, 5)}, {"x": [None, 4, 5]}),
    "maths": (_maths, {"x": rand(2, 3, 5), "y": rand(2, 3, 5)}, None),
    "atrous_lrn_d2s": (_atrous_lrn_d2s, {"img": rand(2, 9, 11, 4)}, {"img": [None, 9, 11, 4]}),
    "strided": (_strided, {"x4": rand(2, 3, 4, 5)}, None),
    "strided_dynamic_batch": ((lambda tf, p: [p["x4"][1], p["x4"][:, -1, ::-1, 2:], p["x4"][..., 3],
                                              p["x4"][:, tf.newaxis, 1:3, ..., 0], p["x4"][0, ..., tf.newaxis, 1:4:2]]),
                              {"x4": rand(2, 3, 4, 5)}, {"x4": [None, 3, 4, 5]}),
    "old_style": (_old_style, {"x": rand(3, 4, 5), "ids": np.array([[1, 5], [0, 2]], np.int32)}, None),
    "einsum_cumsum_bn": (_einsum_cumsum_bn, {"x": rand(3, 4, 5), "y": rand(3, 4, 5), "img": rand(2, 5, 6, 4)}, None),
    "audio": (_audio, {"frames": rand(2, 7, 64)}, {"frames": [None, 7, 64]}),
}
for _bil in (True, False):
    for _align, _half in ((False, False), (True, False), (False, True)):
        for _size in ((9, 12), (3, 4), (1, 1)):
            _key = f"resize_{'bilinear' if _bil else 'nearest'}_a{int(_align)}h{int(_half)}_{_size[0]}x{_size[1]}"
            CASES[_key] = ((lambda tf, p, b=_bil, a=_align, h=_half, s=_size: _resize(tf, p, b, a, h, s)),
                           {"img": rand(2, 5, 7, 3)}, None)
for _pad, _stride, _out in (("SAME", 2, (10, 12)), ("VALID", 2, (11, 13)), ("SAME", 1, (5, 6)), ("VALID", 3, (15, 18))):
    CASES[f"conv_transpose_{_pad}_s{_stride}"] = (
        (lambda tf, p, a=_pad, s=_stride, o=_out: _transpose_conv(tf, p, a, s, o)), {"img": rand(2, 5, 6, 4)},
        {"img": [None, 5, 6, 4]})


@pytest.fixture(scope="module")
def cases(tf, tmp_path_factory):
    d = tmp_path_factory.mktemp("ops_more")
    return {name: build_case(tf, d / f"{name}.pb", fn, feeds, shapes) for name, (fn, feeds, shapes) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_against_tensorflow(cases, name):
    check_case(cases[name])


def test_graphs_use_the_ops(cases):
    from tf2rt.importers.graphdef import read_graphdef

    ops = set()
    for c in cases.values():
        ops |= {n.op for n in read_graphdef(c.pb).nodes.values()}
    want = {"Sqrt", "Rsqrt", "Exp", "Erfc", "Log", "Neg", "Abs", "Reciprocal", "Pow", "Minimum", "Maximum", "Erf",
            "ClipByValue", "Square", "Sum", "Max", "Mean", "Prod", "DivNoNan", "ResizeBilinear",
            "ResizeNearestNeighbor", "SpaceToBatchND", "LRN", "DepthToSpace", "SpaceToDepth", "Conv2DBackpropInput",
            "StridedSlice", "Gather", "Split", "SplitV", "Concat", "Pack", "Unpack", "Einsum", "Cumsum",
            "FusedBatchNormV3", "RFFT", "ComplexAbs", "Select", "SelectV2", "Greater", "Less",
            "GreaterEqual", "LessEqual",
            "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "Slice", "ArgMax", "ArgMin", "BatchMatMulV2",
            "Round", "MirrorPad"}
    assert want <= ops, want - ops


def test_placeholder_with_default(tf, tmp_path):
    def fn(tf, p):
        scale = tf.compat.v1.placeholder_with_default(tf.constant(2.0), [], name="scale")
        return [p["x"] * scale]

    case = build_case(tf, tmp_path / "pwd.pb", fn, {"x": rand(2, 3)})
    net = check_case(case)  # not named: its default
    assert [t.name for t in net.inputs] == ["x"]
    from tf2rt.engine import build_engine
    from tf2rt.importers.graphdef import import_graphdef

    net = import_graphdef(case.pb, inputs=["x", "scale"], outputs=case.outputs)
    y = build_engine(net).run({"x": case.feeds["x"], "scale": np.float32(3.0)})[case.outputs[0]]
    np.testing.assert_allclose(y, case.feeds["x"] * 3.0, rtol=1e-6)


def test_complex_ops_other_than_abs_are_refused(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def fn(tf, p):
        c = tf.signal.rfft(p["x"])
        return [tf.math.real(c * c)]

    case = build_case(tf, tmp_path / "cplx.pb", fn, {"x": rand(2, 16)})
    with pytest.raises(UnsupportedError, match="complex"):
        import_graphdef(case.pb, outputs=case.outputs)


def test_unsupported_attribute_is_named(tf, tmp_path):
    from tf2rt.errors import UnsupportedError
    from tf2rt.importers.graphdef import import_graphdef

    def fn(tf, p):
        w = tf.constant(rand(3, 3, 5, 4))
        return [tf.nn.conv2d_transpose(p["img"], w, [2, 9, 11, 5], strides=1, padding="SAME", dilations=2)]

    case = build_case(tf, tmp_path / "dil.pb", fn, {"img": rand(2, 9, 11, 4)})
    with pytest.raises(UnsupportedError, match="dilations"):
        import_graphdef(case.pb, outputs=case.outputs)


def test_folding_is_capped(tf, tmp_path):
    """Constants a graph asks to combine into something huge are refused, not allocated."""
    from tf2rt.errors import FormatError
    from tf2rt.importers.graphdef import import_graphdef

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        big = tf.math.greater(tf.zeros([100000, 1]), tf.zeros([1, 100000]))  # 10^10 elements if folded
        tf.identity(x + tf.reduce_sum(tf.cast(big, tf.float32)), name="out")
    pb = tmp_path / "big.pb"
    pb.write_bytes(g.as_graph_def().SerializeToString())
    with pytest.raises(FormatError, match="limit"):
        import_graphdef(pb, outputs=["out"])
