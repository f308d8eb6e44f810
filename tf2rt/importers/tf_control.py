"""While loops that are not RNNs: each becomes one `_WhileLoop` node whose body is a graph of
its own, converted to a Network body of an ONNX Loop (graphdef_ops_control.py).

A TensorFlow while loop (TF1 Enter/Merge/Switch/NextIteration/Exit frame, or TF2 `While`)
is described by its loop variables. Each variable is one of:
- "carried": a value the body recomputes (counters, accumulators, any tensor);
- "invariant": a value the body passes through unchanged (TF2 captures);
- "scan": an array the body writes once per iteration at the iteration count
  (`TensorArrayWriteV3` / `TensorListSetItem`, as `tf.map_fn` and `TensorArray.write(i, v)`
  build); the loop stacks what is written, which is what reading the array back gives.
Values that enter a TF1 frame unchanged (`Enter(is_constant=True)`) are extra invariants.

The condition is copied twice: once outside on the initial values (ONNX Loop's first
condition), once in the body on the next values (TF tests it before every iteration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UnsupportedError
from .graphdef import Graph, Node, split_ref
from .tf_loops import LOOP_ARG_OP, Dataflow, Loop, canon, ref

WHILE_OP = "_WhileLoop"
_WRITE_OPS = ("TensorArrayWriteV3", "TensorListSetItem", "TensorListPushBack")
_FRAME_OPS = ("Merge", "RefMerge", "Switch", "RefSwitch", "LoopCond", "NextIteration", "RefNextIteration")


@dataclass
class LoopPlan:
    """What the `_WhileLoop` node's handler needs: its inputs are [initial condition] + the
    initial value of every non-scan variable + the outer value of every extra invariant."""

    name: str
    kinds: list[str]                 # per loop variable: carried | invariant | scan
    args: list[str]                  # per loop variable: its argument node in `body`
    extra_args: list[str]            # body argument nodes of the extra invariants
    body: Graph
    cond: str                        # body ref: the condition on the next values
    nexts: dict[int, str] = field(default_factory=dict)  # carried variable -> body ref of its next value
    items: dict[int, str] = field(default_factory=dict)  # scan variable -> body ref of the item written


def _counter_vars(loop: Loop, flow: Dataflow, body_flow: Dataflow, args: list[str],
                  nexts: list[str]) -> set[str]:
    """Body refs of variables that start at 0 and grow by 1 per iteration."""
    out = set()
    for k, v in enumerate(loop.vars):
        init = flow.const(v.init)
        if init is None or init.size != 1 or int(init.reshape(-1)[0]) != 0:
            continue
        n = body_flow.src_node(nexts[k])
        if n is None or n.op not in ("Add", "AddV2") or len(n.inputs) != 2:
            continue
        srcs = [body_flow.source(i) for i in n.inputs]
        one = [body_flow.const(i) for i in n.inputs]
        arg = ref(args[k])
        if (srcs[0] == arg and one[1] is not None and one[1].size == 1 and int(one[1].reshape(-1)[0]) == 1) or \
                (srcs[1] == arg and one[0] is not None and one[0].size == 1 and int(one[0].reshape(-1)[0]) == 1):
            out.add(arg)
    return out


def _classify(loop: Loop, flow: Dataflow, body: Graph, args: list[str], nexts: list[str]) -> tuple[list[str], dict]:
    """Kinds of the loop variables and the items of the scan ones (see module docstring)."""
    bflow = Dataflow(body)
    counters = _counter_vars(loop, flow, bflow, args, nexts)
    kinds, items = [], {}
    for k in range(len(loop.vars)):
        src = bflow.source(nexts[k])
        if src == ref(args[k]):
            kinds.append("invariant")
            continue
        n = bflow.src_node(nexts[k])
        if n is not None and n.op in _WRITE_OPS:
            array_in = n.inputs[3] if n.op == "TensorArrayWriteV3" else n.inputs[0]
            if bflow.source(array_in) != ref(args[k]):
                raise UnsupportedError(f"while loop {loop.name!r}: array write {n.name!r} does not extend the "
                                       "array the loop carries")
            if n.op != "TensorListPushBack" and bflow.source(n.inputs[1]) not in counters:
                raise UnsupportedError(f"while loop {loop.name!r}: array write {n.name!r} is not at the iteration "
                                       "count (only arrays written once per iteration, in order, are supported)")
            kinds.append("scan")
            items[k] = n.inputs[2] if n.op != "TensorListPushBack" else n.inputs[1]
            continue
        kinds.append("carried")
    return kinds, items


def through_identity_n(graph: Graph, r: str) -> str:
    """The ref an IdentityN output passes on (so converting one result needs only its own input)."""
    for _ in range(64):
        name, idx = split_ref(r)
        n = graph.nodes.get(name)
        if n is None or n.op != "IdentityN" or idx >= len(n.inputs):
            return canon(r)
        r = n.inputs[idx]
    return canon(r)


def _arg_nodes(graph: Graph, prefix: str, count: int) -> list[str]:
    names = []
    for i in range(count):
        name = f"{prefix}/arg_{i}"
        graph.nodes[name] = Node(name, LOOP_ARG_OP, [])
        graph._taken.add(name)  # noqa: SLF001 - the graph's own name registry
        names.append(name)
    return names


# --- TF2 While -------------------------------------------------------------------------
def _tf2_plan(graph: Graph, loop: Loop, flow: Dataflow) -> tuple[LoopPlan, str]:
    w = graph.nodes[loop.node]
    body_f, cond_f = w.attr("body"), w.attr("cond")
    if body_f is None or cond_f is None:
        raise UnsupportedError(f"while loop {w.name!r} has no body or condition function")
    body = Graph([], graph.functions)
    args = _arg_nodes(body, w.name, len(w.inputs))
    nexts = body.inline_function(body_f.func(), f"{w.name}/body", [ref(a) for a in args])
    nexts = [through_identity_n(body, r) for r in nexts]
    cond = through_identity_n(body, body.inline_function(cond_f.func(), f"{w.name}/cond", nexts)[0])
    kinds, items = _classify(loop, flow, body, args, nexts)
    cond_init = graph.inline_function(cond_f.func(), f"{w.name}/cond_init", [canon(r) for r in w.inputs])[0]
    plan = LoopPlan(loop.name, kinds, args, [], body, cond, items=items)
    plan.nexts = {k: nexts[k] for k, kind in enumerate(kinds) if kind == "carried"}
    return plan, cond_init


# --- TF1 frames --------------------------------------------------------------------------
_INV = "\0invariant:"  # marks a ref to an outer value entering the frame unchanged (resolved later)


class _FrameCopier:
    """Copies the nodes of a TF1 frame that compute given refs into `dest` (names prefixed),
    with the loop variables read as given refs and the frame's invariant Enters marked."""

    def __init__(self, graph: Graph, loop: Loop, var_refs: dict[str, str], dest: Graph, prefix: str):
        self.g, self.loop, self.dest, self.prefix = graph, loop, dest, prefix
        self.var_refs = var_refs            # frame ref -> dest ref
        self.invariants: list[str] = []     # outer refs entering unchanged, in the order met
        self.copied: dict[str, str] = {}    # frame node -> dest node

    def map(self, r: str) -> str:
        c = canon(r)
        if c in self.var_refs:
            return self.var_refs[c]
        name, idx = split_ref(c)
        n = self.g.nodes.get(name)
        if n is None:
            raise UnsupportedError(f"while loop {self.loop.name!r}: reads missing node {name!r}")
        if n.op in ("Enter", "RefEnter") and self._own(n):
            const = n.attr("is_constant")
            if const is None or not const.b():
                raise UnsupportedError(f"while loop {self.loop.name!r}: Enter {name!r} is neither a loop variable "
                                       "nor a constant of the loop")
            outer = canon(n.inputs[0])
            if outer not in self.invariants:
                self.invariants.append(outer)
            return _INV + outer
        if n.op in _FRAME_OPS and (n.name == self.loop.node or ref(n.name) in self.loop.merges):
            raise UnsupportedError(f"while loop {self.loop.name!r}: node {name!r} ({n.op}) of the loop's own "
                                   "control flow is read as data")
        if name not in self.copied:
            self._copy(n)
        return ref(self.copied[name], idx)

    def _own(self, n: Node) -> bool:
        a = n.attr("frame_name")
        return a is not None and a.s() == self.loop.frame

    def _copy(self, start: Node) -> None:
        found, todo = [], [start]
        while todo:  # every node `start` depends on inside the frame (inner loops whole, cycles included)
            n = todo.pop()
            if n.name in self.copied:
                continue
            new = self.prefix + n.name
            self.copied[n.name] = new
            found.append(n)
            for r in n.inputs:
                c = canon(r)
                src = self.g.nodes.get(split_ref(c)[0])
                if c in self.var_refs or src is None or (src.op in ("Enter", "RefEnter") and self._own(src)):
                    continue
                todo.append(src)
            if len(self.copied) > len(self.g.nodes):
                raise UnsupportedError(f"while loop {self.loop.name!r}: its body does not end")
        for n in found:
            node = Node(self.copied[n.name], n.op, [], n.attrs, list(n.control))
            self.dest.nodes[node.name] = node
            self.dest._taken.add(node.name)  # noqa: SLF001 - the graph's own name registry
        for n in found:
            self.dest.nodes[self.copied[n.name]].inputs = [self.map(r) for r in n.inputs]

    def resolve(self, binding: dict[str, str], refs: list[str]) -> list[str]:
        """Replace invariant marks by `binding[outer ref]` in the copied nodes and in `refs`."""
        def fix(r: str) -> str:
            return binding[r[len(_INV):]] if r.startswith(_INV) else r

        for new in self.copied.values():
            node = self.dest.nodes[new]
            node.inputs = [fix(r) for r in node.inputs]
        return [fix(r) for r in refs]


def _tf1_plan(graph: Graph, loop: Loop, flow: Dataflow) -> tuple[LoopPlan, str, list[str]]:
    cond_node = graph.nodes[loop.node]
    body = Graph([], graph.functions)
    args = _arg_nodes(body, loop.name + "/while", len(loop.vars))
    inner = {}
    for k, v in enumerate(loop.vars):
        inner[canon(v.inner)] = ref(args[k])
        n = graph.nodes[split_ref(v.inner)[0]]
        if n.op not in ("Switch", "RefSwitch"):  # the Identity after Switch:1; the Switch itself too
            inner[canon(n.inputs[0])] = ref(args[k])
    copier = _FrameCopier(graph, loop, inner, body, "")
    nexts = [copier.map(v.next) for v in loop.vars]
    # the condition on the next values, in the body ...
    cond_copier = _FrameCopier(graph, loop, {canon(m): nexts[k] for k, m in enumerate(loop.merges)}, body,
                               f"{loop.name}/cond/")
    cond = cond_copier.map(cond_node.inputs[0])
    # ... and on the initial values, outside (an invariant there is its outer value itself)
    init_copier = _FrameCopier(graph, loop, {canon(m): canon(loop.vars[k].init) for k, m in enumerate(loop.merges)},
                               graph, f"{loop.name}/cond_init/")
    cond_init = init_copier.map(cond_node.inputs[0])
    cond_init = init_copier.resolve({o: o for o in init_copier.invariants}, [cond_init])[0]
    outer = list(dict.fromkeys(copier.invariants + cond_copier.invariants))
    extra = _arg_nodes(body, loop.name + "/while/invariant", len(outer))
    binding = {o: ref(a) for o, a in zip(outer, extra)}
    nexts = copier.resolve(binding, nexts)
    cond = cond_copier.resolve(binding, [cond])[0]
    kinds, items = _classify(loop, flow, body, args, nexts)
    plan = LoopPlan(loop.name, kinds, args, extra, body, cond, items=items)
    plan.copied = set(copier.copied)  # type: ignore[attr-defined]  (inner loops go with their outer one)
    plan.nexts = {k: nexts[k] for k, kind in enumerate(kinds) if kind == "carried"}
    return plan, cond_init, outer


# --- the rewrite -------------------------------------------------------------------------
def rewrite_loop(graph: Graph, loop: Loop, flow: Dataflow) -> Node:
    """Replace `loop` by a `_WhileLoop` node (in place); UnsupportedError if it cannot be."""
    tf2 = graph.nodes[loop.node].op in ("While", "StatelessWhile")
    if tf2:
        plan, cond_init = _tf2_plan(graph, loop, flow)
        outer_inv: list[str] = []
    else:
        plan, cond_init, outer_inv = _tf1_plan(graph, loop, flow)
        graph.nested_in_loops = getattr(graph, "nested_in_loops", set()) | plan.copied  # type: ignore[attr-defined]
    inputs = [cond_init] + [v.init for k, v in enumerate(loop.vars) if plan.kinds[k] != "scan"] + outer_inv
    name = loop.node if tf2 else f"{loop.node.rsplit('/', 1)[0]}/loop"
    while not tf2 and name in graph.nodes:
        name += "_"
    node = Node(name, WHILE_OP, inputs)
    node.plan = plan  # type: ignore[attr-defined]
    graph.nodes[name] = node
    if not tf2:
        for k, v in enumerate(loop.vars):
            if v.final is not None:
                fname = split_ref(v.final)[0]
                graph.nodes[fname] = Node(fname, "Identity", [ref(name, k)])
    return node
