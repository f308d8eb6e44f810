"""ONNX lowering of the resize layer (tf2rt.network.layers_resize): one Resize node, its output
shape a constant or the layer's run-time shape tensor (as int64 `sizes`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .lowering import ONNX_DTYPES, LoweringContext, lowering

_NEAREST_MODES = {"floor": "floor", "half_up": "round_prefer_ceil", "half_down": "round_prefer_floor",
                  "ceil": "ceil"}


def _constant_node(ctx: LoweringContext, array: np.ndarray, hint: str) -> str:
    """A Constant node, not an initializer: ONNX shape inference reads the value of a Constant of
    its own graph, but not of an initializer of an enclosing graph (a loop body reads those)."""
    from onnx import numpy_helper

    return ctx.node1("Constant", [], name=hint, value=numpy_helper.from_array(array, hint))


@lowering("resize")
def _resize(layer: Any, ctx: LoweringContext) -> None:
    if layer.num_inputs > 1:
        sizes = ctx.input(layer, 1)
        if layer.inputs[1].dtype != "int64":
            sizes = ctx.node1("Cast", [sizes], name=f"{layer.name}/sizes", to=ONNX_DTYPES["int64"])
        # Resize's shape inference needs the length of `sizes`, which a reshape by an outer
        # constant (as in a loop body) leaves unknown: restate it
        length = _constant_node(ctx, np.array([layer.inputs[0].rank], np.int64), f"{layer.name}/rank")
        sizes = ctx.node1("Reshape", [sizes, length], name=f"{layer.name}/sizes_shaped")
    else:
        sizes = _constant_node(ctx, np.array(layer.shape, np.int64), f"{layer.name}/sizes")
    attrs: dict[str, Any] = {"mode": layer.resize_mode,
                             "coordinate_transformation_mode": layer.coordinate_transformation}
    if layer.resize_mode == "nearest":
        attrs["nearest_mode"] = _NEAREST_MODES[layer.nearest_rounding]
    ctx.node1("Resize", [ctx.input(layer, 0), "", "", sizes], ctx.output(layer), name=layer.name, **attrs)
