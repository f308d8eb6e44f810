"""Graph rewrites before lowering, for patterns whose shape arithmetic only makes sense at
run time.

`tf.tensordot` (what `tf.layers.dense` and Keras `Dense` put in a graph for inputs of rank
> 2) flattens its input to [prod(free dims), K], multiplies, and reshapes back with sizes
read from `Shape(x)` at run time. With a dynamic batch and time, the reshape back cannot be
written with static sizes; a product over the last axis needs no reshape at all, so the
whole pattern becomes one `_MatMulLastAxis(x, W)` node.
"""

from __future__ import annotations

import numpy as np

from .graphdef import Graph, Node, split_ref
from .tf_loops import Dataflow, ref, set_aside


def _gather_of_shape(flow: Dataflow, r: str) -> tuple[str, list[int]] | None:
    """(tensor, indices) when r is GatherV2(Shape(tensor), const indices, axis 0)."""
    g = flow.src_node(r)
    if g is None or g.op not in ("GatherV2", "Gather") or len(g.inputs) < 2:
        return None
    shape = flow.src_node(g.inputs[0])
    idx = flow.const(g.inputs[1])
    if shape is None or shape.op != "Shape" or idx is None:
        return None
    return flow.source(shape.inputs[0]), [int(i) for i in np.atleast_1d(idx)]


def _const_vector(flow: Dataflow, r: str) -> list[int] | None:
    """A constant int vector, also when written as ConcatV2 of constants (tensordot's perm)."""
    v = flow.const(r)
    if v is not None:
        return [int(i) for i in np.atleast_1d(v)]
    n = flow.src_node(r)
    if n is not None and n.op == "ConcatV2":
        parts = [flow.const(i) for i in n.inputs[:-1]]
        if all(p is not None for p in parts):
            return [int(i) for p in parts for i in np.atleast_1d(p)]
    return None


def fold_tensordot(graph: Graph) -> int:
    """Replace tensordot-over-the-last-axis patterns by `_MatMulLastAxis`; returns how many."""
    flow = Dataflow(graph)
    count = 0
    for out in [n for n in list(graph.nodes.values()) if n.op == "Reshape" and len(n.inputs) == 2]:
        mm = flow.src_node(out.inputs[0])
        cat = flow.src_node(out.inputs[1])
        if mm is None or mm.op != "MatMul" or cat is None or cat.op != "ConcatV2" or len(cat.inputs) != 3:
            continue
        if any(mm.attr(k) is not None and mm.attr(k).b() for k in ("transpose_a", "transpose_b")):
            continue
        free = _gather_of_shape(flow, cat.inputs[0])
        units = flow.const(cat.inputs[1])
        flat = flow.src_node(mm.inputs[0])
        if free is None or units is None or flat is None or flat.op != "Reshape":
            continue
        x, free_axes = free
        src = flow.src_node(flat.inputs[0])
        if src is not None and src.op == "Transpose":
            perm = _const_vector(flow, src.inputs[1])
            if perm is None or perm != list(range(len(free_axes) + 1)):
                continue  # contracting another axis than the last: leave it
            inner = flow.source(src.inputs[0])
        else:
            inner = flow.source(flat.inputs[0])
        if inner != x or free_axes != list(range(len(free_axes))):
            continue
        # the flattening ops are read by nobody now: never default outputs
        set_aside(graph, (split_ref(r)[0] for r in out.inputs))
        graph.nodes[out.name] = Node(out.name, "_MatMulLastAxis", [ref(*split_ref(x)), mm.inputs[1]])
        count += 1
    return count
