"""Precision conversion of a lowered ONNX model.

fp16 engines store every float weight as float16 and compute in float16, with three
exceptions: inputs and outputs stay float32 at the boundary (Cast nodes right after the
inputs and right before the outputs), and the recurrent ops (LSTM, GRU, RNN) compute in
float32 between Casts, because onnxruntime's CPU kernels for them are float32 only. Their
weights are still stored as float16 (rounded), so results differ from fp32 by fp16 rounding.
Loop and If bodies compute in float16 like the main graph (their weights are main-graph
initializers, converted with the rest).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PRECISIONS = ("fp32", "fp16")
# Ops computed in float32 inside an fp16 engine; value = indices of their non-float inputs.
FP32_OPS: dict[str, tuple[int, ...]] = {"LSTM": (4,), "GRU": (4,), "RNN": (4,)}

_FLOAT, _FLOAT16 = 1, 10


def fixed_float_inputs(node: Any, opset: int) -> set[int]:
    """Input positions whose ONNX type is float32 whatever the op's T (e.g. Resize scales)."""
    from onnx import defs

    try:
        schema = defs.get_schema(node.op_type, opset, node.domain or "")
    except Exception:  # noqa: BLE001 - unknown op: nothing is fixed
        return set()
    formals = schema.inputs
    if not formals:
        return set()
    return {i for i in range(len(node.input)) if formals[min(i, len(formals) - 1)].type_str == "tensor(float)"}


def _graphs(graph: Any) -> list[Any]:
    """`graph` and every subgraph in it (Loop and If bodies, nested), outermost first."""
    from .optimize import subgraphs

    out, stack = [], [graph]
    while stack:
        g = stack.pop(0)
        out.append(g)
        stack.extend(sub for node in g.node for sub in subgraphs(node))
    return out


def _defined(graph: Any) -> set[str]:
    return ({v.name for v in graph.input} | {t.name for t in graph.initializer}
            | {o for node in graph.node for o in node.output})


def to_fp16(model: Any) -> None:
    """Convert `model` (float32 throughout) to an fp16 engine in place. Subgraphs (Loop and If
    bodies) are converted like the main graph: their float inputs and outputs become float16,
    so a loop carries float16 values and its weights are float16 initializers."""
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    graphs = _graphs(graph)
    fixed = [[fixed_float_inputs(node, opset) for node in g.node] for g in graphs]  # by graph, node position
    # Initializers read only at float32-typed positions stay float32; the rest become float16.
    uses: dict[str, list[bool]] = {}
    for g, g_fixed in zip(graphs, fixed):
        for node, node_fixed in zip(g.node, g_fixed):
            for k, name in enumerate(node.input):
                if name:
                    uses.setdefault(name, []).append(k in node_fixed)
    keep32 = {name for name, flags in uses.items() if flags and all(flags)}
    for g in graphs:
        for i, t in enumerate(g.initializer):
            if t.data_type == _FLOAT and t.name not in keep32:
                arr = numpy_helper.to_array(t)
                g.initializer[i].CopyFrom(numpy_helper.from_array(arr.astype(np.float16), t.name))

    taken: set[str] = set()
    for g in graphs:
        taken |= _defined(g) | {n for node in g.node for n in node.input} | {o.name for o in g.output}

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name

    # Boundary: float32 inputs are cast to float16 before any use.
    input_names = {i.name for i in graph.input}
    rename: dict[str, str] = {}
    head: list[Any] = []
    for vi in graph.input:
        if vi.type.tensor_type.elem_type == _FLOAT:
            half = fresh(f"{vi.name}/fp16")
            rename[vi.name] = half
            head.append(helper.make_node("Cast", [vi.name], [half], name=f"{vi.name}/to_fp16", to=_FLOAT16))
    # ... and float32 outputs are written as float16 and cast back at the end.
    out_rename = {o.name: fresh(f"{o.name}/fp16") for o in graph.output
                  if o.type.tensor_type.elem_type == _FLOAT and o.name not in input_names}
    reads = {**rename, **out_rename}
    # innermost first: rewriting a graph's node list copies its nodes, subgraphs included
    for g, g_fixed in reversed(list(zip(graphs, fixed))):
        sub = g is not graph
        local = _defined(g) if sub else set()  # a subgraph's own names shadow outer ones
        nodes = _convert_nodes(g, g_fixed, keep32, {k: v for k, v in reads.items() if k not in local},
                               {} if sub else out_rename, fresh)
        if sub:
            for vi in list(g.input) + list(g.output):
                if vi.type.tensor_type.elem_type == _FLOAT:
                    vi.type.tensor_type.elem_type = _FLOAT16
        else:
            nodes = head + nodes + [helper.make_node("Cast", [half], [name], name=f"{name}/to_fp32", to=_FLOAT)
                                    for name, half in out_rename.items()]
        del g.node[:]
        g.node.extend(nodes)
        del g.value_info[:]


def _convert_nodes(graph: Any, fixed: list[set[int]], keep32: set[str], reads: dict[str, str],
                   writes: dict[str, str], fresh: Any) -> list[Any]:
    """The graph's nodes computing in float16: inputs and outputs renamed per `reads` and
    `writes`, Casts to float32 retargeted, Casts around float32-only positions and ops."""
    from onnx import helper

    new_nodes: list[Any] = []
    for node, node_fixed in zip(graph.node, fixed):
        for k, name in enumerate(node.input):
            if name in reads:
                node.input[k] = reads[name]
        for k, name in enumerate(node.output):
            if name in writes:
                node.output[k] = writes[name]
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == _FLOAT:
                    a.i = _FLOAT16
        for k in sorted(node_fixed):  # a float16 value at a float32-only position: cast it back
            name = node.input[k]
            if name and name not in keep32:
                wide = fresh(f"{name}/fp32")
                new_nodes.append(helper.make_node("Cast", [name], [wide], name=fresh(f"{node.name}/in{k}_fp32"),
                                                  to=_FLOAT))
                node.input[k] = wide
        if node.op_type in FP32_OPS:
            skip = FP32_OPS[node.op_type]
            for k, name in enumerate(node.input):
                if name and k not in skip:
                    wide = fresh(f"{name}/fp32")
                    new_nodes.append(helper.make_node("Cast", [name], [wide], name=fresh(f"{node.name}/in{k}_fp32"),
                                                      to=_FLOAT))
                    node.input[k] = wide
            new_nodes.append(node)
            for k, name in enumerate(node.output):
                if name:
                    wide = fresh(f"{name}/fp32")
                    node.output[k] = wide
                    new_nodes.append(helper.make_node("Cast", [wide], [name], name=fresh(f"{node.name}/out{k}_fp16"),
                                                      to=_FLOAT16))
            continue
        new_nodes.append(node)
    return new_nodes
