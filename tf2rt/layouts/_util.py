"""Small helpers shared by the converters (array coercion, per-gate slicing)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import ShapeError
from .gates import GateOrder, split_gates


def as_array(value: Any, what: str) -> np.ndarray:
    """A numpy array from an ndarray, a torch tensor or anything array-like."""
    if value is None:
        raise ShapeError(f"{what} is missing")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a TF eager tensor
        value = value.numpy()
    return np.asarray(value)


def expect_shape(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ShapeError(f"{what} has shape {tuple(array.shape)}, expected {tuple(shape)}")


def rows_per_gate(matrix: np.ndarray, order: GateOrder, what: str) -> dict[str, np.ndarray]:
    """Split a `[n*H, in]` matrix (W·x form) into contiguous per-gate `[H, in]` blocks."""
    return {g: np.ascontiguousarray(b) for g, b in split_gates(matrix, order, 0, what).items()}


def cols_per_gate_T(matrix: np.ndarray, order: GateOrder, what: str) -> dict[str, np.ndarray]:
    """Split a `[in, n*H]` matrix (x·K form) into per-gate row-major `[H, in]` blocks."""
    return {g: np.ascontiguousarray(b.T) for g, b in split_gates(matrix, order, 1, what).items()}


def vec_per_gate(vector: np.ndarray, order: GateOrder, what: str) -> dict[str, np.ndarray]:
    """Split a `[n*H]` bias into per-gate `[H]` blocks."""
    if vector.ndim != 1:
        raise ShapeError(f"{what} must be 1-D, got shape {tuple(vector.shape)}")
    return {g: np.ascontiguousarray(b) for g, b in split_gates(vector, order, 0, what).items()}


def stack_rows(blocks: Mapping[str, np.ndarray], order: GateOrder) -> np.ndarray:
    """`[H, in]` per-gate blocks -> one `[n*H, in]` matrix in `order`."""
    return np.concatenate([blocks[g] for g in order.gates], axis=0)


def stack_cols_T(blocks: Mapping[str, np.ndarray], order: GateOrder) -> np.ndarray:
    """`[H, in]` per-gate blocks -> one `[in, n*H]` (x·K) matrix in `order`."""
    return np.ascontiguousarray(np.concatenate([blocks[g].T for g in order.gates], axis=1))


def stack_vec(blocks: Mapping[str, np.ndarray], order: GateOrder) -> np.ndarray:
    return np.concatenate([blocks[g] for g in order.gates], axis=0)


def zeros_like_gates(blocks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {g: np.zeros_like(b) for g, b in blocks.items()}


def add_scalar(vector: np.ndarray, value: float) -> np.ndarray:
    """vector + value, keeping the vector's dtype (forget_bias folding)."""
    return (vector + np.asarray(value, dtype=vector.dtype)).astype(vector.dtype)
