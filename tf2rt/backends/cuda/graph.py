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
from typing import Any, Callable, Mapping

import numpy as np

from ...errors import UnsupportedError
from .ops import OPS
from .plan import DeviceLimits
from .rnn import OP_CELL, RnnNodeSpec, chainable, make_stack, node_spec

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


class GraphExecutor:
    """A prepared ONNX graph for the cuda backend. Call with device tensors."""

    def __init__(self, model: Any, limits: DeviceLimits, prefer: str | None = None, device: Any = "cuda",
                 rnn_dtype: str | None = None) -> None:
        """rnn_dtype: "float32" | "float16" | "bfloat16" to run every recurrent stack in that
        type (inputs and states cast in, outputs cast back to the graph's type), or None for
        the type of the recurrent node's input."""
        import torch
        from onnx import numpy_helper

        self.limits, self.prefer = limits, prefer
        self.rnn_dtype = None if rnn_dtype is None else getattr(torch, rnn_dtype)
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
        run_dt = self.rnn_dtype or x.dtype  # the stack's type; the graph keeps x's
        if chain.stack is None or chain.stack_key != (T, B, str(run_dt)):
            dtype = {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(run_dt, "float32")
            chain.stack, chain.plan = make_stack(chain.specs, B, T, dtype, self.limits, prefer=self.prefer,
                                                 has_seq_lens=seq is not None, torch_device=self.device)
            chain.has_seq_lens = seq is not None
            chain.stack_key = (T, B, str(run_dt))
        D, H = chain.specs[0].directions, chain.specs[0].hidden

        def states(pos: int) -> Any:
            parts = []
            for n in chain.nodes:
                name = (list(n.input) + [""] * 8)[pos]
                parts.append(values[name] if name else None)
            if all(p is None for p in parts):
                return None
            return torch.cat([torch.zeros(D, B, H, device=x.device, dtype=run_dt) if p is None else p.to(run_dt)
                              for p in parts])

        h0 = states(5)
        c0 = states(6) if first.op_type == "LSTM" else None
        if seq is not None and not isinstance(seq, torch.Tensor):
            seq = torch.as_tensor(np.asarray(seq), device=x.device)
        y, hn, cn = chain.stack(x.to(run_dt), h0, c0, None if seq is None else seq.to(torch.int32))
        back = (lambda t: t.to(x.dtype)) if run_dt != x.dtype else (lambda t: t)  # noqa: E731
        hn, cn = back(hn), None if cn is None else back(cn)
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
            modes = sorted({pj.mode for pj in getattr(c.stack, "proj", []) if pj is not None})
            if modes:  # the input-projection GEMMs of a persistent stack (projection.py)
                d["projection"] = "+".join(modes)
            if c.plan is not None and c.plan.engine == "step":  # single_step.py: how its GEMMs multiply
                d["products"] = c.stack.products
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
            # a writable copy: initializers can be read-only views, which torch warns about
            t = self.device_consts[key] = torch.from_numpy(np.array(arr, order="C")).to(self.device)
            self._keep = getattr(self, "_keep", []) + [v]  # keep `v` alive so its id stays unique
        return t
