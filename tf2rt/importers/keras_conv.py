"""The Keras layer table, convolution part: Conv1D/2D, depthwise and separable convolutions,
BatchNormalization, 1-D and 2-D pooling, global pooling, ZeroPadding2D.

Images (NHWC in Keras) are held NCHW inside the network; 1-D sequences [N, S, C] are
convolved as [N, C, 1, S] images and handed on in Keras' order.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..network.layers_cnn import same_padding
from .graphdef import TV
from .graphdef_ops import try_fold
from .keras_graph import LAYERS, KerasConverter, layer
from .keras_layers import activate, act_name

# --- layers ----------------------------------------------------------------------------
def _two(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _check_channels_last(cfg: dict) -> None:
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise UnsupportedError("data_format='channels_first'")


def _pads(cfg: dict, x: Any, window: tuple, stride: tuple, dil: tuple) -> tuple[tuple, tuple]:
    if cfg.get("padding", "valid") == "valid":
        return (0, 0), (0, 0)
    if cfg["padding"] != "same":
        raise UnsupportedError(f"padding {cfg['padding']!r}")
    p = [same_padding(x.shape[2 + i], window[i], stride[i], dil[i]) for i in range(2)]
    return (p[0][0], p[1][0]), (p[0][1], p[1][1])


def _conv(cv: KerasConverter, name: str, cfg: dict, x: Any, kernel: np.ndarray, bias: Optional[np.ndarray],
          groups: int, ref: tuple, window: tuple, stride: tuple, dil: tuple, act: Any) -> TV:
    pre, post = _pads(cfg, x, window, stride, dil)
    layer = cv.net.add_convolution_nd(x, kernel.shape[0], window, kernel, bias, stride=stride, pre_padding=pre,
                                      post_padding=post, dilation=dil, num_groups=groups, name=name)
    act = act_name(act)
    if act != "linear":
        layer.output.name = f"{name}/linear"  # the activation's output carries the Keras layer's name
        return activate(cv, TV(layer.output, True), act, f"{name}/{act}")
    return cv.fusable_out(layer.output, ref)


@layer("Conv2D")
def _conv2d(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 1)
    kernel = w[0].transpose(3, 2, 0, 1)  # [kh, kw, in/g, out] -> [out, in/g, kh, kw]
    bias = w[1] if cfg.get("use_bias", True) else None
    return _conv(cv, name, cfg, x, kernel, bias, int(cfg.get("groups", 1)), ref, _two(cfg["kernel_size"]),
                 _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)), cfg.get("activation"))


def _depthwise_kernel(w: np.ndarray) -> np.ndarray:
    kh, kw, c, m = w.shape  # output channel c*m + j reads input channel c
    return w.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


@layer("DepthwiseConv2D")
def _depthwise(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 1)
    bias = w[1] if cfg.get("use_bias", True) else None
    return _conv(cv, name, cfg, x, _depthwise_kernel(w[0]), bias, w[0].shape[2], ref, _two(cfg["kernel_size"]),
                 _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)), cfg.get("activation"))


@layer("SeparableConv2D")
def _separable(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = cv.nchw(args[0])
    w = cv.weights(name, 2)
    dw = cv.net.add_convolution_nd(x, w[0].shape[2] * w[0].shape[3], _two(cfg["kernel_size"]),
                                   _depthwise_kernel(w[0]), None, stride=_two(cfg.get("strides", 1)),
                                   dilation=_two(cfg.get("dilation_rate", 1)), num_groups=w[0].shape[2],
                                   name=f"{name}/depthwise")
    pre, post = _pads(cfg, x, _two(cfg["kernel_size"]), _two(cfg.get("strides", 1)), _two(cfg.get("dilation_rate", 1)))
    dw.pre_padding, dw.post_padding = pre, post
    bias = w[2] if cfg.get("use_bias", True) else None
    cfg1 = dict(cfg, padding="valid")
    return _conv(cv, f"{name}/pointwise", cfg1, dw.output, w[1].transpose(3, 2, 0, 1), bias, 1, ref, (1, 1),
                 (1, 1), (1, 1), cfg.get("activation"))


@layer("BatchNormalization")
def _batchnorm(cv, name, cfg, args, ref):
    w = list(cv.get_weights(name))
    gamma = np.asarray(w.pop(0), np.float64) if cfg.get("scale", True) else None
    beta = np.asarray(w.pop(0), np.float64) if cfg.get("center", True) else None
    if len(w) < 2:
        raise FormatError("BatchNormalization without moving statistics")
    mean, var = np.asarray(w[0], np.float64), np.asarray(w[1], np.float64)
    s = 1.0 / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
    if gamma is not None:
        s = s * gamma
    shift = -mean * s + (beta if beta is not None else 0.0)
    v = args[0]
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, list) else axis
    if axis % len(v.shape) != len(v.shape) - 1:
        raise UnsupportedError(f"BatchNormalization over axis {axis} (only the channel axis)")
    s32, b32 = s.astype(np.float32), shift.astype(np.float32)
    if try_fold(cv, v, s32, "prod") is not None:
        try_fold(cv, v, b32, "sum")
        if cv.consumers[ref] != 1:
            cv.fusable.discard(id(v.t))
        return v
    if v.t.rank == 4:
        y = cv.net.add_scale(cv.nchw(v), "channel", shift=b32, scale=s32, channel_axis=1, name=name).output
        return TV(y, True)
    y = cv.net.add_scale(v.t, "channel", shift=b32, scale=s32, channel_axis=-1, name=name).output
    return TV(y, v.nchw)


def _pool(kind: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = cv.nchw(args[0])
        win = _two(cfg.get("pool_size", 2))
        stride = _two(cfg.get("strides") or win)
        pre, post = _pads(cfg, x, win, stride, (1, 1))
        return TV(cv.net.add_pooling_nd(x, kind, win, stride, pre, post, True, name=name).output, True)
    return h


LAYERS["MaxPooling2D"] = _pool("max")
LAYERS["AveragePooling2D"] = _pool("average")


def _global(op: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = cv.nchw(args[0])
        keep = bool(cfg.get("keepdims", False))
        y = cv.net.add_reduce(x, op, [2, 3], keep_dims=keep, name=name).output
        return TV(y, keep)
    return h


LAYERS["GlobalAveragePooling2D"] = _global("avg")
LAYERS["GlobalMaxPooling2D"] = _global("max")


@layer("ZeroPadding2D")
def _zeropad(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    p = cfg.get("padding", 1)
    if isinstance(p, int):
        (t, b), (l, r) = (p, p), (p, p)
    else:
        (t, b), (l, r) = (_two(p[0]), _two(p[1]))
    return TV(cv.net.add_padding_nd(cv.nchw(args[0]), (t, l), (b, r), name=name).output, True)


# --- 1-D layers: [N, S, C] sequences as [N, C, 1, S] images -----------------------------------
def _one(v: Any) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def _to_image(cv: KerasConverter, v: TV, name: str) -> Any:
    x = cv.plain(v)
    if x.rank != 3:
        raise UnsupportedError(f"expected a sequence [N, S, C], got {x.name} of rank {x.rank}")
    s = x.shape[1] if x.shape[1] is not None else -1
    return cv.net.add_shuffle(x, first_transpose=[0, 2, 1], reshape_dims=[0, 0, 1, s], name=f"{name}/to_nc1s").output


def _from_image(cv: KerasConverter, y: Any, name: str) -> Any:
    s = y.shape[3] if y.shape[3] is not None else -1
    return cv.net.add_shuffle(y, reshape_dims=[0, 0, s], second_transpose=[0, 2, 1], name=name).output


def _pads1(cfg: dict, length: Optional[int], k: int, stride: int, dil: int) -> tuple[int, int]:
    padding = cfg.get("padding", "valid")
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return dil * (k - 1), 0
    if padding != "same":
        raise UnsupportedError(f"padding {padding!r}")
    if length is None:
        if stride != 1:
            raise UnsupportedError("padding='same' with strides > 1 needs a fixed sequence length")
        total = dil * (k - 1)
        return total // 2, total - total // 2
    return same_padding(length, k, stride, dil)


@layer("Conv1D")
def _conv1d(cv, name, cfg, args, ref):
    _check_channels_last(cfg)
    x = _to_image(cv, args[0], name)
    w = cv.weights(name, 1)
    k, stride, dil = _one(cfg["kernel_size"]), _one(cfg.get("strides", 1)), _one(cfg.get("dilation_rate", 1))
    kernel = w[0].transpose(2, 1, 0)[:, :, None, :]  # [k, in/g, out] -> [out, in/g, 1, k]
    bias = w[1] if cfg.get("use_bias", True) else None
    pre, post = _pads1(cfg, x.shape[3], k, stride, dil)
    conv = cv.net.add_convolution_nd(x, kernel.shape[0], (1, k), kernel, bias, stride=(1, stride), pre_padding=(0, pre),
                                     post_padding=(0, post), dilation=(1, dil), num_groups=int(cfg.get("groups", 1)),
                                     name=f"{name}/conv")
    y = TV(_from_image(cv, conv.output, name if act_name(cfg.get("activation")) == "linear" else f"{name}/linear"))
    return activate(cv, y, cfg.get("activation"), name)


def _pool1(kind: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = _to_image(cv, args[0], name)
        win = _one(cfg.get("pool_size", 2))
        stride = _one(cfg.get("strides") or win)
        pre, post = _pads1(cfg, x.shape[3], win, stride, 1)
        y = cv.net.add_pooling_nd(x, kind, (1, win), (1, stride), (0, pre), (0, post), True, name=f"{name}/pool").output
        return TV(_from_image(cv, y, name))
    return h


LAYERS["MaxPooling1D"] = LAYERS["MaxPool1D"] = _pool1("max")
LAYERS["AveragePooling1D"] = LAYERS["AvgPool1D"] = _pool1("average")


def _global1(op: str) -> Callable:
    def h(cv, name, cfg, args, ref):
        _check_channels_last(cfg)
        x = cv.plain(args[0])
        keep = bool(cfg.get("keepdims", False))
        mask = cv.in_masks[0] if cv.in_masks else None
        if op == "avg" and mask is not None:  # Keras averages over the unmasked steps only
            m3 = cv.net.add_shuffle(mask, reshape_dims=[0, 0, 1], name=f"{name}/mask3").output
            xs = cv.net.add_elementwise(x, m3, "prod", name=f"{name}/masked").output
            s = cv.net.add_reduce(xs, "sum", [1], keep_dims=keep, name=f"{name}/sum").output
            n = cv.net.add_reduce(m3, "sum", [1], keep_dims=keep, name=f"{name}/count").output
            return TV(cv.net.add_elementwise(s, n, "div", name=name).output)
        return TV(cv.net.add_reduce(x, op, [1], keep_dims=keep, name=name).output)
    return h


LAYERS["GlobalAveragePooling1D"] = LAYERS["GlobalAvgPool1D"] = _global1("avg")
LAYERS["GlobalMaxPooling1D"] = LAYERS["GlobalMaxPool1D"] = _global1("max")


@layer("ZeroPadding1D")
def _zeropad1(cv, name, cfg, args, ref):
    p = cfg.get("padding", 1)
    left, right = (int(p), int(p)) if isinstance(p, (int, float)) else (int(p[0]), int(p[1]))
    x = _to_image(cv, args[0], name)
    y = cv.net.add_padding_nd(x, (0, left), (0, right), name=f"{name}/pad").output
    return TV(_from_image(cv, y, name))


@layer("UpSampling1D")
def _upsample1(cv, name, cfg, args, ref):
    x = cv.plain(args[0])
    size, c = int(cfg.get("size", 2)), x.shape[2]
    if c is None:
        raise UnsupportedError("UpSampling1D of an input without a fixed channel count")
    x4 = cv.net.add_shuffle(x, reshape_dims=[0, 0, 1, c], name=f"{name}/expand").output
    zeros = cv.net.add_constant((1, 1, size, 1), np.zeros((1, 1, size, 1), np.float32), name=f"{name}/zeros").output
    rep = cv.net.add_elementwise(x4, zeros, "sum", name=f"{name}/repeat").output
    return TV(cv.net.add_shuffle(rep, reshape_dims=[0, -1, c], name=name).output)
