"""Unrolled recurrences: the same cell applied once per time step in a Python loop
(`static_rnn`, `legacy_seq2seq.rnn_decoder`, hand-written loops), all steps sharing one set
of weights. Such a chain becomes one `_Recurrence` node like a while loop (tf_loops.py), so
the engine holds native RNN layers and accepts any sequence length:

* step inputs taken from one tensor (`tf.unstack(x, axis=1)` or `tf.split(x, T, 1)` +
  squeeze) become that tensor, time-major;
* the step outputs, concatenated or stacked along the time axis, become the recurrence's
  output in the same layout; a single step's output becomes a slice of it;
* the last step's states become the recurrence's final states.

Chains whose inputs or outputs do not fit these forms are left alone: the op table then
converts the unrolled ops as they are (correct, at the saved length).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..errors import UnsupportedError
from .graphdef import Graph, Node, split_ref
from .tf_cells import ACTIVATIONS, CellMatch, _Matcher, _match_one, _split_outputs
from .tf_loops import Dataflow, LoopVar, Recurrence, _is_training_only, ref, set_aside


def _weight(flow: Dataflow, r: str) -> str:
    """The variable (or constant) behind a weight ref: resource variables get one
    ReadVariableOp per reader, so identity is the handle they read."""
    r = flow.source(r)
    n = flow.node(r)
    if n is not None and n.op == "ReadVariableOp" and n.inputs:
        return flow.source(n.inputs[0])
    return r


def _concat_operands(flow: Dataflow, mm: Node) -> tuple[str, str] | None:
    a = flow.src_node(mm.inputs[0])
    if a is None or a.op not in ("ConcatV2", "Concat"):
        return None
    vals = a.inputs[:-1] if a.op == "ConcatV2" else a.inputs[1:]
    if len(vals) != 2:
        return None
    return flow.source(vals[0]), flow.source(vals[1])


def _c_candidates(m: _Matcher, mm: Node) -> set[str]:
    """Refs multiplied with the sigmoid of a gate slice (an LSTM's previous cell state)."""
    from .tf_cells import _pre_activation_end

    z = _pre_activation_end(m, f"{mm.name}:0")
    four = _split_outputs(m, z, 4)
    out: set[str] = set()
    for s in four or []:
        r, n = s, None
        for _ in range(3):
            us = m.flow.users(r)
            if len(us) != 1:
                break
            n = us[0][0]
            if n.op in ("Add", "AddV2"):
                r = f"{n.name}:0"
                continue
            break
        if n is not None and n.op == "Sigmoid":
            for u, i in m.flow.users(f"{n.name}:0"):
                if u.op == "Mul":
                    p = m.flow.source(u.inputs[1 - i])
                    pn = m.flow.node(p)
                    if pn is not None and pn.op not in ACTIVATIONS:
                        out.add(p)
    return out


class _Step:
    def __init__(self, cell: CellMatch, x: str):
        self.cell, self.x = cell, x
        self.prev = [m_.inner for m_ in cell.states]  # state refs read
        self.new = list(cell.new)


def _match_step(m: _Matcher, mm: Node) -> _Step | None:
    ops = _concat_operands(m.flow, mm)
    if ops is None:
        return None
    x, h = ops
    cands = {h} | _c_candidates(m, mm)
    inner = {r: LoopVar(r, r, "", None) for r in cands}
    try:
        cell = _match_one(m, x, inner)
    except UnsupportedError:
        return None
    return _Step(cell, x)


def _chains(flow: Dataflow, steps: list[_Step]) -> list[list[_Step]]:
    """The chains of steps (each reading the states the one before it computed) among the
    steps sharing one weight; several models in one graph (train and test copies sharing
    their variables) give several chains."""
    by_prev_h = {flow.source(s.prev[-1]): s for s in steps}
    produced = {flow.source(s.new[-1]) for s in steps}
    chains = []
    for first in [s for s in steps if flow.source(s.prev[-1]) not in produced]:
        chain = [first]
        while len(chain) <= len(steps):
            nxt = by_prev_h.get(flow.source(chain[-1].new[-1]))
            if nxt is None:
                break
            if [flow.source(r) for r in nxt.prev] != [flow.source(r) for r in chain[-1].new]:
                chain = []
                break
            chain.append(nxt)
        if chain:
            chains.append(chain)
    return chains


def _same_params(flow: Dataflow, chain: list[_Step]) -> bool:
    def key(step: _Step) -> list:
        out = []
        for p in step.cell.params:
            v = flow.const(p)
            out.append(("const", float(v.reshape(-1)[0])) if v is not None and v.size == 1 else ("ref", _weight(flow, p)))
        return [step.cell.kind, step.cell.activation, sorted(step.cell.order.items()), out]
    k0 = key(chain[0])
    return all(key(s) == k0 for s in chain[1:])


def _sequence_source(flow: Dataflow, xs: list[str]) -> tuple[str, int] | None:
    """(tensor, time axis) whose slices along the time axis are xs, in order."""
    src = []
    for r in xs:
        n = flow.node(r)
        if n is not None and n.op == "Squeeze" and n.inputs:
            r2 = flow.source(n.inputs[0])
            sp = flow.node(r2)
            if sp is not None and sp.op == "Split" and len(sp.inputs) == 2:
                axis = flow.const(sp.inputs[0])
                src.append((sp.name, int(axis.reshape(-1)[0]) if axis is not None else None, split_ref(r2)[1],
                            flow.source(sp.inputs[1])))
                continue
        if n is not None and n.op == "Unpack":
            a = n.attr("axis")
            src.append((n.name, a.i() if a is not None else 0, split_ref(r)[1], flow.source(n.inputs[0])))
            continue
        step = _step_slice(flow, n) if n is not None and n.op == "StridedSlice" else None
        if step is not None:  # x[:, t, :] (the PTB tutorial's loop) or x[t]
            axis, t, tensor = step
            src.append((tensor, axis, t, tensor))
            continue
        return None
    names = {s[0] for s in src}
    if len(names) != 1 or [s[2] for s in src] != list(range(len(xs))) or src[0][1] not in (0, 1):
        return None
    return src[0][3], src[0][1]


def _step_slice(flow: Dataflow, n: Node) -> tuple[int, int, str] | None:
    """(axis, index, tensor) when n is x[:, t, :] or x[t, :, :]: one index shrunk away, the rest whole."""
    begin, end, strides = (flow.const(i) for i in n.inputs[1:4])
    if begin is None or end is None or strides is None:
        return None
    attrs = {k: (n.attr(k).i() if n.attr(k) is not None else 0)
             for k in ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
    shrink = attrs["shrink_axis_mask"]
    if attrs["ellipsis_mask"] or attrs["new_axis_mask"] or bin(shrink).count("1") != 1:
        return None
    axis = shrink.bit_length() - 1
    if axis not in (0, 1) or any(int(v) != 1 for v in np.atleast_1d(strides)):
        return None
    for k in range(len(np.atleast_1d(begin))):
        if k != axis and not (attrs["begin_mask"] >> k & 1 and attrs["end_mask"] >> k & 1):
            return None
    return axis, int(np.atleast_1d(begin)[axis]), flow.source(n.inputs[0])


def rewrite_unrolled(graph: Graph) -> list[Recurrence]:
    """Replace unrolled RNN chains by `_Recurrence` nodes (in place); returns them."""
    flow = Dataflow(graph)
    m = _Matcher(flow, "unrolled steps")
    by_weight: dict[str, list[Node]] = defaultdict(list)
    for n in graph.nodes.values():
        if n.op == "MatMul" and len(n.inputs) == 2 and not _is_training_only(n):
            by_weight[_weight(flow, n.inputs[1])].append(n)
    chains = []
    for _w, mms in by_weight.items():
        steps = [_match_step(m, mm) for mm in mms]
        if any(s is None for s in steps):
            continue
        chains += [c for c in _chains(flow, steps) if _same_params(flow, c)]  # type: ignore[arg-type]
    # stack chains whose step inputs are another chain's step outputs
    below = {}
    for c in chains:
        for d in chains:
            if c is not d and len(c) == len(d) and \
                    all(flow.source(c[t].x) == flow.source(d[t].new[-1]) for t in range(len(c))):
                below[id(c)] = d
    found = []
    for bottom in [c for c in chains if id(c) not in below]:
        stack = [bottom]
        while True:
            above = [c for c in chains if below.get(id(c)) is stack[-1]]
            if len(above) != 1:
                break
            stack.append(above[0])
        rec = _replace(graph, flow, stack)
        if rec is not None:
            found.append(rec)
            flow = Dataflow(graph)
    return found


def _replace(graph: Graph, flow: Dataflow, stack: list[list[_Step]]) -> Recurrence | None:
    T = len(stack[0])
    seq = _sequence_source(flow, [s.x for s in stack[0]])
    top = stack[-1]
    outs = [flow.source(s.new[-1]) for s in top]
    out_set = set(outs)
    consumers = []  # (node, how) for every consumer of a top-layer step output outside the chains
    inside = {n for chain in stack for s in chain for n in _cell_nodes(flow, s)}
    for t, r in enumerate(outs):
        for u, _i in flow.users(r):
            if u.name in inside:
                continue
            consumers.append(u)
    if seq is None:
        return None
    x_ref, axis = seq
    name = _scope(stack[0][0].cell.name)
    layers, state_vars = [], []
    for chain in stack:
        cell = chain[0].cell
        cell.states = [LoopVar(flow.source(p), flow.source(p), "", flow.source(n))
                       for p, n in zip(chain[0].prev, chain[-1].new)]
        layers.append(cell)
        state_vars += cell.states
    # the time-major input
    nodes = graph.nodes
    xt = x_ref
    if axis == 1:
        xt = ref(f"{name}/time_major_input")
        nodes[f"{name}/time_major_input"] = Node(f"{name}/time_major_input", "_SwapBatchTime", [x_ref])
    rec = Recurrence(name, xt, f"{name}/outputs", None, state_vars, layers)
    from .tf_loops import _replace as replace_loop  # shares the node construction

    rec_node = f"{name}/recurrence"
    # whole-sequence readers first (the final-state rerouting below would hide the last step)
    rest = []
    for u in {c.name: c for c in consumers}.values():
        srcs = [flow.source(r) for r in u.inputs]
        if u.op in ("ConcatV2", "Pack") and [s_ for s_ in srcs if s_ in out_set] == outs and \
                all(s_ in out_set or flow.const(s_) is not None for s_ in srcs):
            ax = flow.const(u.inputs[-1]) if u.op == "ConcatV2" else None
            ax = int(ax.reshape(-1)[0]) if ax is not None else (u.attr("axis").i() if u.attr("axis") else 0)
            op = {("ConcatV2", 1): "_StepsConcat1", ("Pack", 1): "_SwapBatchTime", ("Pack", 0): "Identity"}.get((u.op, ax))
            if op is not None:
                nodes[u.name] = Node(u.name, op, [ref(rec_node, 0)])
                continue
        rest.append(u)
    # the unrolled steps are no longer read: never default outputs either
    set_aside(graph, inside)
    nodes[f"{name}/outputs"] = Node(f"{name}/outputs", "Identity", [xt])  # stands for the stacked outputs
    replace_loop(graph, flow, rec, finals_by_consumers=True)
    set_aside(graph, [f"{name}/outputs"])  # read by nobody
    # readers of single steps: step t of the outputs (the last one is the final state)
    for u in rest:
        new_inputs = []
        for r in u.inputs:
            s_ = flow.source(r)
            if s_ in out_set and outs.index(s_) < T - 1:
                t = outs.index(s_)
                step = f"{name}/step_{t}"
                nodes[step] = Node(step, "_TimeStep", [ref(rec_node, 0)])
                nodes[step].time_step = t  # type: ignore[attr-defined]
                new_inputs.append(ref(step))
            else:
                new_inputs.append(r)
        u.inputs = new_inputs
    return rec


def _cell_nodes(flow: Dataflow, step: _Step) -> set[str]:
    """Nodes computing one step (from its products up to its new states)."""
    out: set[str] = set()
    stop = {flow.source(p) for p in step.prev} | {flow.source(step.x)}
    todo = [flow.source(r) for r in step.new]
    while todo:
        r = todo.pop()
        name = split_ref(r)[0]
        if name in out or r in stop:
            continue
        n = flow.node(r)
        if n is None or n.op in ("Const", "VariableV2", "VarHandleOp", "Placeholder"):
            continue
        out.add(name)
        todo += [flow.source(i) for i in n.inputs]
    return out


def _scope(cell_name: str) -> str:
    parts = cell_name.split("/")
    for stop in ("multi_rnn_cell", "basic_lstm_cell", "lstm_cell", "gru_cell", "basic_rnn_cell"):
        if stop in parts:
            return "/".join(parts[: parts.index(stop)]) or "rnn"
    return "/".join(parts[:-1]) or "rnn"
