"""Detection layers: non-maximum suppression (TensorRT's INMSLayer, ONNX NonMaxSuppression)
for one image's boxes and scores, and per class over a batch (TensorFlow's
CombinedNonMaxSuppression), with TensorFlow's selection rules; NonZero and GatherND."""

from __future__ import annotations

from typing import Any, Optional

from .layer import Layer
from .network import Network, network_method
from .tensor import FLOAT_DTYPES, Shape, Tensor, shape_str


class NMSLayer(Layer):
    """Non-maximum suppression of one image's boxes for one class. Outputs: the indices (int32)
    of the boxes kept, highest score first; their scores; and how many there are (int32 scalar).
    A box is dropped when its score is not above `score_threshold`, or when its IoU with a box
    kept before it is above `iou_threshold`. Boxes are [N, 4] corner pairs (y1, x1, y2, x2), in
    any corner order; scores [N]. With `pad_to_max_output_size` the indices and scores are
    padded with zeros to max_output_size (TensorFlow's NonMaxSuppressionV4/V5 padded form)."""

    type = "nms"
    output_names = ("indices", "scores", "valid_outputs")

    def __init__(self, boxes: Tensor, scores: Tensor, max_output_size: int, iou_threshold: float,
                 score_threshold: Optional[float], pad_to_max_output_size: bool = False):
        super().__init__([boxes, scores])
        self.max_output_size = int(max_output_size)
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = None if score_threshold is None else float(score_threshold)
        self.pad_to_max_output_size = bool(pad_to_max_output_size)

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
        k = self.max_output_size if self.pad_to_max_output_size else None
        return [("int32", (k,)), (s.dtype, (k,)), ("int32", ())]

    def attributes(self) -> dict[str, Any]:
        return {"max_output_size": self.max_output_size, "iou_threshold": self.iou_threshold,
                "score_threshold": self.score_threshold, "pad_to_max_output_size": self.pad_to_max_output_size}


@network_method
def add_non_max_suppression(self: Network, boxes: Tensor, scores: Tensor, max_output_size: int,
                            iou_threshold: float = 0.5, score_threshold: Optional[float] = None,
                            pad_to_max_output_size: bool = False, name: Optional[str] = None) -> NMSLayer:
    """Indices of the boxes non-maximum suppression keeps, highest score first (see NMSLayer)."""
    return self.add_layer(NMSLayer(boxes, scores, max_output_size, iou_threshold, score_threshold,
                                   pad_to_max_output_size), name)  # type: ignore[return-value]


class CombinedNMSLayer(Layer):
    """Non-maximum suppression per image and class, then each image's best `max_total_size`
    detections across classes (TensorFlow's CombinedNonMaxSuppression). Inputs: boxes
    [B, N, q, 4] (q = 1: one box per anchor for all classes; q = C: one per class) and scores
    [B, N, C]. Outputs: boxes [B, T, 4], scores [B, T], classes [B, T] (float), valid
    detections [B] (int32), sorted by score; rows past the valid ones are zeros. T is
    max_total_size, or min(max_total_size, max_size_per_class * C) with `pad_per_class`.
    `clip_boxes` clips the returned coordinates to [0, 1]."""

    type = "combined_nms"
    output_names = ("boxes", "scores", "classes", "valid_detections")

    def __init__(self, boxes: Tensor, scores: Tensor, max_size_per_class: int, max_total_size: int,
                 iou_threshold: float, score_threshold: float, pad_per_class: bool = False,
                 clip_boxes: bool = True):
        super().__init__([boxes, scores])
        self.max_size_per_class, self.max_total_size = int(max_size_per_class), int(max_total_size)
        self.iou_threshold, self.score_threshold = float(iou_threshold), float(score_threshold)
        self.pad_per_class, self.clip_boxes = bool(pad_per_class), bool(clip_boxes)

    @property
    def num_classes(self) -> int:
        return int(self.input_tensor(1).shape[2])

    @property
    def output_size(self) -> int:
        """Rows per image (TensorFlow's per_batch_size)."""
        if self.pad_per_class:
            return min(self.max_total_size, self.max_size_per_class * self.num_classes)
        return self.max_total_size

    def infer(self) -> list[tuple[str, Shape]]:
        b, s = self.input_tensor(0), self.input_tensor(1)
        if b.rank != 4 or b.shape[3] not in (4, None) or s.rank != 3 or s.shape[2] is None:
            raise self.error(f"boxes {b.name}{shape_str(b.shape)} must be [B, N, q, 4] and scores "
                             f"{s.name}{shape_str(s.shape)} [B, N, C] with C known")
        if b.shape[2] not in (1, s.shape[2]):
            raise self.error(f"boxes {b.name}{shape_str(b.shape)}: q (dimension 2) must be 1 or the number of "
                             f"classes {s.shape[2]}")
        if b.dtype != "float32" or s.dtype != "float32":
            raise self.error("boxes and scores must be float32")
        if self.max_size_per_class < 1 or self.max_total_size < 1 or not 0.0 <= self.iou_threshold <= 1.0:
            raise self.error(f"max_size_per_class {self.max_size_per_class} and max_total_size "
                             f"{self.max_total_size} must be > 0, iou_threshold {self.iou_threshold} in [0, 1]")
        batch, t = s.shape[0] if s.shape[0] is not None else b.shape[0], self.output_size
        return [("float32", (batch, t, 4)), ("float32", (batch, t)), ("float32", (batch, t)), ("int32", (batch,))]

    def attributes(self) -> dict[str, Any]:
        return {"max_size_per_class": self.max_size_per_class, "max_total_size": self.max_total_size,
                "iou_threshold": self.iou_threshold, "score_threshold": self.score_threshold,
                "pad_per_class": self.pad_per_class, "clip_boxes": self.clip_boxes}


@network_method
def add_combined_nms(self: Network, boxes: Tensor, scores: Tensor, max_size_per_class: int,
                     max_total_size: int, iou_threshold: float = 0.5, score_threshold: float = float("-inf"),
                     pad_per_class: bool = False, clip_boxes: bool = True,
                     name: Optional[str] = None) -> CombinedNMSLayer:
    """Per-class NMS of a batch of images, then each image's top detections (see CombinedNMSLayer)."""
    return self.add_layer(CombinedNMSLayer(boxes, scores, max_size_per_class, max_total_size, iou_threshold,
                                           score_threshold, pad_per_class, clip_boxes),
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

