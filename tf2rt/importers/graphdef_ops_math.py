"""TensorFlow op handlers for element-wise maths, reductions, comparisons and selection on
run-time tensors (the fold-only versions in graphdef_ops keep folding constants), and the
helpers the other handler modules share (graphdef_ops_shape: indexing, old-graph ops, Einsum,
Cumsum; graphdef_ops_signal: the real FFT of audio front ends).

Handlers register into graphdef_ops.HANDLERS. Where an op already has a handler, the one
here extends it: constant inputs go to the existing handler, tensors are handled here.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV, GraphConverter, Node, Partial
from .graphdef_ops import HANDLERS, Handler, _reduce, _reshape_dims, binary, const, is_const, op


def extend(*names: str) -> Callable[[Handler], Handler]:
    """Register fn for names; an existing handler keeps the calls where every input is a constant."""
    def deco(fn: Handler) -> Handler:
        for n in names:
            prev = HANDLERS.get(n)

            def h(cv, node, ins, _prev=prev, _fn=fn):
                if _prev is not None and not any(isinstance(v, (TV, Complex)) for v in ins):
                    return _prev(cv, node, ins)
                return _fn(cv, node, ins)
            h.__doc__ = fn.__doc__
            h.__name__ = fn.__name__
            HANDLERS[n] = h
        return fn
    return deco


def tensor_of(cv: GraphConverter, v: Any, name: str) -> Any:
    """A network tensor in TensorFlow's axis order for a TV or a constant."""
    if isinstance(v, Partial) and v.origin is not None:
        v = cv.runtime(v)  # a size known only at run time
    if isinstance(v, TV):
        return cv.plain(v)
    arr = np.asarray(const(v, "operand"))
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return cv.net.add_constant(arr.shape, arr, name=name).output


def fold_check(node: Node, *arrays: Any) -> None:
    """Refuse to fold constants whose broadcast result would exceed the folding cap."""
    from ..limits import MAX_FOLD_BYTES, check_elements

    try:
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    except ValueError:
        raise UnsupportedError(f"{node.op}: shapes {[np.shape(a) for a in arrays]} do not broadcast") from None
    check_elements(shape, 8, f"{node.op} {node.name!r} folded at import", MAX_FOLD_BYTES)


def need_tv(v: Any, what: str) -> TV:
    if not isinstance(v, TV):
        raise UnsupportedError(f"{what} must be a tensor here")
    return v


def reshape(cv: GraphConverter, t: Any, shape: list, name: str) -> Any:
    """Reshape a plain tensor to `shape` (None = unknown; a leading unknown copies the batch size)."""
    dims = list(_reshape_dims(list(shape)))
    if dims.count(-1) > 1:
        raise UnsupportedError(f"reshape to {shape}: more than one unknown dimension")
    return cv.net.add_shuffle(t, reshape_dims=dims, name=name).output


# --- element-wise maths on tensors --------------------------------------------------
_UNARY_FOLD = {"Abs": np.abs, "Erf": np.vectorize(math.erf, otypes=[np.float64]),
               "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign, "Round": np.round}
_UNARY_NET = {"Sqrt": ["sqrt"], "Rsqrt": ["sqrt", "recip"], "Reciprocal": ["recip"], "Inv": ["recip"],
              "Exp": ["exp"], "Log": ["log"], "Neg": ["neg"], "Abs": ["abs"], "Erf": ["erf"], "Floor": ["floor"],
              "Ceil": ["ceil"], "Sign": ["sign"], "Round": ["round"]}


@extend(*_UNARY_NET)
def _unary(cv, node, ins):
    """Unary (Sqrt, Rsqrt = Reciprocal(Sqrt), Exp, Log, Neg, Abs, Erf, ...)."""
    v = ins[0]
    if is_const(v):
        return [np.asarray(_UNARY_FOLD[node.op](v)).astype(v.dtype)]
    v = need_tv(v, f"{node.op} input")
    t = v.t
    ops = _UNARY_NET[node.op]
    for i, u in enumerate(ops):
        t = cv.net.add_unary(t, u, name=node.name if i == len(ops) - 1 else f"{node.name}/{u}").output
    return [TV(t, v.nchw)]


@op("Erfc")
def _erfc(cv, node, ins):
    """1 − Erf(x) (absolute error about 1e-7 where erfc itself is tiny, as in GELU's tail)."""
    v = ins[0]
    if is_const(v):
        return [(1.0 - np.vectorize(math.erf, otypes=[np.float64])(v)).astype(v.dtype)]
    v = need_tv(v, "Erfc input")
    e = cv.net.add_unary(v.t, "erf", name=f"{node.name}/erf").output
    one = cv.net.add_constant((), np.ones((), np.dtype(v.t.dtype)), name=f"{node.name}/one").output
    return [TV(cv.net.add_elementwise(one, e, "sub", name=node.name).output, v.nchw)]


@extend("Square")
def _square(cv, node, ins):
    """Mul(x, x)."""
    v = need_tv(ins[0], "Square input")
    return [TV(cv.net.add_elementwise(v.t, v.t, "prod", name=node.name).output, v.nchw)]


_PREV_REDUCE = {n: HANDLERS.get(n) for n in ("Sum", "Prod")}


@op("Sum", "Prod")
def _sum(cv, node, ins):
    """ReduceSum / ReduceProd over constant axes (keep_dims); of a shape vector with a dynamic
    entry (Tensordot's flattened sizes), -1 wherever that entry is reduced."""
    v = ins[0]
    if isinstance(v, Partial):
        vals = v.values
        if vals.ndim != 1:
            raise UnsupportedError(f"{node.op} of a {vals.ndim}-D shape value")
        keep = bool(node.attr("keep_dims") and node.attr("keep_dims").b())
        axes = {int(a) % 1 for a in np.atleast_1d(const(ins[1], "reduction axes"))}
        if not axes:
            return [v]
        out = np.array([-1 if (vals < 0).any() else (vals.prod() if node.op == "Prod" else vals.sum())],
                       vals.dtype)
        out = out if keep else out.reshape(())
        return [Partial(out) if (out < 0).any() else out]
    if not isinstance(v, TV) and _PREV_REDUCE.get(node.op) is not None:
        return _PREV_REDUCE[node.op](cv, node, ins)
    need_tv(v, f"{node.op} input")
    return _reduce(cv, node, ins)


@op("All", "Any")
def _all_any(cv, node, ins):
    """reduce_all / reduce_any of bools: a min / max of the values as int32 (constants fold)."""
    v, axes = ins
    keep = bool(node.attr("keep_dims") and node.attr("keep_dims").b())
    if is_const(v):
        fn = np.all if node.op == "All" else np.any
        return [np.asarray(fn(v, axis=tuple(int(a) for a in np.atleast_1d(const(axes, "axes"))), keepdims=keep))]
    t = tensor_of(cv, v, f"{node.name}/input")
    as_int = cv.net.add_cast(t, "int32", name=f"{node.name}/int").output
    red = _reduce(cv, Node(f"{node.name}/reduce", "Min" if node.op == "All" else "Max", [], node.attrs),
                  [TV(as_int), axes])[0]
    return [TV(cv.net.add_cast(cv.plain(red), "bool", name=node.name).output)]


@op("ZerosLike", "OnesLike")
def _zeros_like(cv, node, ins):
    """A tensor of zeros / ones shaped like the input (its shape read at run time)."""
    v = ins[0]
    fill = 0 if node.op == "ZerosLike" else 1
    if is_const(v) or isinstance(v, Partial):
        arr = v.values if isinstance(v, Partial) else v
        return [np.full(np.shape(arr), fill, np.asarray(arr).dtype)]
    t = cv.plain(need_tv(v, f"{node.op} input"))
    value = cv.net.add_constant((), np.array(fill, np.dtype(t.dtype)), name=f"{node.name}/value").output
    shape = cv.net.add_shape(t, name=f"{node.name}/shape").output
    return [TV(cv.net.add_fill(shape, value, list(t.shape), name=node.name).output)]


@op("DivNoNan")
def _div_no_nan(cv, node, ins):
    """Where(y == 0, 0, x / y)."""
    x, y = ins
    if is_const(x) and is_const(y):
        fold_check(node, *ins)
        with np.errstate(divide="ignore", invalid="ignore"):
            return [np.where(y == 0, 0, x / np.where(y == 0, 1, y)).astype(np.result_type(x, y))]
    if is_const(y) and np.all(y != 0):
        return [binary(cv, Node(node.name, "RealDiv", []), x, y, "div", np.divide)]
    if is_const(y):  # a constant divisor with zeros: multiply by 1/y (0 there), then mask
        recip = np.where(y == 0, 0.0, 1.0 / np.where(y == 0, 1.0, y.astype(np.float64))).astype(np.float32)
        q = binary(cv, Node(f"{node.name}/divide", "Mul", []), x, recip, "prod", np.multiply)
    else:
        q = binary(cv, Node(f"{node.name}/divide", "RealDiv", []), x, y, "div", np.divide)
    q = cv.plain(q)
    yt = tensor_of(cv, y, f"{node.name}/divisor")
    zero = cv.net.add_constant((), np.zeros((), q.dtype), name=f"{node.name}/zero").output
    cond = cv.net.add_elementwise(yt, zero, "equal", name=f"{node.name}/is_zero").output
    return [TV(cv.net.add_select(cond, zero, q, name=node.name).output)]


@op("Select", "SelectV2")
def _select(cv, node, ins):
    """Where(condition, x, y); Select's rank-1 condition picks rows."""
    c, a, b = ins
    if all(is_const(v) for v in ins):
        if node.op == "Select" and c.ndim == 1 and a.ndim > 1:
            c = c.reshape((-1,) + (1,) * (a.ndim - 1))
        fold_check(node, c, a, b)
        return [np.where(c, a, b)]
    ct, at, bt = (tensor_of(cv, v, f"{node.name}/input{i}") for i, v in enumerate(ins))
    if ct.dtype != "bool":
        raise UnsupportedError(f"{node.op} condition of dtype {ct.dtype}")
    if node.op == "Select" and ct.rank == 1 and at.rank > 1:
        ct = reshape(cv, ct, [ct.shape[0]] + [1] * (at.rank - 1), f"{node.name}/rows")
    return [TV(cv.net.add_select(ct, at, bt, name=node.name).output)]


_COMPARE = {"Greater": ("greater", False, np.greater), "Less": ("less", False, np.less),
            "Equal": ("equal", False, np.equal), "GreaterEqual": ("less", True, np.greater_equal),
            "LessEqual": ("greater", True, np.less_equal), "NotEqual": ("equal", True, np.not_equal)}


@op(*_COMPARE)
def _compare(cv, node, ins):
    """Greater / Less / Equal (GreaterEqual, LessEqual, NotEqual as Not of the opposite)."""
    net_op, negate, np_op = _COMPARE[node.op]
    a, b = ins
    if is_const(a) and is_const(b):
        fold_check(node, *ins)
        return [np.asarray(np_op(a, b))]
    inner = Node(f"{node.name}/{net_op}" if negate else node.name, node.op, [])
    r = binary(cv, inner, a, b, net_op, np_op)
    if not negate:
        return [r]
    return [TV(cv.net.add_unary(r.t, "not", name=node.name).output, r.nchw)]


@op("LogicalNot")
def _logical_not(cv, node, ins):
    """Not."""
    v = ins[0]
    if is_const(v):
        return [np.logical_not(v)]
    v = need_tv(v, "LogicalNot input")
    return [TV(cv.net.add_unary(v.t, "not", name=node.name).output, v.nchw)]


@op("LogicalAnd", "LogicalOr")
def _logical(cv, node, ins):
    """And / Or of bool tensors (constants fold)."""
    a, b = ins
    if is_const(a) and is_const(b):
        fold_check(node, *ins)
        return [np.logical_and(a, b) if node.op == "LogicalAnd" else np.logical_or(a, b)]
    at, bt = (tensor_of(cv, np.asarray(v, bool) if is_const(v) else v, f"{node.name}/input{i}") for i, v in enumerate(ins))
    op_ = "and" if node.op == "LogicalAnd" else "or"
    return [TV(cv.net.add_elementwise(at, bt, op_, name=node.name).output)]


@op("ClipByValue")
def _clip(cv, node, ins):
    """Clip activation (scalar bounds) or Max + Min."""
    x, lo, hi = ins
    if all(is_const(v) for v in ins):
        fold_check(node, *ins)
        return [np.clip(x, lo, hi).astype(x.dtype)]
    x = need_tv(x, "ClipByValue input")
    if is_const(lo) and is_const(hi) and lo.size == 1 and hi.size == 1 and x.t.dtype == "float32":
        t = cv.net.add_activation(x.t, "clip", float(lo.reshape(())), float(hi.reshape(())), name=node.name).output
        return [TV(t, x.nchw)]
    y = binary(cv, Node(f"{node.name}/max", "Maximum", []), x, lo, "max", np.maximum)
    return [binary(cv, Node(node.name, "Minimum", []), y, hi, "min", np.minimum)]


# --- complex values (RFFT results) ----------------------------------------------------
class Complex:
    """A complex tensor held as real and imaginary parts; only ComplexAbs/Real/Imag read it."""

    def __init__(self, re: Any, im: Any, producer: str):
        self.re, self.im, self.producer = re, im, producer

    def _refuse(self, *_: Any) -> Any:
        raise UnsupportedError(f"the complex result of {self.producer!r} feeds an op other than ComplexAbs, Real "
                               "or Imag; complex arithmetic is not supported")

    t = property(_refuse)
    nchw = property(_refuse)
    shape = property(_refuse)


# Indexing, old-graph, Einsum/Cumsum and FFT handlers register themselves on import.
from . import graphdef_ops_shape, graphdef_ops_signal  # noqa: E402,F401
