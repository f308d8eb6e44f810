"""TensorFlow op handlers for the neural-network ops of a GraphDef: convolutions (incl. atrous
ones written as SpaceToBatchND -> conv -> BatchToSpaceND), pooling, batch normalization and
dense layers. Shares the registry and helpers of graphdef_ops."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..network.layers_cnn import same_padding
from .graphdef import TV, GraphConverter, Node
from .graphdef_ops import attr_ints, attr_s, const, is_const, op, try_fold


# --- convolution, pooling, normalization ----------------------------------------------
def _spatial(node: Node, key: str, default: int) -> tuple[int, int]:
    vals = attr_ints(node, key, [default] * 4)
    if len(vals) != 4:
        raise UnsupportedError(f"{key} must have 4 values, got {vals}")
    if attr_s(node, "data_format", "NHWC") == "NCHW":
        return vals[2], vals[3]
    return vals[1], vals[2]


def _image_input(cv: GraphConverter, node: Node, v: Any) -> Any:
    if not isinstance(v, TV):
        raise UnsupportedError("the image input must be a tensor")
    if attr_s(node, "data_format", "NHWC") == "NCHW":
        return cv.plain(v)  # TensorFlow itself works in NCHW here: no transposes needed
    return cv.nchw(v)


def _wrap(cv: GraphConverter, node: Node, t: Any, fusable: bool = False) -> TV:
    if fusable and cv.consumers[node.name] == 1:
        cv.fusable.add(id(t))
    return TV(t, nchw=attr_s(node, "data_format", "NHWC") != "NCHW")


def _padding(node: Node, x: Any, window: tuple[int, int], stride: tuple[int, int], dil: tuple[int, int]):
    mode = attr_s(node, "padding", "VALID")
    if mode == "VALID":
        return (0, 0), (0, 0)
    if mode == "SAME":
        pads = []
        for i in range(2):
            size = x.shape[2 + i]
            if size is None:
                raise UnsupportedError("SAME padding needs a known image size; give the input a fixed H and W")
            pads.append(same_padding(size, window[i], stride[i], dil[i]))
        return (pads[0][0], pads[1][0]), (pads[0][1], pads[1][1])
    if mode == "EXPLICIT":
        p = attr_ints(node, "explicit_paddings", [])
        if len(p) != 8:
            raise UnsupportedError(f"explicit_paddings must have 8 values, got {p}")
        hw = (4, 6) if attr_s(node, "data_format", "NHWC") == "NCHW" else (2, 4)
        return (p[hw[0]], p[hw[1]]), (p[hw[0] + 1], p[hw[1] + 1])
    raise UnsupportedError(f"padding {mode!r}")


@op("Conv2D", "DepthwiseConv2dNative")
def _conv(cv, node, ins):
    """Convolution (NCHW; SAME padding made explicit; depthwise as groups = C)."""
    w = const(ins[1], "the filter").astype(np.float32)  # [kh, kw, in, out] or [kh, kw, C, multiplier]
    if w.ndim != 4:
        raise FormatError(f"filter must be 4-D, got shape {w.shape}")
    kh, kw, cin, cout = w.shape

    def build(x, stride, dil, pre, post):
        if node.op == "Conv2D":
            c = x.shape[1]
            groups = (c // cin) if c and cin and c % cin == 0 else 1
            kernel, k = w.transpose(3, 2, 0, 1), cout
        else:
            groups, k = cin, cin * cout
            kernel = w.reshape(kh, kw, cin * cout).transpose(2, 0, 1)[:, None]
        return cv.net.add_convolution_nd(x, k, (kh, kw), kernel, None, stride=stride, pre_padding=pre,
                                         post_padding=post, dilation=dil, num_groups=groups, name=node.name)

    if isinstance(ins[0], SpaceToBatch):
        return atrous_conv(cv, node, ins[0], lambda x, dil, pre, post: build(x, (1, 1), dil, pre, post))
    x = _image_input(cv, node, ins[0])
    stride, dil = _spatial(node, "strides", 1), _spatial(node, "dilations", 1)
    pre, post = _padding(node, x, (kh, kw), stride, dil)
    layer = build(x, stride, dil, pre, post)
    return [_wrap(cv, node, layer.output, fusable=True)]


@op("MaxPool", "AvgPool")
def _pool(cv, node, ins):
    """Pooling (max / average; SAME padding excluded from the average)."""
    x = _image_input(cv, node, ins[0])
    window, stride = _spatial(node, "ksize", 1), _spatial(node, "strides", 1)
    pre, post = _padding(node, x, window, stride, (1, 1))
    kind = "max" if node.op == "MaxPool" else "average"
    layer = cv.net.add_pooling_nd(x, kind, window, stride, pre, post, True, name=node.name)
    return [_wrap(cv, node, layer.output)]


@op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _batchnorm(cv, node, ins):
    """Inference batch norm: folded into the preceding convolution, else a per-channel Scale."""
    if node.attr("is_training") is not None and node.attr("is_training").b():
        raise UnsupportedError("is_training=True (batch statistics); export the model for inference")
    scale, offset, mean, var = (const(v, "BatchNorm parameter").astype(np.float64) for v in ins[1:5])
    eps = node.attr("epsilon").f() if node.attr("epsilon") else 1e-3
    s = scale / np.sqrt(var + eps)
    shift = offset - mean * s
    v = ins[0]
    nchw_tf = attr_s(node, "data_format", "NHWC") == "NCHW"
    if not nchw_tf and isinstance(v, TV) and v.nchw:
        folded = try_fold(cv, v, s.astype(np.float32), "prod")
        if folded is not None:
            try_fold(cv, v, shift.astype(np.float32), "sum")
            cv.fusable.add(id(v.t)) if cv.consumers[node.name] == 1 else cv.fusable.discard(id(v.t))
            return [v, None, None, None, None, None]
    x = _image_input(cv, node, v)
    y = cv.net.add_scale(x, "channel", shift=shift.astype(np.float32), scale=s.astype(np.float32),
                         channel_axis=1, name=node.name).output
    return [_wrap(cv, node, y), None, None, None, None, None]


@op("MatMul")
def _matmul(cv, node, ins):
    """Fully connected for a constant right operand, else MatrixMultiply."""
    a, b = ins
    ta, tb = node.attr("transpose_a"), node.attr("transpose_b")
    ta, tb = bool(ta and ta.b()), bool(tb and tb.b())
    if is_const(a) and is_const(b):
        return [(a.T if ta else a) @ (b.T if tb else b)]
    if isinstance(a, TV) and is_const(b) and not ta:
        w = (b.T if tb else b).astype(np.float32)
        out = cv.dense(cv.plain(a), w, None, node.name)
        if cv.consumers[node.name] == 1:
            cv.fusable.add(id(out))
        return [TV(out)]
    ta_op, tb_op = ("transpose" if ta else "none"), ("transpose" if tb else "none")
    ta_t = cv.plain(a) if isinstance(a, TV) else cv.net.add_constant(a.shape, a.astype(np.float32)).output
    tb_t = cv.plain(b) if isinstance(b, TV) else cv.net.add_constant(b.shape, b.astype(np.float32)).output
    return [TV(cv.net.add_matrix_multiply(ta_t, ta_op, tb_t, tb_op, name=node.name).output)]


# --- atrous convolution: SpaceToBatchND -> conv -> BatchToSpaceND ----------------------
class SpaceToBatch:
    """A SpaceToBatchND waiting for its convolution: TensorFlow's way to dilate depthwise convs."""

    def __init__(self, v: TV, block: np.ndarray, pads: np.ndarray):
        self.v, self.block, self.pads = v, block, pads


@op("SpaceToBatchND")
def _space_to_batch(cv, node, ins):
    """Opens an atrous convolution: the next convolution becomes a dilated one."""
    v = ins[0]
    block, pads = const(ins[1], "block_shape").astype(int).reshape(-1), const(ins[2], "paddings").astype(int)
    if not isinstance(v, TV) or block.shape != (2,) or pads.shape != (2, 2) or v.t.rank != 4:
        raise UnsupportedError("SpaceToBatchND other than the spatial one of an atrous convolution")
    return [SpaceToBatch(v, block, pads)]


def atrous_conv(cv: Any, node: Node, s2b: SpaceToBatch, build: Callable) -> list:
    """The convolution inside SpaceToBatchND/BatchToSpaceND as one dilated convolution;
    BatchToSpaceND's crops are taken off its padding later."""
    if attr_s(node, "padding", "VALID") != "VALID" or _spatial(node, "strides", 1) != (1, 1) \
            or _spatial(node, "dilations", 1) != (1, 1):
        raise UnsupportedError("a convolution between SpaceToBatchND and BatchToSpaceND must be VALID, "
                               "stride 1, undilated")
    layer = build(cv.nchw(s2b.v), tuple(int(b) for b in s2b.block), (int(s2b.pads[0, 0]), int(s2b.pads[1, 0])),
                  (int(s2b.pads[0, 1]), int(s2b.pads[1, 1])))
    cv.atrous[id(layer.output)] = layer
    return [TV(layer.output, True)]


@op("BatchToSpaceND")
def _batch_to_space(cv, node, ins):
    """Closes an atrous convolution: its crops come off the convolution's padding."""
    v = ins[0]
    layer = cv.atrous.get(id(v.t)) if isinstance(v, TV) else None
    if layer is None:
        raise UnsupportedError("BatchToSpaceND that does not close an atrous convolution")
    crops = const(ins[2], "crops").astype(int)
    pre = tuple(p - c for p, c in zip(layer.pre_padding, crops[:, 0]))
    post = tuple(p - c for p, c in zip(layer.post_padding, crops[:, 1]))
    if min(pre + post) < 0:
        raise UnsupportedError(f"BatchToSpaceND crops {crops.tolist()} exceed the convolution's padding")
    layer.pre_padding, layer.post_padding = pre, post
    return [v]
