"""TensorFlow op handlers for element-wise maths, reductions and shape ops on run-time tensors
(the fold-only versions in graphdef_ops keep folding constants), old-graph ops (GraphDef
producer 0: Gather, Split, Concat, Pack/Unpack), Einsum, Cumsum, training-mode and run-time
FusedBatchNorm, and the real FFT of audio front ends (RFFT + ComplexAbs as matrix products).

Handlers register into graphdef_ops.HANDLERS. Where an op already has a handler, the one
here extends it: constant inputs go to the existing handler, tensors are handled here.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV, GraphConverter, Node, dtype_of, phys_axis
from .graphdef_ops import (HANDLERS, Handler, _reduce, _reshape_dims, attr_i, attr_s, binary, const,
                           is_const, op)


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
    if isinstance(v, TV):
        return cv.plain(v)
    arr = np.asarray(const(v, "operand"))
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return cv.net.add_constant(arr.shape, arr, name=name).output


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


@extend("Sum", "Prod")
def _sum(cv, node, ins):
    """ReduceSum / ReduceProd over constant axes (keep_dims)."""
    need_tv(ins[0], f"{node.op} input")
    return _reduce(cv, node, ins)


@op("DivNoNan")
def _div_no_nan(cv, node, ins):
    """Where(y == 0, 0, x / y)."""
    x, y = ins
    if is_const(x) and is_const(y):
        with np.errstate(divide="ignore", invalid="ignore"):
            return [np.where(y == 0, 0, x / np.where(y == 0, 1, y)).astype(np.result_type(x, y))]
    if is_const(y) and np.all(y != 0):
        return [binary(cv, Node(node.name, "RealDiv", []), x, y, "div", np.divide)]
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
    """Cast to 0/1 floats, Mul (and) or Max (or), Cast back to bool."""
    a, b = ins
    if is_const(a) and is_const(b):
        return [np.logical_and(a, b) if node.op == "LogicalAnd" else np.logical_or(a, b)]
    at, bt = (cv.net.add_cast(tensor_of(cv, v, f"{node.name}/input{i}"), "float32", name=f"{node.name}/float{i}")
              .output for i, v in enumerate(ins))
    r = cv.net.add_elementwise(at, bt, "prod" if node.op == "LogicalAnd" else "max", name=f"{node.name}/combine")
    return [TV(cv.net.add_cast(r.output, "bool", name=node.name).output)]


@op("ClipByValue")
def _clip(cv, node, ins):
    """Clip activation (scalar bounds) or Max + Min."""
    x, lo, hi = ins
    if all(is_const(v) for v in ins):
        return [np.clip(x, lo, hi).astype(x.dtype)]
    x = need_tv(x, "ClipByValue input")
    if is_const(lo) and is_const(hi) and lo.size == 1 and hi.size == 1 and x.t.dtype == "float32":
        t = cv.net.add_activation(x.t, "clip", float(lo.reshape(())), float(hi.reshape(())), name=node.name).output
        return [TV(t, x.nchw)]
    y = binary(cv, Node(f"{node.name}/max", "Maximum", []), x, lo, "max", np.maximum)
    return [binary(cv, Node(node.name, "Minimum", []), y, hi, "min", np.minimum)]


# --- old-graph and shape ops on tensors ------------------------------------------------
@op("Gather")
def _gather_v1(cv, node, ins):
    """Gather along axis 0 (the GatherV2 of producer-0 graphs)."""
    params, idx = ins
    if is_const(params) and is_const(idx):
        return [np.take(params, idx, axis=0)]
    if isinstance(idx, TV) and idx.t.dtype not in ("int32", "int64"):
        raise UnsupportedError(f"Gather indices of dtype {idx.t.dtype}")
    data = tensor_of(cv, params, f"{node.name}/params")
    ind = tensor_of(cv, np.asarray(idx).astype(np.int32) if is_const(idx) else idx, f"{node.name}/indices")
    return [TV(cv.net.add_gather(data, ind, axis=0, name=node.name).output)]


def _take(cv: GraphConverter, v: TV, axis: int, idx: np.ndarray, name: str) -> TV:
    """Gather constant indices along TF axis `axis` of v (keeping v's layout)."""
    ind = cv.net.add_constant(idx.shape, idx.astype(np.int32), name=f"{name}/indices").output
    if idx.ndim and v.nchw:
        return TV(cv.net.add_gather(v.t, ind, axis=phys_axis(axis), name=name).output, True)
    return TV(cv.net.add_gather(cv.plain(v), ind, axis=axis, name=name).output)


def _split_tensor(cv: GraphConverter, node: Node, v: TV, axis: int, sizes: list[int]) -> list:
    rank = len(v.shape)
    axis %= rank
    d = v.shape[axis]
    if d is None:
        raise UnsupportedError(f"{node.op} along a dynamic dimension")
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = d - (sum(sizes) + 1)
    if sum(sizes) != d or min(sizes) < 0:
        raise UnsupportedError(f"{node.op}: sizes {sizes} do not add up to dimension {d}")
    out, start = [], 0
    for i, n in enumerate(sizes):
        out.append(_take(cv, v, axis, np.arange(start, start + n), f"{node.name}/{i}" if i else node.name))
        start += n
    return out


@op("Split")
def _split(cv, node, ins):
    """Gather of each equal part (inputs: axis, value)."""
    axis, v = int(const(ins[0], "split axis")), ins[1]
    n = attr_i(node, "num_split", 1)
    if is_const(v):
        return list(np.split(v, n, axis=axis))
    v = need_tv(v, "Split input")
    d = v.shape[axis % len(v.shape)]
    if d is None or d % n:
        raise UnsupportedError(f"Split of dimension {d} into {n} equal parts")
    return _split_tensor(cv, node, v, axis, [d // n] * n)


@op("SplitV")
def _split_v(cv, node, ins):
    """Gather of each part (inputs: value, size_splits, axis)."""
    v, sizes, axis = ins
    sizes = [int(s) for s in np.atleast_1d(const(sizes, "size_splits"))]
    axis = int(const(axis, "split axis"))
    if is_const(v):
        if sizes.count(-1) == 1:
            sizes[sizes.index(-1)] = v.shape[axis] - (sum(sizes) + 1)
        return list(np.split(v, np.cumsum(sizes)[:-1], axis=axis))
    return _split_tensor(cv, node, need_tv(v, "SplitV input"), axis, sizes)


def _expand(cv: GraphConverter, t: Any, axis: int, name: str) -> Any:
    shape = list(t.shape)
    shape.insert(axis, 1)
    return reshape(cv, t, shape, name)


@extend("Pack")
def _pack(cv, node, ins):
    """Unsqueeze each input + Concat."""
    if not any(isinstance(v, TV) for v in ins):
        raise UnsupportedError("Pack of shapes with a dynamic batch size mixed with tensors")
    rank = len(next(v for v in ins if isinstance(v, TV)).shape)
    axis = attr_i(node, "axis") % (rank + 1)
    ts = [_expand(cv, tensor_of(cv, v, f"{node.name}/const{i}"), axis, f"{node.name}/expand{i}")
          for i, v in enumerate(ins)]
    return [TV(cv.net.add_concatenation(ts, axis, name=node.name).output)]


@op("Unpack")
def _unpack(cv, node, ins):
    """Gather of each index (a scalar index drops the axis)."""
    v = ins[0]
    axis = attr_i(node, "axis")
    if is_const(v):
        return [np.take(v, i, axis=axis) for i in range(v.shape[axis])]
    v = need_tv(v, "Unpack input")
    rank = len(v.shape)
    axis %= rank
    n = attr_i(node, "num", v.shape[axis] or 0)
    t = cv.plain(v)
    rest = [d for a, d in enumerate(t.shape) if a != axis]
    outs = []
    for i in range(n):
        ind = cv.net.add_constant((1,), np.array([i], np.int32), name=f"{node.name}/index{i}").output
        g = cv.net.add_gather(t, ind, axis=axis, name=f"{node.name}/gather{i}").output
        outs.append(TV(reshape(cv, g, rest, f"{node.name}/{i}" if i else node.name)))
    return outs


@op("Slice")
def _slice(cv, node, ins):
    """Gather of each sliced axis (size -1 = to the end)."""
    v, begin, size = ins
    begin = [int(b) for b in np.atleast_1d(const(begin, "Slice begin"))]
    size = [int(s) for s in np.atleast_1d(const(size, "Slice size"))]
    if is_const(v):
        return [v[tuple(slice(b, None if s < 0 else b + s) for b, s in zip(begin, size))]]
    v = need_tv(v, "Slice input")
    if len(begin) != len(v.shape) or len(size) != len(v.shape):
        raise UnsupportedError(f"Slice begin {begin} / size {size} for a rank-{len(v.shape)} tensor")
    out = v
    for ax, (b, n, d) in enumerate(zip(begin, size, v.shape)):
        if b == 0 and (n < 0 or n == d):
            continue
        if d is None and n < 0:
            raise UnsupportedError("Slice to the end of a dynamic dimension")
        stop = d if n < 0 else b + n
        if b < 0 or (d is not None and stop > d):
            raise UnsupportedError(f"Slice begin {b} size {n} outside dimension {d}")
        out = _take(cv, out, ax, np.arange(b, stop), f"{node.name}/axis{ax}")
    if out is v:
        return [TV(cv.net.add_identity(v.t, name=node.name).output, v.nchw)]
    return [out]


@op("ArgMax", "ArgMin")
def _argmax(cv, node, ins):
    """TopK(k=1) indices along the axis, the axis removed, cast to output_type."""
    v, axis = ins
    axis = int(const(axis, "ArgMax axis"))
    a = node.attr("output_type")
    dt = np.dtype(dtype_of(a.type() if a is not None else 9, "ArgMax output_type"))
    if is_const(v):
        return [(np.argmax if node.op == "ArgMax" else np.argmin)(v, axis=axis).astype(dt)]
    t = cv.plain(need_tv(v, f"{node.op} input"))
    axis %= t.rank
    k = cv.net.add_topk(t, "max" if node.op == "ArgMax" else "min", 1, axis=axis, name=f"{node.name}/topk")
    idx = reshape(cv, k.outputs[1], [d for i, d in enumerate(t.shape) if i != axis], f"{node.name}/squeeze")
    if idx.dtype != dt.name:
        idx = cv.net.add_cast(idx, dt.name, name=node.name).output
    return [TV(idx)]


@op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def _batch_matmul(cv, node, ins):
    """MatMul of the last two dims (adj_x / adj_y transpose them; batch dims broadcast)."""
    a, b = ins
    adj = [bool(node.attr(k) is not None and node.attr(k).b()) for k in ("adj_x", "adj_y")]
    if is_const(a) and is_const(b):
        a2, b2 = (np.swapaxes(x, -1, -2) if f else x for x, f in zip((a, b), adj))
        return [np.matmul(a2, b2)]
    at, bt = (tensor_of(cv, v, f"{node.name}/operand{i}") for i, v in enumerate(ins))
    ops = ["transpose" if f else "none" for f in adj]
    return [TV(cv.net.add_matrix_multiply(at, ops[0], bt, ops[1], name=node.name).output)]


# --- Cumsum, Einsum -------------------------------------------------------------------
def _move_last(cv: GraphConverter, t: Any, axis: int, name: str) -> tuple[Any, list[int] | None]:
    rank = t.rank
    if axis == rank - 1:
        return t, None
    perm = [a for a in range(rank) if a != axis] + [axis]
    return cv.net.add_shuffle(t, first_transpose=perm, name=name).output, perm


@op("Cumsum")
def _cumsum(cv, node, ins):
    """MatMul with a triangular 0/1 matrix along the axis (exclusive and reverse change the triangle)."""
    x, axis = ins
    axis = int(const(axis, "Cumsum axis"))
    excl, rev = (bool(node.attr(k) is not None and node.attr(k).b()) for k in ("exclusive", "reverse"))
    if is_const(x):
        y = np.flip(x, axis) if rev else x
        y = np.cumsum(y, axis=axis)
        if excl:
            y = y - (np.flip(x, axis) if rev else x)
        return [(np.flip(y, axis) if rev else y).astype(x.dtype)]
    x = need_tv(x, "Cumsum input")
    if x.t.dtype not in ("float32", "float16"):
        raise UnsupportedError(f"Cumsum of {x.t.dtype} tensors (only float)")
    t = cv.plain(x)
    axis %= t.rank
    n = t.shape[axis]
    if n is None:
        raise UnsupportedError("Cumsum along a dynamic dimension")
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # out[j] = sum_i x[i] * m[i, j]
    m = (i > j if excl else i >= j) if rev else (i < j if excl else i <= j)
    moved, perm = _move_last(cv, t, axis, f"{node.name}/to_last")
    w = cv.net.add_constant((n, n), m.astype(np.float32), name=f"{node.name}/triangle").output
    y = cv.net.add_matrix_multiply(moved, "none", w, "none", name=node.name if perm is None else f"{node.name}/mm")
    if perm is None:
        return [TV(y.output)]
    inv = list(np.argsort(perm))
    return [TV(cv.net.add_shuffle(y.output, first_transpose=inv, name=node.name).output)]


def _parse_einsum(eq: str, n_in: int) -> tuple[list[str], str]:
    eq = eq.replace(" ", "")
    if "->" not in eq:
        raise UnsupportedError(f"Einsum equation {eq!r} without '->'")
    lhs, out = eq.split("->")
    terms = lhs.split(",")
    if len(terms) != n_in or "." in eq:
        raise UnsupportedError(f"Einsum equation {eq!r} (only explicit two-operand forms without '...')")
    for t in terms + [out]:
        if len(set(t)) != len(t):
            raise UnsupportedError(f"Einsum equation {eq!r}: repeated index (trace/diagonal) in {t!r}")
    return terms, out


@op("Einsum")
def _einsum(cv, node, ins):
    """Transpose + Reshape + MatMul (batch, free and contracted indices of two operands)."""
    eq = attr_s(node, "equation")
    if all(is_const(v) for v in ins):
        return [np.einsum(eq, *ins)]
    if len(ins) != 2:
        raise UnsupportedError(f"Einsum with {len(ins)} operands (only two)")
    (ta, tb), to = _parse_einsum(eq, 2)
    a, b = (tensor_of(cv, v, f"{node.name}/operand{i}") for i, v in enumerate(ins))
    sizes: dict[str, Any] = {}
    for term, t in ((ta, a), (tb, b)):
        if len(term) != t.rank:
            raise UnsupportedError(f"Einsum {eq!r}: {term!r} does not match an operand of rank {t.rank}")
        for ch, d in zip(term, t.shape):
            if sizes.get(ch) is None:
                sizes[ch] = d
    # indices only in one operand and not in the output are summed first
    for k, (term, t) in enumerate(((ta, a), (tb, b))):
        other = tb if k == 0 else ta
        lone = [ch for ch in term if ch not in other and ch not in to]
        if lone:
            t = cv.net.add_reduce(t, "sum", [term.index(ch) for ch in lone], keep_dims=False,
                                  name=f"{node.name}/sum{k}").output
            term = "".join(ch for ch in term if ch not in lone)
        if k == 0:
            ta, a = term, t
        else:
            tb, b = term, t
    batch = [ch for ch in ta if ch in tb and ch in to]
    contr = [ch for ch in ta if ch in tb and ch not in to]
    free_a = [ch for ch in ta if ch not in tb]
    free_b = [ch for ch in tb if ch not in ta]
    if set(to) != set(batch + free_a + free_b):
        raise UnsupportedError(f"Einsum {eq!r}: output indices that no operand has")

    def size(chs: list[str]) -> Any:
        dims = [sizes[c] for c in chs]
        return None if any(d is None for d in dims) else int(np.prod(dims, dtype=np.int64))

    def arrange(t: Any, term: str, order: list[str], shape: list, name: str) -> Any:
        perm = [term.index(ch) for ch in order]
        if perm != list(range(len(perm))):
            t = cv.net.add_shuffle(t, first_transpose=perm, name=f"{name}/transpose").output
        return reshape(cv, t, shape, f"{name}/reshape")

    bshape = [sizes[c] for c in batch]
    a3 = arrange(a, ta, batch + free_a + contr, bshape + [size(free_a) or 1, size(contr) or 1], f"{node.name}/a")
    b3 = arrange(b, tb, batch + contr + free_b, bshape + [size(contr) or 1, size(free_b) or 1], f"{node.name}/b")
    y = cv.net.add_matrix_multiply(a3, "none", b3, "none", name=f"{node.name}/matmul").output
    order = batch + free_a + free_b
    y = reshape(cv, y, [sizes[c] for c in order], f"{node.name}/unflatten")
    perm = [order.index(ch) for ch in to]
    if perm != list(range(len(perm))):
        y = cv.net.add_shuffle(y, first_transpose=perm, name=node.name).output
    return [TV(y)]


# --- FusedBatchNorm with batch statistics or run-time parameters ----------------------
_PREV_BN = {n: HANDLERS.get(n) for n in ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")}


@op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def _batchnorm(cv, node, ins):
    """Scale layer (inference, constant statistics), or Reduce/Sub/Mul over N,H,W (is_training=True,
    or statistics computed at run time)."""
    from .graphdef_nn_ops import _image_input, _wrap

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


# --- real FFT of audio front ends -------------------------------------------------------
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


@op("RFFT")
def _rfft(cv, node, ins):
    """MatMul with a cos and a sin matrix (|bins| = fft_length/2 + 1) on the last axis."""
    x, fl = ins
    n_fft = int(np.atleast_1d(const(fl, "fft_length"))[0])
    x = need_tv(x, "RFFT input")
    t = cv.plain(x)
    n = t.shape[-1]
    if n is None:
        raise UnsupportedError("RFFT of a dynamic-length axis")
    bins = n_fft // 2 + 1
    k = np.arange(bins)[None, :]
    i = np.arange(n)[:, None]
    ang = 2 * np.pi * ((i * k) % n_fft) / n_fft
    used = (i < n_fft).astype(np.float64)  # samples beyond fft_length are cropped, missing ones are zero
    cos_m = (np.cos(ang) * used).astype(np.float32)
    sin_m = (-np.sin(ang) * used).astype(np.float32)
    re = cv.net.add_matrix_multiply(t, "none", cv.net.add_constant(cos_m.shape, cos_m, name=f"{node.name}/cos").output,
                                    "none", name=f"{node.name}/real").output
    im = cv.net.add_matrix_multiply(t, "none", cv.net.add_constant(sin_m.shape, sin_m, name=f"{node.name}/sin").output,
                                    "none", name=f"{node.name}/imag").output
    return [Complex(re, im, node.name)]


def _complex(v: Any, node: Node) -> Complex:
    if not isinstance(v, Complex):
        raise UnsupportedError(f"{node.op} of a value that does not come from RFFT")
    return v


@op("ComplexAbs")
def _complex_abs(cv, node, ins):
    """Sqrt(re² + im²)."""
    c = _complex(ins[0], node)
    net = cv.net
    r2 = net.add_elementwise(c.re, c.re, "prod", name=f"{node.name}/re2").output
    i2 = net.add_elementwise(c.im, c.im, "prod", name=f"{node.name}/im2").output
    s = net.add_elementwise(r2, i2, "sum", name=f"{node.name}/sum").output
    return [TV(net.add_unary(s, "sqrt", name=node.name).output)]


@op("Real", "Imag")
def _real_imag(cv, node, ins):
    """The real or imaginary part of an RFFT."""
    c = _complex(ins[0], node)
    t = c.re if node.op == "Real" else c.im
    return [TV(cv.net.add_identity(t, name=node.name).output)]
