"""ONNX lowering of the control-flow layers (tf2rt.network.layers_control): Loop and If whose
bodies are the layer's sub-networks, lowered by the same registry into subgraphs.

Subgraph value names start with the layer's name and are unique in the whole model; body
weights are initializers of the main graph, read from the subgraph by outer-scope name
(external data, fp16 conversion and the file checks see them where they see every weight).
Values the body reads from outside (loop invariants, If inputs) are read by their outer
names directly (no node per iteration binds them).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .lowering import ONNX_DTYPES, LoweringContext, lowering, value_info


def _scalar(ctx: LoweringContext, layer: Any, index: int, dtype: str, what: str) -> str:
    """Input `index` of the layer as a rank-0 tensor of `dtype` (Loop's M and cond are scalars)."""
    t, name = layer.inputs[index], ctx.input(layer, index)
    if t.dtype != dtype:
        name = ctx.node1("Cast", [name], name=f"{layer.name}/{what}_{dtype}", to=ONNX_DTYPES[dtype])
    if t.rank:
        shape = ctx.const(np.zeros((0,), np.int64), f"{layer.name}/scalar_shape")
        name = ctx.node1("Reshape", [name, shape], name=f"{layer.name}/{what}_scalar")
    return name


def _bind(ctx: LoweringContext, sub: LoweringContext, layer: Any, pairs: Sequence[tuple[Any, int]]) -> None:
    """Body inputs that read outer values: the body reads the outer value name itself."""
    for body_input, index in pairs:
        sub.bind_outer(body_input, ctx.input(layer, index))


@lowering("loop")
def _loop(layer: Any, ctx: LoweringContext) -> None:
    nc, body = layer.num_carried, layer.body
    trip = _scalar(ctx, layer, 0, "int64", "trip_count") if layer.trip_count is not None else ""
    # Without a condition the loop starts; the body's condition output decides every later
    # iteration (what onnxruntime does with an empty cond input, made explicit).
    if layer.condition is not None:
        cond = _scalar(ctx, layer, 1, "bool", "condition")
    else:
        cond = ctx.const(np.array(True), f"{layer.name}/start")
    sub = ctx.child(body, f"{layer.name}/")
    ins = body.inputs
    cond_in = sub.fresh(f"{sub.prefix}condition_in")
    graph_inputs = [sub.value_info(ins[0]), value_info(sub._helper, cond_in, "bool", ())]
    graph_inputs += [sub.value_info(t) for t in ins[1:1 + nc]]
    _bind(ctx, sub, layer, [(t, 2 + nc + k) for k, t in enumerate(ins[1 + nc:])])
    graph = sub.subgraph(f"{ctx.prefix}{layer.name}/body", graph_inputs)
    carried = [ctx.input(layer, 2 + k) for k in range(nc)]
    outputs = [ctx.output(layer, i) for i in range(len(layer.outputs))]
    ctx.node("Loop", [trip, cond, *carried], outputs, name=layer.name, body=graph)


@lowering("if")
def _if(layer: Any, ctx: LoweringContext) -> None:
    graphs = {}
    for which, body in (("then", layer.then_body), ("else", layer.else_body)):
        sub = ctx.child(body, f"{layer.name}/{which}/")
        _bind(ctx, sub, layer, [(t, 1 + k) for k, t in enumerate(body.inputs)])
        graphs[which] = sub.subgraph(f"{ctx.prefix}{layer.name}/{which}", [])
    outputs = [ctx.output(layer, i) for i in range(len(layer.outputs))]
    ctx.node("If", [ctx.input(layer, 0)], outputs, name=layer.name, then_branch=graphs["then"],
             else_branch=graphs["else"])
