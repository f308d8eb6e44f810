"""PyTorch implementations of the ONNX ops a tf2rt engine uses besides recurrent nodes.

Each op takes (executor, inputs, attrs) and returns a value or a tuple. Values that only
depend on shapes and constants stay numpy arrays on the host (so Reshape targets and
Slice bounds never force a device-to-host copy inside a captured CUDA graph); everything
else is a torch tensor on the executor's device (`executor.dev(value)`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ...errors import UnsupportedError

_NP_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
              10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _host(v: Any) -> np.ndarray:
    import torch

    if isinstance(v, torch.Tensor):
        if torch.cuda.is_current_stream_capturing():
            raise UnsupportedError("a shape-like value computed on the GPU is needed on the host while "
                                   "capturing a CUDA graph; run with graph=False")
        return v.detach().cpu().numpy()
    return np.asarray(v)


# ---- ops: (executor, inputs, attrs) -> value or tuple ---------------------------------------
OPS: dict[str, Callable[[Any, Sequence[Any], dict], Any]] = {}


def op(*names: str) -> Callable:
    def reg(fn: Callable) -> Callable:
        for n in names:
            OPS[n] = fn
        return fn

    return reg


def _is_host(*vs: Any) -> bool:
    import torch

    return all(not isinstance(v, torch.Tensor) for v in vs if v is not None)


def _binary(fn_np: Callable, fn_t: Callable) -> Callable:
    def run(ex: Any, a: Sequence[Any], at: dict) -> Any:
        if _is_host(a[0], a[1]):
            return fn_np(np.asarray(a[0]), np.asarray(a[1]))
        x, y = ex.dev(a[0]), ex.dev(a[1])
        if x.dtype != y.dtype and x.is_floating_point() != y.is_floating_point():
            y = y.to(x.dtype) if x.is_floating_point() else y
            x = x.to(y.dtype) if y.is_floating_point() else x
        return fn_t(x, y)

    return run


for _name, _np, _t in (
    ("Add", np.add, lambda x, y: x + y), ("Sub", np.subtract, lambda x, y: x - y),
    ("Mul", np.multiply, lambda x, y: x * y), ("Div", lambda x, y: x / y if x.dtype.kind == "f" else x // y,
                                              lambda x, y: x / y if x.is_floating_point() else x // y),
    ("Pow", np.power, lambda x, y: x ** y), ("Max", np.maximum, lambda x, y: __import__("torch").maximum(x, y)),
    ("Min", np.minimum, lambda x, y: __import__("torch").minimum(x, y)),
    ("Equal", np.equal, lambda x, y: x == y), ("Greater", np.greater, lambda x, y: x > y),
    ("Less", np.less, lambda x, y: x < y),
    ("And", np.logical_and, lambda x, y: x & y), ("Or", np.logical_or, lambda x, y: x | y),
    ("Xor", np.logical_xor, lambda x, y: x ^ y),
    ("Mod", np.mod, lambda x, y: __import__("torch").remainder(x, y)),  # integer Mod (fmod=0): divisor's sign
):
    OPS[_name] = _binary(_np, _t)


def _unary(fn: Callable[[Any, dict], Any]) -> Callable:
    return lambda ex, a, at: fn(ex.dev(a[0]), at)


def _tf():
    import torch.nn.functional as F

    return F


for _name, _fn in {
    "Relu": lambda x, at: x.relu(), "Sigmoid": lambda x, at: x.sigmoid(), "Tanh": lambda x, at: x.tanh(),
    "Exp": lambda x, at: x.exp(), "Log": lambda x, at: x.log(), "Sqrt": lambda x, at: x.sqrt(),
    "Abs": lambda x, at: x.abs(), "Neg": lambda x, at: -x, "Reciprocal": lambda x, at: 1 / x,
    "LeakyRelu": lambda x, at: _tf().leaky_relu(x, at.get("alpha", 0.01)),
    "Elu": lambda x, at: _tf().elu(x, at.get("alpha", 1.0)),
    "Selu": lambda x, at: at.get("gamma", 1.0507009873554805) * (x.clamp(min=0) + (at.get("alpha", 1.6732632423543772) * (x.clamp(max=0).exp() - 1))),
    "ThresholdedRelu": lambda x, at: x * (x > at.get("alpha", 1.0)),
    "HardSigmoid": lambda x, at: (at.get("alpha", 0.2) * x + at.get("beta", 0.5)).clamp(0, 1),
    "Softplus": lambda x, at: _tf().softplus(x), "Softsign": lambda x, at: x / (1 + x.abs()),
    "Identity": lambda x, at: x,
    "Floor": lambda x, at: x.floor(), "Ceil": lambda x, at: x.ceil(), "Round": lambda x, at: x.round(),
    "Sign": lambda x, at: x.sign(), "Erf": lambda x, at: x.erf(), "Not": lambda x, at: ~x.bool(),
    "Sin": lambda x, at: x.sin(), "Cos": lambda x, at: x.cos(), "Tan": lambda x, at: x.tan(),
    "Asin": lambda x, at: x.asin(), "Acos": lambda x, at: x.acos(), "Atan": lambda x, at: x.atan(),
    "Sinh": lambda x, at: x.sinh(), "Cosh": lambda x, at: x.cosh(), "Asinh": lambda x, at: x.asinh(),
    "Acosh": lambda x, at: x.acosh(), "Atanh": lambda x, at: x.atanh(),
}.items():
    OPS[_name] = _unary(_fn)


def _reduce(kind: str) -> Callable:
    """ONNX Reduce* (axes as attribute or, for ReduceSum, as input; keepdims; an empty axes list
    reduces all unless noop_with_empty_axes)."""
    def run(ex: Any, a: Sequence[Any], at: dict) -> Any:
        axes = at.get("axes")
        if axes is None and len(a) > 1 and a[1] is not None:
            axes = [int(v) for v in _host(a[1]).reshape(-1)]
        keep = bool(at.get("keepdims", 1))
        if not axes:
            if at.get("noop_with_empty_axes", 0):
                return a[0]
            axes = list(range(len(_shape_of(a[0]))))
        rank = len(_shape_of(a[0]))
        axes = sorted({int(x) % rank for x in axes})
        if _is_host(a[0]):
            fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}[kind]
            x = np.asarray(a[0])
            return fn(x, axis=tuple(axes), keepdims=keep).astype(x.dtype)
        x = ex.dev(a[0])
        if kind in ("sum", "mean"):
            return getattr(x, kind)(dim=axes, keepdim=keep)
        if kind in ("max", "min"):
            return (x.amax if kind == "max" else x.amin)(dim=axes, keepdim=keep)
        for ax in reversed(axes):  # prod reduces one axis at a time
            x = x.prod(dim=ax, keepdim=keep)
        return x
    return run


for _name, _kind in (("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max"), ("ReduceMin", "min"),
                     ("ReduceProd", "prod")):
    OPS[_name] = _reduce(_kind)


@op("Clip")
def _clip(ex: Any, a: Sequence[Any], at: dict) -> Any:
    lo = a[1] if len(a) > 1 and a[1] is not None else at.get("min")
    hi = a[2] if len(a) > 2 and a[2] is not None else at.get("max")
    x = ex.dev(a[0])
    return x.clamp(None if lo is None else float(_host(lo)), None if hi is None else float(_host(hi)))


@op("MatMul")
def _matmul(ex: Any, a: Sequence[Any], at: dict) -> Any:
    x, w = ex.dev(a[0]), ex.dev(a[1])
    return x @ w.to(x.dtype)


@op("Gemm")
def _gemm(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    x, w = ex.dev(a[0]), ex.dev(a[1]).to(ex.dev(a[0]).dtype)
    if at.get("transA", 0):
        x = x.T
    if at.get("transB", 0):
        w = w.T
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if len(a) > 2 and a[2] is not None:  # one launch: C broadcasts to [M, N] in addmm
        return torch.addmm(ex.dev(a[2]).to(x.dtype), x, w, beta=beta, alpha=alpha)
    return x @ w if alpha == 1.0 else alpha * (x @ w)


@op("MatMulAdd")
def _matmul_add(ex: Any, a: Sequence[Any], at: dict) -> Any:
    """MatMul by a constant [K, N] and Add of a constant bias [N] (GraphExecutor fuses the
    pair): one GEMM launch over the rows of x [..., K]."""
    import torch

    x, w = ex.dev(a[0]), ex.dev(a[1])
    w = w.to(x.dtype)
    b = ex.dev(a[2]).to(x.dtype).reshape(-1)
    if x.dim() == 2:
        return torch.addmm(b, x, w)
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), w).view(*x.shape[:-1], w.shape[1])


@op("Softmax")
def _softmax(ex: Any, a: Sequence[Any], at: dict) -> Any:
    return ex.dev(a[0]).softmax(at.get("axis", -1))


@op("TopK")
def _topk(ex: Any, a: Sequence[Any], at: dict) -> Any:
    k = int(_host(a[1]).reshape(-1)[0])
    v, i = ex.dev(a[0]).topk(k, dim=at.get("axis", -1), largest=bool(at.get("largest", 1)), sorted=True)
    return v, i


@op("Cast")
def _cast(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    np_t = _NP_DTYPES[at["to"]]
    if _is_host(a[0]):
        return np.asarray(a[0]).astype(np_t)
    return a[0].to(getattr(torch, np.dtype(np_t).name if np_t is not np.bool_ else "bool"))


def _shape_of(v: Any) -> tuple:
    return tuple(v.shape)


@op("Shape")
def _shape(ex: Any, a: Sequence[Any], at: dict) -> Any:
    s = np.array(_shape_of(a[0]), np.int64)
    return s[at.get("start", 0):at.get("end", None)]


@op("Range")
def _range(ex: Any, a: Sequence[Any], at: dict) -> Any:
    """Host values (sizes from shapes), as ONNX Range counts: ceil((limit - start) / delta)."""
    start, limit, delta = (np.asarray(_host(v)).reshape(()) for v in a[:3])
    n = max(int(np.ceil((limit - start) / delta)), 0)
    return (start + delta * np.arange(n)).astype(start.dtype)


@op("Constant")
def _constant(ex: Any, a: Sequence[Any], at: dict) -> Any:
    from onnx import numpy_helper

    if "value" in at:
        return numpy_helper.to_array(at["value"])
    for key in ("value_float", "value_int"):
        if key in at:
            return np.array(at[key])
    for key in ("value_floats", "value_ints"):
        if key in at:
            return np.array(at[key])
    raise UnsupportedError("Constant without a supported value attribute")


@op("Transpose")
def _transpose(ex: Any, a: Sequence[Any], at: dict) -> Any:
    perm = at.get("perm") or list(range(len(_shape_of(a[0])) - 1, -1, -1))
    if _is_host(a[0]):
        return np.transpose(a[0], perm)
    return a[0].permute(*perm).contiguous()


@op("Reshape")
def _reshape(ex: Any, a: Sequence[Any], at: dict) -> Any:
    shape = [int(s) for s in _host(a[1]).reshape(-1)]
    src = _shape_of(a[0])
    if not at.get("allowzero", 0):
        shape = [src[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(a[0], shape) if _is_host(a[0]) else a[0].reshape(shape)


@op("Flatten")
def _flatten(ex: Any, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    ax = at.get("axis", 1) % (len(s) or 1) if s else 0
    lead = int(np.prod(s[:ax])) if ax else 1
    return a[0].reshape(lead, -1) if not _is_host(a[0]) else np.reshape(a[0], (lead, -1))


def _axes(a: Sequence[Any], at: dict) -> list[int] | None:
    if len(a) > 1 and a[1] is not None:
        return [int(v) for v in _host(a[1]).reshape(-1)]
    return at.get("axes")


@op("Squeeze")
def _squeeze(ex: Any, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    axes = _axes(a, at)
    axes = [i for i, d in enumerate(s) if d == 1] if axes is None else [x % len(s) for x in axes]
    shape = [d for i, d in enumerate(s) if i not in axes]
    return np.reshape(a[0], shape) if _is_host(a[0]) else a[0].reshape(shape)


@op("Unsqueeze")
def _unsqueeze(ex: Any, a: Sequence[Any], at: dict) -> Any:
    s = list(_shape_of(a[0]))
    axes = sorted(x % (len(s) + len(_axes(a, at))) for x in _axes(a, at))
    for x in axes:
        s.insert(x, 1)
    return np.reshape(a[0], s) if _is_host(a[0]) else a[0].reshape(s)


@op("Concat")
def _concat(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    parts = [p for p in a if p is not None]
    if _is_host(*parts):
        return np.concatenate([np.asarray(p) for p in parts], at["axis"])
    ts = [ex.dev(p) for p in parts]
    return torch.cat([t.to(ts[0].dtype) for t in ts], at["axis"])


@op("Expand")
def _expand(ex: Any, a: Sequence[Any], at: dict) -> Any:
    """numpy broadcasting of the input to the shape (a host value, so the call stays capturable)."""
    shape = [int(d) for d in np.asarray(_host(a[1])).reshape(-1)]
    if _is_host(a[0]):
        x = np.asarray(a[0])
        return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))).copy()
    x = ex.dev(a[0])
    return x.expand(*np.broadcast_shapes(tuple(x.shape), tuple(shape))).contiguous()


@op("Split")
def _split(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    sizes = [int(n) for n in np.asarray(_host(a[1]))]
    if _is_host(a[0]):
        return tuple(np.split(np.asarray(a[0]), np.cumsum(sizes)[:-1], axis=at.get("axis", 0)))
    return tuple(torch.split(ex.dev(a[0]), sizes, dim=at.get("axis", 0)))


@op("Gather")
def _gather(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    axis = at.get("axis", 0)
    if _is_host(a[0], a[1]):
        return np.take(np.asarray(a[0]), np.asarray(a[1]), axis=axis)
    data, idx = ex.dev(a[0]), ex.dev(a[1]).long()
    n = data.shape[axis]
    # [-n, n) -> [0, n) in one launch. An index outside (only a computed one can be: fed
    # indices are checked on the host, GraphExecutor.check_indices) wraps around instead of
    # faulting the device, which would end every later CUDA call of the process.
    idx = torch.remainder(idx, n)
    out = data.index_select(axis, idx.reshape(-1))
    return out.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1:])


@op("Slice")
def _slice(ex: Any, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    starts = [int(v) for v in _host(a[1]).reshape(-1)]
    ends = [int(v) for v in _host(a[2]).reshape(-1)]
    axes = [int(v) for v in _host(a[3]).reshape(-1)] if len(a) > 3 and a[3] is not None else list(range(len(starts)))
    steps = [int(v) for v in _host(a[4]).reshape(-1)] if len(a) > 4 and a[4] is not None else [1] * len(starts)
    idx = [slice(None)] * len(s)
    backwards = []  # (axis, positions): torch slices step forward only
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        if sp == 0:
            raise UnsupportedError("cuda backend: Slice with a zero step")
        ax %= len(s)
        if sp > 0:
            idx[ax] = slice(*slice(st, en, sp).indices(s[ax]))
        else:
            backwards.append((ax, list(range(*slice(st, en, sp).indices(s[ax])))))
    x = a[0][tuple(idx)]
    for ax, pos in backwards:
        if _is_host(x):
            x = np.take(np.asarray(x), pos, axis=ax)
        else:  # positions as a cached device constant: no upload inside a captured call
            x = x.index_select(ax, ex.dev(np.asarray(pos, np.int64)))
    return x


@op("Where")
def _where(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    if _is_host(*a):
        return np.where(*a)
    return torch.where(ex.dev(a[0]).bool(), ex.dev(a[1]), ex.dev(a[2]))


def _pads2d(at: dict, nd: int) -> tuple[list[int], list[int]]:
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise UnsupportedError(f"cuda backend: auto_pad={at['auto_pad']!r} is not supported; rebuild the engine")
    pads = list(at.get("pads", [0] * 2 * nd))
    return pads[:nd], pads[nd:]


def _pad_input(x: Any, begin: list[int], end: list[int], value: float = 0.0) -> tuple[Any, list[int]]:
    """Symmetric pads go to the op; asymmetric ones are applied here (torch wants symmetric)."""
    if begin == end:
        return x, begin
    flat = []
    for b, e in zip(reversed(begin), reversed(end)):
        flat += [b, e]
    return _tf().pad(x, flat, value=value), [0] * len(begin)


@op("Conv")
def _conv(ex: Any, a: Sequence[Any], at: dict) -> Any:
    x = ex.dev(a[0])
    w = ex.dev(a[1]).to(x.dtype)
    b = ex.dev(a[2]).to(x.dtype) if len(a) > 2 and a[2] is not None else None
    nd = w.dim() - 2
    begin, end = _pads2d(at, nd)
    x, pad = _pad_input(x, begin, end)
    fn = {1: _tf().conv1d, 2: _tf().conv2d, 3: _tf().conv3d}[nd]
    return fn(x, w, b, stride=at.get("strides", [1] * nd), padding=pad, dilation=at.get("dilations", [1] * nd),
              groups=at.get("group", 1))


def _pool_impl(kind: str) -> Callable:
    def run(ex: Any, a: Sequence[Any], at: dict) -> Any:
        x = ex.dev(a[0])
        k = list(at["kernel_shape"])
        nd = len(k)
        begin, end = _pads2d(at, nd)
        strides = at.get("strides", [1] * nd)
        ceil = bool(at.get("ceil_mode", 0))
        if kind == "max":
            x, pad = _pad_input(x, begin, end, value=float("-inf"))
            fn = {1: _tf().max_pool1d, 2: _tf().max_pool2d, 3: _tf().max_pool3d}[nd]
            return fn(x, k, strides, pad, at.get("dilations", [1] * nd), ceil_mode=ceil)
        include = bool(at.get("count_include_pad", 0))
        if begin != end and not include:
            raise UnsupportedError("cuda backend: asymmetric AveragePool padding without count_include_pad")
        x, pad = _pad_input(x, begin, end)
        fn = {1: _tf().avg_pool1d, 2: _tf().avg_pool2d, 3: _tf().avg_pool3d}[nd]
        return fn(x, k, strides, pad, ceil_mode=ceil, count_include_pad=include)

    return run


OPS["MaxPool"] = _pool_impl("max")
OPS["AveragePool"] = _pool_impl("avg")


def _global(kind: str) -> Callable:
    def run(ex: Any, a: Sequence[Any], at: dict) -> Any:
        x = ex.dev(a[0])
        dims = tuple(range(2, x.dim()))
        return x.mean(dims, keepdim=True) if kind == "avg" else x.amax(dims, keepdim=True)

    return run


OPS["GlobalAveragePool"] = _global("avg")
OPS["GlobalMaxPool"] = _global("max")


@op("PRelu")
def _prelu(ex: Any, a: Sequence[Any], at: dict) -> Any:
    import torch

    x = ex.dev(a[0])
    slope = ex.dev(a[1]).to(x.dtype)
    return torch.where(x >= 0, x, x * slope)


@op("Pad")
def _pad(ex: Any, a: Sequence[Any], at: dict) -> Any:
    x = ex.dev(a[0])
    mode = at.get("mode", "constant")
    pads = [int(v) for v in _host(a[1]).reshape(-1)] if len(a) > 1 and a[1] is not None else list(at["pads"])
    value = float(_host(a[2]).reshape(-1)[0]) if len(a) > 2 and a[2] is not None else 0.0
    n = len(pads) // 2
    flat = []
    for i in reversed(range(n)):
        flat += [pads[i], pads[n + i]]
    if mode != "constant":
        raise UnsupportedError(f"cuda backend: Pad mode {mode!r} is not supported")
    return _tf().pad(x, flat, value=value)
