"""Precision conversion of a lowered ONNX model.

fp16 engines store every float weight as float16 and compute in float16, with three
exceptions: inputs and outputs stay float32 at the boundary (Cast nodes right after the
inputs and right before the outputs), and the recurrent ops (LSTM, GRU, RNN) compute in
float32 between Casts, because onnxruntime's CPU kernels for them are float32 only. Their
weights are still stored as float16 (rounded), so results differ from fp32 by fp16 rounding.
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


def to_fp16(model: Any) -> None:
    """Convert `model` (float32 throughout) to an fp16 engine in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    fixed = [fixed_float_inputs(node, opset) for node in graph.node]  # by node position
    # Initializers read only at float32-typed positions stay float32; the rest become float16.
    keep32 = set()
    uses: dict[str, list[bool]] = {}
    for pos, node in enumerate(graph.node):
        for k, name in enumerate(node.input):
            if name:
                uses.setdefault(name, []).append(k in fixed[pos])
    for name, flags in uses.items():
        if flags and all(flags):
            keep32.add(name)
    for i, t in enumerate(graph.initializer):
        if t.data_type == _FLOAT and t.name not in keep32:
            arr = numpy_helper.to_array(t)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(arr.astype(np.float16), t.name))

    new_nodes: list[Any] = []
    taken = {n for node in graph.node for n in list(node.input) + list(node.output)}
    taken |= {i.name for i in graph.input} | {t.name for t in graph.initializer}

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        return name

    # Boundary: float32 inputs are cast to float16 before any use.
    input_names = {i.name for i in graph.input}
    rename: dict[str, str] = {}
    for vi in graph.input:
        if vi.type.tensor_type.elem_type == _FLOAT:
            half = fresh(f"{vi.name}/fp16")
            rename[vi.name] = half
            new_nodes.append(helper.make_node("Cast", [vi.name], [half], name=f"{vi.name}/to_fp16", to=_FLOAT16))

    output_names = {o.name for o in graph.output if o.type.tensor_type.elem_type == _FLOAT}
    out_rename: dict[str, str] = {}
    for name in output_names:
        if name not in input_names:
            out_rename[name] = fresh(f"{name}/fp16")

    for pos, node in enumerate(graph.node):
        for k, name in enumerate(node.input):
            if name in rename:
                node.input[k] = rename[name]
            elif name in out_rename:
                node.input[k] = out_rename[name]
        for k, name in enumerate(node.output):
            if name in out_rename:
                node.output[k] = out_rename[name]
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == _FLOAT:
                    a.i = _FLOAT16
        for k in sorted(fixed[pos]):  # a float16 value at a float32-only position: cast it back
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

    for name, half in out_rename.items():
        new_nodes.append(helper.make_node("Cast", [half], [name], name=f"{name}/to_fp32", to=_FLOAT))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
