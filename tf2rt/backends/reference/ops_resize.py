"""Reference (numpy) ONNX Resize: nearest and linear, coordinate modes asymmetric, align_corners,
half_pixel, with output `sizes` or `scales`. Sample positions are computed in float32 in the
order onnxruntime evaluates them (so nearest picks the same pixels); linear weights are applied
axis by axis in float64 (bilinear = one linear pass per axis)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .registry import op

f32 = np.float32


def _positions(n_in: int, n_out: int, scale: np.float32, mode: str) -> np.ndarray:
    """Where output index i samples the input axis (ONNX coordinate_transformation_mode)."""
    i = np.arange(n_out, dtype=f32)
    if mode == "asymmetric":
        return i / scale
    if mode == "align_corners":
        return i * f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else np.zeros(n_out, f32)
    if mode == "half_pixel":
        return (i + f32(0.5)) / scale - f32(0.5)
    raise NotImplementedError(f"Resize coordinate_transformation_mode={mode} is not implemented in the "
                              "reference backend")


_ROUND = {"floor": np.floor, "ceil": np.ceil,
          "round_prefer_ceil": lambda p: np.floor(p + f32(0.5)),
          "round_prefer_floor": lambda p: np.ceil(p - f32(0.5))}


@op("Resize")
def resize(inputs: Sequence[Optional[np.ndarray]], attrs: dict[str, Any]) -> np.ndarray:
    x = inputs[0]
    scales = inputs[2] if len(inputs) > 2 and inputs[2] is not None and inputs[2].size else None
    sizes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    mode = attrs.get("mode", "nearest")
    coords = attrs.get("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear") or attrs.get("exclude_outside", 0) or "axes" in attrs:
        raise NotImplementedError(f"Resize mode={mode} (or exclude_outside/axes) is not implemented in the "
                                  "reference backend")
    if sizes is not None:
        out_shape = [int(s) for s in sizes]
        factors = [f32(o) / f32(n) if n else f32(1) for o, n in zip(out_shape, x.shape)]
    elif scales is not None:
        factors = [f32(s) for s in scales]
        out_shape = [int(np.floor(n * float(s))) for n, s in zip(x.shape, factors)]
    else:
        raise ValueError("Resize needs scales or sizes")
    if len(out_shape) != x.ndim:
        raise ValueError(f"Resize sizes {out_shape} do not fit an input of rank {x.ndim}")
    y = x.astype(np.float64) if mode == "linear" else x
    for axis, (n_in, n_out, s) in enumerate(zip(x.shape, out_shape, factors)):
        if n_in == n_out:  # every mode maps i to i
            continue
        if n_in == 0:
            raise ValueError(f"Resize of an empty axis {axis} to {n_out}")
        pos = _positions(n_in, n_out, s, coords)
        if mode == "nearest":
            idx = _ROUND[attrs.get("nearest_mode", "round_prefer_floor")](pos).astype(np.int64)
            y = np.take(y, np.clip(idx, 0, n_in - 1), axis=axis)
            continue
        pos = np.clip(pos, f32(0), f32(n_in - 1))
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        w = (pos - lo.astype(f32)).astype(np.float64).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        y = np.take(y, lo, axis=axis) * (1.0 - w) + np.take(y, hi, axis=axis) * w
    return y.astype(x.dtype)
