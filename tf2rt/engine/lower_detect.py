"""ONNX lowering of the detection layers (tf2rt.network.layers_detect)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .lowering import ONNX_DTYPES, LoweringContext, lowering


@lowering("nms")
def _nms(layer: Any, ctx: LoweringContext) -> None:
    """NonMaxSuppression over a batch of one image and one class; the box column of its
    [K, 3] (image, class, box) result is the index list."""
    name = layer.name
    boxes = ctx.node1("Unsqueeze", [ctx.input(layer, 0), ctx.const(np.array([0], np.int64), f"{name}/axis0")],
                      name=f"{name}/boxes")
    scores = ctx.node1("Unsqueeze", [ctx.input(layer, 1), ctx.const(np.array([0, 1], np.int64), f"{name}/axes01")],
                       name=f"{name}/scores")
    inputs = [boxes, scores, ctx.const(np.array([layer.max_output_size], np.int64), f"{name}/max"),
              ctx.const(np.array([layer.iou_threshold], np.float32), f"{name}/iou")]
    if layer.score_threshold is not None:
        inputs.append(ctx.const(np.array([layer.score_threshold], np.float32), f"{name}/score"))
    sel = ctx.node1("NonMaxSuppression", inputs, name=f"{name}/select", center_point_box=0)
    col = ctx.node1("Gather", [sel, ctx.const(np.array([2], np.int64), f"{name}/column")], name=f"{name}/column",
                    axis=1)  # [K, 1]
    flat = ctx.node1("Squeeze", [col, ctx.const(np.array([1], np.int64), f"{name}/axis1")], name=f"{name}/indices")
    ctx.node1("Cast", [flat], ctx.output(layer), name=name, to=ONNX_DTYPES["int32"])


@lowering("nonzero")
def _nonzero(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("NonZero", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name)


@lowering("gather_nd")
def _gather_nd(layer: Any, ctx: LoweringContext) -> None:
    idx = ctx.node1("Cast", [ctx.input(layer, 1)], name=f"{layer.name}/indices_int64", to=ONNX_DTYPES["int64"])
    ctx.node1("GatherND", [ctx.input(layer, 0), idx], ctx.output(layer), name=layer.name)

