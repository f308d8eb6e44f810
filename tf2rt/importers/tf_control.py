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
from typing import Any

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
    # When the condition only bounds counters (counter < bound, and-ed; bounds the body only
    # reads): (counter variable, body ref of its bound, its value if a body constant) per term.
    # The loop then runs min(bounds) times with the counters taken from ONNX Loop's iteration
    # number, and neither the counters nor the condition are computed per iteration.
    trip: list[tuple[int, str, Any]] | None = None


def _counter_vars(loop: Loop, flow: Dataflow, body_flow: Dataflow, args: list[str],
                  nexts: list[str]) -> set[str]:
    """Body refs of variables that start at 0 and grow by 1 per iteration. The 1 may be a body
    constant or a value the loop passes through unchanged (autograph's range delta)."""
    def known(r: str):  # the value of a body ref fixed for the whole loop, if it is known
        c = body_flow.const(r)
        if c is not None:
            return c
        src = body_flow.source(r)
        for j, v in enumerate(loop.vars):
            if src == ref(args[j]) and body_flow.source(nexts[j]) == src:
                return flow.const(v.init)
        return None

    def is_one(r: str) -> bool:
        c = known(r)
        return c is not None and c.size == 1 and int(c.reshape(-1)[0]) == 1

    out = set()
    for k, v in enumerate(loop.vars):
        init = flow.const(v.init)
        if init is None or init.size != 1 or int(init.reshape(-1)[0]) != 0:
            continue
        n = body_flow.src_node(nexts[k])
        if n is None or n.op not in ("Add", "AddV2") or len(n.inputs) != 2:
            continue
        srcs = [body_flow.source(i) for i in n.inputs]
        arg = ref(args[k])
        if (srcs[0] == arg and is_one(n.inputs[1])) or (srcs[1] == arg and is_one(n.inputs[0])):
            out.add(arg)
    return out


def _classify(loop: Loop, bflow: Dataflow, args: list[str], nexts: list[str],
              counters: set[str]) -> tuple[list[str], dict]:
    """Kinds of the loop variables and the items of the scan ones (see module docstring)."""
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


def _trip_terms(plan: LoopPlan, bflow: Dataflow, nexts: list[str],
                counters: set[str]) -> list[tuple[int, str, Any]] | None:
    """The (counter, bound, constant bound) terms of a condition that only bounds counters
    (see LoopPlan.trip)."""
    by_next = {bflow.source(nexts[k]): k for k in range(len(nexts)) if ref(plan.args[k]) in counters}
    fixed = {ref(a) for a in plan.extra_args} | {ref(plan.args[k]) for k, kind in enumerate(plan.kinds)
                                                 if kind == "invariant"}
    terms: list[tuple[int, str, Any]] = []
    todo = [plan.cond]
    while todo:
        n = bflow.src_node(todo.pop())
        if n is None or len(terms) > 8:
            return None
        if n.op == "LogicalAnd" and len(n.inputs) == 2:
            todo.extend(n.inputs)
        elif n.op == "Less" and len(n.inputs) == 2 and bflow.source(n.inputs[0]) in by_next and \
                (bflow.source(n.inputs[1]) in fixed or bflow.const(n.inputs[1]) is not None):
            terms.append((by_next[bflow.source(n.inputs[0])], bflow.source(n.inputs[1]), bflow.const(n.inputs[1])))
        else:
            return None
    return terms or None


def _finish_plan(plan: LoopPlan, loop: Loop, flow: Dataflow, nexts: list[str]) -> LoopPlan:
    """Kinds, scan items, next values and trip terms of a plan whose body is built."""
    bflow = Dataflow(plan.body)
    counters = _counter_vars(loop, flow, bflow, plan.args, nexts)
    plan.kinds, plan.items = _classify(loop, bflow, plan.args, nexts, counters)
    plan.nexts = {k: nexts[k] for k, kind in enumerate(plan.kinds) if kind == "carried"}
    plan.trip = _trip_terms(plan, bflow, nexts, counters)
    return plan


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
    plan = _finish_plan(LoopPlan(loop.name, [], args, [], body, cond), loop, flow, nexts)
    cond_init = graph.inline_function(cond_f.func(), f"{w.name}/cond_init", [canon(r) for r in w.inputs])[0]
    return plan, cond_init


# --- TF1 frames --------------------------------------------------------------------------
_INV = "\0invariant:"  # marks a ref to an outer value entering the frame unchanged (resolved later)


_NODE_FIELDS = ("name", "op", "inputs", "attrs", "control")


class SubgraphCopier:
    """Copies the nodes of a part of `graph` (a loop frame, a cond branch) that compute given
    refs into `dest` (names prefixed). Refs in `var_refs` read given dest refs; values read from
    outside the part are marked, listed in `invariants` (outer refs, in the order met) and
    bound later (`resolve`). Subclasses say where the part ends (`outer`)."""

    what = "subgraph"

    def __init__(self, graph: Graph, var_refs: dict[str, str], dest: Graph, prefix: str):
        self.g, self.dest, self.prefix = graph, dest, prefix
        self.var_refs = var_refs            # part ref -> dest ref
        self.invariants: list[str] = []     # outer refs read, in the order met
        self.copied: dict[str, str] = {}    # part node -> dest node

    def outer(self, n: Node, r: str) -> str | None:
        """The outer ref that reading `r` (an output of `n`) stands for; None: `n` is copied."""
        return None

    def controls(self, n: Node) -> list[str]:
        """Control inputs of `n` copied with it (none: control edges are not followed)."""
        return []

    def map(self, r: str) -> str:
        c = canon(r)
        if c in self.var_refs:
            return self.var_refs[c]
        name, idx = split_ref(c)
        n = self.g.nodes.get(name)
        if n is None:
            raise UnsupportedError(f"{self.what}: reads missing node {name!r}")
        outer = self.outer(n, c)
        if outer is not None:
            if outer not in self.invariants:
                self.invariants.append(outer)
            return _INV + outer
        if name not in self.copied:
            self._copy(n)
        return ref(self.copied[name], idx)

    def _copy(self, start: Node) -> None:
        found, todo = [], [start]
        while todo:  # every node `start` depends on inside the part (inner loops whole, cycles included)
            n = todo.pop()
            if n.name in self.copied:
                continue
            new = self.prefix + n.name
            self.copied[n.name] = new
            found.append(n)
            for r in n.inputs + self.controls(n):
                c = canon(r)
                src = self.g.nodes.get(split_ref(c)[0])
                if c in self.var_refs or src is None or self.outer(src, c) is not None:
                    continue
                todo.append(src)
            if len(self.copied) > len(self.g.nodes):
                raise UnsupportedError(f"{self.what}: its body does not end")
        for n in found:
            node = Node(self.copied[n.name], n.op, [], n.attrs, list(n.control))
            node.__dict__.update({k: v for k, v in vars(n).items() if k not in _NODE_FIELDS})  # a rewrite's plan
            self.dest.nodes[node.name] = node
            self.dest._taken.add(node.name)  # noqa: SLF001 - the graph's own name registry
        for n in found:
            node = self.dest.nodes[self.copied[n.name]]
            node.inputs = [self.map(r) for r in n.inputs]
            kept = self.controls(n)
            if kept:
                node.control = [self.copied[c] for c in kept]

    def read_outside(self, refs: list[str]) -> set[str]:
        """The outer refs that computing `refs` (dest refs, before `resolve`) reads as data."""
        out: set[str] = set()
        seen: set[str] = set()
        todo = list(refs)
        while todo:
            r = todo.pop()
            if r.startswith(_INV):
                out.add(r[len(_INV):])
                continue
            name = split_ref(r)[0]
            if name not in seen and name in self.dest.nodes:
                seen.add(name)
                todo.extend(self.dest.nodes[name].inputs)
        return out

    def resolve(self, binding: dict[str, str], refs: list[str]) -> list[str]:
        """Replace invariant marks by `binding[outer ref]` in the copied nodes and in `refs`."""
        def fix(r: str) -> str:
            return binding[r[len(_INV):]] if r.startswith(_INV) else r

        for new in self.copied.values():
            node = self.dest.nodes[new]
            node.inputs = [fix(r) for r in node.inputs]
        return [fix(r) for r in refs]


class _FrameCopier(SubgraphCopier):
    """A TF1 frame: loop variables read as given refs, the frame's constant Enters as invariants."""

    def __init__(self, graph: Graph, loop: Loop, var_refs: dict[str, str], dest: Graph, prefix: str):
        super().__init__(graph, var_refs, dest, prefix)
        self.loop = loop
        self.what = f"while loop {loop.name!r}"

    def outer(self, n: Node, r: str) -> str | None:
        if n.op in ("Enter", "RefEnter") and self._own(n):
            const = n.attr("is_constant")
            if const is None or not const.b():
                raise UnsupportedError(f"{self.what}: Enter {n.name!r} is neither a loop variable "
                                       "nor a constant of the loop")
            return canon(n.inputs[0])
        if n.op in _FRAME_OPS and (n.name == self.loop.node or ref(n.name) in self.loop.merges):
            raise UnsupportedError(f"{self.what}: node {n.name!r} ({n.op}) of the loop's own "
                                   "control flow is read as data")
        return None

    def _own(self, n: Node) -> bool:
        a = n.attr("frame_name")
        return a is not None and a.s() == self.loop.frame


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
    plan = _finish_plan(LoopPlan(loop.name, [], args, extra, body, cond), loop, flow, nexts)
    plan.copied = set(copier.copied)  # type: ignore[attr-defined]  (inner loops go with their outer one)
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
