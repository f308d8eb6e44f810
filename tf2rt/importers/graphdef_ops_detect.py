"""Handlers for the ops of detectors' post-processing: NonMaxSuppression V1..V5 (one image, one
class), CombinedNonMaxSuppression (a batch, per class), TopKV2, Where (indices of true elements),
GatherNd."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .graphdef import TV
from .graphdef_ops import const, op


def _scalar(v, what: str) -> float:
    return float(np.asarray(const(v, what)).reshape(-1)[0])


def _float32(cv, v: TV, name: str):
    t = cv.plain(v)
    return t if t.dtype == "float32" else cv.net.add_cast(t, "float32", name=name).output


@op("NonMaxSuppression", "NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4",
    "NonMaxSuppressionV5")
def _nms(cv, node, ins):
    """NMS layer (ONNX NonMaxSuppression, box column); V4/V5: valid_outputs, padded form; soft NMS refused."""
    boxes, scores = ins[0], ins[1]
    if not isinstance(boxes, TV) or not isinstance(scores, TV):
        raise UnsupportedError("non-max suppression of constant boxes or scores")
    max_out = int(_scalar(ins[2], "max_output_size"))
    if node.op == "NonMaxSuppression":  # V1: iou_threshold is an attribute
        a = node.attr("iou_threshold")
        iou = a.f() if a is not None else 0.5
        score = None
    else:
        iou = _scalar(ins[3], "iou_threshold")
        score = _scalar(ins[4], "score_threshold") if len(ins) > 4 else None
    if score is not None and not np.isfinite(score):
        score = None  # -inf: no threshold
    pad = node.attr("pad_to_max_output_size")
    pad = node.op in ("NonMaxSuppressionV4", "NonMaxSuppressionV5") and pad is not None and pad.b()
    if node.op == "NonMaxSuppressionV5" and _scalar(ins[5], "soft_nms_sigma") != 0.0:
        raise UnsupportedError("soft NMS (soft_nms_sigma > 0) decays the scores of overlapping boxes and re-sorts "
                               "them, which ONNX NonMaxSuppression cannot express; export with soft_nms_sigma=0 or "
                               "cut the graph before the suppression with --outputs")
    b = _float32(cv, boxes, f"{node.name}/boxes_f32")
    s = _float32(cv, scores, f"{node.name}/scores_f32")
    layer = cv.net.add_non_max_suppression(b, s, max_out, iou, score, pad_to_max_output_size=pad, name=node.name)
    idx, kept, count = (TV(layer.get_output(i)) for i in range(3))
    if node.op == "NonMaxSuppressionV5":
        return [idx, kept, count]
    if node.op == "NonMaxSuppressionV4":
        return [idx, count]
    return [idx]


@op("CombinedNonMaxSuppression")
def _combined_nms(cv, node, ins):
    """combined_nms layer: ONNX NonMaxSuppression per image and class, TopK of the kept scores across classes."""
    boxes, scores = ins[0], ins[1]
    if not isinstance(boxes, TV) or not isinstance(scores, TV):
        raise UnsupportedError("combined non-max suppression of constant boxes or scores")
    b, s = cv.plain(boxes), cv.plain(scores)
    if s.rank != 3 or s.shape[2] is None:
        raise UnsupportedError(f"scores {list(s.shape)}: the number of classes (dimension 2) must be known; give "
                               "the input a fixed shape with --input-shape")
    per_class = int(_scalar(ins[2], "max_output_size_per_class (it sets the output size)"))
    total = int(_scalar(ins[3], "max_total_size (it sets the output size)"))
    iou = _scalar(ins[4], "iou_threshold")
    score = _scalar(ins[5], "score_threshold")
    pad, clip = node.attr("pad_per_class"), node.attr("clip_boxes")
    layer = cv.net.add_combined_nms(b, s, per_class, total, iou, score,
                                    pad_per_class=pad is not None and pad.b(),
                                    clip_boxes=clip is None or clip.b(), name=node.name)
    return [TV(layer.get_output(i)) for i in range(4)]


@op("TopKV2")
def _topk(cv, node, ins):
    """TopK layer on the last axis, sorted (ties: the lower index first, in both TF and ONNX)."""
    x, k = ins
    s = node.attr("sorted")
    if s is not None and not s.b():
        raise UnsupportedError("TopKV2 with sorted=False (the order of its results is unspecified)")
    if isinstance(x, TV) and not isinstance(k, np.ndarray | np.generic):  # k known at run time
        from .graphdef_ops_math import tensor_of

        layer = cv.net.add_topk(cv.plain(x), "max", tensor_of(cv, k, f"{node.name}/k"), axis=-1, name=node.name)
        return [TV(layer.get_output(0)), TV(layer.get_output(1))]
    kk = int(np.asarray(const(k, "TopKV2 k")).reshape(-1)[0])
    if not isinstance(x, TV):
        v = np.asarray(const(x, "TopKV2 input"))
        order = np.argsort(-v, axis=-1, kind="stable")[..., :kk]
        return [np.take_along_axis(v, order, -1), order.astype(np.int32)]
    layer = cv.net.add_topk(cv.plain(x), "max", kk, axis=-1, name=node.name)
    return [TV(layer.get_output(0)), TV(layer.get_output(1))]


@op("Where")
def _where(cv, node, ins):
    """Where(condition): indices of the true elements, int64 [K, rank] (NonZero, transposed)."""
    if len(ins) != 1:
        raise UnsupportedError("Where with three inputs is Select")
    c = ins[0]
    if not isinstance(c, TV):
        return [np.argwhere(np.asarray(const(c, "Where condition"))).astype(np.int64)]
    nz = cv.net.add_nonzero(cv.plain(c), name=f"{node.name}/nonzero").output
    return [TV(cv.net.add_shuffle(nz, first_transpose=(1, 0), name=node.name).output)]


@op("GatherNd")
def _gather_nd(cv, node, ins):
    """GatherND (slices of params picked by the index tuples in the indices' last dimension)."""
    params, idx = ins
    if not isinstance(params, TV) and not isinstance(idx, TV):
        p, i = np.asarray(const(params, "params")), np.asarray(const(idx, "indices"))
        return [p[tuple(np.moveaxis(i, -1, 0))]]
    data = cv.plain(params) if isinstance(params, TV) else \
        cv.net.add_constant(np.shape(params), np.asarray(params), name=f"{node.name}/params").output
    ind = cv.plain(idx) if isinstance(idx, TV) else \
        cv.net.add_constant(np.shape(idx), np.asarray(idx, np.int64), name=f"{node.name}/indices").output
    return [TV(cv.net.add_gather_nd(data, ind, name=node.name).output)]

