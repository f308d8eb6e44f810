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

from ...errors import Tf2rtError, UnsupportedError
from .ops import OPS
from .options import CudaOptions, resolve
from .plan import DeviceLimits
from .rnn import OP_CELL, RnnNodeSpec, chainable, make_stack, node_spec
from .views import VIEW_OPS, Lazy, _holds, adjacent_concat, cast, materialize, output_target

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


def refuse_control_flow(model: Any) -> None:
    """UnsupportedError for a node with a subgraph (Loop, If, Scan): its data-dependent
    control flow cannot run inside a captured CUDA graph."""
    for n in model.graph.node:
        if any(a.HasField("g") or len(a.graphs) for a in n.attribute):
            raise UnsupportedError(f"cuda backend: node {n.name!r} is an ONNX {n.op_type} (data-dependent control "
                                   "flow), which cannot be captured in a CUDA graph; use the onnxruntime or "
                                   "reference backend")


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
    has_states: tuple = (False, False)  # whether the engine gives the stack h0, c0 (the last call)
    buffers: dict = field(default_factory=dict)  # the stack's last outputs: y, hn, cn
    targets: dict = field(default_factory=dict)  # key -> (dtype, numel, strides, offset): write there
    targets_of: Any = None  # the stack the targets were given to
    taken: tuple = ()  # the targets that stack took (it writes those outputs in place)


#: Host values up to this size go to the device once per distinct content (GraphExecutor.dev).
SMALL_CONST_BYTES = 4096


def _casts_to_integer(n: Any) -> bool:
    """A Cast to an integer type (float indices truncated, integer ones kept)."""
    from onnx import TensorProto

    ints = {TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, TensorProto.UINT8,
            TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
    return n.op_type == "Cast" and attributes(n).get("to") in ints


class GraphExecutor:
    """A prepared ONNX graph for the cuda backend. Call with device tensors."""

    def __init__(self, model: Any, limits: DeviceLimits, prefer: str | None = None, device: Any = "cuda",
                 rnn_dtype: str | None = None, options: CudaOptions | None = None) -> None:
        """rnn_dtype: "float32" | "float16" | "bfloat16" to run every recurrent stack in that
        type (inputs and states cast in, outputs cast back to the graph's type), or None for
        the type of the recurrent node's input. options: build options of every stack (None:
        from the environment, read now)."""
        refuse_control_flow(model)
        import torch
        from onnx import numpy_helper

        self.limits, self.prefer = limits, prefer
        self.options = resolve(options)
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
        self._fuse_bias_adds()
        self.chains = self._find_chains()
        self.index_inputs = self._find_index_inputs()

    #: Ops that pass integer values through unchanged (an index input may reach its Gather
    #: through them).
    _VALUE_PRESERVING = ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose")

    def _find_index_inputs(self) -> dict[str, list[tuple[str, int]]]:
        """Graph inputs used as Gather indices into a constant table: input name ->
        [(Gather node name, rows along its axis)], so the runner checks fed indices on the
        host (an index outside the table would fault the GPU, not raise)."""
        producer = {o: n for n in self.nodes for o in n.output}
        found: dict[str, list[tuple[str, int]]] = {}
        for n in self.nodes:
            if n.op_type != "Gather" or n.input[0] not in self.host:
                continue
            src = n.input[1]
            while src in producer and (producer[src].op_type in self._VALUE_PRESERVING
                                       or _casts_to_integer(producer[src])):
                src = producer[src].input[0]
            if src in self.input_names:
                axis = attributes(n).get("axis", 0)
                rows = int(self.host[n.input[0]].shape[axis])
                found.setdefault(src, []).append((n.name, rows))
        return found

    def check_indices(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Tf2rtError naming the input, the Gather and the valid range where a fed index lies
        outside its table ([-rows, rows - 1], as ONNX allows)."""
        for name, uses in self.index_inputs.items():
            x = np.asarray(feeds[name])
            if x.size == 0 or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
                continue
            if np.issubdtype(x.dtype, np.floating):  # cast to integer indices in the graph: truncated
                if not np.isfinite(x).all():
                    raise Tf2rtError(f"input {name!r} holds a NaN or infinite value where the graph casts it to "
                                     f"Gather indices; feed finite indices")
                x = np.trunc(x)
            lo, hi = int(x.min()), int(x.max())
            for node, rows in uses:
                if lo < -rows or hi >= rows:
                    bad = lo if lo < -rows else hi
                    raise Tf2rtError(f"input {name!r} holds index {bad}, outside [{-rows}, {rows - 1}] of Gather "
                                     f"{node!r} (the rows of its table); feed indices in that range")

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

    def _fuse_bias_adds(self) -> None:
        """MatMul by a constant matrix whose only use is an Add of a constant bias along the
        last axis (a dense layer, e.g. a char-RNN's head) becomes one MatMulAdd node: one
        GEMM launch instead of a GEMM and an elementwise add."""
        from onnx import helper

        uses: dict[str, int] = {}
        for n in self.nodes:
            for i in n.input:
                uses[i] = uses.get(i, 0) + 1
        producer = {o: n for n in self.nodes for o in n.output}
        outputs, fused, drop = set(self.output_names), {}, set()
        for n in self.nodes:
            if n.op_type != "Add" or len(n.input) != 2:
                continue
            for mm_out, bias in (tuple(n.input), tuple(reversed(n.input))):
                mm = producer.get(mm_out)
                if mm is None or mm.op_type != "MatMul" or uses.get(mm_out) != 1 or mm_out in outputs:
                    continue
                w, b = self.host.get(mm.input[1]), self.host.get(bias)
                if w is None or b is None or w.ndim != 2 or b.size != w.shape[1] or w.shape[1] < 1 \
                        or any(d != 1 for d in b.shape[:-1]) or b.dtype != w.dtype:
                    continue
                fused[id(n)] = helper.make_node("MatMulAdd", [mm.input[0], mm.input[1], bias], list(n.output),
                                                name=f"{mm.name}+{n.name}")
                drop.add(id(mm))
                break
        if fused:
            self.nodes = [fused.get(id(n), n) for n in self.nodes if id(n) not in drop]

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

    def _stack_input(self, v: Any, run_dt: Any, where: str) -> Any:
        """A chain's input as a tensor the stack can take: the graph's value, or a tensor of
        another float type whose rounding to the stack's type gives the same (the stack
        converts; so an fp16 engine's Cast of x costs no launch of its own)."""
        if not isinstance(v, Lazy):
            return v
        if v.t.is_floating_point() and v.dtype.is_floating_point:
            if v.rnd is None or v.rnd == run_dt or _holds(v.rnd, v.exact):
                return v.t
            self.copies.append(where)  # round as the graph says; the stack converts
            return v.t.to(v.rnd)
        return self._mat(v, where)

    def _run_chain(self, chain: RnnChain, values: dict[str, Any]) -> None:
        torch = self.torch
        first = chain.nodes[0]
        ins = list(first.input) + [""] * 8
        xv = values[ins[0]]
        xv = xv if isinstance(xv, Lazy) else Lazy.of(self.dev(xv))
        graph_dt = xv.dtype  # the recurrent node's type in the graph
        T, B = int(xv.t.shape[0]), int(xv.t.shape[1])
        seq = values.get(ins[4]) if ins[4] else None
        if isinstance(seq, Lazy):
            seq = self._mat(seq, f"{first.name} sequence_lens")
        run_dt = self.rnn_dtype or graph_dt  # the stack's type; the graph keeps x's
        if chain.stack is None or chain.stack_key != (T, B, str(run_dt)):
            dtype = {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(run_dt, "float32")
            chain.stack, chain.plan = make_stack(chain.specs, B, T, dtype, self.limits, prefer=self.prefer,
                                                 has_seq_lens=seq is not None, torch_device=self.device,
                                                 options=self.options)
            chain.has_seq_lens = seq is not None
            chain.stack_key = (T, B, str(run_dt))
            chain.targets = {}
        if chain.targets and chain.targets_of is not chain.stack:
            set_targets = getattr(chain.stack, "set_output_targets", None)
            chain.taken = tuple(sorted(set_targets(dict(chain.targets)))) if set_targets is not None else ()
            chain.targets_of = chain.stack
        D, H = chain.specs[0].directions, chain.specs[0].hidden
        x = self._stack_input(xv, run_dt, f"{first.name} input")

        def states(pos: int) -> Any:
            parts = []
            for n in chain.nodes:
                name = (list(n.input) + [""] * 8)[pos]
                v = values[name] if name else None
                parts.append(None if v is None else self._stack_input(v, run_dt, f"{n.name} initial state"))
            if all(p is None for p in parts):
                return None
            if len(parts) == 1:
                return parts[0]
            if all(p is not None for p in parts):  # slices of one batch-major state input
                whole = adjacent_concat(parts, 0)
                if whole is not None:
                    return whole
            self.copies.append(f"{first.name} initial states")
            return torch.cat([torch.zeros(D, B, H, device=x.device, dtype=run_dt) if p is None else p.to(run_dt)
                              for p in parts])

        h0 = states(5)
        c0 = states(6) if first.op_type == "LSTM" else None
        if seq is not None and not isinstance(seq, torch.Tensor):
            seq = self.dev(np.asarray(seq))
        chain.has_states = (h0 is not None, c0 is not None)
        y, hn, cn = chain.stack(x, h0, c0, None if seq is None else seq.to(torch.int32))
        chain.buffers = {"y": y, "hn": hn, "cn": cn}
        # The stack's outputs as the graph's type: values exact in the stack's type, so the
        # engine's Casts around the node cost nothing (views.py).
        exact = run_dt if _holds(graph_dt, run_dt) else None

        def lazy(t: Any) -> Lazy:
            if t.dtype == graph_dt or _holds(graph_dt, t.dtype):
                return Lazy(t, graph_dt, exact or t.dtype)
            return Lazy(t, graph_dt, t.dtype, graph_dt)  # a wider stack type: rounding owed

        last = chain.nodes[-1]
        values[last.output[0]] = lazy(y)
        for li, n in enumerate(chain.nodes):
            outs = list(n.output) + ["", ""]
            if outs[1]:
                values[outs[1]] = lazy(hn[li * D:(li + 1) * D])
            if outs[2] and cn is not None:
                values[outs[2]] = lazy(cn[li * D:(li + 1) * D])

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
                if getattr(c.stack, "l2_persisting", False):
                    d["weights"] = "a share persisting in L2 between calls"
            if c.targets:  # outputs the graph copies whole, and those the stack writes in place
                d["output_targets"] = sorted(c.targets)
                d["outputs_in_place"] = list(c.taken) if c.targets_of is c.stack else []
            out.append(d)
        return out

    def __call__(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run the graph on device tensors. Layout and type ops run as views (views.py);
        `self.copies` lists the copies this call made where a value had to be materialized,
        and a copy of a whole recurrent output becomes that stack's output target, written
        directly from the next call on."""
        torch = self.torch
        values: dict[str, Any] = dict(self.host)
        values.update({k: Lazy.of(v) if isinstance(v, torch.Tensor) else v for k, v in feeds.items()})
        self.copies: list[str] = []
        self._sinks: dict[tuple[int, str], list] = {}
        self._relaid: dict[int, tuple[int, str, Any]] = {}  # storage -> (chain, output, copy): see _mat
        for kind, n in self.steps:
            if kind == "chain":
                self._run_chain(n, values)
                continue
            args = [values[i] if i else None for i in n.input]
            res = None
            if n.op_type in VIEW_OPS and any(isinstance(a, Lazy) for a in args):
                res = self._view_op(n, args)
            if res is None:
                args = [self._mat(a, n.name) if isinstance(a, Lazy) else a for a in args]
                res = OPS[n.op_type](self, args, attributes(n))
            res = res if isinstance(res, tuple) else (res,)
            for name, v in zip(n.output, res):
                if name:
                    values[name] = v
        out = {}
        for name in self.output_names:
            v = values[name]
            out[name] = self.dev(self._mat(v, f"output {name}") if isinstance(v, Lazy) else v)
        self._learn_targets()
        return out

    # -- layout and type ops as views ---------------------------------------------------------
    def _mat(self, v: Lazy, where: str, contiguous: bool = False) -> Any:
        """v in memory as a tensor of its graph type; a copy is recorded (and, where it copies
        a whole recurrent output, remembered as that output's target)."""
        t, n = materialize(v, contiguous=contiguous)
        if n:
            self.copies.append(where)
            for ci, key, _ in self._buffers_of(v.t):
                self._sinks.setdefault((ci, key), []).append((v, t))
            # A recurrent output copied into a new layout (the Reshape no view can do) and
            # then copied again whole, element order kept, into another type (an fp16
            # engine's Cast to its fp32 outputs): the stack can write that type there too.
            ci, key, first = self._relaid.get(v.t.untyped_storage().data_ptr(), (None, None, None))
            same_order = (first is not None and v.t.is_contiguous() and v.t.data_ptr() == first.data_ptr()
                          and v.t.numel() == first.numel())
            sinks = self._sinks.get((ci, key), [])
            if same_order and len(sinks) == 1 and (v.rnd is None or _holds(v.rnd, v.exact)):
                sinks[0] = (sinks[0][0], t)
        return t

    def _buffers_of(self, t: Any) -> list[tuple[int, str, Any]]:
        """(chain index, output key, buffer) of the recurrent output buffers t is a view of."""
        ptr = t.untyped_storage().data_ptr()
        return [(ci, key, buf) for ci, c in enumerate(self.chains) for key, buf in (c.buffers or {}).items()
                if buf is not None and buf.untyped_storage().data_ptr() == ptr]

    def _view_op(self, n: Any, args: list) -> Any:
        """A layout/type op on Lazy values without a launch; None where it needs one."""
        torch = self.torch
        at = attributes(n)
        op = n.op_type
        if op == "Concat":
            if not all(isinstance(a, Lazy) for a in args if a is not None):
                return None
            parts = [a for a in args if a is not None]
            if any((p.dtype, p.exact, p.rnd) != (parts[0].dtype, parts[0].exact, parts[0].rnd) for p in parts):
                return None
            t = adjacent_concat([p.t for p in parts], at["axis"])
            return None if t is None else parts[0].like(t)
        v = args[0]
        if not isinstance(v, Lazy):
            return None
        if op == "Identity":
            return v
        if op == "Shape":
            return OPS["Shape"](self, [v.t], at)
        if op == "Cast":
            from .ops import _NP_DTYPES

            np_t = _NP_DTYPES[at["to"]]
            to = getattr(torch, np.dtype(np_t).name if np_t is not np.bool_ else "bool")
            return cast(v, to)
        if op == "Transpose":
            perm = at.get("perm") or list(range(v.t.dim() - 1, -1, -1))
            return v.like(v.t.permute(*perm))
        if op in ("Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice"):
            if any(isinstance(a, Lazy) for a in args[1:]):
                return None
            if op == "Slice":  # basic indexing: always a view
                return v.like(OPS[op](self, [v.t] + list(args[1:]), at))
            shape = OPS[op](self, [torch.empty(v.t.shape, device="meta")] + list(args[1:]), at).shape
            try:
                return v.like(v.t.view(shape))
            except RuntimeError:  # no view has this layout: the one reshape that copies
                if self._recurrent_output(v):  # e.g. a bidirectional y as [B, T, 2H]: a learnable target
                    t = self._mat(v, n.name, contiguous=True)
                    for ci, key, _ in self._buffers_of(v.t):
                        self._relaid[t.untyped_storage().data_ptr()] = (ci, key, t)
                    return Lazy.of(t.view(shape), exact=v.precision if _holds(t.dtype, v.precision) else None)
                self.copies.append(n.name)
                return v.like(v.t.reshape(shape))
        return None

    def _recurrent_output(self, v: Lazy) -> bool:
        """Whether v is a view of all of a recurrent stack's output buffer."""
        return any(buf.numel() == v.t.numel() for _, _, buf in self._buffers_of(v.t))

    def _learn_targets(self) -> None:
        """Copies of a whole recurrent output (its only use) become output targets."""
        for ci, c in enumerate(self.chains):
            for key, buf in (c.buffers or {}).items():
                sinks = self._sinks.get((ci, key), [])
                if len(sinks) != 1 or buf is None:
                    continue
                v, t = sinks[0]
                if v.rnd is not None and not _holds(v.rnd, v.exact):
                    continue  # a rounding the stack does not do
                if not t.is_contiguous():
                    continue
                m = output_target(buf, v.t)
                if m is not None:
                    c.targets[key] = (t.dtype, t.numel(), m[0], m[1])

    def dev(self, v: Any) -> Any:
        """A value as a device tensor (host constants are uploaded once and cached)."""
        torch = self.torch
        if isinstance(v, torch.Tensor):
            return v
        arr = np.asarray(v)
        # Small values by content: a host value an op computes afresh on every call (slice
        # positions, sequence lengths) is uploaded on the first call and found again when the
        # call is captured in a CUDA graph, where a host-to-device copy is not allowed.
        small = arr.nbytes <= SMALL_CONST_BYTES
        key = ("v", arr.shape, arr.dtype.str, arr.tobytes()) if small else (id(v), arr.shape, arr.dtype.str)
        t = self.device_consts.get(key)
        if t is None:
            # a writable copy: initializers can be read-only views, which torch warns about
            t = self.device_consts[key] = torch.from_numpy(np.array(arr, order="C")).to(self.device)
            if not small:
                self._keep = getattr(self, "_keep", []) + [v]  # keep `v` alive so its id stays unique
        return t
