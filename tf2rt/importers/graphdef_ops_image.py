"""TensorFlow image ops of published graphs, lowered through existing layers (NCHW inside):
ResizeBilinear (two matrix products with interpolation matrices), ResizeNearestNeighbor
(Gathers), both as a resize layer (ONNX Resize) when a size or the input's height or width is
known only at run time, DepthToSpace / SpaceToDepth (DCR; reshape + transpose), LRN (a band 1x1
convolution of x²), Conv2DBackpropInput (zero insertion + convolution with the flipped
filter), MirrorPad (Gathers) and FusedBatchNorm with batch statistics (is_training=True) or
run-time parameters. Coordinates follow TensorFlow's kernels for align_corners / half_pixel_centers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..limits import MAX_FOLD_BYTES, check_elements
from ..network.layers_cnn import same_padding
from .graphdef import TV, Node
from .graphdef_nn_ops import _image_input, _spatial, _wrap
from .graphdef_ops import HANDLERS, _partial_vals, attr_i, attr_ints, attr_s, const, is_const, op
from .graphdef_ops_math import need_tv, tensor_of


def _flag(node: Node, key: str) -> bool:
    a = node.attr(key)
    return bool(a is not None and a.b())


def _nhwc_only(node: Node) -> None:
    fmt = attr_s(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise UnsupportedError(f"attribute data_format = {fmt!r} (only NHWC)")


# --- resize -----------------------------------------------------------------------------
def _scale(n_in: int, n_out: int, align: bool) -> np.float32:
    if align and n_out > 1:
        return np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_in) / np.float32(n_out)


def bilinear_matrix(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """[n_out, n_in] interpolation weights of TensorFlow's ResizeBilinear along one axis."""
    s = _scale(n_in, n_out, align)
    i = np.arange(n_out, dtype=np.float32)
    src = ((i + np.float32(0.5)) * s - np.float32(0.5)) if half else i * s
    f = np.floor(src)
    lower = np.maximum(f, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
    lerp = (src - f).astype(np.float64)
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.arange(n_out), lower), 1 - lerp)
    np.add.at(m, (np.arange(n_out), upper), lerp)
    return m.astype(np.float32)


def area_matrix(n_in: int, n_out: int, align: bool) -> np.ndarray:
    """[n_out, n_in] weights of TensorFlow's ResizeArea along one axis: each output cell
    averages the input cells its span [y*s, (y+1)*s) covers, in proportion to the overlap
    (indices past the edge read the edge)."""
    s = _scale(n_in, n_out, align)
    m = np.zeros((n_out, n_in), np.float64)
    for y in range(n_out):
        a, b = np.float32(y) * s, np.float32(y + 1) * s
        i = int(np.floor(a))
        while i < b:
            m[y, min(max(i, 0), n_in - 1)] += min(i + 1, b) - max(i, a)
            i += 1
    return (m / s).astype(np.float32)


_CUBIC_TABLE = 1024  # TensorFlow samples the cubic kernel at 1/1024 steps


def _cubic_table(a: float) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow's ResizeBicubic coefficient table: the kernel at x and at x + 1, x in [0, 1]."""
    x = (np.arange(_CUBIC_TABLE + 1, dtype=np.float64) / _CUBIC_TABLE).astype(np.float32)
    near = (((a + 2) * x - (a + 3)) * x * x + 1).astype(np.float32)
    x1 = (x + np.float32(1.0)).astype(np.float32)
    far = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a).astype(np.float32)
    return near, far


def bicubic_matrix(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """[n_out, n_in] weights of TensorFlow's ResizeBicubic along one axis: four taps from the
    coefficient table (a = -0.75; with half_pixel_centers Keys' a = -0.5, taps outside the
    image dropped and the rest renormalised; otherwise edge taps repeat the edge)."""
    s = _scale(n_in, n_out, align)
    near, far = _cubic_table(-0.5 if half else -0.75)
    m = np.zeros((n_out, n_in), np.float64)
    for y in range(n_out):
        src = (np.float32(y) + np.float32(0.5)) * s - np.float32(0.5) if half else np.float32(y) * s
        f = np.floor(src)
        off = int(np.rint(np.float32(src - f) * np.float32(_CUBIC_TABLE)))  # lrintf
        w = [far[off], near[off], near[_CUBIC_TABLE - off], far[_CUBIC_TABLE - off]]
        idx = [int(f) - 1 + k for k in range(4)]
        if half:
            w = [wi if 0 <= i < n_in else np.float32(0) for wi, i in zip(w, idx)]
            total = np.float32(sum(w))
            if abs(total) >= 1000 * np.finfo(np.float32).tiny:
                w = [np.float32(wi * (np.float32(1) / total)) for wi in w]
        for wi, i in zip(w, idx):
            m[y, min(max(i, 0), n_in - 1)] += float(wi)
    return m.astype(np.float32)


def nearest_index(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """Source index of each output row/column in TensorFlow's ResizeNearestNeighbor."""
    s = _scale(n_in, n_out, align)
    i = np.arange(n_out, dtype=np.float32)
    src = (i + np.float32(0.5)) * s if half else i * s
    idx = np.floor(src + np.float32(0.5)) if align else np.floor(src)  # roundf: half away from zero (src >= 0)
    idx = np.minimum(idx.astype(np.int64), n_in - 1)
    return np.maximum(idx, 0).astype(np.int32)


@op("ResizeBilinear", "ResizeNearestNeighbor", "ResizeArea", "ResizeBicubic")
def _resize(cv, node, ins):
    """Bilinear, bicubic and area: MatMul by [H', H] and [W, W'] weights; nearest: Gather on H
    and W; run-time sizes: ONNX Resize.

    A size, or an input height or width, known only at run time gives a resize layer (not for
    area resizing, which ONNX Resize does not have)."""
    align, half = _flag(node, "align_corners"), _flag(node, "half_pixel_centers")
    if align and half:
        raise UnsupportedError("attributes align_corners and half_pixel_centers are both true "
                               "(TensorFlow rejects this too)")
    if not isinstance(ins[0], TV):
        raise UnsupportedError("resize of a constant image")
    x = cv.nchw(ins[0])
    h, w = x.shape[2], x.shape[3]
    if not is_const(ins[1]) or h is None or w is None:
        if node.op in ("ResizeArea", "ResizeBicubic"):
            raise UnsupportedError(f"{node.op} to a size, or of an image whose height or width, is known only at "
                                   "run time (ONNX Resize has no area mode, and its cubic mode does not sample "
                                   "TensorFlow's coefficient table); give the input a fixed size")
        return [TV(_resize_layer(cv, node, x, ins[1], align, half), True)]
    size = [int(s) for s in np.atleast_1d(const(ins[1], "resize size"))]
    if len(size) != 2:
        raise UnsupportedError(f"resize size {size} (needs [height, width])")
    oh, ow = size
    if oh < 1 or ow < 1:
        raise UnsupportedError(f"resize to {size}")
    check_elements((oh * h + ow * w,), 4, f"{node.op} {node.name!r} interpolation weights", MAX_FOLD_BYTES)
    net, n = cv.net, node.name
    if node.op == "ResizeNearestNeighbor":
        t = x
        for axis, (a, b) in ((2, (h, oh)), (3, (w, ow))):
            idx = nearest_index(a, b, align, half)
            if a == b and (idx == np.arange(a)).all():
                continue
            ind = net.add_constant(idx.shape, idx, name=f"{n}/index{axis}").output
            t = net.add_gather(t, ind, axis=axis, name=f"{n}/axis{axis}").output
        if t is x:
            t = net.add_identity(x, name=n).output
        return [TV(t, True)]
    if x.dtype not in ("float32", "float16"):
        x = net.add_cast(x, "float32", name=f"{n}/to_float").output
    weights = {"ResizeArea": lambda a, b: area_matrix(a, b, align),
               "ResizeBicubic": lambda a, b: bicubic_matrix(a, b, align, half)}.get(
        node.op, lambda a, b: bilinear_matrix(a, b, align, half))
    mw = weights(w, ow).T.copy()  # [W, W']
    mh = weights(h, oh)  # [H', H]
    t = net.add_matrix_multiply(x, "none", net.add_constant(mw.shape, mw, name=f"{n}/width_weights").output, "none",
                                name=f"{n}/width").output
    t = net.add_matrix_multiply(net.add_constant(mh.shape, mh, name=f"{n}/height_weights").output, "none", t, "none",
                                name=n).output
    return [TV(t, True)]


def _resize_layer(cv, node, x, size, align: bool, half: bool) -> Any:
    """An ONNX-style resize of the NCHW tensor x to [N, C] + size, size a constant or a tensor
    computed at run time; TensorFlow's coordinate rules as ONNX modes (reference doc 8.2)."""
    net, n = cv.net, node.name
    known = [None, None]
    if is_const(size):
        known = [int(v) for v in np.atleast_1d(size)]
        if len(known) != 2 or min(known) < 1:
            raise UnsupportedError(f"resize size {known} (needs [height, width] of at least 1)")
    s = tensor_of(cv, size, f"{n}/size")
    if s.rank != 1 or s.shape[0] not in (None, 2):
        raise UnsupportedError(f"resize size of shape {list(s.shape)} (needs [height, width])")
    if s.dtype != "int64":
        s = net.add_cast(s, "int64", name=f"{n}/size_int64").output
    lead = net.add_gather(net.add_shape(x, name=f"{n}/input_shape").output,
                          net.add_constant((2,), np.array([0, 1], np.int32), name=f"{n}/batch_channels").output,
                          axis=0, name=f"{n}/leading").output
    shape = net.add_concatenation([lead, s], 0, name=f"{n}/output_shape").output
    if node.op == "ResizeBilinear" and x.dtype not in ("float32", "float16"):
        x = net.add_cast(x, "float32", name=f"{n}/to_float").output
    layer = net.add_resize(x, (x.shape[0], x.shape[1], *known), shape, name=n)
    layer.resize_mode = "linear" if node.op == "ResizeBilinear" else "nearest"
    layer.coordinate_transformation = "align_corners" if align else "half_pixel" if half else "asymmetric"
    layer.nearest_rounding = "half_up" if align or half else "floor"  # TF rounds half away from zero
    return layer.output


# --- depth <-> space --------------------------------------------------------------------
@op("DepthToSpace")
def _depth_to_space(cv, node, ins):
    """Reshape [N, b, b, C/b², H, W] + Transpose + Reshape (DCR, as TensorFlow's NHWC op)."""
    _nhwc_only(node)
    b = attr_i(node, "block_size")
    x = _image_input(cv, node, ins[0])
    _, c, h, w = x.shape
    if c is None or h is None or w is None or b < 2 or c % (b * b):
        raise UnsupportedError(f"DepthToSpace with block_size {b} of a tensor shaped {x.shape}")
    cc = c // (b * b)
    t = cv.net.add_shuffle(x, reshape_dims=[0, b, b, cc, h, w], name=f"{node.name}/split").output
    t = cv.net.add_shuffle(t, first_transpose=[0, 3, 4, 1, 5, 2], reshape_dims=[0, cc, h * b, w * b],
                           name=node.name).output
    return [_wrap(cv, node, t)]


@op("SpaceToDepth")
def _space_to_depth(cv, node, ins):
    """Reshape [N, C, H/b, b, W/b, b] + Transpose + Reshape (DCR, as TensorFlow's NHWC op)."""
    _nhwc_only(node)
    b = attr_i(node, "block_size")
    x = _image_input(cv, node, ins[0])
    _, c, h, w = x.shape
    if c is None or h is None or w is None or b < 2 or h % b or w % b:
        raise UnsupportedError(f"SpaceToDepth with block_size {b} of a tensor shaped {x.shape}")
    t = cv.net.add_shuffle(x, reshape_dims=[0, c, h // b, b, w // b, b], name=f"{node.name}/split").output
    t = cv.net.add_shuffle(t, first_transpose=[0, 3, 5, 1, 2, 4], reshape_dims=[0, b * b * c, h // b, w // b],
                           name=node.name).output
    return [_wrap(cv, node, t)]


# --- LRN -----------------------------------------------------------------------------------
@op("LRN")
def _lrn(cv, node, ins):
    """x · (bias + alpha · Σ_window x²)^−beta; the window sum is a 1x1 convolution with a band matrix."""
    x = _image_input(cv, node, ins[0])
    c = x.shape[1]
    if c is None:
        raise UnsupportedError("LRN needs a known channel count")
    r = attr_i(node, "depth_radius", 5)
    get = lambda k, d: node.attr(k).f() if node.attr(k) is not None else d  # noqa: E731
    bias, alpha, beta = get("bias", 1.0), get("alpha", 1.0), get("beta", 0.5)
    net, n = cv.net, node.name
    sq = net.add_elementwise(x, x, "prod", name=f"{n}/square").output
    check_elements((c, c), 4, f"LRN {node.name!r} window matrix", MAX_FOLD_BYTES)
    i = np.arange(c)
    band = (np.abs(i[:, None] - i[None, :]) <= r).astype(np.float32).reshape(c, c, 1, 1)
    s = net.add_convolution_nd(sq, c, (1, 1), band, None, name=f"{n}/window_sum").output
    d = net.add_scale(s, "uniform", shift=np.float32(bias), scale=np.float32(alpha), power=np.float32(-beta),
                      name=f"{n}/denominator").output
    return [_wrap(cv, node, net.add_elementwise(x, d, "prod", name=n).output)]


# --- transposed convolution -------------------------------------------------------------------
@op("Conv2DBackpropInput")
def _conv_transpose(cv, node, ins):
    """ConvTranspose as zero insertion (Mul by a one-hot stride pattern) + Conv with the flipped filter;
    the output size comes from input_sizes (SAME, VALID or EXPLICIT padding)."""
    sizes, _ = _partial_vals(ins[0])
    w = const(ins[1], "the filter").astype(np.float32)  # [kh, kw, out channels, in channels]
    if w.ndim != 4:
        raise UnsupportedError(f"filter of shape {w.shape}")
    nchw_tf = attr_s(node, "data_format", "NHWC") == "NCHW"
    stride, dil = _spatial(node, "strides", 1), _spatial(node, "dilations", 1)
    if dil != (1, 1):
        raise UnsupportedError(f"attribute dilations = {list(dil)} (only 1)")
    x = _image_input(cv, node, ins[2])
    kh, kw, cout, cin = w.shape
    oh, ow = (int(sizes[2]), int(sizes[3])) if nchw_tf else (int(sizes[1]), int(sizes[2]))
    _, c, h, wd = x.shape
    if h is None or wd is None or c != cin:
        raise UnsupportedError(f"transposed convolution of a tensor shaped {x.shape} with a filter {w.shape}")
    mode = attr_s(node, "padding", "VALID")
    if mode == "SAME":
        pb = (same_padding(oh, kh, stride[0])[0], same_padding(ow, kw, stride[1])[0])
    elif mode == "VALID":
        pb = (0, 0)
    elif mode == "EXPLICIT":
        p = attr_ints(node, "explicit_paddings", [])
        if len(p) != 8:
            raise UnsupportedError(f"attribute explicit_paddings = {p}")
        pb = (p[4], p[6]) if nchw_tf else (p[2], p[4])
    else:
        raise UnsupportedError(f"attribute padding = {mode!r}")
    net, n = cv.net, node.name
    sh, sw = stride
    t = x
    if (sh, sw) != (1, 1):
        t = net.add_shuffle(t, reshape_dims=[0, c, h, 1, wd, 1], name=f"{n}/unflatten").output
        pattern = np.zeros((1, 1, 1, sh, 1, sw), np.float32)
        pattern[0, 0, 0, 0, 0, 0] = 1
        t = net.add_elementwise(t, net.add_constant(pattern.shape, pattern, name=f"{n}/stride_pattern").output,
                                "prod", name=f"{n}/zero_insert").output
        t = net.add_shuffle(t, reshape_dims=[0, c, h * sh, wd * sw], name=f"{n}/dilated").output
    pre = (kh - 1 - pb[0], kw - 1 - pb[1])
    post = (oh + kh - 1 - pre[0] - h * sh, ow + kw - 1 - pre[1] - wd * sw)
    if min(pre) < 0:
        raise UnsupportedError(f"padding {pb} larger than the filter")
    for axis, (p, length) in enumerate(zip(post, (h * sh, wd * sw))):
        if p < 0:  # more zeros (or rows) than the output needs: keep the first length + p
            idx = np.arange(length + p, dtype=np.int32)
            ind = net.add_constant(idx.shape, idx, name=f"{n}/crop{axis}").output
            t = net.add_gather(t, ind, axis=2 + axis, name=f"{n}/cropped{axis}").output
    post = tuple(max(p, 0) for p in post)
    kernel = np.ascontiguousarray(w[::-1, ::-1].transpose(2, 3, 0, 1))  # [cout, cin, kh, kw]
    layer = net.add_convolution_nd(t, cout, (kh, kw), kernel, None, stride=(1, 1), pre_padding=pre,
                                   post_padding=post, name=n)
    return [_wrap(cv, node, layer.output, fusable=True)]


# --- MirrorPad ---------------------------------------------------------------------------------
def mirror_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source index of each position of an axis of length n padded by mirroring (REFLECT/SYMMETRIC)."""
    edge = 0 if mode == "SYMMETRIC" else 1
    limit = n if mode == "SYMMETRIC" else n - 1
    if before > limit or after > limit:
        raise UnsupportedError(f"MirrorPad of {before}/{after} on a dimension of {n} in mode {mode}")
    left = np.arange(before - 1 + edge, edge - 1, -1)[:before] if before else np.zeros(0, int)
    right = np.arange(n - 1 - edge, n - 1 - edge - after, -1) if after else np.zeros(0, int)
    return np.concatenate([left, np.arange(n), right]).astype(np.int32)


@op("MirrorPad")
def _mirror_pad(cv, node, ins):
    """Gather with mirrored indices on each padded axis (REFLECT and SYMMETRIC)."""
    v = ins[0]
    mode = attr_s(node, "mode", "REFLECT")
    if mode not in ("REFLECT", "SYMMETRIC"):
        raise UnsupportedError(f"attribute mode = {mode!r}")
    pads = const(ins[1], "paddings").astype(np.int64)
    if not isinstance(v, TV):
        return [np.pad(const(v, "MirrorPad input"), pads, mode="reflect" if mode == "REFLECT" else "symmetric")]
    t, nchw = v.t, v.nchw
    for ax, (d, (b, a)) in enumerate(zip(v.shape, pads.tolist())):
        if not b and not a:
            continue
        if d is None:
            raise UnsupportedError("MirrorPad of a dynamic dimension")
        check_elements((d + b + a,), 4, f"MirrorPad {node.name!r} indices", MAX_FOLD_BYTES)
        idx = mirror_index(d, b, a, mode)
        ind = cv.net.add_constant(idx.shape, idx, name=f"{node.name}/index{ax}").output
        t = cv.net.add_gather(t, ind, axis=(0, 3, 1, 2).index(ax) if nchw else ax, name=f"{node.name}/axis{ax}").output
    return [TV(t, nchw)]


# --- FusedBatchNorm with batch statistics or run-time parameters ----------------------
_PREV_BN = {n: HANDLERS.get(n) for n in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")}


@op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _batchnorm(cv, node, ins):
    """Scale layer (inference, constant statistics), or Reduce/Sub/Mul over N,H,W (is_training=True,
    or statistics computed at run time)."""
    training = node.attr("is_training") is None or node.attr("is_training").b()  # TF's default is True
    prev = _PREV_BN.get(node.op)
    if not training and all(is_const(v) for v in ins[1:5]) and prev is not None:
        return prev(cv, node, ins)
    eps = node.attr("epsilon").f() if node.attr("epsilon") else 1e-4
    x = _image_input(cv, node, ins[0])
    if x.rank != 4:
        raise UnsupportedError(f"FusedBatchNorm of a rank-{x.rank} tensor")
    net, n = cv.net, node.name

    def chan(v: Any, what: str) -> Any:
        if is_const(v):
            arr = np.asarray(v, np.float32).reshape(1, -1, 1, 1)
            return net.add_constant(arr.shape, arr, name=f"{n}/{what}").output
        return net.add_shuffle(cv.plain(need_tv(v, what)), reshape_dims=[1, -1, 1, 1], name=f"{n}/{what}").output

    if training:
        mean = net.add_reduce(x, "avg", [0, 2, 3], keep_dims=True, name=f"{n}/mean").output
        d = net.add_elementwise(x, mean, "sub", name=f"{n}/centered").output
        sq = net.add_elementwise(d, d, "prod", name=f"{n}/squared").output
        var = net.add_reduce(sq, "avg", [0, 2, 3], keep_dims=True, name=f"{n}/variance").output
    else:
        d = net.add_elementwise(x, chan(ins[3], "mean"), "sub", name=f"{n}/centered").output
        var = chan(ins[4], "variance")
    e = net.add_constant((1, 1, 1, 1), np.full((1, 1, 1, 1), eps, np.float32), name=f"{n}/epsilon").output
    std = net.add_unary(net.add_elementwise(var, e, "sum", name=f"{n}/var_eps").output, "sqrt",
                        name=f"{n}/std").output
    y = net.add_elementwise(d, std, "div", name=f"{n}/normalized").output
    y = net.add_elementwise(y, chan(ins[1], "scale"), "prod", name=f"{n}/scaled").output
    y = net.add_elementwise(y, chan(ins[2], "offset"), "sum", name=n).output
    return [_wrap(cv, node, y), None, None, None, None, None]
