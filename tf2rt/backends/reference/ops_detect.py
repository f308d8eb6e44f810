"""Reference NonMaxSuppression, NonZero, GatherND, ScatterND and Expand (ONNX semantics; tf2rt's
detection layers lower to them)."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .registry import op

In = Sequence[Optional[np.ndarray]]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a against boxes b, corners (y1, x1, y2, x2) in any order."""
    ay1, ay2 = min(a[0], a[2]), max(a[0], a[2])
    ax1, ax2 = min(a[1], a[3]), max(a[1], a[3])
    by1, by2 = np.minimum(b[:, 0], b[:, 2]), np.maximum(b[:, 0], b[:, 2])
    bx1, bx2 = np.minimum(b[:, 1], b[:, 3]), np.maximum(b[:, 1], b[:, 3])
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    inter = ih * iw
    union = (ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


@op("NonMaxSuppression")
def non_max_suppression(i: In, a: dict) -> np.ndarray:
    if int(a.get("center_point_box", 0)) != 0:
        raise ValueError("NonMaxSuppression with center_point_box=1 is not implemented here")
    boxes, scores = np.asarray(i[0], np.float64), np.asarray(i[1], np.float64)
    max_out = int(i[2].reshape(-1)[0]) if len(i) > 2 and i[2] is not None and i[2].size else 0
    iou_thr = float(i[3].reshape(-1)[0]) if len(i) > 3 and i[3] is not None and i[3].size else 0.0
    score_thr = float(i[4].reshape(-1)[0]) if len(i) > 4 and i[4] is not None and i[4].size else None
    out = []
    for b in range(boxes.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            order = [k for k in np.argsort(-s, kind="stable") if score_thr is None or s[k] > score_thr]
            kept: list[int] = []
            for k in order:
                if len(kept) >= max_out:
                    break
                if not kept or np.all(_iou(boxes[b, k], boxes[b, kept]) <= iou_thr):
                    kept.append(int(k))
            out += [(b, c, k) for k in kept]
    return np.array(out, np.int64).reshape(-1, 3)


@op("NonZero")
def nonzero(i: In, a: dict) -> np.ndarray:
    return np.array(np.nonzero(i[0]), np.int64).reshape(np.ndim(i[0]), -1)


@op("GatherND")
def gather_nd(i: In, a: dict) -> np.ndarray:
    """Slices picked by the index tuples of the last axis; the first batch_dims axes pair up."""
    data, idx = i[0], np.asarray(i[1], np.int64)
    bd = int(a.get("batch_dims", 0))
    if bd:
        if data.shape[:bd] != idx.shape[:bd]:
            raise ValueError(f"GatherND batch dims {data.shape[:bd]} and {idx.shape[:bd]} differ")
        lead = data.shape[:bd]
        d2 = data.reshape((-1,) + data.shape[bd:])
        i2 = idx.reshape((-1,) + idx.shape[bd:])
        parts = [gather_nd([d2[j], i2[j]], {}) for j in range(d2.shape[0])]
        tail = idx.shape[bd:-1] + data.shape[bd + idx.shape[-1]:]
        out = np.stack(parts) if parts else np.zeros((0,) + tail, data.dtype)
        return out.reshape(lead + tail)
    k = idx.shape[-1]
    idx = np.where(idx < 0, idx + np.array(data.shape[:k]), idx)
    flat = idx.reshape(-1, k)
    out = np.stack([data[tuple(t)] for t in flat]) if len(flat) else np.zeros((0,) + data.shape[k:], data.dtype)
    return out.reshape(idx.shape[:-1] + data.shape[k:])


@op("ScatterND")
def scatter_nd(i: In, a: dict) -> np.ndarray:
    """A copy of data with the slices at the index tuples replaced by updates (reduction none:
    ONNX leaves duplicate indices undefined; here the last one wins)."""
    if a.get("reduction", "none") not in ("none", b"none"):
        raise ValueError("ScatterND with a reduction is not implemented here")
    data, idx, upd = i[0], np.asarray(i[1], np.int64), i[2]
    out = data.copy()
    k = idx.shape[-1]
    flat_idx = idx.reshape(-1, k)
    flat_upd = upd.reshape((-1,) + data.shape[k:])
    for t, u in zip(flat_idx, flat_upd):
        out[tuple(t)] = u
    return out


@op("Expand")
def expand(i: In, a: dict) -> np.ndarray:
    """Broadcast to the given shape; ONNX broadcasting both ways (a 1 in the shape keeps x's size)."""
    x, shape = i[0], tuple(int(d) for d in np.asarray(i[1]).reshape(-1))
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, shape)).copy()
