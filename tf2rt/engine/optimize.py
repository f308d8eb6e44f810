"""Graph passes on the lowered ONNX model: identity elimination, constant folding, dead-node removal.

Constant folding evaluates nodes with the reference interpreter's numpy op functions
(pure numpy; no backend is loaded), so folded values are exactly what the graph computed.
"""

from __future__ import annotations

from typing import Any

# Do not fold ops whose result could be much larger than their inputs without bound.
_NO_FOLD = {"ConstantOfShape", "Expand", "Tile", "RandomNormal", "RandomUniform", "RandomNormalLike",
            "RandomUniformLike", "Multinomial"}
_MAX_FOLD_BYTES = 64 << 20


def _consumers(graph: Any) -> dict[str, list[Any]]:
    uses: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            if name:
                uses.setdefault(name, []).append(node)
    return uses


def _rename_input(graph: Any, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def eliminate_identities(model: Any) -> int:
    """Remove Identity nodes (rewiring consumers); returns how many were removed."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    inputs = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    removed = 0
    for node in list(graph.node):
        if node.op_type != "Identity":
            continue
        src, dst = node.input[0], node.output[0]
        if dst not in outputs:
            _rename_input(graph, dst, src)
        elif src not in inputs and src not in outputs:
            # The identity feeds a graph output: let the producer write the output name directly.
            producer = next((n for n in graph.node if src in n.output), None)
            if producer is None:
                continue
            producer.output[list(producer.output).index(src)] = dst
            _rename_input(graph, src, dst)
        else:
            continue
        graph.node.remove(node)
        removed += 1
    return removed


def fold_constants(model: Any) -> int:
    """Replace nodes whose inputs are all initializers by initializers; returns how many folded."""
    from onnx import numpy_helper

    from ..backends.reference.interpreter import evaluate_node

    graph = model.graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    folded = 0
    for node in list(graph.node):
        if node.op_type in _NO_FOLD or any(o in outputs for o in node.output):
            continue
        if not all((not n) or n in values for n in node.input):
            continue
        try:
            results = evaluate_node(node, [values[n] if n else None for n in node.input])
        except Exception:  # noqa: BLE001 - an op the interpreter lacks is simply left in the graph
            continue
        if sum(r.nbytes for r in results) > _MAX_FOLD_BYTES:
            continue
        for name, arr in zip(node.output, results):
            if name:
                values[name] = arr
                graph.initializer.append(numpy_helper.from_array(arr, name))
        graph.node.remove(node)
        folded += 1
    return folded


def _perm_of(node: Any) -> list[int] | None:
    for a in node.attribute:
        if a.name == "perm":
            return list(a.ints)
    return None


def cancel_transposes(model: Any) -> int:
    """Transpose(Transpose(x, p), q): readers of the second read x when the two undo each
    other, else one Transpose with the composed permutation; returns how many were bypassed.
    (Importers put layout changes on both sides of recurrent and image ops; pairs meet.)"""
    from onnx import helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output}
    changed = 0
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.output[0] in outputs:
            continue
        first = producer.get(node.input[0])
        if first is None or first.op_type != "Transpose":
            continue
        p, q = _perm_of(first), _perm_of(node)
        if p is None or q is None or len(p) != len(q):
            continue
        composed = [p[i] for i in q]
        if composed == list(range(len(p))):
            _rename_input(graph, node.output[0], first.input[0])
        else:
            repl = helper.make_node("Transpose", [first.input[0]], [node.output[0]], name=node.name, perm=composed)
            graph.node.insert(list(graph.node).index(node), repl)
            producer[node.output[0]] = repl
        graph.node.remove(node)
        changed += 1
    return changed


def remove_dead(model: Any) -> int:
    """Drop nodes whose outputs nobody uses and unused initializers; returns how many nodes went."""
    graph = model.graph
    removed = 0
    while True:
        used = {o.name for o in graph.output} | {n for node in graph.node for n in node.input}
        dead = [node for node in graph.node if not any(o in used for o in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    used = {o.name for o in graph.output} | {n for node in graph.node for n in node.input}
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def optimize(model: Any) -> dict[str, int]:
    """Run every pass; returns counts per pass (recorded in the engine metadata)."""
    stats = {"identities_removed": eliminate_identities(model), "constants_folded": fold_constants(model),
             "transposes_cancelled": cancel_transposes(model)}
    stats["dead_nodes_removed"] = remove_dead(model)
    return stats
