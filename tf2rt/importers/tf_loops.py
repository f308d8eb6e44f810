"""Recurrences in a TensorFlow graph: while loops (TF1 Enter/Merge/Switch/NextIteration/Exit
frames and TF2 `While`/`StatelessWhile` functions) that run RNN cells over time.

A loop that reads its input step by step from a TensorArray/TensorList, feeds it through
one or more cells and writes the last cell's output to another array (what `dynamic_rnn`
builds) is replaced by one `_Recurrence` node: inputs = the time-major input sequence, the
sequence lengths (if the loop uses them), the initial states and the cells' parameters;
outputs = the stacked outputs ([T, B, H], what the array gather gives) and the final value
of every state. The op table lowers that node to native RNN layers (see tf_recurrence.py).

Cells are recognised from the ops of the loop body (tf_cells.py), never from names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FormatError, UnsupportedError
from .graphdef import MALFORMED, Graph, Node, split_ref

#: Ops that pass their first input through unchanged (for tracing values to their source).
PASS_OPS = {"Identity", "Snapshot", "StopGradient", "PreventGradient", "CheckNumerics", "Enter", "RefEnter",
            "RefIdentity", "EnsureShape"}
RECURRENCE_OP = "_Recurrence"
LOOP_ARG_OP = "_LoopArg"


def ref(name: str, index: int = 0) -> str:
    return f"{name}:{index}"


def canon(r: str) -> str:
    name, idx = split_ref(r)
    return ref(name, idx)


@dataclass
class LoopVar:
    init: str            # outer value before the loop
    inner: str           # what the body reads
    next: str            # what the body computes for the next iteration
    final: str | None    # outer ref of the value after the loop (None: unused)


@dataclass
class Loop:
    name: str
    vars: list[LoopVar]
    nodes: set[str] = field(default_factory=set)  # nodes of the loop (for reporting)
    node: str = ""                                 # its LoopCond (TF1) or While node (TF2)
    merges: list[str] = field(default_factory=list)  # TF1: each variable's Merge (what the condition reads)
    frame: str = ""                                # TF1: the frame name of its Enter nodes


def _is_training_only(n: Node) -> bool:
    """Gradient computations and the accumulators a forward loop keeps for them: they read
    the forward ops but are never part of inference."""
    return n.name.startswith("gradients/") or "/gradients/" in n.name or \
        n.op in ("TensorListPushBack", "TensorListPushBackBatch", "StackPushV2")


class Dataflow:
    """Sources and users of tensors in a flat graph, seeing through identity-like ops."""

    def __init__(self, graph: Graph, invariant_args: dict[str, str] | None = None):
        self.g = graph
        self.invariant_args = invariant_args or {}
        self.users_of: dict[str, list[tuple[Node, int]]] = {}
        for n in graph.nodes.values():
            if _is_training_only(n):
                continue
            for i, r in enumerate(n.inputs):
                self.users_of.setdefault(canon(r), []).append((n, i))

    def node(self, r: str) -> Node | None:
        return self.g.nodes.get(split_ref(r)[0])

    def source(self, r: str) -> str:
        """`r` with identity-like ops (Identity, Enter, loop-invariant arguments) skipped."""
        r = canon(r)
        for _ in range(256):
            name, idx = split_ref(r)
            n = self.g.nodes.get(name)
            if n is None:
                return r
            if n.op in PASS_OPS and idx == 0 and n.inputs:
                r = canon(n.inputs[0])
            elif n.op == "IdentityN" and idx < len(n.inputs):
                r = canon(n.inputs[idx])
            elif n.op == LOOP_ARG_OP and name in self.invariant_args:
                r = canon(self.invariant_args[name])
            else:
                return r
        return r

    def src_node(self, r: str) -> Node | None:
        return self.node(self.source(r))

    def users(self, r: str) -> list[tuple[Node, int]]:
        """Consumers of `r`, looking through identity-like consumers."""
        out: list[tuple[Node, int]] = []
        todo, seen = [canon(r)], set()
        while todo:
            cur = todo.pop()
            if cur in seen:
                continue
            seen.add(cur)
            for n, i in self.users_of.get(cur, []):
                if n.op in ("Identity", "Snapshot", "StopGradient") and i == 0:
                    todo.append(ref(n.name))
                else:
                    out.append((n, i))
        return out

    def const(self, r: str) -> np.ndarray | None:
        """The value of `r` if it is a Const (after identity-like ops)."""
        n = self.src_node(r)
        if n is None or n.op != "Const" or n.attr("value") is None:
            return None
        try:
            return n.attr("value").tensor(n.name)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a value we cannot decode is simply not a known constant
            return None

    def is_zero(self, r: str) -> bool:
        """True when `r` is all zeros by construction (zeros / Fill(0) / ZerosLike)."""
        n = self.src_node(r)
        if n is None:
            return False
        if n.op == "ZerosLike":
            return True
        if n.op == "Fill" and len(n.inputs) == 2:
            v = self.const(n.inputs[1])
            return v is not None and v.size == 1 and float(v.reshape(-1)[0]) == 0.0
        v = self.const(r)
        return v is not None and v.dtype != object and not np.any(v)


def _scope(loop_name: str) -> str:
    """'rnn/while' -> 'rnn': layers are named after the scope the loop runs in."""
    return loop_name[: -len("/while")] if loop_name.endswith("/while") else loop_name


# --- finding loops -----------------------------------------------------------------------
def tf1_loops(graph: Graph, flow: Dataflow) -> list[Loop]:
    """TF1 control-flow frames, one Loop per LoopCond."""
    loops = []
    for cond in [n for n in graph.nodes.values() if n.op == "LoopCond"]:
        switches = [n for n in graph.nodes.values() if n.op in ("Switch", "RefSwitch") and len(n.inputs) == 2
                    and split_ref(n.inputs[1])[0] == cond.name]
        vars_: list[LoopVar] = []
        merges: list[str] = []
        frame = ""
        for sw in switches:
            merge = flow.node(sw.inputs[0])
            if merge is None or merge.op not in ("Merge", "RefMerge") or len(merge.inputs) != 2:
                raise UnsupportedError(f"while loop {cond.name!r}: Switch {sw.name!r} is not fed by a Merge")
            enter, nxt = (flow.node(r) for r in merge.inputs)
            if enter is None or nxt is None or nxt.op not in ("NextIteration", "RefNextIteration"):
                raise UnsupportedError(f"while loop {cond.name!r}: Merge {merge.name!r} is not Enter + NextIteration")
            inner = ref(sw.name, 1)
            for u, _ in flow.users_of.get(inner, []):
                if u.op == "Identity":
                    inner = ref(u.name)
            final = None
            for u, _ in flow.users_of.get(ref(sw.name, 0), []):
                if u.op in ("Exit", "RefExit"):
                    final = ref(u.name)
            vars_.append(LoopVar(canon(enter.inputs[0]), inner, canon(nxt.inputs[0]), final))
            merges.append(ref(merge.name))
            if enter.attr("frame_name") is not None:
                frame = enter.attr("frame_name").s()  # type: ignore[union-attr]
        loops.append(Loop(_scope(cond.name.rsplit("/", 1)[0]), vars_, node=cond.name, merges=merges, frame=frame))
    return loops


def tf2_loops(graph: Graph) -> tuple[list[Loop], dict[str, str]]:
    """TF2 While/StatelessWhile nodes, their bodies inlined into `graph` once each."""
    loops, invariant_args = [], {}
    for w in [n for n in list(graph.nodes.values()) if n.op in ("While", "StatelessWhile")]:
        body_attr = w.attr("body")
        if body_attr is None:
            continue
        fname = body_attr.func()
        fn = graph.functions.get(fname)
        if fn is None:
            raise UnsupportedError(f"while loop {w.name!r}: its body function {fname!r} is not in the library")
        if len(fn.inputs) != len(w.inputs) or len(fn.outputs) != len(w.inputs):
            raise UnsupportedError(f"while loop {w.name!r}: body {fname!r} does not take and return its loop variables")
        args = []
        for i in range(len(w.inputs)):
            arg = f"{w.name}/body_arg_{i}"
            graph.nodes[arg] = Node(arg, LOOP_ARG_OP, [])
            args.append(ref(arg))
        before = set(graph.nodes)
        outs = graph.inline_function(fname, f"{w.name}/body", args)
        vars_ = []
        for i, (init, out) in enumerate(zip(w.inputs, outs)):
            v = LoopVar(canon(init), args[i], canon(out), ref(w.name, i))
            vars_.append(v)
        loops.append(Loop(_scope(w.name), vars_, node=w.name, nodes=set(graph.nodes) - before))
    flow = Dataflow(graph)
    for loop in loops:  # a body result that is its own argument is a loop invariant
        for v in loop.vars:
            if flow.source(v.next) == v.inner:
                invariant_args[split_ref(v.inner)[0]] = v.init
    return loops, invariant_args


# --- dynamic_rnn structure ---------------------------------------------------------------
@dataclass
class Recurrence:
    """A loop recognised as an RNN over time (see module docstring)."""

    name: str
    x: str                      # outer time-major input [T, B, E]
    gather: str                 # node whose output is the stacked outputs [T, B, H]
    seq_len: str | None
    state_vars: list[LoopVar]   # in the order the cells use them
    layers: list[Any]           # tf_cells.CellMatch per layer
    params: list[str] = field(default_factory=list)  # refs of cell parameters, in recipe order
    last_only: bool = False     # the output array keeps only the last step ([1, B, H])


def _time_var(loop: Loop, flow: Dataflow, index_ref: str) -> LoopVar | None:
    src = flow.source(index_ref)
    for v in loop.vars:
        if flow.source(v.inner) == src:
            return v
    return None


def recognise(loop: Loop, flow: Dataflow) -> Recurrence | None:
    """The Recurrence this loop runs, None if it is not an RNN over time (reads no input array)."""
    from .tf_cells import match_cells

    out_var = write = None
    for v in loop.vars:
        n = flow.src_node(v.next)
        if n is not None and n.op in ("TensorArrayWriteV3", "TensorListSetItem"):
            out_var, write = v, n
    if write is None:
        return None
    value_ref = write.inputs[2]
    time = _time_var(loop, flow, write.inputs[1])
    # Keras' return_sequences=False writes every step at index 0 of a one-element list: only
    # the last step's output survives
    last_only = time is None and flow.const(write.inputs[1]) is not None
    read = x = None
    inners = {flow.source(v.inner): v for v in loop.vars}
    for n in flow.g.nodes.values():
        if n.op == "TensorArrayReadV3" and len(n.inputs) == 3 and flow.source(n.inputs[1]) in inners:
            sc = flow.src_node(n.inputs[2])
            if sc is not None and sc.op == "TensorArrayScatterV3":
                read, x = n, canon(sc.inputs[2])
        elif n.op == "TensorListGetItem" and len(n.inputs) >= 2 and flow.source(n.inputs[1]) in inners:
            fl = flow.src_node(n.inputs[0])
            if fl is not None and fl.op == "TensorListFromTensor":
                read, x = n, canon(fl.inputs[0])
    if read is None:
        return None
    if time is None:
        time = inners[flow.source(read.inputs[1])]
    if not last_only and flow.source(write.inputs[1]) != flow.source(time.inner):
        raise UnsupportedError(f"loop {loop.name!r}: the output array is not written at the loop's time index")
    gather = None
    if out_var.final is not None:
        for u, i in flow.users(out_var.final):
            if u.op == "TensorArrayGatherV3" and i == 2 or u.op == "TensorListStack" and i == 0:
                gather = u.name
    if gather is None:
        raise UnsupportedError(f"loop {loop.name!r}: its output array is not stacked after the loop "
                               "(only whole-sequence outputs are supported)")
    seq_len = None

    def unwrap(r: str) -> str:
        nonlocal seq_len
        n = flow.src_node(r)
        if n is not None and n.op in ("Select", "SelectV2") and len(n.inputs) == 3:
            c = flow.src_node(n.inputs[0])
            if c is not None and c.op == "GreaterEqual" and flow.source(c.inputs[0]) == flow.source(time.inner):
                seq_len = flow.source(c.inputs[1])
                return flow.source(n.inputs[2])
        return flow.source(r)

    counters = {id(time), id(out_var)}
    candidates = [v for v in loop.vars if id(v) not in counters and flow.source(v.next) != flow.source(v.inner)]
    states = [v for v in candidates if not _is_counter(v, flow) and not _is_accumulator(v, flow)]
    layers, used = match_cells(flow, ref(read.name), states, unwrap, unwrap(value_ref), loop.name)
    return Recurrence(loop.name, x, gather, seq_len, used, layers, last_only=last_only)


def _is_accumulator(v: LoopVar, flow: Dataflow) -> bool:
    """A list the loop pushes intermediate values onto for the gradient (training graphs)."""
    n = flow.src_node(v.next)
    return n is not None and n.op in ("TensorListPushBack", "TensorListPushBackBatch", "StackPushV2")


def _is_counter(v: LoopVar, flow: Dataflow) -> bool:
    n = flow.src_node(v.next)
    return n is not None and n.op in ("Add", "AddV2") and any(flow.source(i) == flow.source(v.inner) for i in n.inputs)


_CONTROL_OPS = {"Enter", "RefEnter", "Exit", "RefExit", "Merge", "RefMerge", "Switch", "RefSwitch", "LoopCond",
                "NextIteration", "RefNextIteration", "While", "StatelessWhile", LOOP_ARG_OP, "_WhileLoop"}


def fold_constant_conditionals(graph: Graph, keep: set[str] = frozenset()) -> int:
    """TF2 If/StatelessIf/Case whose condition is fixed at conversion (a constant, or a
    PlaceholderWithDefault such as `is_training` left at its default): the taken branch is
    inlined in its place. Returns how many were folded."""
    from .tf_cond import fixed_condition

    flow = Dataflow(graph)
    folded = 0
    for node in [n for n in list(graph.nodes.values()) if n.op in ("If", "StatelessIf", "Case", "StatelessCase")]:
        value = fixed_condition(flow, node.inputs[0], keep) if node.inputs else None
        if value is None or value.size != 1:
            continue
        if node.op.endswith("If"):
            key = "then_branch" if bool(value.reshape(-1)[0]) else "else_branch"
            attr = node.attr(key)
            fname = attr.func() if attr is not None else None
        else:
            attr = node.attr("branches")
            names = [f.str(1) for f in attr.msg.message(1).messages(9)] if attr is not None else []
            k = int(value.reshape(-1)[0])
            fname = names[k] if 0 <= k < len(names) else (names[-1] if names else None)  # out of range: last
        if not fname:
            continue
        del graph.nodes[node.name]
        outs = graph.inline_function(fname, f"{node.name}/taken", node.inputs[1:])
        graph.nodes[node.name] = Node(node.name, "IdentityN", outs)
        folded += 1
    return folded


def ensure_recurrences(graph: Graph, inputs: list[str] | None = None) -> list[Recurrence]:
    """rewrite_recurrences once per graph (importers may call it before choosing outputs);
    conditionals fixed at conversion are folded first (not those on a placeholder the user
    names among `inputs`)."""
    if getattr(graph, "recurrences", None) is None:
        try:
            _rewrite_all(graph, inputs)
        except MALFORMED as exc:
            raise FormatError(f"GraphDef: malformed control flow or recurrence ({type(exc).__name__}: {exc})") \
                from None
    return graph.recurrences  # type: ignore[attr-defined]


def _rewrite_all(graph: Graph, inputs: list[str] | None) -> None:
    from .graph_rewrites import fold_tensordot
    from .tf_cond import rewrite_conditionals
    from .tf_cudnn import prepare_cudnn
    from .tf_unrolled import rewrite_unrolled

    keep = {split_ref(r)[0] for r in inputs or []}
    fold_constant_conditionals(graph, keep)
    rewrite_conditionals(graph, keep)  # TF1 conds on run-time values, before loops copy their bodies
    fold_tensordot(graph)
    prepare_cudnn(graph)
    graph.recurrences = rewrite_recurrences(graph)  # type: ignore[attr-defined]
    graph.recurrences += rewrite_unrolled(graph)  # type: ignore[attr-defined]


def loop_leftovers(graph: Graph) -> set[str]:
    """Nodes left of loops that became `_Recurrence` nodes (never default outputs)."""
    out = set()
    scopes = tuple(f"{r.name}/while/" for r in getattr(graph, "recurrences", None) or [])
    scopes += tuple(f"{r.name}/while" for r in getattr(graph, "recurrences", None) or [])
    for n in graph.nodes.values():
        if n.op in _CONTROL_OPS or (scopes and n.name.startswith(scopes)) or n.op.startswith("TensorArray") \
                or n.op.startswith("TensorList"):
            out.add(n.name)
    return out | getattr(graph, "replaced_inputs", set())


def set_aside(graph: Graph, names: Any) -> None:
    """Nodes a rewrite left unread: never taken as default outputs (see loop_leftovers)."""
    aside = getattr(graph, "replaced_inputs", None)
    if aside is None:
        aside = graph.replaced_inputs = set()  # type: ignore[attr-defined]
    aside.update(names)


def reroute(graph: Graph, mapping: dict[str, str], skip: str = "") -> None:
    """Every input of every node (but `skip`) that reads a ref in `mapping` reads its image."""
    for n in graph.nodes.values():
        if n.name != skip:
            n.inputs = [mapping.get(canon(r), r) for r in n.inputs]


def rewrite_recurrences(graph: Graph) -> list[Recurrence]:
    """Replace every recognised RNN loop in `graph` by a `_Recurrence` node (in place)."""
    loops, invariant_args = tf2_loops(graph)
    if invariant_args:  # a body reads a loop invariant: it is the value passed in (weights, handles)
        for n in graph.nodes.values():
            n.inputs = [canon(invariant_args[split_ref(r)[0]]) if split_ref(r)[0] in invariant_args else r
                        for r in n.inputs]
    flow = Dataflow(graph, invariant_args)
    inside = getattr(graph, "cond_branch_nodes", set())  # converted with the branch of a rebuilt cond
    loops += [lp for lp in tf1_loops(graph, flow) if lp.node not in inside]
    found = []
    graph.loop_errors = {}  # type: ignore[attr-defined]
    general = []
    for loop in loops:
        try:
            rec = recognise(loop, flow)
        except (UnsupportedError, *MALFORMED) as exc:  # only an error if the loop is on the converted path
            graph.loop_errors[loop.name] = str(exc)  # type: ignore[attr-defined]
            rec = None
        if rec is None:
            general.append(loop)
            continue
        _replace(graph, flow, rec)
        found.append(rec)
    from .tf_control import rewrite_loop

    for loop in sorted(general, key=lambda lp: lp.node.count("/")):  # any other loop: an ONNX Loop, outer first
        if loop.node in getattr(graph, "nested_in_loops", ()):
            continue  # converted with the body of the loop it is nested in
        try:
            rewrite_loop(graph, loop, flow)
        except (UnsupportedError, *MALFORMED) as exc:
            graph.loop_errors[loop.name] = str(exc)  # type: ignore[attr-defined]
        else:
            graph.loop_errors.pop(loop.name, None)  # type: ignore[attr-defined]
            set_aside(graph, loop.nodes)  # the body inlined while looking for an RNN
    if found:
        from .tf_bidirectional import fuse_bidirectional

        fuse_bidirectional(graph, found)
    return found


def _replace(graph: Graph, flow: Dataflow, rec: Recurrence, finals_by_consumers: bool = False) -> None:
    """Add the `_Recurrence` node of `rec` and route the loop's results to it. A loop's final
    values are Exit nodes / While outputs; an unrolled chain's (finals_by_consumers) are the
    last step's states, whose readers are rerouted."""
    from .tf_cells import params_of

    inputs = [rec.x]
    if rec.seq_len is not None:
        inputs.append(rec.seq_len)
    zero = []
    for v in rec.state_vars:
        if flow.is_zero(v.init):
            zero.append(True)
        else:
            zero.append(False)
            inputs.append(flow.source(v.init))
    rec.params = [flow.source(p) for layer in rec.layers for p in params_of(layer)]
    inputs += rec.params
    node = Node(f"{rec.name}/recurrence", RECURRENCE_OP, inputs)
    node.recurrence = rec  # type: ignore[attr-defined]
    node.zero_init = zero  # type: ignore[attr-defined]
    graph.nodes[node.name] = node
    set_aside(graph, (split_ref(r)[0] for r in graph.nodes[rec.gather].inputs))
    if rec.last_only:  # the last step's output: the top layer's final h, as [1, B, H]
        k = rec.state_vars.index(rec.layers[-1].states[-1])
        graph.nodes[rec.gather] = Node(rec.gather, "_LeadingAxis", [ref(node.name, 1 + k)])
    else:
        graph.nodes[rec.gather] = Node(rec.gather, "Identity", [ref(node.name, 0)])
    for k, v in enumerate(rec.state_vars):
        if v.final is None:
            continue
        fname, fidx = split_ref(v.final)
        if graph.nodes[fname].op in ("Exit", "RefExit") and not finals_by_consumers:
            set_aside(graph, (split_ref(r)[0] for r in graph.nodes[fname].inputs))
            graph.nodes[fname] = Node(fname, "Identity", [ref(node.name, 1 + k)])
        else:  # a TF2 While output or an unrolled chain's last state: its readers read the recurrence
            reroute(graph, {canon(v.final): ref(node.name, 1 + k)}, skip=node.name)
