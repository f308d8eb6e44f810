"""Box arithmetic for MTCNN: IoU, suppression, regression, squaring.

Boxes are rows [x1, y1, x2, y2, score, ...extra columns] in float64 pixel coordinates.
The semantics follow the `mtcnn` package (v1) so that detections match it:
- suppression keeps a box only when no *earlier* box in score order overlaps it by
  more than the threshold, whether or not that earlier box was itself kept;
- regression offsets are scaled by (x2 - x1 + 1, y2 - y1 + 1).
"""

from __future__ import annotations

import numpy as np

# Columns of a box row.
X1, Y1, X2, Y2, SCORE = 0, 1, 2, 3, 4

# Pairwise overlap is computed this many columns at a time, so memory stays
# O(n * _CHUNK) however many proposals a large image produces.
_CHUNK = 1024


def sort_by_score(boxes: np.ndarray) -> np.ndarray:
    """Rows in descending score order (reverse of numpy's default argsort, as the package does)."""
    return boxes[np.argsort(boxes[:, SCORE])[::-1]]


def overlap(a: np.ndarray, b: np.ndarray, method: str = "union") -> np.ndarray:
    """[len(a), len(b)] overlap of boxes: intersection over union ("union") or over the smaller area ("min")."""
    area_a = (a[:, X2] - a[:, X1]) * (a[:, Y2] - a[:, Y1])
    area_b = (b[:, X2] - b[:, X1]) * (b[:, Y2] - b[:, Y1])
    iw = np.maximum(0.0, np.minimum(a[:, None, X2], b[None, :, X2]) - np.maximum(a[:, None, X1], b[None, :, X1]))
    ih = np.maximum(0.0, np.minimum(a[:, None, Y2], b[None, :, Y2]) - np.maximum(a[:, None, Y1], b[None, :, Y1]))
    inter = iw * ih
    if method == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    elif method == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        raise ValueError(f"overlap method must be 'union' or 'min', not {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / denom


def suppress(boxes: np.ndarray, threshold: float, method: str = "union", presorted: bool = False) -> np.ndarray:
    """Non-maximum suppression with the package's rule (see module doc); returns kept rows."""
    if not presorted:
        boxes = sort_by_score(boxes)
    n = len(boxes)
    if n == 0:
        return boxes
    keep = np.ones(n, bool)
    for j0 in range(0, n, _CHUNK):
        j1 = min(j0 + _CHUNK, n)
        ov = overlap(boxes[:j1], boxes[j0:j1], method)  # [j1, chunk]
        earlier = np.arange(j1)[:, None] < np.arange(j0, j1)[None, :]
        keep[j0:j1] = ~((ov > threshold) & earlier).any(axis=0)
    return boxes[keep]


def to_square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box's shorter side to its longer one about the same centre."""
    out = boxes.copy()
    w = boxes[:, X2] - boxes[:, X1]
    h = boxes[:, Y2] - boxes[:, Y1]
    side = np.maximum(w, h)
    out[:, X1] = boxes[:, X1] + w * 0.5 - side * 0.5
    out[:, Y1] = boxes[:, Y1] + h * 0.5 - side * 0.5
    out[:, X2] = out[:, X1] + side
    out[:, Y2] = out[:, Y1] + side
    return out


def apply_offsets(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Shift corners by offsets (dx1, dy1, dx2, dy2) in units of the box's (w+1, h+1)."""
    out = boxes.copy()
    w = boxes[:, X2] - boxes[:, X1] + 1
    h = boxes[:, Y2] - boxes[:, Y1] + 1
    out[:, X1:Y2 + 1] += offsets * np.stack([w, h, w, h], axis=-1)
    return out


def place_landmarks(rel: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """O-Net's landmarks (x1..x5, y1..y5 relative to the box) in image pixels."""
    w = boxes[:, X2:X2 + 1] - boxes[:, X1:X1 + 1] + 1
    h = boxes[:, Y2:Y2 + 1] - boxes[:, Y1:Y1 + 1] + 1
    out = np.asarray(rel, np.float64).copy()
    out[:, 0:5] = w * out[:, 0:5] + boxes[:, X1:X1 + 1] - 1
    out[:, 5:10] = h * out[:, 5:10] + boxes[:, Y1:Y1 + 1] - 1
    return out


def clip_to_image(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clamp corners into [0, width-1] x [0, height-1] (landmarks untouched)."""
    out = boxes.copy()
    out[:, [X1, X2]] = np.clip(out[:, [X1, X2]], 0, width - 1)
    out[:, [Y1, Y2]] = np.clip(out[:, [Y1, Y2]], 0, height - 1)
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain IoU of [x1, y1, x2, y2] boxes, [len(a), len(b)], 0 where the union is empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ov = overlap(a, b, "union")
    return np.nan_to_num(ov, nan=0.0, posinf=0.0, neginf=0.0)
