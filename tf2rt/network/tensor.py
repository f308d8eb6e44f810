"""Tensors of a Network: a name, a dtype and a shape (None = dynamic dimension)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..errors import ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from .layer import Layer

Shape = tuple[Optional[int], ...]

# The dtypes a network tensor may have, by their canonical names.
DTYPES: tuple[str, ...] = ("float32", "float16", "int32", "int64", "bool")
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float16")

_ALIASES = {
    "float": "float32", "fp32": "float32", "f32": "float32", "half": "float16", "fp16": "float16",
    "f16": "float16", "int": "int32", "i32": "int32", "i64": "int64", "long": "int64",
}


def normalize_dtype(dtype: Any) -> str:
    """Canonical dtype name for a string, numpy dtype or TensorRT-style enum name."""
    if isinstance(dtype, str):
        key = dtype.lower().rsplit(".", 1)[-1]  # accept "DataType.FLOAT" style names
        key = _ALIASES.get(key, key)
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            key = str(dtype)
    if key not in DTYPES:
        raise ShapeError(f"unsupported dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return key


def normalize_shape(shape: Sequence[Any], what: str) -> Shape:
    """A shape tuple with ints >= 0 and None (or -1) for dynamic dimensions."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what}: shape must be a sequence of ints, got {shape!r}") from None
    out: list[Optional[int]] = []
    for d in dims:
        if d is None or (isinstance(d, (int, np.integer)) and int(d) == -1):
            out.append(None)
        elif isinstance(d, (int, np.integer)) and int(d) >= 0:
            out.append(int(d))
        else:
            raise ShapeError(f"{what}: bad dimension {d!r} in shape {dims!r} (use ints >= 0, or None/-1 for dynamic)")
    return tuple(out)


def shape_str(shape: Shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


class Tensor:
    """A value flowing through a Network: produced by one layer (or a network input)."""

    def __init__(self, name: str, dtype: str, shape: Shape, producer: "Layer | None" = None, index: int = 0):
        self._name = name
        self.dtype = dtype
        self.shape = shape
        self.producer = producer
        self.index = index
        self.network: Any = None  # set by Network when the tensor is registered

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        if self.network is not None:
            self.network._rename_tensor(self, value)
        else:
            self._name = value

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_network_input(self) -> bool:
        return self.producer is None

    @property
    def is_network_output(self) -> bool:
        return self.network is not None and self in self.network._outputs

    def __repr__(self) -> str:
        return f"Tensor({self._name!r}, {self.dtype}, {shape_str(self.shape)})"
