"""TensorRT's NvUtils buffer helpers (removed in TensorRT 10), on flat numpy buffers.

The C++ functions work in place on raw memory; these return new arrays and never modify
their input. Sizes are ELEMENT counts, not bytes: NvUtils documents `reorderSubBuffers`'
size "in bytes" while its own example passes an element count; here there is one unit.

* `reshape_weights(buf, shape, order)` = `numpy.transpose(buf.reshape(shape), order)`:
  output dim k has size `shape[order[k]]`.
* `reorder_sub_buffers(buf, order, num, size)`: `num` chunks of `size` elements; chunk k of
  the input moves to position `order[k]` (scatter). This is the direction TensorRT's own
  legacy sampleCharRNN relies on: `order = {1, 2, 0, 3}` turns TF's i, c, f, o chunks into
  the legacy layer's f, i, c, o. `gather=True` gives the other reading
  (output chunk k = input chunk `order[k]`).
* `transpose_sub_buffers(buf, num, height, width)`: each of `num` chunks of
  `height * width` elements, read as row-major `[height, width]`, becomes row-major
  `[width, height]`.
Elements after the last chunk are copied unchanged, as the in-place originals leave them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ShapeError


def _flat(buf: Any, what: str) -> np.ndarray:
    a = np.asarray(buf)
    if a.ndim != 1:
        a = a.reshape(-1)
    return a


def reshape_weights(buf: Any, shape: Sequence[int], order: Sequence[int]) -> np.ndarray:
    """Dimension-permuted copy of `buf` read as row-major `shape` (C-contiguous, shape permuted)."""
    a = _flat(buf, "buffer")
    shape = tuple(int(s) for s in shape)
    order = tuple(int(o) for o in order)
    if sorted(order) != list(range(len(shape))):
        raise ShapeError(f"reshape_weights: order {order} is not a permutation of {len(shape)} dimensions")
    if int(np.prod(shape, dtype=np.int64)) != a.size:
        raise ShapeError(f"reshape_weights: buffer has {a.size} elements, shape {shape} needs {int(np.prod(shape))}")
    return np.ascontiguousarray(np.transpose(a.reshape(shape), order))


def reorder_sub_buffers(buf: Any, order: Sequence[int], num: int, size: int, *, gather: bool = False) -> np.ndarray:
    """Permute the first `num` chunks of `size` elements (chunk k -> position order[k])."""
    a = _flat(buf, "buffer")
    order = [int(o) for o in order]
    if sorted(order) != list(range(num)):
        raise ShapeError(f"reorder_sub_buffers: order {order} is not a permutation of {num} chunks")
    if size <= 0 or num * size > a.size:
        raise ShapeError(f"reorder_sub_buffers: {num} chunks of {size} elements do not fit a buffer of {a.size}")
    out = a.copy()
    chunks = a[: num * size].reshape(num, size)
    body = out[: num * size].reshape(num, size)
    if gather:
        body[:] = chunks[order]
    else:
        body[order] = chunks
    return out


def transpose_sub_buffers(buf: Any, num: int, height: int, width: int) -> np.ndarray:
    """Transpose each of the first `num` row-major `[height, width]` chunks to `[width, height]`."""
    a = _flat(buf, "buffer")
    n = num * height * width
    if min(num, height, width) <= 0 or n > a.size:
        raise ShapeError(
            f"transpose_sub_buffers: {num} chunks of {height}x{width} do not fit a buffer of {a.size}"
        )
    out = a.copy()
    out[:n] = a[:n].reshape(num, height, width).transpose(0, 2, 1).reshape(-1)
    return out
