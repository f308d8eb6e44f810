"""Select layer: element-wise choice between two tensors by a boolean condition (TensorRT's
ISelectLayer, ONNX Where), with numpy broadcasting of all three inputs."""

from __future__ import annotations

from typing import Any, Optional

from .layer import Layer, broadcast_shapes
from .network import Network, network_method
from .tensor import Shape, Tensor, shape_str


class SelectLayer(Layer):
    """out = then_input where condition else else_input."""

    type = "select"

    def __init__(self, condition: Tensor, then_input: Tensor, else_input: Tensor):
        super().__init__([condition, then_input, else_input])

    def infer(self) -> list[tuple[str, Shape]]:
        c, a, b = (self.input_tensor(i) for i in range(3))
        if c.dtype != "bool":
            raise self.error(f"condition {c.name} must be bool, got {c.dtype}")
        if a.dtype != b.dtype:
            raise self.error(f"{a.name}{shape_str(a.shape)} is {a.dtype} but {b.name} is {b.dtype}; add a cast layer")
        return [(a.dtype, broadcast_shapes(self, c.shape, a.shape, b.shape))]

    def attributes(self) -> dict[str, Any]:
        return {}


@network_method
def add_select(self: Network, condition: Tensor, then_input: Tensor, else_input: Tensor,
               name: Optional[str] = None) -> SelectLayer:
    """Element-wise `then_input if condition else else_input` (numpy broadcasting)."""
    return self.add_layer(SelectLayer(condition, then_input, else_input), name)  # type: ignore[return-value]
