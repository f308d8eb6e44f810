"""Resize (TensorRT's IResizeLayer): a tensor resampled to a new shape, nearest or linear, with
the coordinate rule TensorFlow's align_corners / half_pixel_centers ask for. The output shape is
fixed when building (`shape`) or held by a 1-D int tensor computed at run time
(`set_input(1, shape_tensor)`, as TensorRT takes it), e.g. an image pyramid's level sizes.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .layer import Layer
from .layers_core import _canon
from .network import Network, network_method
from .tensor import FLOAT_DTYPES, Shape, Tensor, shape_str

RESIZE_MODES = ("nearest", "linear")
# where output index i samples the input: asymmetric i / s, align_corners i (n_in - 1) / (n_out - 1),
# half_pixel (i + 0.5) / s - 0.5 (s = n_out / n_in), as ONNX Resize names them
COORDINATE_TRANSFORMATIONS = ("asymmetric", "align_corners", "half_pixel")
# how nearest mode rounds a sample position: floor, half_up (round_prefer_ceil), half_down, ceil
NEAREST_ROUNDINGS = ("floor", "half_up", "half_down", "ceil")


class ResizeLayer(Layer):
    """Input 0 resized to `shape` (None: known at run time only, from input 1, a 1-D int tensor
    holding the whole output shape)."""

    type = "resize"

    def __init__(self, x: Tensor, shape: Sequence[Optional[int]], shape_tensor: Optional[Tensor] = None):
        super().__init__([x] if shape_tensor is None else [x, shape_tensor])
        self.shape = tuple(None if d is None or d < 0 else int(d) for d in shape)
        self.resize_mode = "nearest"
        self.coordinate_transformation = "asymmetric"
        self.nearest_rounding = "floor"

    def set_input(self, index: int, tensor: Tensor) -> None:
        if index == 1 and len(self.inputs) == 1:
            self.inputs.append(tensor)
        super().set_input(index, tensor)

    def __setattr__(self, key: str, value: Any) -> None:
        choices = {"resize_mode": RESIZE_MODES, "coordinate_transformation": COORDINATE_TRANSFORMATIONS,
                   "nearest_rounding": NEAREST_ROUNDINGS}.get(key)
        if choices is not None:
            value = _canon(key, value, {c: c for c in choices})
        super().__setattr__(key, value)
        if choices is not None and getattr(self, "outputs", None):
            self.reinfer()

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if len(self.shape) != x.rank:
            raise self.error(f"shape {list(self.shape)} does not have the rank of {x.name}{shape_str(x.shape)}")
        if self.resize_mode == "linear" and x.dtype not in FLOAT_DTYPES:
            raise self.error(f"linear resize needs a float input, {x.name} is {x.dtype}")
        if len(self.inputs) > 1:
            s = self.input_tensor(1)
            if s.rank != 1 or s.dtype not in ("int32", "int64") or s.shape[0] not in (None, x.rank):
                raise self.error(f"shape tensor {s.name}{shape_str(s.shape)} must be a 1-D int tensor of "
                                 f"{x.rank} sizes")
        elif any(d is None or d < 1 for d in self.shape):
            raise self.error(f"shape {list(self.shape)} has unknown or empty sizes and no shape tensor gives them")
        return [(x.dtype, self.shape)]

    def attributes(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "resize_mode": self.resize_mode,
                "coordinate_transformation": self.coordinate_transformation,
                "nearest_rounding": self.nearest_rounding}


@network_method
def add_resize(self: Network, input: Tensor, shape: Sequence[Optional[int]], shape_tensor: Optional[Tensor] = None,
               name: Optional[str] = None) -> ResizeLayer:
    """Resize `input` to `shape` (sizes known when building; None where `shape_tensor`, a 1-D int
    tensor of the whole output shape, gives the size at run time). Set resize_mode,
    coordinate_transformation and nearest_rounding on the returned layer."""
    return self.add_layer(ResizeLayer(input, shape, shape_tensor), name)  # type: ignore[return-value]
