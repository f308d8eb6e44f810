"""ONNX lowering of the convolutional layers (tf2rt.network.layers_cnn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .lowering import LoweringContext, lowering


def _pads(layer: Any) -> list[int]:
    """ONNX pads: all begins, then all ends."""
    return [int(p) for p in layer.pre_padding] + [int(p) for p in layer.post_padding]


@lowering("convolution")
def _convolution(layer: Any, ctx: LoweringContext) -> None:
    inputs = [ctx.input(layer, 0), ctx.weight(layer, "kernel", layer.kernel.astype(np.float32))]
    if layer.bias is not None:
        inputs.append(ctx.weight(layer, "bias", layer.bias.astype(np.float32)))
    ctx.node1("Conv", inputs, ctx.output(layer), name=layer.name, kernel_shape=list(layer.kernel_shape),
              strides=list(layer.stride_nd), dilations=list(layer.dilation_nd), pads=_pads(layer),
              group=int(layer.num_groups))


@lowering("pooling")
def _pooling(layer: Any, ctx: LoweringContext) -> None:
    common = dict(kernel_shape=list(layer.window_size), strides=list(layer.stride_nd), pads=_pads(layer))
    if layer.pooling_type == "max":
        ctx.node1("MaxPool", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name, **common)
    else:
        ctx.node1("AveragePool", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name,
                  count_include_pad=0 if layer.average_count_excludes_padding else 1, **common)


@lowering("padding")
def _padding(layer: Any, ctx: LoweringContext) -> None:
    pre, post = [int(p) for p in layer.pre_padding], [int(p) for p in layer.post_padding]
    pads = ctx.const(np.array([0, 0, *pre, 0, 0, *post], np.int64), f"{layer.name}/pads")
    ctx.node1("Pad", [ctx.input(layer, 0), pads], ctx.output(layer), name=layer.name, mode="constant")


@lowering("parametric_relu")
def _prelu(layer: Any, ctx: LoweringContext) -> None:
    slope = ctx.weight(layer, "slope", layer.slope.astype(np.float32))
    ctx.node1("PRelu", [ctx.input(layer, 0), slope], ctx.output(layer), name=layer.name)
