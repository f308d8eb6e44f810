"""Quantized weights: `Dequantize` and `QuantizeV2` of constants, folded to float at import.

Graphs written by TensorFlow's `quantize_weights` transform keep each large weight as a
quint8 `Const` plus float min/max `Const`s and a `Dequantize` (mode MIN_FIRST); folding
restores float weights that the convolution / dense handlers then take as usual. The
formulas follow TensorFlow's kernels (MIN_FIRST rounds `min` to a whole number of steps).
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .graphdef import DTYPE_NAMES
from .graphdef_ops import attr_i, attr_s, const, op

# quantized DataType code -> (lowest, highest) code value
QRANGE = {11: (-128, 127), 12: (0, 255), 13: (-(1 << 31), (1 << 31) - 1), 15: (-32768, 32767), 16: (0, 65535),
          4: (0, 255), 6: (-128, 127), 3: (-(1 << 31), (1 << 31) - 1), 5: (-32768, 32767), 17: (0, 65535)}
MODES = ("MIN_COMBINED", "MIN_FIRST", "SCALED")


def _qtype(node) -> tuple[int, int, int]:
    a = node.attr("T")
    code = a.type() if a is not None else 12
    if code not in QRANGE:
        raise UnsupportedError(f"attribute T = {DTYPE_NAMES.get(code, code)} (quantized types: qint8, quint8, "
                               "qint16, quint16, qint32)")
    return (code,) + QRANGE[code]


def _mode(node) -> str:
    mode = attr_s(node, "mode", "MIN_COMBINED")
    if mode not in MODES:
        raise UnsupportedError(f"attribute mode = {mode!r} (supported: {', '.join(MODES)})")
    return mode


def _ranges(node, x: np.ndarray, lo_v, hi_v) -> tuple[np.ndarray, np.ndarray]:
    """min/max broadcast against x (per-tensor, or per-slice along attr axis)."""
    mn, mx = (np.asarray(const(v, f"{node.op} range"), np.float32) for v in (lo_v, hi_v))
    axis = attr_i(node, "axis", -1)
    if axis == -1 or (mn.size == 1 and mx.size == 1):
        if mn.size != 1 or mx.size != 1:
            raise UnsupportedError(f"{node.op}: per-tensor range with {mn.size} values (set attribute axis)")
        return mn.reshape(()), mx.reshape(())
    axis %= x.ndim
    shape = [1] * x.ndim
    shape[axis] = -1
    if mn.size != x.shape[axis] or mx.size != x.shape[axis]:
        raise UnsupportedError(f"{node.op}: axis {axis} has {x.shape[axis]} slices but the range has {mn.size}")
    return mn.reshape(shape), mx.reshape(shape)


def dequantize(q: np.ndarray, mn, mx, code: int, mode: str, narrow: bool) -> np.ndarray:
    """TensorFlow's Dequantize of code values q (any integer array) to float32."""
    lo, hi = QRANGE[code]
    qd = q.astype(np.float64)
    mn64, mx64 = np.asarray(mn, np.float64), np.asarray(mx, np.float64)
    if mode == "MIN_COMBINED":
        out = mn64 + (qd - lo) * (mx64 - mn64) / (hi - lo)
    elif mode == "MIN_FIRST":
        step = ((mx64 - mn64) / (hi - lo)).astype(np.float32).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mn_r = np.where(step == 0, mn64, np.round(mn64 / np.where(step == 0, 1, step)) * step)
        out = np.where(mx64 == mn64, mn64, mn_r + (qd - lo) * step)
    else:  # SCALED
        if lo == 0:
            s = mx64 / hi
        else:
            lo_n = lo + 1 if narrow else lo
            s = np.maximum(mn64 / lo_n, mx64 / hi)
        out = qd * s
    return np.asarray(out, np.float32)


@op("Dequantize")
def _dequantize(cv, node, ins):
    """Folded to float (MIN_COMBINED, MIN_FIRST, SCALED; per tensor or per axis)."""
    q = const(ins[0], "Dequantize input (quantized weights)")
    code, _, _ = _qtype(node)
    mode = _mode(node)
    dt = node.attr("dtype")
    if dt is not None and dt.type() not in (0, 1):
        raise UnsupportedError(f"attribute dtype = {DTYPE_NAMES.get(dt.type(), dt.type())} (only float32)")
    mn, mx = _ranges(node, q, ins[1], ins[2])
    narrow = bool(node.attr("narrow_range") and node.attr("narrow_range").b())
    return [dequantize(q, mn, mx, code, mode, narrow)]


def _round(x: np.ndarray, half_even: bool) -> np.ndarray:
    return np.round(x) if half_even else np.sign(x) * np.floor(np.abs(x) + 0.5)


@op("QuantizeV2")
def _quantize(cv, node, ins):
    """Folded (constant input): codes, output_min, output_max as TensorFlow computes them."""
    x = np.asarray(const(ins[0], "QuantizeV2 input"), np.float32)
    code, lo, hi = _qtype(node)
    mode = _mode(node)
    rmode = attr_s(node, "round_mode", "HALF_AWAY_FROM_ZERO")
    if rmode not in ("HALF_AWAY_FROM_ZERO", "HALF_TO_EVEN") or (rmode == "HALF_TO_EVEN" and mode != "SCALED"):
        raise UnsupportedError(f"attribute round_mode = {rmode!r} with mode {mode!r}")
    narrow = bool(node.attr("narrow_range") and node.attr("narrow_range").b())
    ens = node.attr("ensure_minimum_range")
    ens = ens.f() if ens is not None else 0.01
    mn, mx = _ranges(node, x, ins[1], ins[2])
    mn = np.minimum(mn, np.float32(0)).astype(np.float32)
    eps = (np.maximum(np.float32(1), np.maximum(np.abs(mn), np.abs(mx))) * np.float32(ens)).astype(np.float32)
    mx = np.maximum(np.float32(0), np.maximum(mx, mn + eps)).astype(np.float32)
    dtype = {11: np.int8, 12: np.uint8, 13: np.int32, 15: np.int16, 16: np.uint16}.get(code, np.int64)
    xd, mnd, mxd = x.astype(np.float64), mn.astype(np.float64), mx.astype(np.float64)
    if mode == "MIN_COMBINED":
        sf = (hi - lo) / (mxd - mnd)
        q = np.floor((np.clip(xd, mnd, mxd) - mnd) * sf + 0.5) + lo
    elif mode == "MIN_FIRST":
        sf = (hi - lo) / (mxd - mnd)
        q = _round(xd * sf, False) - _round(mnd * sf, False) + lo
    else:
        lo_n = lo + 1 if (narrow and lo < 0) else lo
        with np.errstate(divide="ignore"):
            if lo == 0:
                sf = hi / mxd
            else:
                sf = np.where(mnd == 0, hi / mxd, np.where(mxd == 0, lo_n / mnd, np.minimum(lo_n / mnd, hi / mxd)))
        mnd, mxd = lo_n / sf if lo < 0 else np.zeros_like(mxd), hi / sf
        q = _round(np.clip(xd, mnd, mxd) * sf, rmode == "HALF_TO_EVEN")
        mn, mx = np.asarray(mnd, np.float32), np.asarray(mxd, np.float32)
    q = np.clip(q, lo, hi).astype(dtype)
    return [q, np.asarray(mn, np.float32), np.asarray(mx, np.float32)]


# --- fake quantization (quantization-aware training graphs) -------------------------------------
def nudged_range(mn: np.ndarray, mx: np.ndarray, num_bits: int, narrow: bool):
    """TensorFlow's Nudge(): (nudged min, nudged max, scale) so that 0.0 is exactly representable."""
    qmin, qmax = (1 if narrow else 0), (1 << num_bits) - 1
    mn, mx = np.asarray(mn, np.float32), np.asarray(mx, np.float32)
    scale = ((mx - mn) / np.float32(qmax - qmin)).astype(np.float32)
    zp_from_min = (np.float32(qmin) - mn / scale).astype(np.float32)
    zp = np.where(zp_from_min < qmin, qmin, np.where(zp_from_min > qmax, qmax,
                                                      np.sign(zp_from_min) * np.floor(np.abs(zp_from_min) + 0.5)))
    zp = zp.astype(np.float32)
    return ((np.float32(qmin) - zp) * scale).astype(np.float32), ((np.float32(qmax) - zp) * scale).astype(np.float32), \
        scale


@op("FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVarsPerChannel")
def _fake_quant(cv, node, ins):
    """Clip to the nudged range, Sub min, Mul 1/scale, Add 0.5, Floor, Mul scale, Add min (TF's order)."""
    from .graphdef import TV

    bits = attr_i(node, "num_bits", 8)
    narrow = bool(node.attr("narrow_range") and node.attr("narrow_range").b())
    if not 2 <= bits <= 16:
        raise UnsupportedError(f"attribute num_bits = {bits} (2 to 16)")
    if node.op == "FakeQuantWithMinMaxArgs":
        get = lambda k, d: node.attr(k).f() if node.attr(k) is not None else d  # noqa: E731
        mn, mx = np.float32(get("min", -6.0)), np.float32(get("max", 6.0))
    else:
        mn, mx = (np.asarray(const(v, f"{node.op} range"), np.float32) for v in ins[1:3])
    nmin, nmax, scale = nudged_range(mn, mx, bits, narrow)
    inv = (np.float32(1) / scale).astype(np.float32)
    x = ins[0]
    if not isinstance(x, TV):
        xc = np.clip(np.asarray(const(x, "FakeQuant input"), np.float32), nmin, nmax)
        return [(np.floor((xc - nmin) * inv + np.float32(0.5)) * scale + nmin).astype(np.float32)]
    net, n = cv.net, node.name

    def c(v, what):
        return cv.const_like(np.asarray(v, np.float32), x, f"{n}/{what}")

    t = net.add_elementwise(net.add_elementwise(x.t, c(nmin, "nudged_min"), "max", name=f"{n}/clip_low").output,
                            c(nmax, "nudged_max"), "min", name=f"{n}/clip_high").output
    t = net.add_elementwise(t, c(nmin, "min"), "sub", name=f"{n}/shift").output
    t = net.add_elementwise(t, c(inv, "inv_scale"), "prod", name=f"{n}/steps").output
    t = net.add_elementwise(t, c(0.5, "half"), "sum", name=f"{n}/round_half_up").output
    t = net.add_unary(t, "floor", name=f"{n}/floor").output
    t = net.add_elementwise(t, c(scale, "scale"), "prod", name=f"{n}/rescale").output
    return [TV(net.add_elementwise(t, c(nmin, "offset"), "sum", name=n).output, x.nchw)]
