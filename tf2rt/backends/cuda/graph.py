"""Execute an engine's ONNX graph on the GPU with PyTorch ops and recurrent stacks.

Recurrent nodes run as stacks (rnn.make_stack): a chain of LSTM/GRU/RNN nodes joined by
the engine's "Y -> transpose/reshape -> reshape -> next X" pattern becomes one stack, so
a multi-layer network can run as one wavefront launch of the persistent kernel. Every
other op is a torch call. Values that only depend on shapes and constants (Reshape
targets, Slice bounds, Shape results) are kept on the host, so a whole call can be
captured in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import ShapeError, UnsupportedError
from .plan import DeviceLimits
from .rnn import OP_CELL, RnnNodeSpec, chainable, make_stack, node_spec

_NP_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_,
              10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


@dataclass
class RnnChain:
    """Consecutive recurrent nodes run as one stack."""

    nodes: list[Any]  # onnx NodeProto, first layer first
    specs: list[RnnNodeSpec]
    skip: set[int] = field(default_factory=set)  # ids of the glue nodes folded away
    stack: Any = None
    plan: Any = None
    stack_key: tuple = ()
    has_seq_lens: bool = False


def _host(v: Any) -> np.ndarray:
    import torch

    if isinstance(v, torch.Tensor):
        if torch.cuda.is_current_stream_capturing():
            raise UnsupportedError("a shape-like value computed on the GPU is needed on the host while "
                                   "capturing a CUDA graph; run with graph=False")
        return v.detach().cpu().numpy()
    return np.asarray(v)


class GraphExecutor:
    """A prepared ONNX graph for the cuda backend. Call with device tensors."""

    def __init__(self, model: Any, limits: DeviceLimits, prefer: str | None = None, device: Any = "cuda") -> None:
        import torch
        from onnx import numpy_helper

        self.limits, self.prefer = limits, prefer
        self.device = torch.device(device)
        g = model.graph
        self.host: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.device_consts: dict[str, Any] = {}
        self.input_names = [i.name for i in g.input if i.name not in self.host]
        self.output_names = [o.name for o in g.output]
        self.nodes = list(g.node)
        for n in self.nodes:
            if n.domain not in ("", "ai.onnx"):
                raise UnsupportedError(f"cuda backend: op {n.domain}.{n.op_type} (node {n.name!r}) is not supported")
            if n.op_type not in OPS and n.op_type not in OP_CELL:
                raise UnsupportedError(f"cuda backend: no implementation of ONNX op {n.op_type!r} "
                                       f"(node {n.name!r}); use the onnxruntime backend")
        self.torch = torch
        self._fold_constants()
        self.chains = self._find_chains()

    _FOLDABLE = ("Cast", "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Shape", "Constant")

    def _fold_constants(self) -> None:
        """Evaluate shape-only / constant-only nodes once (e.g. an fp16 engine's fp16 -> fp32
        weight casts), so recurrent weights are host constants and the graph has fewer ops."""
        kept = []
        for n in self.nodes:
            ins = [i for i in n.input if i]
            if n.op_type in self._FOLDABLE and all(i in self.host for i in ins):
                res = OPS[n.op_type](self, [self.host[i] if i else None for i in n.input], attributes(n))
                res = res if isinstance(res, tuple) else (res,)
                if all(not isinstance(v, self.torch.Tensor) for v in res):
                    for name, v in zip(n.output, res):
                        self.host[name] = np.asarray(v)
                    continue
            kept.append(n)
        self.nodes = kept

    # -- recurrent chains ------------------------------------------------------------------
    def _spec(self, node: Any) -> RnnNodeSpec:
        ins = list(node.input) + [""] * 8

        def const(name: str) -> np.ndarray | None:
            if not name:
                return None
            if name not in self.host:
                raise UnsupportedError(f"{node.op_type} {node.name!r}: weight {name!r} is not a constant")
            return self.host[name].astype(np.float32)

        P = const(ins[7]) if node.op_type == "LSTM" else None
        return node_spec(node.op_type, attributes(node), const(ins[1]), const(ins[2]), const(ins[3]), P)

    def _find_chains(self) -> list[RnnChain]:
        consumers: dict[str, list[Any]] = {}
        for n in self.nodes:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        outputs = set(self.output_names)

        def only(value: str) -> Any:
            c = consumers.get(value, [])
            return c[0] if len(c) == 1 and value not in outputs else None

        chains, owner = [], {}
        for n in self.nodes:
            if n.op_type not in OP_CELL or id(n) in owner:
                continue
            chain = RnnChain([n], [self._spec(n)])
            while True:
                last = chain.nodes[-1]
                glue, nxt = self._glue(last.output[0], only)
                if nxt is None or nxt.op_type != last.op_type:
                    break
                seq_a = (list(last.input) + [""] * 5)[4]
                seq_b = (list(nxt.input) + [""] * 5)[4]
                spec = self._spec(nxt)
                if seq_a != seq_b or not chainable(chain.specs[-1], spec):
                    break
                chain.nodes.append(nxt)
                chain.specs.append(spec)
                chain.skip.update(id(g) for g in glue)
            for m in chain.nodes:
                owner[id(m)] = chain
            chains.append(chain)
        self.steps = self._schedule(chains)
        return chains

    def _schedule(self, chains: list[RnnChain]) -> list[tuple[str, Any]]:
        """Execution order with each chain as one step: a step runs once every value it reads
        exists (a chain reads its layers' initial-state slices, which the engine computes
        between the layers, and nodes between the layers may read a layer's h_n)."""
        chain_of = {id(m): c for c in chains for m in c.nodes}
        glue = {g for c in chains for g in c.skip}
        units: list[tuple[str, Any, set, list]] = []
        for c in chains:
            inner = {o for m in c.nodes[:-1] for o in m.output[:1]}
            inner |= {o for m in self.nodes if id(m) in c.skip for o in m.output}
            reads = {i for m in c.nodes for i in m.input if i} - inner
            writes = [o for m in c.nodes for o in m.output if o]
            units.append(("chain", c, reads, writes))
        for n in self.nodes:
            if id(n) in chain_of or id(n) in glue:
                continue
            units.append(("node", n, {i for i in n.input if i}, [o for o in n.output if o]))
        order = {id(n): k for k, n in enumerate(self.nodes)}
        units.sort(key=lambda u: order[id(u[1].nodes[0]) if u[0] == "chain" else id(u[1])])
        ready = set(self.host) | set(self.input_names)
        steps, pending = [], units
        while pending:
            rest = []
            for u in pending:
                if u[2] <= ready:
                    steps.append((u[0], u[1]))
                    ready.update(u[3])
                else:
                    rest.append(u)
            if len(rest) == len(pending):
                missing = sorted(rest[0][2] - ready)
                raise UnsupportedError(f"cuda backend: cannot order the graph (values {missing[:3]} are never produced)")
            pending = rest
        return steps

    @staticmethod
    def _glue(y: str, only: Callable[[str], Any]) -> tuple[list[Any], Any]:
        """The engine's glue from one layer's Y [S, D, B, H] to the next layer's X [S, B, D*H]:
        Transpose(perm 0,2,1,3) or Reshape, then Reshape, with optional Casts (an fp16
        engine's rounding between layers, which the fused stack skips). Returns (glue
        nodes, next recurrent node) or ([], None)."""
        glue, value, reshapes = [], y, 0
        for _ in range(5):
            n = only(value)
            if n is None:
                return [], None
            if n.op_type in OP_CELL:
                ok = reshapes >= 1 and list(n.input)[0] == value
                return (glue, n) if ok else ([], None)
            if n.op_type == "Transpose":
                if list(attributes(n).get("perm", [])) != [0, 2, 1, 3] or reshapes:
                    return [], None
            elif n.op_type == "Reshape":
                reshapes += 1
            elif n.op_type != "Cast":
                return [], None
            glue.append(n)
            value = n.output[0]
        return [], None

    def _run_chain(self, chain: RnnChain, values: dict[str, Any]) -> None:
        torch = self.torch
        first = chain.nodes[0]
        ins = list(first.input) + [""] * 8
        x = values[ins[0]]
        T, B = int(x.shape[0]), int(x.shape[1])
        seq = values.get(ins[4]) if ins[4] else None
        if chain.stack is None or chain.stack_key != (T, B, str(x.dtype)):
            dtype = {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(x.dtype, "float32")
            chain.stack, chain.plan = make_stack(chain.specs, B, T, dtype, self.limits, prefer=self.prefer,
                                                 has_seq_lens=seq is not None, torch_device=self.device)
            chain.has_seq_lens = seq is not None
            chain.stack_key = (T, B, str(x.dtype))
        D, H = chain.specs[0].directions, chain.specs[0].hidden

        def states(pos: int) -> Any:
            parts = []
            for n in chain.nodes:
                name = (list(n.input) + [""] * 8)[pos]
                parts.append(values[name] if name else None)
            if all(p is None for p in parts):
                return None
            return torch.cat([torch.zeros(D, B, H, device=x.device, dtype=x.dtype) if p is None else p.to(x.dtype)
                              for p in parts])

        h0 = states(5)
        c0 = states(6) if first.op_type == "LSTM" else None
        if seq is not None and not isinstance(seq, torch.Tensor):
            seq = torch.as_tensor(np.asarray(seq), device=x.device)
        y, hn, cn = chain.stack(x, h0, c0, None if seq is None else seq.to(torch.int32))
        last = chain.nodes[-1]
        values[last.output[0]] = y.to(x.dtype) if y.dtype != x.dtype else y
        for li, n in enumerate(chain.nodes):
            outs = list(n.output) + ["", ""]
            if outs[1]:
                values[outs[1]] = hn[li * D:(li + 1) * D]
            if outs[2] and cn is not None:
                values[outs[2]] = cn[li * D:(li + 1) * D]

    # -- whole graph -----------------------------------------------------------------------
    def describe(self) -> list[dict]:
        out = []
        for c in self.chains:
            d = {"nodes": [n.name for n in c.nodes], "cell": c.specs[0].cell, "layers": len(c.nodes)}
            if c.plan is not None:
                d.update(c.plan.describe())
            out.append(d)
        return out

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.host)
        values.update(feeds)
        for kind, n in self.steps:
            if kind == "chain":
                self._run_chain(n, values)
                continue
            args = [values[i] if i else None for i in n.input]
            res = OPS[n.op_type](self, args, attributes(n))
            res = res if isinstance(res, tuple) else (res,)
            for name, v in zip(n.output, res):
                if name:
                    values[name] = v
        return {name: self.dev(values[name]) for name in self.output_names}

    def dev(self, v: Any) -> Any:
        """A value as a device tensor (host constants are uploaded once and cached)."""
        torch = self.torch
        if isinstance(v, torch.Tensor):
            return v
        arr = np.asarray(v)
        key = (id(v), arr.shape, arr.dtype.str)
        t = self.device_consts.get(key)
        if t is None:
            t = self.device_consts[key] = torch.from_numpy(np.ascontiguousarray(arr)).to(self.device)
            self._keep = getattr(self, "_keep", []) + [v]  # keep `v` alive so its id stays unique
        return t


# ---- ops: (executor, inputs, attrs) -> value or tuple ---------------------------------------
OPS: dict[str, Callable[[GraphExecutor, Sequence[Any], dict], Any]] = {}


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
    def run(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
}.items():
    OPS[_name] = _unary(_fn)


@op("Clip")
def _clip(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    lo = a[1] if len(a) > 1 and a[1] is not None else at.get("min")
    hi = a[2] if len(a) > 2 and a[2] is not None else at.get("max")
    x = ex.dev(a[0])
    return x.clamp(None if lo is None else float(_host(lo)), None if hi is None else float(_host(hi)))


@op("MatMul")
def _matmul(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    x, w = ex.dev(a[0]), ex.dev(a[1])
    return x @ w.to(x.dtype)


@op("Gemm")
def _gemm(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    x, w = ex.dev(a[0]), ex.dev(a[1]).to(ex.dev(a[0]).dtype)
    if at.get("transA", 0):
        x = x.T
    if at.get("transB", 0):
        w = w.T
    y = at.get("alpha", 1.0) * (x @ w)
    if len(a) > 2 and a[2] is not None:
        y = y + at.get("beta", 1.0) * ex.dev(a[2]).to(y.dtype)
    return y


@op("Softmax")
def _softmax(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    return ex.dev(a[0]).softmax(at.get("axis", -1))


@op("TopK")
def _topk(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    k = int(_host(a[1]).reshape(-1)[0])
    v, i = ex.dev(a[0]).topk(k, dim=at.get("axis", -1), largest=bool(at.get("largest", 1)), sorted=True)
    return v, i


@op("Cast")
def _cast(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    import torch

    np_t = _NP_DTYPES[at["to"]]
    if _is_host(a[0]):
        return np.asarray(a[0]).astype(np_t)
    return a[0].to(getattr(torch, np.dtype(np_t).name if np_t is not np.bool_ else "bool"))


def _shape_of(v: Any) -> tuple:
    return tuple(v.shape)


@op("Shape")
def _shape(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    s = np.array(_shape_of(a[0]), np.int64)
    return s[at.get("start", 0):at.get("end", None)]


@op("Constant")
def _constant(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
def _transpose(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    perm = at.get("perm") or list(range(len(_shape_of(a[0])) - 1, -1, -1))
    if _is_host(a[0]):
        return np.transpose(a[0], perm)
    return a[0].permute(*perm).contiguous()


@op("Reshape")
def _reshape(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    shape = [int(s) for s in _host(a[1]).reshape(-1)]
    src = _shape_of(a[0])
    if not at.get("allowzero", 0):
        shape = [src[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(a[0], shape) if _is_host(a[0]) else a[0].reshape(shape)


@op("Flatten")
def _flatten(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    ax = at.get("axis", 1) % (len(s) or 1) if s else 0
    lead = int(np.prod(s[:ax])) if ax else 1
    return a[0].reshape(lead, -1) if not _is_host(a[0]) else np.reshape(a[0], (lead, -1))


def _axes(a: Sequence[Any], at: dict) -> list[int] | None:
    if len(a) > 1 and a[1] is not None:
        return [int(v) for v in _host(a[1]).reshape(-1)]
    return at.get("axes")


@op("Squeeze")
def _squeeze(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    axes = _axes(a, at)
    axes = [i for i, d in enumerate(s) if d == 1] if axes is None else [x % len(s) for x in axes]
    shape = [d for i, d in enumerate(s) if i not in axes]
    return np.reshape(a[0], shape) if _is_host(a[0]) else a[0].reshape(shape)


@op("Unsqueeze")
def _unsqueeze(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    s = list(_shape_of(a[0]))
    axes = sorted(x % (len(s) + len(_axes(a, at))) for x in _axes(a, at))
    for x in axes:
        s.insert(x, 1)
    return np.reshape(a[0], s) if _is_host(a[0]) else a[0].reshape(s)


@op("Concat")
def _concat(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    import torch

    parts = [p for p in a if p is not None]
    if _is_host(*parts):
        return np.concatenate([np.asarray(p) for p in parts], at["axis"])
    ts = [ex.dev(p) for p in parts]
    return torch.cat([t.to(ts[0].dtype) for t in ts], at["axis"])


@op("Gather")
def _gather(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    import torch

    axis = at.get("axis", 0)
    if _is_host(a[0], a[1]):
        return np.take(np.asarray(a[0]), np.asarray(a[1]), axis=axis)
    data, idx = ex.dev(a[0]), ex.dev(a[1]).long()
    n = data.shape[axis]
    idx = torch.where(idx < 0, idx + n, idx)
    out = data.index_select(axis, idx.reshape(-1))
    return out.reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1:])


@op("Slice")
def _slice(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    s = _shape_of(a[0])
    starts = [int(v) for v in _host(a[1]).reshape(-1)]
    ends = [int(v) for v in _host(a[2]).reshape(-1)]
    axes = [int(v) for v in _host(a[3]).reshape(-1)] if len(a) > 3 and a[3] is not None else list(range(len(starts)))
    steps = [int(v) for v in _host(a[4]).reshape(-1)] if len(a) > 4 and a[4] is not None else [1] * len(starts)
    idx = [slice(None)] * len(s)
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        if sp <= 0:
            raise UnsupportedError("cuda backend: Slice with a non-positive step")
        idx[ax % len(s)] = slice(*slice(st, en, sp).indices(s[ax % len(s)]))
    return a[0][tuple(idx)]


@op("Where")
def _where(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
def _conv(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
    def run(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
    def run(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
        x = ex.dev(a[0])
        dims = tuple(range(2, x.dim()))
        return x.mean(dims, keepdim=True) if kind == "avg" else x.amax(dims, keepdim=True)

    return run


OPS["GlobalAveragePool"] = _global("avg")
OPS["GlobalMaxPool"] = _global("max")


@op("PRelu")
def _prelu(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
    import torch

    x = ex.dev(a[0])
    slope = ex.dev(a[1]).to(x.dtype)
    return torch.where(x >= 0, x, x * slope)


@op("Pad")
def _pad(ex: GraphExecutor, a: Sequence[Any], at: dict) -> Any:
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
