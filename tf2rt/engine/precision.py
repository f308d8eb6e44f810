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


def to_fp16(model: Any) -> None:
    """Convert `model` (float32 throughout) to an fp16 engine in place."""
    from onnx import helper, numpy_helper

    graph = model.graph
    for i, t in enumerate(graph.initializer):
        if t.data_type == _FLOAT:
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

    for node in graph.node:
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
