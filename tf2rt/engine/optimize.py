"""Graph passes on the lowered ONNX model: identity elimination, constant folding, transpose
cancelling, merging of duplicate constants and nodes, dead-node removal.

Constant folding evaluates nodes with the reference interpreter's numpy op functions
(pure numpy; no backend is loaded), so folded values are exactly what the graph computed.

The passes rewrite the main graph only. Subgraphs (Loop and If bodies) are left as they
are, but what they read from outside counts as a use, and a renamed value is renamed in
them too (where a subgraph does not define that name itself).
"""

from __future__ import annotations

from typing import Any

# Do not fold ops whose result could be much larger than their inputs without bound.
_NO_FOLD = {"ConstantOfShape", "Expand", "Tile", "RandomNormal", "RandomUniform", "RandomNormalLike",
            "RandomUniformLike", "Multinomial"}
_MAX_FOLD_BYTES = 64 << 20


def subgraphs(node: Any) -> list[Any]:
    """The GraphProtos in a node's attributes (Loop body, If branches, Scan body)."""
    return [a.g for a in node.attribute if a.HasField("g")] + [g for a in node.attribute for g in a.graphs]


def nested_reads(graph: Any) -> set[str]:
    """Every value name read by a node of any subgraph of `graph`'s nodes (recursively): a
    superset of the outer values those subgraphs use."""
    reads: set[str] = set()
    stack = [g for node in graph.node for g in subgraphs(node)]
    while stack:
        g = stack.pop()
        for node in g.node:
            reads.update(n for n in node.input if n)
            stack.extend(subgraphs(node))
        reads.update(o.name for o in g.output)
    return reads


def _defines(graph: Any, name: str) -> bool:
    return (any(v.name == name for v in graph.input) or any(t.name == name for t in graph.initializer)
            or any(name in node.output for node in graph.node))


def _rename_many(graph: Any, mapping: dict[str, str]) -> None:
    """Readers of each key read its value, in `graph` and in the subgraphs that see the key
    (do not define it themselves)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in mapping:
                node.input[i] = mapping[name]
        for g in subgraphs(node):
            inner = {k: v for k, v in mapping.items() if not _defines(g, k)}
            if inner:
                _rename_many(g, inner)
                for o in g.output:  # a subgraph output may name an outer value directly
                    if o.name in inner:
                        o.name = inner[o.name]


def _rename_input(graph: Any, old: str, new: str) -> None:
    """Readers of `old` read `new`, in `graph` and in the subgraphs that see its `old`."""
    _rename_many(graph, {old: new})


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
        if node.op_type in _NO_FOLD or any(o in outputs for o in node.output) or subgraphs(node):
            continue  # a node with a subgraph reads more than its inputs, and may run long
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


# Ops that may give different results for equal inputs: never merged.
_NOT_MERGED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
_MAX_MERGED_INITIALIZER = 64 << 10  # bytes; larger constants are compared by nobody (duplicates are rare)
_INDEX_TYPES = {6, 7, 9}  # int32, int64, bool: shapes, axes, indices, masks




def merge_duplicates(model: Any) -> int:
    """Equal small int and scalar initializers become one, then nodes computing the same op on the same
    inputs with the same attributes become one (TF graphs compute shapes and zero states
    once per use); returns how many nodes were merged away."""
    graph = model.graph
    protected = {o.name for o in graph.output} | {i.name for i in graph.input}
    first: dict[tuple, str] = {}
    mapping: dict[str, str] = {}
    from onnx import numpy_helper

    for t in graph.initializer:
        if t.name in protected or t.ByteSize() > _MAX_MERGED_INITIALIZER or t.data_location == 1:  # 1: external
            continue
        if t.data_type not in _INDEX_TYPES and any(d != 1 for d in t.dims):
            continue  # weights stay per layer: later passes (int8, fp16) rewrite them per node
        key = (t.data_type, tuple(t.dims), numpy_helper.to_array(t).tobytes())
        if key in first:
            mapping[t.name] = first[key]
        else:
            first[key] = t.name
    if mapping:
        _rename_many(graph, mapping)
    merged, seen, mapping = 0, {}, {}
    for node in list(graph.node):
        ins = tuple(mapping.get(n, n) for n in node.input)
        if mapping:
            node.input[:] = list(ins)
        if node.op_type in _NOT_MERGED or subgraphs(node) or any(o in protected for o in node.output):
            continue
        key = (node.domain, node.op_type, ins, tuple(a.SerializeToString(deterministic=True) for a in node.attribute))
        if key not in seen:
            seen[key] = node
            continue
        for old, new in zip(node.output, seen[key].output):
            if old:
                mapping[old] = new
        graph.node.remove(node)
        merged += 1
    if mapping:
        _rename_many(graph, mapping)
    return merged


def remove_dead(model: Any) -> int:
    """Drop nodes whose outputs nobody uses and unused initializers; returns how many nodes went."""
    graph = model.graph
    removed = 0
    while True:
        used = {o.name for o in graph.output} | {n for node in graph.node for n in node.input} | nested_reads(graph)
        dead = [node for node in graph.node if not any(o in used for o in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
        removed += len(dead)
    used = {o.name for o in graph.output} | {n for node in graph.node for n in node.input} | nested_reads(graph)
    keep = [t for t in graph.initializer if t.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return removed


def optimize(model: Any) -> dict[str, int]:
    """Run every pass; returns counts per pass (recorded in the engine metadata)."""
    stats = {"identities_removed": eliminate_identities(model), "constants_folded": fold_constants(model),
             "transposes_cancelled": cancel_transposes(model), "duplicates_merged": merge_duplicates(model)}
    stats["dead_nodes_removed"] = remove_dead(model)
    return stats
