"""TensorFlow op handlers for indexing, shape and linear-algebra ops on run-time tensors:
old-graph ops (GraphDef producer 0: Gather, Split, Concat, Pack/Unpack), SplitV, Slice,
ArgMax/ArgMin, BatchMatMul, Cumsum (a triangular matrix product) and two-operand Einsum
(Transpose + Reshape + MatMul)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..limits import MAX_FOLD_BYTES, check_elements
from .graphdef import TV, GraphConverter, Node, dtype_of, phys_axis
from .graphdef_ops import attr_i, attr_s, const, is_const, op
from .graphdef_ops_math import extend, need_tv, reshape, tensor_of


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
    if v.nchw:  # split where the tensor is, in its own layout
        layer = cv.net.add_split(v.t, phys_axis(axis), sizes, name=node.name)
    else:
        layer = cv.net.add_split(cv.plain(v), axis, sizes, name=node.name)
    return [TV(t, v.nchw) for t in layer.outputs]


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
    check_elements((n, n), 4, f"Cumsum {node.name!r} triangular matrix", MAX_FOLD_BYTES)
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
        terms, out = _parse_einsum(eq, len(ins)) if "->" in eq else (eq.split(","), None)
        dims = {ch: d for t, v in zip(terms, ins) for ch, d in zip(t, np.shape(v))}
        check_elements([dims.get(ch, 1) for ch in (out if out is not None else "")], 8,
                       f"Einsum {node.name!r} folded at import", MAX_FOLD_BYTES)
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

    if not batch and ta == "".join(free_a + contr) and tb == "".join(contr + free_b) and len(free_b) <= 1 \
            and b.rank == len(contr) + len(free_b) and len(contr) == 1:
        # "...k,kn->...n" (a dense layer over the last axis): one product that broadcasts
        # over the leading dims, whatever their sizes at run time
        bm = b if free_b else reshape(cv, b, [sizes[contr[0]], 1], f"{node.name}/b/column")
        y = cv.net.add_matrix_multiply(a, "none", bm, "none", name=f"{node.name}/matmul").output
        if not free_b:
            y = reshape(cv, y, [sizes[c] for c in free_a], f"{node.name}/squeeze")
        order = free_a + free_b
        perm = [order.index(ch) for ch in to]
        if perm != list(range(len(perm))):
            y = cv.net.add_shuffle(y, first_transpose=perm, name=node.name).output
        return [TV(y)]
    if sum(size(g) is None for g in (free_a, contr, free_b)) > 1 or any(sizes[c] is None for c in batch):
        raise UnsupportedError(f"Einsum {eq!r} with several sizes known only at run time; give the inputs fixed "
                               "sizes with --input-shape")
    bshape = [sizes[c] for c in batch]
    def flat(chs: list[str]) -> int:
        n = size(chs)
        return -1 if n is None else (n or 1)

    a3 = arrange(a, ta, batch + free_a + contr, bshape + [flat(free_a), flat(contr)], f"{node.name}/a")
    b3 = arrange(b, tb, batch + contr + free_b, bshape + [flat(contr), flat(free_b)], f"{node.name}/b")
    y = cv.net.add_matrix_multiply(a3, "none", b3, "none", name=f"{node.name}/matmul").output
    order = batch + free_a + free_b
    y = reshape(cv, y, [sizes[c] for c in order], f"{node.name}/unflatten")
    perm = [order.index(ch) for ch in to]
    if perm != list(range(len(perm))):
        y = cv.net.add_shuffle(y, first_transpose=perm, name=node.name).output
    return [TV(y)]


# --- StridedSlice with bounds known only at run time (x[:n], x[i]) ---------------------------
def _scalar_at(cv: GraphConverter, vec: Any, i: int, name: str) -> Any:
    """Element i of a 1-D int tensor, as an int64 scalar tensor."""
    at = cv.net.add_constant((), np.array(i, np.int32), name=f"{name}/at").output
    s = cv.net.add_gather(vec, at, axis=0, name=name).output
    return s if s.dtype == "int64" else cv.net.add_cast(s, "int64", name=f"{name}/int64").output


def runtime_dim(cv: GraphConverter, t: Any, axis: int, name: str) -> Any:
    """The size of `t`'s axis at run time, as an int64 scalar tensor."""
    return _scalar_at(cv, cv.net.add_shape(t, name=f"{name}/shape").output, axis, name)


def _bounded(cv: GraphConverter, b: Any, d: Any, name: str, low: int = 0, high_offset: int = 0) -> Any:
    """A TF slice bound at run time: negative counts from the end, then clamped to
    [low, d + high_offset] ([0, d] stepping forward, [-1, d - 1] stepping backward)."""
    net = cv.net
    zero = net.add_constant((), np.array(0, np.int64), name=f"{name}/zero").output
    neg = net.add_elementwise(b, zero, "less", name=f"{name}/negative").output
    b = net.add_select(neg, net.add_elementwise(b, d, "sum", name=f"{name}/from_end").output, b,
                       name=f"{name}/index").output
    lo = net.add_constant((), np.array(low, np.int64), name=f"{name}/low_bound").output
    b = net.add_elementwise(b, lo, "max", name=f"{name}/low").output
    hi = d if not high_offset else net.add_elementwise(
        d, net.add_constant((), np.array(high_offset, np.int64), name=f"{name}/offset").output, "sum",
        name=f"{name}/high_bound").output
    return net.add_elementwise(b, hi, "min", name=f"{name}/high").output


def strided_slice_runtime(cv: GraphConverter, node: Node, ins: list) -> TV:
    """x[b:e:s] and x[i] per axis with b, e, i computed at run time, or of an axis whose size
    is (constant strides; begin/end masks and shrink-axis; no ellipsis or new axes): a Range of
    the kept positions and a Gather per axis."""
    strides = [int(v) for v in np.atleast_1d(const(ins[3], "StridedSlice strides"))]
    if 0 in strides:
        raise UnsupportedError("StridedSlice with a zero stride")
    if attr_i(node, "ellipsis_mask") or attr_i(node, "new_axis_mask"):
        raise UnsupportedError("StridedSlice with bounds known only at run time and an ellipsis or new axis")
    bm, em, sm = attr_i(node, "begin_mask"), attr_i(node, "end_mask"), attr_i(node, "shrink_axis_mask")
    x = cv.plain(need_tv(ins[0], "StridedSlice input"))
    net = cv.net
    begin, end = (tensor_of(cv, v, f"{node.name}/{what}") for v, what in ((ins[1], "begin"), (ins[2], "end")))
    shape = net.add_shape(x, name=f"{node.name}/shape").output
    shrink = []

    def const64(value: int, name: str) -> Any:
        return net.add_constant((), np.array(value, np.int64), name=name).output

    for ax, step in enumerate(strides):
        full_begin, full_end = bm >> ax & 1, em >> ax & 1
        if full_begin and full_end and step == 1 and not sm >> ax & 1:
            continue
        d = _scalar_at(cv, shape, ax, f"{node.name}/dim{ax}")
        if sm >> ax & 1:  # one position, the axis dropped below
            b = _bounded(cv, _scalar_at(cv, begin, ax, f"{node.name}/begin{ax}"), d, f"{node.name}/b{ax}")
            idx = net.add_shuffle(b, reshape_dims=[1], name=f"{node.name}/i{ax}").output
            shrink.append(ax)
        else:
            forward = step > 0
            low, high = (0, 0) if forward else (-1, -1)  # backward: positions d-1 .. 0, -1 past the front
            if full_begin:
                b = const64(0, f"{node.name}/b{ax}") if forward else \
                    net.add_elementwise(d, const64(1, f"{node.name}/one{ax}"), "sub", name=f"{node.name}/b{ax}").output
            else:
                b = _bounded(cv, _scalar_at(cv, begin, ax, f"{node.name}/begin{ax}"), d, f"{node.name}/b{ax}",
                             low, high)
            if full_end:
                e = d if forward else const64(-1, f"{node.name}/e{ax}")
            else:
                e = _bounded(cv, _scalar_at(cv, end, ax, f"{node.name}/end{ax}"), d, f"{node.name}/e{ax}", low, high)
            e = net.add_elementwise(e, b, "max" if forward else "min", name=f"{node.name}/e{ax}/not_before").output
            idx = net.add_range(b, e, const64(step, f"{node.name}/step{ax}"), name=f"{node.name}/positions{ax}").output
        x = net.add_gather(x, idx, axis=ax, name=f"{node.name}/axis{ax}").output
    if shrink:
        from .graphdef_ops import unit_axes_shuffle

        x = unit_axes_shuffle(cv, x, [0 if ax in shrink else slice(None) for ax in range(x.rank)], node.name)
    elif x.producer is None:
        x = net.add_identity(x, name=node.name).output
    return TV(x)
