"""ONNX lowering of the detection layers (tf2rt.network.layers_detect)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .lowering import ONNX_DTYPES, LoweringContext, lowering

ONNX_NP = {"float32": np.float32, "float16": np.float16}


def _scalar(ctx: LoweringContext, value: Any, dtype: Any, hint: str) -> str:
    """A 0-d constant (a Constant node: ctx.const stores 0-d arrays as shape [1])."""
    from onnx import numpy_helper

    return ctx.node1("Constant", [], name=hint, value=numpy_helper.from_array(np.array(value, dtype), hint))


@lowering("nms")
def _nms(layer: Any, ctx: LoweringContext) -> None:
    """NonMaxSuppression over a batch of one image and one class; the box column of its
    [K, 3] (image, class, box) result is the index list, K its count."""
    name = layer.name
    boxes = ctx.node1("Unsqueeze", [ctx.input(layer, 0), ctx.const(np.array([0], np.int64), f"{name}/axis0")],
                      name=f"{name}/boxes")
    scores = ctx.node1("Unsqueeze", [ctx.input(layer, 1), ctx.const(np.array([0, 1], np.int64), f"{name}/axes01")],
                       name=f"{name}/scores")
    inputs = [boxes, scores, ctx.const(np.array([layer.max_output_size], np.int64), f"{name}/max"),
              ctx.const(np.array([layer.iou_threshold], np.float32), f"{name}/iou")]
    if layer.score_threshold is not None:
        inputs.append(ctx.const(np.array([layer.score_threshold], np.float32), f"{name}/score"))
    sel = ctx.node1("NonMaxSuppression", inputs, name=f"{name}/select", center_point_box=0)
    col = ctx.node1("Gather", [sel, ctx.const(np.array([2], np.int64), f"{name}/column")], name=f"{name}/column",
                    axis=1)  # [K, 1]
    flat = ctx.node1("Squeeze", [col, ctx.const(np.array([1], np.int64), f"{name}/axis1")], name=f"{name}/flat")
    kept = ctx.node1("Gather", [ctx.input(layer, 1), flat], name=f"{name}/kept_scores", axis=0)
    count = ctx.node1("Shape", [sel], name=f"{name}/shape")  # [K, 3]
    count = ctx.node1("Gather", [count, _scalar(ctx, 0, np.int64, f"{name}/zero")], name=f"{name}/count", axis=0)
    ctx.node1("Cast", [count], ctx.output(layer, 2), name=f"{name}/valid_outputs", to=ONNX_DTYPES["int32"])
    if not layer.pad_to_max_output_size:
        ctx.node1("Cast", [flat], ctx.output(layer, 0), name=name, to=ONNX_DTYPES["int32"])
        ctx.node1("Identity", [kept], ctx.output(layer, 1), name=f"{name}/scores_out")
        return
    # zeros after the K kept entries, up to max_output_size (NonMaxSuppression returns K <= it)
    rest = ctx.node1("Sub", [ctx.const(np.array([layer.max_output_size], np.int64), f"{name}/max_size"),
                             ctx.node1("Unsqueeze", [count, ctx.const(np.array([0], np.int64), f"{name}/axis0_")],
                                       name=f"{name}/count1")], name=f"{name}/rest")
    pads = ctx.node1("Concat", [ctx.const(np.array([0], np.int64), f"{name}/pad0"), rest], name=f"{name}/pads",
                     axis=0)
    idx = ctx.node1("Cast", [flat], name=f"{name}/indices32", to=ONNX_DTYPES["int32"])
    ctx.node1("Pad", [idx, pads, _scalar(ctx, 0, np.int32, f"{name}/zero_i")], ctx.output(layer, 0),
              name=name)
    zero = _scalar(ctx, 0, ONNX_NP[layer.inputs[1].dtype], f"{name}/zero_f")
    ctx.node1("Pad", [kept, pads, zero], ctx.output(layer, 1), name=f"{name}/scores_out")


def _dim(ctx: LoweringContext, x: str, axis: int, static: Optional[int], hint: str) -> str:
    """Dimension `axis` of x as an int64 [1] tensor: a constant when known, else from Shape."""
    if static is not None:
        return ctx.const(np.array([static], np.int64), hint)
    shape = ctx.node1("Shape", [x], name=f"{hint}/shape")
    return ctx.node1("Slice", [shape, ctx.const(np.array([axis], np.int64), f"{hint}/start"),
                               ctx.const(np.array([axis + 1], np.int64), f"{hint}/end")], name=hint)


@lowering("combined_nms")
def _combined_nms(layer: Any, ctx: LoweringContext) -> None:
    """NonMaxSuppression per (image, class); the kept scores are scattered into a [B, C*N]
    matrix of -inf at column class*N + box, whose TopK per row is each image's detections in
    TensorFlow's order (score, then class, then box); -inf entries are padding."""
    name, c = layer.name, layer.num_classes
    boxes_in, scores_in = ctx.input(layer, 0), ctx.input(layer, 1)
    b_shape, s_shape = layer.inputs[0].shape, layer.inputs[1].shape
    n_static = s_shape[1] if s_shape[1] is not None else b_shape[1]
    per_class = b_shape[2] != 1

    def const(arr: Any, key: str) -> str:
        return ctx.const(np.asarray(arr), f"{name}/{key}")

    def node(op: str, inputs: list, key: str, **attrs: Any) -> str:
        return ctx.node1(op, inputs, name=f"{name}/{key}", **attrs)

    scores_cn = node("Transpose", [scores_in], "scores_bcn", perm=[0, 2, 1])  # [B, C, N]
    if per_class:  # q = C: each (image, class) is its own NMS batch entry with its own boxes
        boxes_bcn = node("Transpose", [boxes_in], "boxes_bcn", perm=[0, 2, 1, 3])  # [B, C, N, 4]
        nms_boxes = node("Reshape", [node("Flatten", [boxes_bcn], "boxes_flat", axis=2),
                                     const(np.array([0, -1, 4], np.int64), "shape_box")], "nms_boxes")  # [B*C, N, 4]
        nms_scores = node("Reshape", [scores_cn, const(np.array([-1, 1, 0], np.int64), "shape_score")],
                          "nms_scores")  # [B*C, 1, N]
        slot_boxes = node("Reshape", [boxes_bcn, const(np.array([0, -1, 4], np.int64), "shape_slot")],
                          "slot_boxes")  # [B, C*N, 4]
    else:
        nms_boxes = node("Reshape", [boxes_in, const(np.array([0, -1, 4], np.int64), "shape_box")],
                         "nms_boxes")  # [B, N, 4]
        nms_scores, slot_boxes = scores_cn, nms_boxes
    nms_in = [nms_boxes, nms_scores, const(np.array([layer.max_size_per_class], np.int64), "max_per_class"),
              const(np.array([layer.iou_threshold], np.float32), "iou"),
              const(np.array([layer.score_threshold], np.float32), "score")]  # -inf too: TF drops -inf scores
    sel = node("NonMaxSuppression", nms_in, "select", center_point_box=0)  # [K, 3]
    kept = node("GatherND", [nms_scores, sel], "kept_scores")
    empty = node("Expand", [_scalar(ctx, -np.inf, np.float32, f"{name}/minus_inf"),
                            node("Shape", [nms_scores], "grid_shape")], "empty")
    grid = node("ScatterND", [empty, sel, kept], "grid")
    flat_shape = node("Shape", [node("Flatten", [scores_in], "scores_flat", axis=1)], "flat_shape")  # [B, N*C]
    flat = node("Reshape", [grid, flat_shape], "flat")  # [B, C*N], class-major
    t = layer.output_size
    if n_static is not None:
        k_size = min(t, c * n_static)
        k = const(np.array([k_size], np.int64), "k")
        pad_rows = const(np.array([t - k_size], np.int64), "pad_rows") if k_size < t else None
    else:
        cn = node("Slice", [flat_shape, const(np.array([1], np.int64), "one"), const(np.array([2], np.int64), "two")],
                  "cn")
        k = node("Min", [const(np.array([t], np.int64), "t"), cn], "k")
        pad_rows = node("Sub", [const(np.array([t], np.int64), "t_"), k], "pad_rows")
    values, col = ctx.node(  # ties: the lower column (class, then box) first, in ONNX and in TF's order
        "TopK", [flat, k], 2, name=f"{name}/topk", axis=1, largest=1, sorted=1)
    valid = node("Greater", [values, _scalar(ctx, -np.inf, np.float32, f"{name}/minus_inf_")], "valid")
    n = _dim(ctx, boxes_in, 1, n_static, f"{name}/n")
    cls = node("Div", [col, n], "class")  # column = class * N + box
    idx = col if per_class else node("Sub", [col, node("Mul", [cls, n], "class_n")], "box")
    idx = node("Unsqueeze", [idx, const(np.array([2], np.int64), "axis2")], "box_idx")
    picked = node("GatherND", [slot_boxes, idx], "picked_boxes", batch_dims=1)  # [B, k, 4]
    if layer.clip_boxes:
        picked = node("Clip", [picked, _scalar(ctx, 0, np.float32, f"{name}/lo"),
                                   _scalar(ctx, 1, np.float32, f"{name}/hi")],
                      "clipped")
    zero = _scalar(ctx, 0, np.float32, f"{name}/zero")
    outs = [node("Where", [node("Unsqueeze", [valid, const(np.array([2], np.int64), "axis2_")], "valid3"),
                           picked, zero], "boxes_k"),
            node("Where", [valid, values, zero], "scores_k"),
            node("Where", [valid, node("Cast", [cls], "class_f", to=ONNX_DTYPES["float32"]), zero], "classes_k")]
    count = node("ReduceSum", [node("Cast", [valid], "valid_i", to=ONNX_DTYPES["int64"]),
                               const(np.array([1], np.int64), "axis1")], "count", keepdims=0)
    ctx.node1("Cast", [count], ctx.output(layer, 3), name=f"{name}/valid_detections", to=ONNX_DTYPES["int32"])
    for i, (v, rank) in enumerate(zip(outs, (3, 2, 2))):
        if pad_rows is None:
            ctx.node1("Identity", [v], ctx.output(layer, i), name=f"{name}/{layer.output_names[i]}")
            continue
        # rows of zeros after the TopK's k = min(T, C*N) rows, up to T
        parts = [const(np.zeros(rank + 1, np.int64), f"pads_head{rank}"), pad_rows]
        if rank == 3:
            parts.append(const(np.zeros(1, np.int64), "pads_tail"))
        pads = node("Concat", parts, f"pads{i}", axis=0)
        ctx.node1("Pad", [v, pads, zero], ctx.output(layer, i), name=f"{name}/{layer.output_names[i]}")


@lowering("nonzero")
def _nonzero(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("NonZero", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name)


@lowering("gather_nd")
def _gather_nd(layer: Any, ctx: LoweringContext) -> None:
    idx = ctx.node1("Cast", [ctx.input(layer, 1)], name=f"{layer.name}/indices_int64", to=ONNX_DTYPES["int64"])
    ctx.node1("GatherND", [ctx.input(layer, 0), idx], ctx.output(layer), name=layer.name)

