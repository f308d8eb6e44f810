"""One handler per TensorFlow op: (converter, node, input values) -> output values.

Inputs that are all constants are folded with numpy (variables, BatchNorm arithmetic on
moving statistics, shape computations). Per-channel scales and shifts that follow a
convolution or a dense layer are folded into its weights when nothing else reads the
intermediate tensor (TensorFlow's BiasAdd and the Mul/Add pairs of a BatchNormalization).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..limits import MAX_FOLD_BYTES, check_elements
from .graphdef import TO_NCHW, TV, GraphConverter, Node, Partial, dtype_of, fold_nhwc_const, phys_axis

Handler = Callable[[GraphConverter, Node, list], list]
HANDLERS: dict[str, Handler] = {}


def op(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn
    return deco


def is_const(v: Any) -> bool:
    return isinstance(v, np.ndarray)


def const(v: Any, what: str) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, Partial):
        raise UnsupportedError(f"{what} depends on the dynamic batch size; only static shapes are supported here")
    raise UnsupportedError(f"{what} must be a constant (computed from weights or static shapes)")


def attr_s(node: Node, key: str, default: str = "") -> str:
    a = node.attr(key)
    return a.s() if a is not None else default


def attr_i(node: Node, key: str, default: int = 0) -> int:
    a = node.attr(key)
    return a.i() if a is not None else default


def attr_ints(node: Node, key: str, default: list[int]) -> list[int]:
    a = node.attr(key)
    return a.ints() if a is not None and a.msg.has(1) else default


# --- pass-through, constants, inputs -------------------------------------------------
@op("Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics", "PlaceholderWithDefault",
    "EnsureShape")
def _identity(cv, node, ins):
    """Passed through (no layer); PlaceholderWithDefault gives its default unless named as an input."""
    return [ins[0]]


@op("IdentityN")
def _identity_n(cv, node, ins):
    """Passed through, one output per input."""
    return list(ins)


@op("NoOp")
def _noop(cv, node, ins):
    """Dropped (control edges only)."""
    return []


@op("Const")
def _const(cv, node, ins):
    """A constant (numpy array), folded into whatever reads it."""
    a = node.attr("value")
    if a is None:
        raise FormatError("Const without a value")
    return [a.tensor(f"Const {node.name!r}")]


@op("Placeholder")
def _placeholder(cv, node, ins):
    """A network input when named in inputs (else an error naming it)."""
    raise UnsupportedError("this Placeholder is not one of the inputs; pass it in inputs=[...] "
                           "or check the signature")


@op("VarHandleOp", "VariableV2")
def _var_handle(cv, node, ins):
    """The variable's value from the SavedModel or checkpoint (a constant)."""
    if cv.resolve_variable is None:
        raise UnsupportedError("the graph reads variables but none are available; freeze it first "
                               "(convert_variables_to_constants_v2) or import the SavedModel directory")
    if node.op == "VariableV2":
        return [np.asarray(cv.resolve_variable(node))]
    return [("resource", node)]


@op("ReadVariableOp")
def _read_variable(cv, node, ins):
    """The variable's value (a constant)."""
    res = ins[0]
    if not (isinstance(res, tuple) and res and res[0] == "resource"):
        raise UnsupportedError("ReadVariableOp of something that is not a variable handle")
    return [np.asarray(cv.resolve_variable(res[1]))]


# --- constant folding of shape arithmetic --------------------------------------------
@op("Shape")
def _shape(cv, node, ins):
    """Folded to a constant shape vector (a dynamic batch size stays unknown)."""
    v = ins[0]
    dt = dtype_of(node.attr("out_type").type() if node.attr("out_type") else 3)
    shape = v.shape if isinstance(v, (TV, np.ndarray)) else None
    if shape is None:
        raise UnsupportedError("Shape of a non-tensor")
    vals = np.array([-1 if d is None else d for d in shape], dtype=dt)
    if not (vals < 0).any():
        return [vals]
    return [Partial(vals, origin=("shape", cv.plain(v), dt))]


def _partial_vals(v: Any) -> tuple[np.ndarray, bool]:
    if isinstance(v, Partial):
        return v.values, True
    return const(v, "value"), False


def _slice_specs(node: Node, begin, end, strides) -> list:
    """TF's slice specs as numpy index items: int (shrink), slice, None (new axis), Ellipsis."""
    bm, em, sm = attr_i(node, "begin_mask"), attr_i(node, "end_mask"), attr_i(node, "shrink_axis_mask")
    ell, na = attr_i(node, "ellipsis_mask"), attr_i(node, "new_axis_mask")
    idx: list = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        if ell >> i & 1:
            if Ellipsis in idx:
                raise UnsupportedError("StridedSlice with more than one ellipsis")
            idx.append(Ellipsis)
        elif na >> i & 1:
            idx.append(None)  # begin/end/stride of a new-axis spec are ignored
        elif sm >> i & 1:
            idx.append(int(b))  # masks on a shrink spec are ignored
        else:
            if int(s) == 0:
                raise UnsupportedError("StridedSlice with stride 0")
            idx.append(slice(None if bm >> i & 1 else int(b), None if em >> i & 1 else int(e), int(s)))
    return idx


def _strided_slice(x: np.ndarray, node: Node, begin, end, strides) -> np.ndarray:
    return x[tuple(_slice_specs(node, begin, end, strides))]


@op("StridedSlice")
def _strided(cv, node, ins):
    """Folded for constants; on tensors a Gather per sliced axis, Reshape for shrink/new axes."""
    if isinstance(ins[0], TV) and not all(is_const(v) for v in ins[1:4]):  # bounds known at run time
        from .graphdef_ops_shape import strided_slice_runtime

        return [strided_slice_runtime(cv, node, ins)]
    begin, end, strides = (const(v, "StridedSlice bounds") for v in ins[1:4])
    if isinstance(ins[0], TV):
        try:
            return [_slice_tensor(cv, node, ins[0], begin, end, strides)]
        except UnsupportedError as exc:
            if "of a dynamic dimension" not in str(exc):
                raise
            from .graphdef_ops_shape import strided_slice_runtime  # positions from the run-time size

            return [strided_slice_runtime(cv, node, ins)]
    vals, partial = _partial_vals(ins[0])
    out = np.asarray(_strided_slice(vals, node, begin, end, strides))
    return [Partial(out) if partial and (out < 0).any() else out]


def _slice_tensor(cv, node, v: TV, begin, end, strides) -> TV:
    """Gather per sliced axis, then a Reshape for shrink-axis and new-axis specs (§ StridedSlice masks)."""
    shape = v.shape
    specs = _slice_specs(node, begin, end, strides)
    consumed = sum(1 for x in specs if x is not None and x is not Ellipsis)
    if consumed > len(shape):
        raise UnsupportedError(f"StridedSlice with {consumed} index specs of a rank-{len(shape)} tensor")
    if Ellipsis not in specs:
        specs.append(Ellipsis)
    k = specs.index(Ellipsis)
    specs = specs[:k] + [slice(None)] * (len(shape) - consumed) + specs[k + 1:]
    per_axis: list = []  # (start, size, step) or None (whole axis) per input axis
    out_shape: list = []  # the result's shape; None entries are dynamic
    for spec in specs:
        if spec is None:
            out_shape.append(1)
            continue
        ax = len(per_axis)
        d = shape[ax]
        if isinstance(spec, slice) and spec.start is None and spec.stop is None and spec.step in (None, 1):
            per_axis.append(None)
            out_shape.append(d)
            continue
        if d is None and isinstance(spec, int) and spec >= 0:
            per_axis.append((spec, 1, 1))  # an index from the front of a dynamic dim: a Gather at run time
            continue
        if d is None:
            raise UnsupportedError("StridedSlice of a dynamic dimension (other than a whole-axis spec or an "
                                   "index from its front)")
        if isinstance(spec, int):
            i = spec + d if spec < 0 else spec
            if not 0 <= i < d:
                raise UnsupportedError(f"StridedSlice index {spec} out of range for dimension {d}")
            per_axis.append((i, 1, 1))
            continue
        s0, e0, st = spec.indices(d)
        n = len(range(s0, e0, st))
        per_axis.append((s0, n, st))
        out_shape.append(n)
    # one Gather per sliced axis (works with a dynamic batch size), on the NCHW tensor directly
    t = v.t
    for ax, (spec, d) in enumerate(zip(per_axis, shape)):
        if spec is None or spec == (0, d, 1):
            continue
        s0, n, st = spec
        idx = np.arange(s0, s0 + n * st, st, dtype=np.int32)[:n] if n else np.zeros(0, np.int32)
        ind = cv.net.add_constant(idx.shape, idx, name=f"{node.name}/indices{ax}").output
        t = cv.net.add_gather(t, ind, axis=phys_axis(ax) if v.nchw else ax, name=f"{node.name}/axis{ax}").output
    if len(out_shape) == len(shape) and not any(x is None or isinstance(x, int) for x in specs):
        return TV(t, v.nchw)
    plain = cv.plain(TV(t, v.nchw))
    dims = [0 if (d is None and i == 0 and shape[0] is None and specs[0] == slice(None)) else (-1 if d is None else d)
            for i, d in enumerate(out_shape)]
    if dims.count(-1) > 1:  # several sizes known only at run time: copy every kept dim instead
        return TV(unit_axes_shuffle(cv, plain, specs, f"{node.name}/reshape"))
    return TV(cv.net.add_shuffle(plain, reshape_dims=dims, name=f"{node.name}/reshape").output)


def unit_axes_shuffle(cv, t: Any, specs: list, name: str) -> Any:
    """Drop the axes whose spec is an index (size 1 by now) and insert a unit axis for each None
    spec, without naming any size: the dropped axes are transposed to the end, a reshape copies the
    kept dims (0) and appends the new unit axes, and a transpose puts those where they belong."""
    kept, dropped, out = [], [], []  # input axes kept / dropped; per output axis: input axis or None
    for spec in specs:
        if spec is None:
            out.append(None)
            continue
        ax = len(kept) + len(dropped)
        (dropped if isinstance(spec, int) else kept).append(ax)
        if not isinstance(spec, int):
            out.append(ax)
    first = kept + dropped
    new = iter(range(len(kept), len(out)))
    second = [next(new) if o is None else kept.index(o) for o in out]
    ident = lambda p: None if p == sorted(p) else p  # noqa: E731
    return cv.net.add_shuffle(t, reshape_dims=[0] * len(kept) + [1] * out.count(None), first_transpose=ident(first),
                              second_transpose=ident(second), name=name).output


@op("Pack")
def _pack(cv, node, ins):
    """Folded (constants and shape vectors)."""
    axis = attr_i(node, "axis")
    if any(isinstance(v, TV) for v in ins):
        raise UnsupportedError("Pack of tensors (only of constants and shapes)")
    vals = [np.asarray(_partial_vals(v)[0]) for v in ins]
    vals = [v.reshape(()) if v.size == 1 and isinstance(ins[i], Partial) else v for i, v in enumerate(vals)]
    out = np.stack(vals, axis=axis)
    return [Partial(out) if (any(isinstance(v, Partial) for v in ins)) else out]


def _fold_size(op_name: str, args: list[np.ndarray]) -> int:
    """Elements the folded result of an expanding op will have, computed before folding it."""
    if op_name == "Fill":
        return int(np.prod([max(int(d), 0) for d in np.atleast_1d(args[0])], dtype=object))
    if op_name == "Range":
        a, b, c = (float(np.asarray(x).reshape(-1)[0]) for x in args[:3])
        if c == 0 or not np.isfinite([a, b, c]).all():
            raise FormatError(f"Range({a}, {b}, {c}) has no finite length")
        return max(int(np.ceil((b - a) / c)), 0)
    if op_name == "Tile":
        return int(args[0].size) * int(np.prod([max(int(m), 0) for m in np.atleast_1d(args[1])], dtype=object))
    if op_name == "BroadcastTo":
        return int(np.prod([max(int(d), 0) for d in np.atleast_1d(args[1])], dtype=object))
    return 0


def _fold(fn: Callable[..., Any]) -> Handler:
    """Fold an op of constants with numpy, within MAX_FOLD_BYTES (checked before expanding ops run)."""
    def h(cv, node, ins):
        args = [const(v, f"{node.op} input") for v in ins]
        check_elements((_fold_size(node.op, args),), 8, f"folding {node.op} {node.name!r}", cap=MAX_FOLD_BYTES)
        try:
            out = np.asarray(fn(node, *args))
        except (ValueError, IndexError, TypeError, OverflowError, ZeroDivisionError) as exc:
            raise FormatError(f"cannot compute {node.op} of its constant inputs ({exc})") from None
        check_elements(out.shape, out.itemsize, f"folding {node.op} {node.name!r}", cap=MAX_FOLD_BYTES)
        return [out]
    return h


for _names, _fn in {
    ("Fill",): lambda n, d, v: np.full(tuple(int(x) for x in np.atleast_1d(d)), v),
    ("BroadcastTo",): lambda n, x, s: np.broadcast_to(x, tuple(int(d) for d in np.atleast_1d(s))).copy(),
    ("Range",): lambda n, a, b, c: np.arange(a, b, c, dtype=np.result_type(a, b, c)),
    ("Prod",): lambda n, x, ax: np.prod(x, axis=tuple(np.atleast_1d(ax)), keepdims=bool(attr_i(n, "keep_dims"))).astype(x.dtype),
    ("Sum",): lambda n, x, ax: np.sum(x, axis=tuple(np.atleast_1d(ax)), keepdims=bool(attr_i(n, "keep_dims"))).astype(x.dtype),
    ("Rsqrt",): lambda n, x: (1 / np.sqrt(x)).astype(x.dtype),
    ("Sqrt",): lambda n, x: np.sqrt(x),
    ("Square",): lambda n, x: x * x,
    ("Reciprocal", "Inv"): lambda n, x: (1 / x).astype(x.dtype),
    ("Neg",): lambda n, x: -x,
    ("Exp",): lambda n, x: np.exp(x),
    ("Log",): lambda n, x: np.log(x),
    ("Size",): lambda n, x: np.int32(x.size),
    ("Rank",): lambda n, x: np.int32(x.ndim),
    ("GatherV2",): lambda n, x, i, ax: np.take(x, i, axis=int(ax)),
    ("Transpose",): lambda n, x, p: np.transpose(x, p),
    ("Tile",): lambda n, x, m: np.tile(x, m),
}.items():
    for _n in _names:
        HANDLERS[_n] = _fold(_fn)


@op("Cast")
def _cast(cv, node, ins):
    """Cast (constants folded)."""
    dst = dtype_of(node.attr("DstT").type(), f"Cast {node.name!r}")
    v = ins[0]
    if isinstance(v, TV):
        name = np.dtype(dst).name
        return [v if v.t.dtype == name else TV(cv.net.add_cast(v.t, name, name=node.name).output, v.nchw)]
    if isinstance(v, Partial):
        return [Partial(v.values.astype(dst))]
    return [const(v, "Cast input").astype(dst)]


# --- elementwise ---------------------------------------------------------------------
_BINARY = {  # TF op -> (numpy function, network elementwise op)
    "Add": (np.add, "sum"), "AddV2": (np.add, "sum"), "BiasAdd": (np.add, "sum"), "Sub": (np.subtract, "sub"),
    "Mul": (np.multiply, "prod"), "RealDiv": (np.divide, "div"), "Div": (np.divide, "div"),
    "Maximum": (np.maximum, "max"), "Minimum": (np.minimum, "min"), "Pow": (np.power, "pow"),
    "FloorDiv": (np.floor_divide, "floor_div"), "FloorMod": (np.mod, "mod"),
}


def _channel_vector(c: np.ndarray, v: TV) -> np.ndarray | None:
    """c as a per-output-channel vector if it only varies along v's channel axis."""
    k = v.t.shape[1] if v.nchw else v.t.shape[-1]
    arr = fold_nhwc_const(c) if v.nchw else c
    target = (1, k, 1, 1) if v.nchw else (1,) * (v.t.rank - 1) + (k,)
    if k is None or arr.ndim > len(target):
        return None
    try:
        if np.broadcast_shapes(arr.shape, target) != target:
            return None
    except ValueError:
        return None
    return np.broadcast_to(arr, target).reshape(k).astype(np.float32)


def try_fold(cv: GraphConverter, v: TV, c: np.ndarray, kind: str) -> TV | None:
    """Fold x*c or x+c into the convolution / dense layer that produced x (if only we read x)."""
    layer = v.t.producer
    if layer is None or layer.type not in ("convolution", "fully_connected") or id(v.t) not in cv.fusable:
        return None
    if layer.type == "fully_connected" and v.nchw:
        return None
    vec = _channel_vector(c, v)
    if vec is None:
        return None
    bias = layer.bias if layer.bias is not None else np.zeros(vec.size, np.float32)
    if kind == "sum":
        layer.bias = (bias + vec).astype(np.float32)
    else:
        if layer.type == "convolution":
            layer.kernel = (layer.kernel * vec[:, None, None, None]).astype(np.float32)
        else:
            layer._kernel_in = (layer.kernel * vec[None, :]).astype(np.float32)
            layer.kernel = layer._kernel_in
        layer.bias = (bias * vec).astype(np.float32)
    return v


def binary(cv: GraphConverter, node: Node, a: Any, b: Any, net_op: str, np_op: Callable) -> Any:
    if is_const(a) and is_const(b):
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise FormatError(f"constant operands of shapes {a.shape} and {b.shape} do not broadcast") from None
        check_elements(shape, 8, f"folding {node.op} {node.name!r}", cap=MAX_FOLD_BYTES)
        return np.asarray(np_op(a, b)).astype(np.result_type(a.dtype, b.dtype))
    if isinstance(a, Partial) or isinstance(b, Partial):
        raise UnsupportedError("arithmetic on a shape that depends on the dynamic batch size")
    if node.op == "BiasAdd" and attr_s(node, "data_format", "NHWC") == "NCHW":
        b = const(b, "bias").reshape(-1, 1, 1)
    if is_const(b) or is_const(a):
        tv, c, const_first = (a, b, False) if is_const(b) else (b, a, True)
        c = c.astype(np.dtype(tv.t.dtype))
        if net_op in ("sum", "prod") or (net_op in ("sub", "div") and not const_first):
            kind, cc = net_op, c
            if net_op == "sub":
                kind, cc = "sum", -c
            elif net_op == "div":
                kind, cc = "prod", (1.0 / c.astype(np.float64)).astype(c.dtype)
            folded = try_fold(cv, tv, cc, kind)
            if folded is not None:
                cv.fusable.add(id(folded.t)) if cv.consumers[node.name] == 1 else cv.fusable.discard(id(folded.t))
                return folded
        ct = cv.const_like(c, tv, f"{node.name}/const")
        x, y = (ct, tv.t) if const_first else (tv.t, ct)
        return TV(cv.net.add_elementwise(x, y, net_op, name=node.name).output, tv.nchw)
    if a.nchw != b.nchw:
        if a.t.rank == 4 and b.t.rank == 4:
            a, b = TV(cv.nchw(a), True), TV(cv.nchw(b), True)
        else:
            a, b = TV(cv.plain(a)), TV(cv.plain(b))
    return TV(cv.net.add_elementwise(a.t, b.t, net_op, name=node.name).output, a.nchw)


def _make_binary(np_op: Callable, net_op: str) -> Handler:
    return lambda cv, node, ins: [binary(cv, node, ins[0], ins[1], net_op, np_op)]


for _name, (_np, _net) in _BINARY.items():
    HANDLERS[_name] = _make_binary(_np, _net)


@op("SquaredDifference")
def _sqdiff(cv, node, ins):
    """Sub + Mul."""
    d = binary(cv, node, ins[0], ins[1], "sub", np.subtract)
    if is_const(d):
        return [d * d]
    return [TV(cv.net.add_elementwise(d.t, d.t, "prod", name=node.name + "/square").output, d.nchw)]


@op("AddN")
def _addn(cv, node, ins):
    """A chain of Add."""
    acc = ins[0]
    for v in ins[1:]:
        acc = binary(cv, node, acc, v, "sum", np.add)
    return [acc]


_ACTS = {"Relu": ("relu", None, None), "Relu6": ("clip", 0.0, 6.0), "Sigmoid": ("sigmoid", None, None),
         "Tanh": ("tanh", None, None), "Elu": ("elu", 1.0, None), "Selu": ("selu", None, None),
         "Softplus": ("softplus", 1.0, 1.0), "Softsign": ("softsign", None, None)}
_ACT_NP = {"Relu": lambda x: np.maximum(x, 0), "Relu6": lambda x: np.clip(x, 0, 6),
           "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Tanh": np.tanh}


@op(*_ACTS, "LeakyRelu")
def _activation(cv, node, ins):
    """Activation layer (relu, clip for Relu6, sigmoid, tanh, elu, selu, softplus, softsign, leaky_relu)."""
    v = ins[0]
    if is_const(v) and node.op in _ACT_NP:
        return [_ACT_NP[node.op](v).astype(v.dtype)]
    if not isinstance(v, TV):
        raise UnsupportedError("activation of a constant")
    if node.op == "LeakyRelu":
        a = node.attr("alpha")
        kind, alpha, beta = "leaky_relu", (a.f() if a else 0.2), None
    else:
        kind, alpha, beta = _ACTS[node.op]
    return [TV(cv.net.add_activation(v.t, kind, alpha, beta, name=node.name).output, v.nchw)]


@op("Softmax", "LogSoftmax")
def _softmax(cv, node, ins):
    """Softmax on the last axis (LogSoftmax: + Log)."""
    v = ins[0]
    t = cv.net.add_softmax(v.t, axis=cv.logical_axis(v, -1), name=node.name).output
    if node.op == "LogSoftmax":
        t = cv.net.add_unary(t, "log", name=node.name + "/log").output
    return [TV(t, v.nchw)]


# --- reductions and shape ops ---------------------------------------------------------
def _drop_axes(cv: GraphConverter, node: Node, v: TV, t: Any, removed: list[int]) -> TV:
    """After removing logical axes `removed` from an NCHW-held NHWC tensor, restore TF's order."""
    if not v.nchw:
        return TV(t)
    kept = [a for a in range(4) if a not in removed]
    phys = sorted(phys_axis(a) for a in kept)
    logical_in_phys = [TO_NCHW[p] for p in phys]  # logical axis held at each remaining physical position
    if logical_in_phys == kept:
        return TV(t)
    perm = [logical_in_phys.index(a) for a in kept]
    return TV(cv.net.add_shuffle(t, first_transpose=perm, name=node.name + "/nhwc").output)


_REDUCE = {"Mean": "avg", "Max": "max", "Min": "min", "Sum": "sum", "Prod": "prod"}


@op("Mean", "Max", "Min")
def _reduce(cv, node, ins):
    """Reduce (avg / max / min) over constant axes, keep_dims as given."""
    v, axes = ins
    keep = bool(node.attr("keep_dims") and node.attr("keep_dims").b())
    axes = [int(a) for a in np.atleast_1d(const(axes, "reduction axes"))]
    if is_const(v):
        fn = {"Mean": np.mean, "Max": np.max, "Min": np.min}[node.op]
        return [fn(v, axis=tuple(axes), keepdims=keep).astype(v.dtype)]
    rank = v.t.rank
    axes = sorted({a % rank for a in axes})
    phys = [cv.logical_axis(v, a) for a in axes]
    t = cv.net.add_reduce(v.t, _REDUCE[node.op], phys, keep_dims=keep, name=node.name).output
    if keep:
        return [TV(t, v.nchw)]
    return [_drop_axes(cv, node, v, t, axes)]


@op("Squeeze")
def _squeeze(cv, node, ins):
    """Reshape without the unit axes."""
    v = ins[0]
    dims = attr_ints(node, "squeeze_dims", [])
    if is_const(v):
        return [np.squeeze(v, axis=tuple(dims)) if dims else np.squeeze(v)]
    shape = v.shape
    axes = sorted({d % len(shape) for d in dims}) if dims else [i for i, d in enumerate(shape) if d == 1]
    if any(shape[a] != 1 for a in axes):
        raise UnsupportedError(f"Squeeze of axes {axes} of a tensor shaped {shape}")
    if v.nchw:  # drop the unit dims where they sit in NCHW, then restore TF's order if needed
        phys = [d for i, d in enumerate(v.t.shape) if TO_NCHW[i] not in axes]
        t = cv.net.add_shuffle(v.t, reshape_dims=_reshape_dims(phys), name=node.name).output
        return [_drop_axes(cv, node, v, t, axes)]
    out = [d for i, d in enumerate(shape) if i not in axes]
    if sum(d is None for d in out) > 1:  # several run-time sizes: drop the unit axes without naming any size
        specs = [0 if i in axes else slice(None) for i in range(len(shape))]
        return [TV(unit_axes_shuffle(cv, v.t, specs, node.name))]
    t = cv.net.add_shuffle(v.t, reshape_dims=_reshape_dims(out), name=node.name).output
    return [TV(t)]


@op("ExpandDims")
def _expand(cv, node, ins):
    """Reshape with a unit axis."""
    v, axis = ins
    axis = int(const(axis, "axis"))
    if is_const(v):
        return [np.expand_dims(v, axis)]
    if isinstance(v, Partial):  # a size known at run time, as a vector
        return [Partial(np.expand_dims(v.values, axis))]
    shape = list(v.shape)
    axis = axis % (len(shape) + 1)
    if sum(d is None for d in shape) > 1:  # several run-time sizes: a unit axis without naming any size
        specs = [slice(None)] * axis + [None] + [slice(None)] * (len(shape) - axis)
        return [TV(unit_axes_shuffle(cv, cv.plain(v), specs, node.name))]
    shape.insert(axis, 1)
    t = cv.net.add_shuffle(cv.plain(v), reshape_dims=_reshape_dims(shape), name=node.name).output
    return [TV(t)]


def _reshape_dims(shape: list) -> list[int]:
    dims = [0 if (d is None and i == 0) else (-1 if d is None else int(d)) for i, d in enumerate(shape)]
    return dims


@op("Reshape")
def _reshape(cv, node, ins):
    """Reshape (a dynamic batch size is copied through)."""
    v, target = ins
    tvals, _partial = _partial_vals(target)
    tvals = [int(x) for x in np.atleast_1d(tvals)]
    if is_const(v):
        try:
            return [v.reshape(tvals)]
        except ValueError:
            raise FormatError(f"cannot reshape a constant of shape {v.shape} to {tvals}") from None
    src = v.shape
    dims = list(tvals)
    if dims.count(-1) > 1 and src and src[0] is None and dims[0] == -1:
        dims[0] = 0  # the unknown first entry is the dynamic batch size: copy it
    elif dims and dims[0] == -1 and src and src[0] is None and len(dims) > 1:
        known = [d for d in src[1:]]
        if all(d is not None for d in known) and all(d > 0 for d in dims[1:]) and \
                int(np.prod(known)) == int(np.prod(dims[1:])):
            dims[0] = 0
    if dims.count(-1) > 1:
        # the sizes are only known at run time (from Shape ops); guessing which input dims to
        # copy could silently reshape wrongly
        raise UnsupportedError(f"Reshape of a {list(src)} tensor to {tvals}: several sizes are known only at "
                               "run time; give the inputs fixed sizes with --input-shape")
    if v.nchw and v.t.shape[2:] == (1, 1):  # [N, C, 1, 1]: NCHW and NHWC orders coincide
        if len(dims) == 4 and dims[1:3] == [1, 1] and dims[3] > 0:
            return [TV(cv.net.add_shuffle(v.t, reshape_dims=[dims[0], dims[3], 1, 1], name=node.name).output, True)]
        if len(dims) == 2:
            return [TV(cv.net.add_shuffle(v.t, reshape_dims=dims, name=node.name).output)]
    if not v.nchw and len(src) == 2 and len(dims) == 4 and dims[1:3] == [1, 1] and dims[3] > 0:
        return [TV(cv.net.add_shuffle(v.t, reshape_dims=[dims[0], dims[3], 1, 1], name=node.name).output, True)]
    t = cv.net.add_shuffle(cv.plain(v), reshape_dims=dims, name=node.name).output
    return [TV(t)]


@op("Pad", "PadV2", "MirrorPad")
def _pad(cv, node, ins):
    """Zero padding of H and W (padding layer); constants folded."""
    v, pads = ins[0], const(ins[1], "paddings").astype(np.int64)
    if node.op == "MirrorPad":
        raise UnsupportedError("MirrorPad (reflect/symmetric padding)")
    value = float(const(ins[2], "pad value")) if len(ins) > 2 else 0.0
    if is_const(v):
        if pads.shape != (v.ndim, 2) or (pads < 0).any():
            raise FormatError(f"paddings {pads.tolist()} do not fit a constant of shape {v.shape}")
        check_elements([d + int(p0) + int(p1) for d, (p0, p1) in zip(v.shape, pads)], v.itemsize,
                       f"folding {node.op} {node.name!r}", cap=MAX_FOLD_BYTES)
        return [np.pad(v, pads, constant_values=value)]
    if value != 0.0 or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        raise UnsupportedError(f"padding {pads.tolist()} with value {value} (only zero padding of H and W)")
    x = cv.nchw(v)
    t = cv.net.add_padding_nd(x, (int(pads[1, 0]), int(pads[2, 0])), (int(pads[1, 1]), int(pads[2, 1])),
                              name=node.name).output
    return [TV(t, True)]


@op("ConcatV2", "Concat")
def _concat(cv, node, ins):
    """Concatenation (constants and shape vectors folded)."""
    if node.op == "Concat":
        axis, vals = ins[0], ins[1:]
    else:
        axis, vals = ins[-1], ins[:-1]
    axis = int(const(axis, "axis"))
    if all(is_const(x) or isinstance(x, Partial) for x in vals):
        arrs = [_partial_vals(x)[0] for x in vals]
        out = np.concatenate(arrs, axis=axis)
        return [Partial(out) if any(isinstance(x, Partial) for x in vals) else out]
    if any(isinstance(x, Partial) for x in vals):
        raise UnsupportedError("concatenation of tensors with a shape that depends on the batch size")
    # constants (e.g. an unrolled RNN's zero initial state) join as network constants
    vals = [x if isinstance(x, TV) else
            TV(cv.net.add_constant(np.shape(x), np.asarray(x, np.float32 if np.asarray(x).dtype == np.float64
                                                           else np.asarray(x).dtype),
                                   name=f"{node.name}/const{i}").output) for i, x in enumerate(vals)]
    tvs = vals
    use_nchw = all(x.t.rank == 4 for x in tvs) and any(x.nchw for x in tvs)
    ts = [cv.nchw(x) if use_nchw else cv.plain(x) for x in tvs]
    rank = ts[0].rank
    phys = axis % rank
    if use_nchw:
        phys = phys_axis(phys)
    return [TV(cv.net.add_concatenation(ts, phys, name=node.name).output, use_nchw)]


# Convolution, pooling, normalization and dense handlers register themselves on import.
from . import graphdef_nn_ops  # noqa: E402,F401
from . import graphdef_ops_image, graphdef_ops_math, graphdef_ops_quant  # noqa: E402,F401
from . import graphdef_ops_seq  # noqa: E402,F401  (after the folds it extends)
from . import graphdef_ops_detect  # noqa: E402,F401
from . import graphdef_ops_crop  # noqa: E402,F401
from . import graphdef_ops_control  # noqa: E402,F401
from . import tf_cudnn  # noqa: E402,F401
