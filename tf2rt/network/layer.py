"""Layer base class: one layer type = a Layer subclass here + an ONNX lowering + reference ops.

A subclass sets `type` (the key the engine's lowering registry uses) and implements
`infer()`, returning the (dtype, shape) of each output; it raises through `self.error(...)`
so messages name the layer. See docs/network.md, "How to add a layer".
"""

from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from ..errors import ShapeError
from .tensor import Shape, Tensor, shape_str


class Layer:
    """A node of a Network: inputs, parameters, outputs (TensorRT's ILayer, in Python)."""

    type: ClassVar[str] = ""
    # Names of the outputs; a single-output layer's tensor is named after the layer itself.
    output_names: ClassVar[tuple[str, ...]] = ("output",)

    def __init__(self, inputs: Sequence[Optional[Tensor]]):
        self.name: str = ""
        self.inputs: list[Optional[Tensor]] = list(inputs)
        self.outputs: list[Tensor] = []
        self.network: Any = None

    # --- what subclasses implement -------------------------------------------------
    def infer(self) -> list[tuple[str, Shape]]:
        """(dtype, shape) of every output; raise self.error(...) when inputs do not fit."""
        raise NotImplementedError

    def check(self) -> None:
        """Checks that can only run at build time (e.g. every weight set)."""

    def weights(self) -> dict[str, np.ndarray]:
        """Named weight arrays this layer carries (used for naming and weight counts)."""
        return {}

    def attributes(self) -> dict[str, Any]:
        """Parameters shown by describe()/repr (JSON-friendly)."""
        return {}

    # --- TensorRT-style accessors ---------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> Optional[Tensor]:
        return self.inputs[index]

    def get_output(self, index: int) -> Tensor:
        if not 0 <= index < len(self.outputs):
            raise self.error(f"has {len(self.outputs)} output(s); there is no output {index}")
        return self.outputs[index]

    @property
    def output(self) -> Tensor:
        return self.outputs[0]

    def set_input(self, index: int, tensor: Tensor) -> None:
        self.inputs[index] = tensor
        self.reinfer()

    # --- helpers --------------------------------------------------------------------
    def error(self, message: str) -> ShapeError:
        return ShapeError(f"layer {self.name!r} ({self.type}): {message}")

    def input_tensor(self, index: int) -> Tensor:
        t = self.inputs[index]
        if t is None:
            raise self.error(f"input {index} is not set")
        return t

    def reinfer(self) -> None:
        """Re-run shape inference after a parameter change and update the output tensors."""
        if not self.outputs:  # not added to a network yet
            return
        for tensor, (dtype, shape) in zip(self.outputs, self.infer()):
            tensor.dtype, tensor.shape = dtype, shape

    def __repr__(self) -> str:
        ins = ", ".join(f"{t.name}{shape_str(t.shape)}" if t is not None else "-" for t in self.inputs)
        outs = ", ".join(f"{t.name}{shape_str(t.shape)}" for t in self.outputs)
        return f"<{type(self).__name__} {self.name!r}: ({ins}) -> ({outs})>"


def broadcast_shapes(layer: Layer, *shapes: Shape) -> Shape:
    """Numpy/ONNX multidirectional broadcasting, with None as an unknown dimension."""
    rank = max(len(s) for s in shapes)
    out: list[Optional[int]] = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise layer.error("shapes " + " and ".join(shape_str(s) for s in shapes) + " do not broadcast")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def norm_axis(layer: Layer, axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < max(rank, 1):
        raise layer.error(f"{what} {axis} is out of range for a rank-{rank} input")
    return axis % rank if rank else 0
