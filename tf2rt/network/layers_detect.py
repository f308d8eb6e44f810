"""Detection layers: non-maximum suppression (TensorRT's INMSLayer, ONNX NonMaxSuppression)
for one image's boxes and scores, with TensorFlow's selection rule."""

from __future__ import annotations

from typing import Any, Optional

from .layer import Layer
from .network import Network, network_method
from .tensor import FLOAT_DTYPES, Shape, Tensor, shape_str


class NMSLayer(Layer):
    """Indices (int32, [K], K <= max_output_size) of the boxes kept, highest score first: a box
    is dropped when its score is not above `score_threshold`, or when its IoU with a box kept
    before it is above `iou_threshold`. Boxes are [N, 4] corner pairs (y1, x1, y2, x2), in any
    corner order; scores [N]."""

    type = "nms"

    def __init__(self, boxes: Tensor, scores: Tensor, max_output_size: int, iou_threshold: float,
                 score_threshold: Optional[float]):
        super().__init__([boxes, scores])
        self.max_output_size = int(max_output_size)
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = None if score_threshold is None else float(score_threshold)

    def infer(self) -> list[tuple[str, Shape]]:
        b, s = self.input_tensor(0), self.input_tensor(1)
        if b.rank != 2 or b.shape[1] not in (4, None) or s.rank != 1:
            raise self.error(f"boxes {b.name}{shape_str(b.shape)} must be [N, 4] and scores "
                             f"{s.name}{shape_str(s.shape)} [N]")
        if b.dtype not in FLOAT_DTYPES or s.dtype not in FLOAT_DTYPES:
            raise self.error("boxes and scores must be float tensors")
        if self.max_output_size < 0 or not 0.0 <= self.iou_threshold <= 1.0:
            raise self.error(f"max_output_size {self.max_output_size} and iou_threshold {self.iou_threshold} "
                             "must be >= 0 and in [0, 1]")
        return [("int32", (None,))]

    def attributes(self) -> dict[str, Any]:
        return {"max_output_size": self.max_output_size, "iou_threshold": self.iou_threshold,
                "score_threshold": self.score_threshold}


@network_method
def add_non_max_suppression(self: Network, boxes: Tensor, scores: Tensor, max_output_size: int,
                            iou_threshold: float = 0.5, score_threshold: Optional[float] = None,
                            name: Optional[str] = None) -> NMSLayer:
    """Indices of the boxes non-maximum suppression keeps, highest score first (see NMSLayer)."""
    return self.add_layer(NMSLayer(boxes, scores, max_output_size, iou_threshold, score_threshold),
                          name)  # type: ignore[return-value]


class NonZeroLayer(Layer):
    """Indices of the non-zero (true) elements, int64 [rank, K] (ONNX NonZero; TF's Where is
    its transpose)."""

    type = "nonzero"

    def __init__(self, x: Tensor):
        super().__init__([x])

    def infer(self) -> list[tuple[str, Shape]]:
        return [("int64", (self.input_tensor(0).rank, None))]

    def attributes(self) -> dict[str, Any]:
        return {}


class GatherNDLayer(Layer):
    """data[indices[..., :]]: indices [..., k] pick slices of data's first k dims (ONNX GatherND)."""

    type = "gather_nd"

    def __init__(self, data: Tensor, indices: Tensor):
        super().__init__([data, indices])

    def infer(self) -> list[tuple[str, Shape]]:
        d, i = self.input_tensor(0), self.input_tensor(1)
        k = i.shape[-1] if i.rank else None
        if i.dtype not in ("int32", "int64") or k is None or k > d.rank:
            raise self.error(f"indices {i.name}{shape_str(i.shape)} must be int32/int64 with a known last "
                             f"dimension <= the rank of {d.name}{shape_str(d.shape)}")
        return [(d.dtype, tuple(i.shape[:-1]) + tuple(d.shape[k:]))]

    def attributes(self) -> dict[str, Any]:
        return {}


@network_method
def add_nonzero(self: Network, x: Tensor, name: Optional[str] = None) -> NonZeroLayer:
    """Indices of x's non-zero elements, int64 [rank, K]."""
    return self.add_layer(NonZeroLayer(x), name)  # type: ignore[return-value]


@network_method
def add_gather_nd(self: Network, data: Tensor, indices: Tensor, name: Optional[str] = None) -> GatherNDLayer:
    """Slices of `data` picked by the index tuples in the last dimension of `indices`."""
    return self.add_layer(GatherNDLayer(data, indices), name)  # type: ignore[return-value]

