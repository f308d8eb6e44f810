"""TF1 conditionals (control flow v1 Switch/Merge, reference 3.4) rebuilt as one `_Cond` node
each, converted as an ONNX If by graphdef_ops_control.conditional.

`tf.cond(p, t, f)` leaves in the flat graph: `Switch(x, pred_id)` for every outer tensor x a
branch reads (the true branch reads output 1, the false branch output 0), a pivot
`Switch(p, p)` whose outputs anchor the branch constants by control edges, and one Merge per
result joining the two sides. A cond is found from its Switches (grouped by predicate); each
branch is what is reached from its side of them, up to the Merges that join both sides, and
is copied into a graph of its own (tf_control.SubgraphCopier) whose arguments are the outer
values it reads. A cond nested in a branch stays in that branch's graph and is rebuilt when
the branch is converted; a cond inside a while loop becomes a `_Cond` node that the loop
copies into its body.

A cond whose predicate is fixed at conversion (a constant, an `is_training`
PlaceholderWithDefault left at its default) outside any loop is left as it is: the Switch
handler folds it (graphdef_ops_seq.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .graphdef import MALFORMED, Graph, Node, split_ref
from .tf_control import SubgraphCopier, _arg_nodes
from .tf_loops import Dataflow, _is_training_only, canon, ref, set_aside

COND_OP = "_Cond"
_SWITCH = ("Switch", "RefSwitch")
_MERGE = ("Merge", "RefMerge")


@dataclass
class CondPlan:
    """What the `_Cond` node's handler needs; its inputs are [predicate] + the outer values
    bound to each branch's `args`, in order."""

    branches: list[tuple[Graph, list[str], list[str]]]  # (graph, args, result refs): when true, when false


@dataclass
class _Found:
    pred: str
    switches: list[Node]
    sides: tuple[set[str], set[str]] = (set(), set())  # node names of the false and the true branch
    merges: list[Node] = field(default_factory=list)


def fixed_condition(flow: Dataflow, r: str, keep: Any = ()) -> np.ndarray | None:
    """The value of a condition fixed at conversion: a constant, or a PlaceholderWithDefault
    (`is_training`) left at its default (not one the user names among the inputs, `keep`)."""
    src = flow.src_node(r)
    if src is not None and src.op == "PlaceholderWithDefault" and src.inputs:
        return None if src.name in keep else flow.const(src.inputs[0])
    return flow.const(r)


class _BranchCopier(SubgraphCopier):
    """One branch: its own nodes are copied (with the control edges between them, which keep
    nested conds' constants with their pivots); a Switch of the cond stands for the value it
    passes, anything else outside the branch is an outer value."""

    def __init__(self, graph: Graph, members: set[str], sides: dict[str, str], dest: Graph, what: str):
        super().__init__(graph, {}, dest, "")
        self.members, self.sides, self.what = members, sides, what

    def outer(self, n: Node, r: str) -> str | None:
        if r in self.sides:
            return self.sides[r]
        return None if n.name in self.members else r

    def controls(self, n: Node) -> list[str]:
        return [c for c in n.control if c in self.members]


# --- finding conds ---------------------------------------------------------------------------
def _readers(graph: Graph) -> dict[str, list[Node]]:
    """Node -> the nodes reading any of its outputs or depending on it by a control edge."""
    out: dict[str, list[Node]] = {}
    for n in graph.nodes.values():
        if _is_training_only(n):  # gradients of a cond read its branches but are never run
            continue
        for r in n.inputs:
            out.setdefault(split_ref(r)[0], []).append(n)
        for c in n.control:
            out.setdefault(c, []).append(n)
    return out


def _loop_merge(n: Node, flow: Dataflow) -> bool:
    """A while loop's Merge (of its Enter and NextIteration): it never joins two branches."""
    return any((flow.node(r) is not None and flow.node(r).op in ("NextIteration", "RefNextIteration"))
               for r in n.inputs)


def _switch_groups(graph: Graph, flow: Dataflow) -> list[_Found]:
    """Switches that are not a while loop's, one group per cond: data switches by their
    predicate (the cond's `pred_id`), each pivot with the data switches of its scope."""
    by_pred: dict[str, list[Node]] = {}
    pivots = []
    for n in graph.nodes.values():
        if n.op not in _SWITCH or len(n.inputs) != 2 or _is_training_only(n):
            continue
        src = flow.src_node(n.inputs[1])
        if src is not None and src.op == "LoopCond":
            continue
        if canon(n.inputs[0]) == canon(n.inputs[1]):
            pivots.append(n)
        else:
            by_pred.setdefault(canon(n.inputs[1]), []).append(n)
    pred_ids = {}  # (predicate, scope) -> a data switches' pred_id = Identity(predicate)
    for k in by_pred:
        node = graph.nodes.get(split_ref(k)[0])
        if node is not None and node.op == "Identity" and node.inputs:
            pred_ids[(canon(node.inputs[0]), node.name.rpartition("/")[0])] = k
    for pv in pivots:
        p = canon(pv.inputs[0])
        by_pred.setdefault(pred_ids.get((p, pv.name.rpartition("/")[0]), p), []).append(pv)
    return [_Found(p, part) for p, sw in by_pred.items() for part in _by_scope(sw)]


def _by_scope(switches: list[Node]) -> list[list[Node]]:
    """Switches of one predicate tensor, one list per cond. Each cond has one pivot; several
    share a predicate when a graph tool removed their pred_ids, and then only their name scopes
    (`cond_1/...`) tell them apart: each switch goes with the pivot of its innermost scope."""
    pivots = [s for s in switches if canon(s.inputs[0]) == canon(s.inputs[1])]
    if len(pivots) < 2:
        return [switches]
    scopes = sorted((pv.name.rpartition("/")[0] + "/" for pv in pivots), key=len, reverse=True)
    parts: dict[str, list[Node]] = {}
    for s in switches:
        parts.setdefault(next((sc for sc in scopes if s.name.startswith(sc)), ""), []).append(s)
    return list(parts.values())


def _branches(found: _Found, flow: Dataflow, readers: dict[str, list[Node]]) -> None:
    """The nodes of each branch and the Merges that join them (see module docstring). A Merge
    blocks the search until its inputs are placed: all on one side, it is inside that branch
    (a nested cond's); one on each side, it is one of this cond's results."""
    side_refs = {ref(s.name, b): b for s in found.switches for b in (0, 1)}
    reach: tuple[set[str], set[str]] = (set(), set())
    blocked: tuple[dict[str, Node], dict[str, Node]] = ({}, {})

    def side_of(r: str) -> int | None:
        c = canon(r)
        if c in side_refs:
            return side_refs[c]
        name = split_ref(c)[0]
        inside = [b for b in (0, 1) if name in reach[b]]
        return inside[0] if len(inside) == 1 else None

    def walk(b: int, todo: list[Node]) -> None:
        while todo:
            n = todo.pop()
            if n.name in reach[b]:
                continue
            reach[b].add(n.name)
            if n.op in _MERGE and not _loop_merge(n, flow):
                blocked[b][n.name] = n
                continue
            todo.extend(readers.get(n.name, ()))

    for b in (0, 1):
        walk(b, [u for s in found.switches for u, _ in flow.users_of.get(ref(s.name, b), [])])
    changed = True
    while changed:
        changed = False
        for b in (0, 1):
            for name, m in list(blocked[b].items()):
                if {side_of(r) for r in m.inputs} == {b}:  # a Merge inside this branch
                    del blocked[b][name]
                    walk(b, list(readers.get(name, ())))
                    changed = True
    found.merges = [m for name, m in blocked[1].items() if name in blocked[0]
                    and sorted(side_of(r) for r in m.inputs) == [0, 1]]
    ours = {m.name for m in found.merges}
    found.sides = (reach[0] - ours, reach[1] - ours)
    if found.sides[0] & found.sides[1]:
        raise UnsupportedError(f"tf.cond on {found.pred!r}: its branches share nodes "
                               f"({', '.join(sorted(found.sides[0] & found.sides[1])[:3])})")


def _in_frames(graph: Graph, readers: dict[str, list[Node]]) -> set[str]:
    """Nodes inside a TF1 while loop (reached from an Enter without leaving by an Exit)."""
    seen: set[str] = set()
    todo = [n for n in graph.nodes.values() if n.op in ("Enter", "RefEnter")]
    while todo:
        n = todo.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op not in ("Exit", "RefExit"):
            todo.extend(readers.get(n.name, ()))
    return seen


# --- the rewrite -------------------------------------------------------------------------------
def _plan(graph: Graph, found: _Found, name: str) -> tuple[CondPlan, list[str]]:
    """Both branches copied into graphs of their own; the outer values either reads (the If's inputs)."""
    copies = []
    for b in (1, 0):
        dest = Graph([], graph.functions)
        sides = {ref(s.name, b): canon(s.inputs[0]) for s in found.switches}
        cp = _BranchCopier(graph, found.sides[b], sides, dest, f"tf.cond {name!r}")
        roots = [cp.map(next(r for r in m.inputs if canon(r) in sides or split_ref(r)[0] in found.sides[b]))
                 for m in found.merges]
        copies.append((cp, dest, roots))
    read = set().union(*(cp.read_outside(roots) for cp, _, roots in copies))
    outer = [o for o in dict.fromkeys(copies[0][0].invariants + copies[1][0].invariants) if o in read]
    branches = []
    for (cp, dest, roots), which in zip(copies, ("then", "else")):
        args = _arg_nodes(dest, f"{name}/{which}", len(outer) + 1)  # the last: outer values no result needs
        binding = {o: ref(a) for o, a in zip(outer, args)}
        binding.update({o: ref(args[-1]) for o in cp.invariants if o not in binding})
        branches.append((dest, args[:-1], cp.resolve(binding, roots)))
    return CondPlan(branches), outer


def _name(graph: Graph, found: _Found) -> str:
    base = found.merges[0].name.rpartition("/")[0] or "cond"
    name, i = base, 1
    while name in graph.nodes or name in graph._taken:  # noqa: SLF001 - the graph's own name registry
        name, i = f"{base}_{i}", i + 1
    graph._taken.add(name)  # noqa: SLF001
    return name


def rewrite_conditionals(graph: Graph, keep: Any = ()) -> int:
    """Replace every outermost TF1 cond of `graph` by a `_Cond` node (in place), but those
    fixed at conversion outside loops (see module docstring); returns how many. A cond that
    cannot be rebuilt keeps its Switches, whose handler names the reason (`graph.cond_errors`)."""
    flow = Dataflow(graph)
    groups = _switch_groups(graph, flow)
    if not groups:
        return 0
    readers = _readers(graph)
    errors = graph.__dict__.setdefault("cond_errors", {})
    conds = []
    frames: set[str] | None = None
    for found in groups:
        if fixed_condition(flow, found.pred, keep) is not None:
            frames = _in_frames(graph, readers) if frames is None else frames
            if not any(s.name in frames for s in found.switches):
                continue  # folded by the Switch handler, as the predicate says
        try:
            _branches(found, flow, readers)
        except (UnsupportedError, *MALFORMED) as exc:
            errors.update({s.name: str(exc) for s in found.switches})
            continue
        if found.merges:
            conds.append(found)
    inner = set().union(*(f.sides[0] | f.sides[1] for f in conds)) if conds else set()
    done = 0
    for found in conds:
        if any(s.name in inner for s in found.switches):
            continue  # nested in another cond's branch: rebuilt with that branch
        name = _name(graph, found)
        try:
            plan, outer = _plan(graph, found, name)
        except (UnsupportedError, *MALFORMED) as exc:
            errors.update({s.name: str(exc) for s in found.switches})
            continue
        node = Node(name, COND_OP, [found.pred] + outer)
        node.plan = plan  # type: ignore[attr-defined]
        graph.nodes[name] = node
        for k, m in enumerate(found.merges):  # readers of a Merge now read the conditional's result
            graph.nodes[m.name] = Node(m.name, "IdentityN", [ref(name, k)])
        set_aside(graph, found.sides[0] | found.sides[1])
        graph.__dict__.setdefault("cond_branch_nodes", set()).update(found.sides[0] | found.sides[1])
        done += 1
    return done
