"""Shape and per-element layers: shuffle, concatenation, slice, scale, unary, reduce, cast, identity."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .layer import Layer, norm_axis
from .layers_core import _canon
from .tensor import DTYPES, FLOAT_DTYPES, Shape, Tensor, normalize_dtype, shape_str


def _perm(layer: Layer, perm: Optional[Sequence[int]], rank: int, what: str) -> Optional[tuple[int, ...]]:
    if perm is None:
        return None
    p = tuple(int(i) for i in perm)
    if sorted(p) != list(range(rank)):
        raise layer.error(f"{what} {p} is not a permutation of {rank} axes")
    return p


class ShuffleLayer(Layer):
    """TensorRT shuffle: first transpose, then reshape (0 = copy dim, -1 = infer), then second transpose."""

    type = "shuffle"

    def __init__(self, x: Tensor, reshape_dims: Optional[Sequence[int]] = None,
                 first_transpose: Optional[Sequence[int]] = None, second_transpose: Optional[Sequence[int]] = None):
        super().__init__([x])
        self._reshape_dims = None if reshape_dims is None else tuple(int(d) for d in reshape_dims)
        self._first = None if first_transpose is None else tuple(first_transpose)
        self._second = None if second_transpose is None else tuple(second_transpose)

    def _prop(name: str):  # noqa: N805 - property factory used in the class body
        def get(self):
            return getattr(self, name)

        def set_(self, value):
            setattr(self, name, None if value is None else tuple(int(v) for v in value))
            self.reinfer()

        return property(get, set_)

    reshape_dims = _prop("_reshape_dims")
    first_transpose = _prop("_first")
    second_transpose = _prop("_second")
    del _prop

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        first = _perm(self, self._first, x.rank, "first_transpose")
        shape = tuple(x.shape[i] for i in first) if first else x.shape
        self.resolved_dims: Optional[tuple[int, ...]] = None
        if self._reshape_dims is not None:
            dims = list(self._reshape_dims)
            out: list[Optional[int]] = []
            for i, d in enumerate(dims):
                if d == 0:
                    if i >= len(shape):
                        raise self.error(f"reshape_dims {tuple(dims)}: 0 at position {i} has no input dim to copy")
                    out.append(shape[i])
                elif d == -1 or d > 0:
                    out.append(None if d == -1 else d)
                else:
                    raise self.error(f"bad reshape dimension {d} in {tuple(dims)}")
            if dims.count(-1) > 1:
                raise self.error(f"reshape_dims {tuple(dims)} has more than one -1")
            total = None if any(d is None for d in shape) else int(np.prod(shape, dtype=np.int64))
            known = [d for d in out if d is not None]
            if -1 in dims and total is not None:
                rest = int(np.prod(known, dtype=np.int64))
                if rest == 0 or total % rest:
                    raise self.error(f"cannot reshape {shape_str(shape)} to {tuple(dims)}")
                out[dims.index(-1)] = total // rest
            elif total is not None and -1 not in dims and int(np.prod(known, dtype=np.int64)) != total:
                raise self.error(f"cannot reshape {shape_str(shape)} ({total} elements) to {tuple(dims)}")
            shape = tuple(out)
        second = _perm(self, self._second, len(shape), "second_transpose")
        if second:
            shape = tuple(shape[i] for i in second)
        return [(x.dtype, shape)]

    def attributes(self) -> dict[str, Any]:
        return {"first_transpose": self._first, "reshape_dims": self._reshape_dims, "second_transpose": self._second}


class ConcatenationLayer(Layer):
    type = "concatenation"

    def __init__(self, inputs: Sequence[Tensor], axis: int = 0):
        super().__init__(list(inputs))
        self.axis = int(axis)

    def infer(self) -> list[tuple[str, Shape]]:
        ts = [self.input_tensor(i) for i in range(len(self.inputs))]
        if not ts:
            raise self.error("needs at least one input")
        first = ts[0]
        self.axis = norm_axis(self, self.axis, first.rank)
        total: Optional[int] = 0
        for t in ts:
            if t.dtype != first.dtype or t.rank != first.rank:
                raise self.error(f"{t.name} ({t.dtype}{shape_str(t.shape)}) does not match "
                                 f"{first.name} ({first.dtype}{shape_str(first.shape)})")
            for i, (d0, d) in enumerate(zip(first.shape, t.shape)):
                if i != self.axis and d0 is not None and d is not None and d0 != d:
                    raise self.error(f"{t.name}{shape_str(t.shape)} and {first.name}{shape_str(first.shape)} "
                                     f"differ outside axis {self.axis}")
            total = None if total is None or t.shape[self.axis] is None else total + t.shape[self.axis]
        shape = first.shape[: self.axis] + (total,) + first.shape[self.axis + 1:]
        return [(first.dtype, shape)]

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}


class SliceLayer(Layer):
    """Static strided slice: output[i] = input[start + i*stride] along every axis."""

    type = "slice"

    def __init__(self, x: Tensor, start: Sequence[int], shape: Sequence[int], stride: Sequence[int]):
        super().__init__([x])
        self.start = tuple(int(v) for v in start)
        self.size = tuple(int(v) for v in shape)
        self.stride = tuple(int(v) for v in stride)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if not len(self.start) == len(self.size) == len(self.stride) == x.rank:
            raise self.error(f"start/shape/stride must each have {x.rank} values for {x.name}{shape_str(x.shape)}")
        for ax, (s, n, st, d) in enumerate(zip(self.start, self.size, self.stride, x.shape)):
            if n < 0 or st == 0 or s < 0 or (d is not None and n > 0 and not (0 <= s + (n - 1) * st < d)):
                raise self.error(f"axis {ax}: start {s}, size {n}, stride {st} leave the input dim {d}")
        return [(x.dtype, self.size)]

    def attributes(self) -> dict[str, Any]:
        return {"start": self.start, "shape": self.size, "stride": self.stride}


class ScaleLayer(Layer):
    """TensorRT scale: y = (x * scale + shift) ** power, per tensor, per channel or per element."""

    type = "scale"

    def __init__(self, x: Tensor, mode: str, shift: Any = None, scale: Any = None, power: Any = None,
                 channel_axis: int = 1):
        super().__init__([x])
        self.mode = _canon("scale mode", mode, {"uniform": "uniform", "channel": "channel", "elementwise": "elementwise"})
        as_arr = lambda v: None if v is None or np.size(v) == 0 else np.asarray(v, dtype=np.float32)  # noqa: E731
        self.shift, self.scale, self.power = as_arr(shift), as_arr(scale), as_arr(power)
        self.channel_axis = int(channel_axis)

    def param_shape(self, x: Tensor) -> tuple[int, ...]:
        """Shape the parameters broadcast with against x (numpy broadcasting)."""
        if self.mode == "uniform":
            return ()
        if self.mode == "channel":
            ax = self.channel_axis
            return (x.shape[ax],) + (1,) * (x.rank - ax - 1)  # type: ignore[return-value]
        return tuple(x.shape[-3:]) if x.rank >= 3 else tuple(x.shape)  # type: ignore[return-value]

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"needs a float input, {x.name} is {x.dtype}")
        if self.mode == "channel":
            self.channel_axis = norm_axis(self, self.channel_axis, x.rank, "channel_axis")
        want = self.param_shape(x)
        if any(d is None for d in want):
            raise self.error(f"mode {self.mode} needs known dims of {x.name}{shape_str(x.shape)}")
        n = int(np.prod(want, dtype=np.int64))
        for name in ("shift", "scale", "power"):
            v = getattr(self, name)
            if v is not None:
                if v.size != n:
                    raise self.error(f"{name} has {v.size} values; mode {self.mode} needs {n}")
                setattr(self, name, v.reshape(want))
        return [(x.dtype, x.shape)]

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v for k in ("shift", "scale", "power") if (v := getattr(self, k)) is not None}

    def attributes(self) -> dict[str, Any]:
        return {"mode": self.mode, "channel_axis": self.channel_axis}


UNARY_OPS = ("exp", "log", "sqrt", "recip", "abs", "neg", "sin", "cos", "tan", "sinh", "cosh", "asin", "acos",
             "atan", "asinh", "acosh", "atanh", "ceil", "floor", "erf", "not", "sign", "round")


class UnaryLayer(Layer):
    type = "unary"

    def __init__(self, x: Tensor, op: str):
        super().__init__([x])
        self.op = _canon("unary operation", op, {k: k for k in UNARY_OPS} | {"reciprocal": "recip"})

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if (self.op == "not") != (x.dtype == "bool") and self.op not in ("abs", "neg", "sign"):
            raise self.error(f"op {self.op} does not take a {x.dtype} input")
        return [(x.dtype, x.shape)]

    def attributes(self) -> dict[str, Any]:
        return {"op": self.op}


REDUCE_OPS = ("sum", "prod", "max", "min", "avg")


class ReduceLayer(Layer):
    """Reduce over axes: a sequence of axes, or TensorRT's bit mask when an int is given."""

    type = "reduce"

    def __init__(self, x: Tensor, op: str, axes: Any, keep_dims: bool = False):
        super().__init__([x])
        self.op = _canon("reduce operation", op, {k: k for k in REDUCE_OPS} | {"mean": "avg"})
        self._axes_in = axes
        self.keep_dims = bool(keep_dims)
        self.axes: tuple[int, ...] = ()

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if isinstance(self._axes_in, (int, np.integer)):
            mask = int(self._axes_in)
            if mask <= 0 or mask >> x.rank:
                raise self.error(f"axes bit mask {mask:#b} does not fit a rank-{x.rank} input")
            axes = [i for i in range(x.rank) if mask >> i & 1]
        else:
            axes = [norm_axis(self, int(a), x.rank) for a in self._axes_in]
        self.axes = tuple(sorted(set(axes)))
        shape = tuple((1 if i in self.axes else d) for i, d in enumerate(x.shape) if self.keep_dims or i not in self.axes)
        return [(x.dtype, shape)]

    def attributes(self) -> dict[str, Any]:
        return {"op": self.op, "axes": self.axes, "keep_dims": self.keep_dims}


class CastLayer(Layer):
    type = "cast"

    def __init__(self, x: Tensor, dtype: Any):
        super().__init__([x])
        self.to = normalize_dtype(dtype)

    def infer(self) -> list[tuple[str, Shape]]:
        return [(self.to, self.input_tensor(0).shape)]

    def attributes(self) -> dict[str, Any]:
        return {"to": self.to}


class ShapeLayer(Layer):
    """The input's shape at run time, int64 [rank] (ONNX Shape): sizes a graph computes from
    tensors whose dimensions are only known when it runs."""

    type = "shape"

    def infer(self) -> list[tuple[str, Shape]]:
        return [("int64", (self.input_tensor(0).rank,))]


class RangeLayer(Layer):
    """start, start + delta, ... up to (not including) limit: three scalars of one dtype, a
    1-D result whose length is known at run time (ONNX Range)."""

    type = "range"

    def infer(self) -> list[tuple[str, Shape]]:
        ts = [self.input_tensor(i) for i in range(3)]
        if any(t.rank != 0 for t in ts) or len({t.dtype for t in ts}) != 1:
            raise self.error("start, limit and delta must be scalars of one dtype, got "
                             + ", ".join(f"{t.dtype}{shape_str(t.shape)}" for t in ts))
        return [(ts[0].dtype, (None,))]


class FillLayer(Layer):
    """A scalar `value` broadcast to the shape held by the 1-D int tensor `shape` (ONNX Expand);
    `dims` gives the sizes known when building (None where only the run says)."""

    type = "fill"

    def __init__(self, shape: Tensor, value: Tensor, dims: Sequence[Optional[int]]):
        super().__init__([shape, value])
        self.dims = tuple(None if d is None or d < 0 else int(d) for d in dims)

    def infer(self) -> list[tuple[str, Shape]]:
        s, v = self.input_tensor(0), self.input_tensor(1)
        if s.rank != 1 or s.dtype not in ("int32", "int64") or s.shape[0] not in (None, len(self.dims)):
            raise self.error(f"shape {s.name}{shape_str(s.shape)} must be a 1-D int tensor of {len(self.dims)} sizes")
        if v.rank != 0:
            raise self.error(f"value {v.name}{shape_str(v.shape)} must be a scalar")
        return [(v.dtype, self.dims)]

    def attributes(self) -> dict[str, Any]:
        return {"dims": list(self.dims)}


class PadLayer(Layer):
    """x padded with `value` by amounts computed at run time: `pads` is an int tensor [rank, 2]
    (before, after per axis, as TensorFlow's Pad takes it); ONNX Pad."""

    type = "pad"

    def __init__(self, x: Tensor, pads: Tensor, value: float = 0.0):
        super().__init__([x, pads])
        self.value = float(value)

    def infer(self) -> list[tuple[str, Shape]]:
        x, p = self.input_tensor(0), self.input_tensor(1)
        if p.dtype not in ("int32", "int64") or p.rank != 2 or p.shape[0] not in (x.rank, None) or p.shape[1] != 2:
            raise self.error(f"pads {p.name}{shape_str(p.shape)} must be an int tensor [{x.rank}, 2]")
        return [(x.dtype, (None,) * x.rank)]

    def attributes(self) -> dict[str, Any]:
        return {"value": self.value}


class SplitLayer(Layer):
    """Consecutive parts of `sizes` elements along `axis` (ONNX Split): one output per part."""

    type = "split"
    output_names = ()

    def __init__(self, x: Tensor, axis: int, sizes: Sequence[int]):
        super().__init__([x])
        self.axis, self.sizes = int(axis), [int(n) for n in sizes]

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        self.axis = norm_axis(self, self.axis, x.rank)
        d = x.shape[self.axis]
        if not self.sizes or min(self.sizes) < 0 or (d is not None and sum(self.sizes) != d):
            raise self.error(f"sizes {self.sizes} do not split dimension {self.axis} of {x.name}{shape_str(x.shape)}")
        return [(x.dtype, x.shape[: self.axis] + (n,) + x.shape[self.axis + 1:]) for n in self.sizes]

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis, "sizes": list(self.sizes)}


class IdentityLayer(Layer):
    type = "identity"

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        return [(x.dtype, x.shape)]


__all__ = ["ShuffleLayer", "ConcatenationLayer", "SliceLayer", "ScaleLayer", "UnaryLayer", "ReduceLayer",
           "CastLayer", "ShapeLayer", "RangeLayer", "FillLayer", "PadLayer", "SplitLayer", "IdentityLayer", "DTYPES"]
