"""Reference (numpy) implementations of the ONNX ops the convolutional layers lower to.

Convolution is an im2col gather followed by one einsum per group; pooling works on the same
window view. Results are computed in float64 and returned in the input dtype, so the
reference is a tighter oracle than float32 backends.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .registry import op


def _spatial_attrs(attrs: dict[str, Any], kernel: Sequence[int]) -> tuple[list[int], list[int], list[int], list[int]]:
    n = len(kernel)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise NotImplementedError(f"auto_pad={attrs['auto_pad']} is not implemented in the reference backend")
    strides = list(attrs.get("strides", [1] * n))
    dil = list(attrs.get("dilations", [1] * n))
    pads = list(attrs.get("pads", [0] * 2 * n))
    return strides, dil, pads[:n], pads[n:]


def _windows(x: np.ndarray, kernel: Sequence[int], strides: list[int], dil: list[int], pre: list[int],
             post: list[int], fill: float) -> np.ndarray:
    """[N, C, oh, ow, kh, kw] view of the padded input's windows."""
    xp = np.pad(x, [(0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])], constant_values=fill)
    kh, kw = kernel
    oh = (xp.shape[2] - ((kh - 1) * dil[0] + 1)) // strides[0] + 1
    ow = (xp.shape[3] - ((kw - 1) * dil[1] + 1)) // strides[1] + 1
    rows = (np.arange(oh) * strides[0])[:, None] + np.arange(kh) * dil[0]  # [oh, kh]
    cols = (np.arange(ow) * strides[1])[:, None] + np.arange(kw) * dil[1]  # [ow, kw]
    return xp[:, :, rows[:, None, :, None], cols[None, :, None, :]]


@op("Conv")
def conv(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    if x.ndim != 4:
        raise NotImplementedError("the reference Conv handles 2-D convolutions only")
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides, dil, pre, post = _spatial_attrs(attrs, kernel)
    g = int(attrs.get("group", 1))
    cols = _windows(x.astype(np.float64), kernel, strides, dil, pre, post, 0.0)  # [N, C, oh, ow, kh, kw]
    n, c, oh, ow = cols.shape[:4]
    k = w.shape[0]
    cols = cols.reshape(n, g, c // g, oh, ow, *kernel)
    wg = w.astype(np.float64).reshape(g, k // g, c // g, *kernel)
    y = np.einsum("ngchwij,gkcij->ngkhw", cols, wg, optimize=True).reshape(n, k, oh, ow)
    if b is not None:
        y = y + b.astype(np.float64).reshape(1, k, 1, 1)
    return y.astype(x.dtype)


@op("MaxPool")
def max_pool(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    strides, dil, pre, post = _spatial_attrs(attrs, kernel)
    if attrs.get("ceil_mode", 0):
        raise NotImplementedError("MaxPool ceil_mode=1 is not implemented in the reference backend")
    win = _windows(x, kernel, strides, dil, pre, post, -np.inf)
    return win.max(axis=(4, 5)).astype(x.dtype)


@op("AveragePool")
def average_pool(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x = inputs[0]
    kernel = list(attrs["kernel_shape"])
    strides, dil, pre, post = _spatial_attrs(attrs, kernel)
    if attrs.get("ceil_mode", 0):
        raise NotImplementedError("AveragePool ceil_mode=1 is not implemented in the reference backend")
    total = _windows(x.astype(np.float64), kernel, strides, dil, pre, post, 0.0).sum(axis=(4, 5))
    if attrs.get("count_include_pad", 0):
        count = np.full(total.shape[2:], float(np.prod(kernel)))
    else:  # how many real (unpadded) cells each window covers
        ones = np.ones((1, 1) + x.shape[2:])
        count = _windows(ones, kernel, strides, dil, pre, post, 0.0).sum(axis=(4, 5))[0, 0]
    return (total / count).astype(x.dtype)


@op("Pad")
def pad(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x, pads = inputs[0], np.asarray(inputs[1]).astype(np.int64)
    value = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), x.dtype)
    if len(inputs) > 3 and inputs[3] is not None:
        raise NotImplementedError("Pad with axes is not implemented in the reference backend")
    mode = attrs.get("mode", "constant")
    r = x.ndim
    width = [(int(pads[i]), int(pads[i + r])) for i in range(r)]
    if any(a < 0 or b < 0 for a, b in width):
        raise NotImplementedError("negative Pad (cropping) is not implemented in the reference backend")
    if mode == "constant":
        return np.pad(x, width, constant_values=np.asarray(value).reshape(()).item())
    return np.pad(x, width, mode={"reflect": "reflect", "edge": "edge"}[mode])


@op("PRelu")
def prelu(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x, slope = inputs[0], inputs[1]
    return np.where(x < 0, x * slope, x).astype(x.dtype)


@op("GlobalAveragePool")
def global_average_pool(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x = inputs[0]
    return x.astype(np.float64).mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)


@op("GlobalMaxPool")
def global_max_pool(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x = inputs[0]
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def _per_axis(v: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """A scale / zero point broadcast along `axis` of x (scalar: per tensor)."""
    v = np.asarray(v)
    if v.ndim == 0 or v.size == 1 and x.ndim == 0:
        return v.reshape(())
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    return v.reshape(shape)


_INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int32): (-2 ** 31, 2 ** 31 - 1)}


@op("QuantizeLinear")
def quantize_linear(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), np.uint8)
    axis = int(attrs.get("axis", 1))
    lo, hi = _INT_RANGES[np.dtype(zp.dtype)]
    q = np.rint(x.astype(np.float64) / _per_axis(scale, x, axis)) + _per_axis(zp, x, axis).astype(np.float64)
    return np.clip(q, lo, hi).astype(zp.dtype)  # np.rint rounds half to even, as ONNX specifies


@op("DequantizeLinear")
def dequantize_linear(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x, scale = inputs[0], inputs[1]
    zp = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.zeros((), x.dtype)
    axis = int(attrs.get("axis", 1))
    y = (x.astype(np.float64) - _per_axis(zp, x, axis).astype(np.float64)) * _per_axis(scale, x, axis)
    return y.astype(scale.dtype)
