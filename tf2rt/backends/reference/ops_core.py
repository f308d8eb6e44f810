"""Numpy implementations of the ONNX core ops (exact opset-17 semantics, computed in the input dtype)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from .interpreter import NP_DTYPES
from .registry import op

In = Sequence[Optional[np.ndarray]]


def _same(x: np.ndarray, v: Any) -> np.ndarray:
    """Result as x's dtype (numpy promotes float16 with Python floats differently on some paths)."""
    return np.asarray(v).astype(x.dtype, copy=False)


# --- elementwise binary ------------------------------------------------------------------
@op("Add")
def add(i: In, a: dict) -> np.ndarray:
    return _same(i[0], i[0] + i[1])


@op("Sub")
def sub(i: In, a: dict) -> np.ndarray:
    return _same(i[0], i[0] - i[1])


@op("Mul")
def mul(i: In, a: dict) -> np.ndarray:
    return _same(i[0], i[0] * i[1])


@op("Div")
def div(i: In, a: dict) -> np.ndarray:
    x, y = i[0], i[1]
    if np.issubdtype(x.dtype, np.integer):  # C-style integer division (truncates toward zero)
        return (np.sign(x) * np.sign(y) * (np.abs(x) // np.abs(y))).astype(x.dtype)
    return _same(x, x / y)


@op("Pow")
def pow_(i: In, a: dict) -> np.ndarray:
    return _same(i[0], np.power(i[0], i[1].astype(i[0].dtype)))


@op("Max")
def max_(i: In, a: dict) -> np.ndarray:
    out = i[0]
    for x in i[1:]:
        out = np.maximum(out, x)
    return _same(i[0], out)


@op("Min")
def min_(i: In, a: dict) -> np.ndarray:
    out = i[0]
    for x in i[1:]:
        out = np.minimum(out, x)
    return _same(i[0], out)


@op("Equal")
def equal(i: In, a: dict) -> np.ndarray:
    return np.equal(i[0], i[1])


@op("Split")
def split(i: In, a: dict) -> tuple:
    x, axis = i[0], int(a.get("axis", 0))
    if len(i) > 1 and i[1] is not None:
        bounds = np.cumsum(np.asarray(i[1], np.int64))[:-1]
    else:
        n = int(a["num_outputs"])
        bounds = [x.shape[axis] * k // n for k in range(1, n)] if x.shape[axis] % n == 0 else \
            np.cumsum([-(-x.shape[axis] // n)] * (n - 1))
    return tuple(np.split(x, bounds, axis=axis))


@op("Mod")
def mod(i: In, a: dict) -> np.ndarray:
    x, y = i[0], i[1]
    return (np.fmod(x, y) if int(a.get("fmod", 0)) else np.mod(x, y)).astype(np.result_type(x, y))


for _name, _fn in (("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)):
    op(_name)(lambda i, a, _fn=_fn: _fn(i[0], i[1]))


@op("Greater")
def greater(i: In, a: dict) -> np.ndarray:
    return np.greater(i[0], i[1])


@op("Less")
def less(i: In, a: dict) -> np.ndarray:
    return np.less(i[0], i[1])


@op("Where")
def where(i: In, a: dict) -> np.ndarray:
    return np.where(i[0], i[1], i[2])


# --- activations --------------------------------------------------------------------------
@op("Relu")
def relu(i: In, a: dict) -> np.ndarray:
    return np.maximum(i[0], np.zeros((), i[0].dtype))


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return _same(x, np.where(x >= 0, 1 / (1 + e), e / (1 + e)))


op("Sigmoid")(lambda i, a: sigmoid(i[0]))
op("Tanh")(lambda i, a: np.tanh(i[0]))
op("Softsign")(lambda i, a: _same(i[0], i[0] / (1 + np.abs(i[0]))))


@op("LeakyRelu")
def leaky_relu(i: In, a: dict) -> np.ndarray:
    x = i[0]
    return _same(x, np.where(x >= 0, x, x * a.get("alpha", 0.01)))


@op("Elu")
def elu(i: In, a: dict) -> np.ndarray:
    x = i[0]
    return _same(x, np.where(x >= 0, x, a.get("alpha", 1.0) * np.expm1(np.minimum(x, 0))))


@op("Selu")
def selu(i: In, a: dict) -> np.ndarray:
    x, alpha, gamma = i[0], a.get("alpha", 1.67326319217681884765625), a.get("gamma", 1.05070102214813232421875)
    return _same(x, gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))


@op("ThresholdedRelu")
def thresholded_relu(i: In, a: dict) -> np.ndarray:
    x = i[0]
    return _same(x, np.where(x > a.get("alpha", 1.0), x, 0))


@op("HardSigmoid")
def hard_sigmoid(i: In, a: dict) -> np.ndarray:
    x = i[0]
    return _same(x, np.clip(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1))


@op("Softplus")
def softplus(i: In, a: dict) -> np.ndarray:
    return _same(i[0], np.logaddexp(0, i[0]))


@op("Clip")
def clip(i: In, a: dict) -> np.ndarray:
    x = i[0]
    lo = i[1] if len(i) > 1 and i[1] is not None else None
    hi = i[2] if len(i) > 2 and i[2] is not None else None
    out = x if lo is None else np.maximum(x, lo)
    out = out if hi is None else np.minimum(out, hi)
    return _same(x, out)


_erf = np.vectorize(math.erf, otypes=[np.float64])

# --- unary ----------------------------------------------------------------------------------
_UNARY = {"Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "Reciprocal": np.reciprocal, "Abs": np.abs,
          "Neg": np.negative, "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Sinh": np.sinh, "Cosh": np.cosh,
          "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan, "Asinh": np.arcsinh, "Acosh": np.arccosh,
          "Atanh": np.arctanh, "Ceil": np.ceil, "Floor": np.floor, "Sign": np.sign, "Round": np.round,
          "Not": np.logical_not, "Erf": _erf}


def _unary(fn: Any) -> Any:
    return lambda i, a: _same(i[0], fn(i[0]))


for _name, _fn in _UNARY.items():
    op(_name)(_unary(_fn))


# --- linear algebra -------------------------------------------------------------------------
@op("MatMul")
def matmul(i: In, a: dict) -> np.ndarray:
    return _same(i[0], np.matmul(i[0], i[1]))


@op("Gemm")
def gemm(i: In, a: dict) -> np.ndarray:
    A = i[0].T if a.get("transA", 0) else i[0]
    B = i[1].T if a.get("transB", 0) else i[1]
    y = a.get("alpha", 1.0) * (A @ B)
    if len(i) > 2 and i[2] is not None:
        y = y + a.get("beta", 1.0) * i[2]
    return _same(i[0], y)


@op("Softmax")
def softmax(i: In, a: dict) -> np.ndarray:
    x = i[0]
    axis = a.get("axis", -1)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return _same(x, e / np.sum(e, axis=axis, keepdims=True))


@op("TopK")
def topk(i: In, a: dict) -> tuple:
    x, k = i[0], int(i[1].reshape(-1)[0])
    axis = a.get("axis", -1) % x.ndim
    largest = a.get("largest", 1)
    # Stable sort: among equal values the lower index comes first (ONNX spec).
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


# --- reductions -----------------------------------------------------------------------------
def _reduce(fn: Any, axes_from_input: bool) -> Any:
    def run(i: In, a: dict) -> np.ndarray:
        x = i[0]
        if axes_from_input:
            axes = i[1] if len(i) > 1 and i[1] is not None else None
            axes = None if axes is None or axes.size == 0 else tuple(int(v) for v in axes.reshape(-1))
            if axes is None and a.get("noop_with_empty_axes", 0):
                return x
        else:
            axes = tuple(a["axes"]) if a.get("axes") else None
        return _same(x, fn(x, axis=axes, keepdims=bool(a.get("keepdims", 1))))

    return run


op("ReduceSum")(_reduce(np.sum, True))
op("ReduceMean")(_reduce(np.mean, False))
op("ReduceMax")(_reduce(np.max, False))
op("ReduceMin")(_reduce(np.min, False))
op("ReduceProd")(_reduce(np.prod, False))


# --- shapes and data movement ---------------------------------------------------------------
@op("Identity")
def identity(i: In, a: dict) -> np.ndarray:
    return i[0]


@op("Cast")
def cast(i: In, a: dict) -> np.ndarray:
    return i[0].astype(NP_DTYPES[a["to"]])


@op("Transpose")
def transpose(i: In, a: dict) -> np.ndarray:
    perm = a.get("perm")
    return np.transpose(i[0], perm if perm else None)


@op("Reshape")
def reshape(i: In, a: dict) -> np.ndarray:
    x, shape = i[0], [int(v) for v in i[1].reshape(-1)]
    if not a.get("allowzero", 0):
        shape = [x.shape[k] if d == 0 else d for k, d in enumerate(shape)]
    return x.reshape(shape)


@op("Flatten")
def flatten(i: In, a: dict) -> np.ndarray:
    x, axis = i[0], a.get("axis", 1) % (i[0].ndim + 1) if i[0].ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


@op("Squeeze")
def squeeze(i: In, a: dict) -> np.ndarray:
    axes = i[1] if len(i) > 1 and i[1] is not None else None
    return np.squeeze(i[0], axis=None if axes is None else tuple(int(v) for v in axes.reshape(-1)))


@op("Unsqueeze")
def unsqueeze(i: In, a: dict) -> np.ndarray:
    x, axes = i[0], sorted(int(v) % (i[0].ndim + len(i[1].reshape(-1))) for v in i[1].reshape(-1))
    for ax in axes:
        x = np.expand_dims(x, ax)
    return x


@op("Concat")
def concat(i: In, a: dict) -> np.ndarray:
    return np.concatenate([x for x in i if x is not None], axis=a["axis"])


@op("Gather")
def gather(i: In, a: dict) -> np.ndarray:
    data, idx = i[0], i[1].astype(np.int64)
    axis = a.get("axis", 0) % data.ndim
    n = data.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"Gather index out of range [-{n}, {n - 1}]")
    return np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)


@op("Slice")
def slice_(i: In, a: dict) -> np.ndarray:
    x = i[0]
    starts, ends = i[1].reshape(-1), i[2].reshape(-1)
    axes = i[3].reshape(-1) if len(i) > 3 and i[3] is not None else np.arange(len(starts))
    steps = i[4].reshape(-1) if len(i) > 4 and i[4] is not None else np.ones(len(starts), np.int64)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        ax, n, s, e, st = int(ax) % x.ndim, x.shape[int(ax)], int(s), int(e), int(st)
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:  # clamp to [-1, n-1]; -1 as a stop means "past the front", which a Python slice writes as None
            s, e = min(max(s, -1), n - 1), min(max(e, -1), n - 1)
        index[ax] = slice(s, None if (st < 0 and e < 0) else e, st)
    return x[tuple(index)]


@op("Shape")
def shape(i: In, a: dict) -> np.ndarray:
    return np.array(i[0].shape, dtype=np.int64)


@op("Range")
def range_(i: In, a: dict) -> np.ndarray:
    start, limit, delta = (np.asarray(x).reshape(()) for x in i[:3])
    n = max(int(np.ceil((limit - start) / delta)), 0)  # ONNX: ceil((limit - start) / delta) elements
    return (start + delta * np.arange(n)).astype(np.asarray(i[0]).dtype)


@op("Constant")
def constant(i: In, a: dict) -> np.ndarray:
    from onnx import numpy_helper

    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for key, dt in (("value_float", np.float32), ("value_int", np.int64), ("value_floats", np.float32),
                    ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dtype=dt)
    raise ValueError("Constant without a supported value attribute")
