"""ONNX lowerings of the core layers (tf2rt.network.layers_core / layers_shape)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .lowering import ONNX_DTYPES, LoweringContext, lowering

_ELEMENTWISE = {"sum": "Add", "prod": "Mul", "sub": "Sub", "div": "Div", "max": "Max", "min": "Min",
                "pow": "Pow", "equal": "Equal", "greater": "Greater", "less": "Less", "and": "And", "or": "Or",
                "xor": "Xor"}
_UNARY = {"exp": "Exp", "log": "Log", "sqrt": "Sqrt", "recip": "Reciprocal", "abs": "Abs", "neg": "Neg",
          "sin": "Sin", "cos": "Cos", "tan": "Tan", "sinh": "Sinh", "cosh": "Cosh", "asin": "Asin",
          "acos": "Acos", "atan": "Atan", "asinh": "Asinh", "acosh": "Acosh", "atanh": "Atanh", "ceil": "Ceil",
          "floor": "Floor", "erf": "Erf", "not": "Not", "sign": "Sign", "round": "Round"}


def _scalar(ctx: LoweringContext, layer: Any, value: float, hint: str) -> str:
    """A float scalar constant of the layer input's dtype."""
    dtype = np.float16 if layer.inputs[0].dtype == "float16" else np.float32
    return ctx.const(np.array(value, dtype=dtype), f"{layer.name}/{hint}")


@lowering("constant")
def _constant(layer: Any, ctx: LoweringContext) -> None:
    # The constant's output value is the initializer itself, named after the layer; a graph
    # output cannot be an initializer, so an output constant goes through an Identity.
    if layer.output.is_network_output:
        value = ctx.initializer(f"{layer.name}/value", layer.array)
        ctx.node1("Identity", [value], ctx.output(layer), name=layer.name)
    else:
        ctx.initializer(ctx.output(layer), layer.array, exact=True)


@lowering("elementwise")
def _elementwise(layer: Any, ctx: LoweringContext) -> None:
    a, b, out, n = ctx.input(layer, 0), ctx.input(layer, 1), ctx.output(layer), layer.name
    if layer.op not in ("floor_div", "mod"):
        ctx.node1(_ELEMENTWISE[layer.op], [a, b], out, name=n)
        return
    # Python's // and % (TensorFlow's FloorDiv/FloorMod): the quotient rounds down and the
    # remainder has the divisor's sign
    if layer.outputs[0].dtype in ("float32", "float16"):
        q = ctx.node1("Floor", [ctx.node1("Div", [a, b], name=f"{n}/div")], out if layer.op == "floor_div" else None,
                      name=f"{n}/floor" if layer.op == "mod" else n)
        if layer.op == "mod":
            ctx.node1("Sub", [a, ctx.node1("Mul", [q, b], name=f"{n}/times")], out, name=n)
        return
    if layer.op == "mod":
        ctx.node1("Mod", [a, b], out, name=n, fmod=0)  # ONNX integer Mod takes the divisor's sign
        return
    r = ctx.node1("Mod", [a, b], name=f"{n}/mod", fmod=0)
    ctx.node1("Div", [ctx.node1("Sub", [a, r], name=f"{n}/multiple"), b], out, name=n)  # exact


@lowering("activation")
def _activation(layer: Any, ctx: LoweringContext) -> None:
    x, y, kind, a, b, n = ctx.input(layer, 0), ctx.output(layer), layer.activation, layer.alpha, layer.beta, layer.name
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softsign": "Softsign"}
    if kind in simple:
        ctx.node1(simple[kind], [x], y, name=n)
    elif kind == "leaky_relu":
        ctx.node1("LeakyRelu", [x], y, name=n, alpha=a)
    elif kind == "elu":
        ctx.node1("Elu", [x], y, name=n, alpha=a)
    elif kind == "selu":
        ctx.node1("Selu", [x], y, name=n, alpha=a, gamma=b)
    elif kind == "thresholded_relu":
        ctx.node1("ThresholdedRelu", [x], y, name=n, alpha=a)
    elif kind == "hard_sigmoid":
        ctx.node1("HardSigmoid", [x], y, name=n, alpha=a, beta=b)
    elif kind == "clip":
        ctx.node1("Clip", [x, _scalar(ctx, layer, a, "min"), _scalar(ctx, layer, b, "max")], y, name=n)
    elif kind == "softplus":  # alpha * log(1 + exp(beta * x))
        if b != 1.0:
            x = ctx.node1("Mul", [x, _scalar(ctx, layer, b, "beta")], name=f"{n}/beta")
        if a == 1.0:
            ctx.node1("Softplus", [x], y, name=n)
        else:
            s = ctx.node1("Softplus", [x], name=n)
            ctx.node1("Mul", [s, _scalar(ctx, layer, a, "alpha")], y, name=f"{n}/alpha")
    elif kind == "scaled_tanh":  # alpha * tanh(beta * x)
        t = ctx.node1("Tanh", [ctx.node1("Mul", [x, _scalar(ctx, layer, b, "beta")], name=f"{n}/beta")], name=n)
        ctx.node1("Mul", [t, _scalar(ctx, layer, a, "alpha")], y, name=f"{n}/alpha")
    elif kind == "gelu_erf":  # 0.5 * x * (1 + erf(x / sqrt(2)))
        e = ctx.node1("Erf", [ctx.node1("Mul", [x, _scalar(ctx, layer, 1 / math.sqrt(2), "rsqrt2")])], name=n)
        h = ctx.node1("Mul", [x, ctx.node1("Add", [e, _scalar(ctx, layer, 1.0, "one")])])
        ctx.node1("Mul", [h, _scalar(ctx, layer, 0.5, "half")], y)
    elif kind == "gelu_tanh":  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        x3 = ctx.node1("Mul", [ctx.node1("Mul", [x, x]), x])
        inner = ctx.node1("Add", [x, ctx.node1("Mul", [x3, _scalar(ctx, layer, 0.044715, "c")])])
        t = ctx.node1("Tanh", [ctx.node1("Mul", [inner, _scalar(ctx, layer, math.sqrt(2 / math.pi), "k")])], name=n)
        h = ctx.node1("Mul", [x, ctx.node1("Add", [t, _scalar(ctx, layer, 1.0, "one")])])
        ctx.node1("Mul", [h, _scalar(ctx, layer, 0.5, "half")], y)
    else:  # pragma: no cover - the layer validates its type
        raise AssertionError(kind)


def _swap_last2(ctx: LoweringContext, value: str, rank: int, name: str) -> str:
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ctx.node1("Transpose", [value], name=name, perm=perm)


@lowering("matrix_multiply")
def _matrix_multiply(layer: Any, ctx: LoweringContext) -> None:
    a, b = ctx.input(layer, 0), ctx.input(layer, 1)
    if layer.op_a == "transpose":
        a = _swap_last2(ctx, a, layer.inputs[0].rank, f"{layer.name}/transpose_a")
    if layer.op_b == "transpose":
        b = _swap_last2(ctx, b, layer.inputs[1].rank, f"{layer.name}/transpose_b")
    ctx.node1("MatMul", [a, b], ctx.output(layer), name=layer.name)


@lowering("fully_connected")
def _fully_connected(layer: Any, ctx: LoweringContext) -> None:
    k = ctx.weight(layer, "kernel", layer.kernel)
    if layer.bias is None:
        ctx.node1("MatMul", [ctx.input(layer, 0), k], ctx.output(layer), name=layer.name)
        return
    m = ctx.node1("MatMul", [ctx.input(layer, 0), k], name=layer.name)
    ctx.node1("Add", [m, ctx.weight(layer, "bias", layer.bias)], ctx.output(layer), name=f"{layer.name}/bias_add")


@lowering("softmax")
def _softmax(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Softmax", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name, axis=layer.axis)


@lowering("topk")
def _topk(layer: Any, ctx: LoweringContext) -> None:
    if len(layer.inputs) > 1:  # k computed at run time: one int64 in a [1] vector
        k = ctx.node1("Cast", [ctx.input(layer, 1)], name=f"{layer.name}/k_int64", to=ONNX_DTYPES["int64"])
        k = ctx.node1("Reshape", [k, ctx.const(np.array([1], np.int64), f"{layer.name}/k_shape")],
                      name=f"{layer.name}/k")
    else:
        k = ctx.const(np.array([layer.k], dtype=np.int64), f"{layer.name}/k")
    idx64 = ctx.fresh(f"{layer.name}/indices_int64")
    ctx.node("TopK", [ctx.input(layer, 0), k], [ctx.output(layer, 0), idx64], name=layer.name,
             axis=layer.axis, largest=int(layer.op == "max"), sorted=1)
    ctx.node1("Cast", [idx64], ctx.output(layer, 1), name=f"{layer.name}/indices", to=ONNX_DTYPES["int32"])


@lowering("gather")
def _gather(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Gather", [ctx.input(layer, 0), ctx.input(layer, 1)], ctx.output(layer), name=layer.name,
              axis=layer.axis)


@lowering("shuffle")
def _shuffle(layer: Any, ctx: LoweringContext) -> None:
    x, out = ctx.input(layer, 0), ctx.output(layer)
    steps: list[tuple[str, Any]] = []
    if layer.first_transpose is not None:
        steps.append(("first", layer.first_transpose))
    if layer.reshape_dims is not None:
        steps.append(("reshape", layer.reshape_dims))
    if layer.second_transpose is not None:
        steps.append(("second", layer.second_transpose))
    if not steps:
        ctx.node1("Identity", [x], out, name=layer.name)
        return
    for i, (kind, value) in enumerate(steps):
        dst = out if i == len(steps) - 1 else None
        if kind == "reshape":
            shape = ctx.const(np.array(value, dtype=np.int64), f"{layer.name}/shape")
            x = ctx.node1("Reshape", [x, shape], dst, name=f"{layer.name}/reshape")
        else:
            x = ctx.node1("Transpose", [x], dst, name=f"{layer.name}/{kind}_transpose", perm=list(value))


@lowering("concatenation")
def _concatenation(layer: Any, ctx: LoweringContext) -> None:
    ins = [ctx.input(layer, i) for i in range(layer.num_inputs)]
    ctx.node1("Concat", ins, ctx.output(layer), name=layer.name, axis=layer.axis)


@lowering("slice")
def _slice(layer: Any, ctx: LoweringContext) -> None:
    ends = []
    for s, n, st in zip(layer.start, layer.size, layer.stride):
        if n == 0:
            ends.append(s)
        else:
            e = s + (n - 1) * st + (1 if st > 0 else -1)
            ends.append(e if e >= 0 else -(2**63))  # a negative end past the front means "to the start"
    c = lambda v, h: ctx.const(np.array(v, dtype=np.int64), f"{layer.name}/{h}")  # noqa: E731
    axes = list(range(len(layer.start)))
    ctx.node1("Slice", [ctx.input(layer, 0), c(layer.start, "starts"), c(ends, "ends"), c(axes, "axes"),
                        c(layer.stride, "steps")], ctx.output(layer), name=layer.name)


@lowering("scale")
def _scale(layer: Any, ctx: LoweringContext) -> None:
    x, out = ctx.input(layer, 0), ctx.output(layer)
    ops = [(op, key, arr) for op, key, arr in (("Mul", "scale", layer.scale), ("Add", "shift", layer.shift),
                                              ("Pow", "power", layer.power)) if arr is not None]
    if not ops:
        ctx.node1("Identity", [x], out, name=layer.name)
    for i, (op, key, arr) in enumerate(ops):
        x = ctx.node1(op, [x, ctx.weight(layer, key, arr)], out if i == len(ops) - 1 else None,
                      name=f"{layer.name}/{key}")


@lowering("unary")
def _unary(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1(_UNARY[layer.op], [ctx.input(layer, 0)], ctx.output(layer), name=layer.name)


@lowering("reduce")
def _reduce(layer: Any, ctx: LoweringContext) -> None:
    op = {"sum": "ReduceSum", "prod": "ReduceProd", "max": "ReduceMax", "min": "ReduceMin", "avg": "ReduceMean"}[layer.op]
    keep = int(layer.keep_dims)
    if op == "ReduceSum":  # opset 13+: axes as an input for ReduceSum only (the others switch at opset 18)
        axes = ctx.const(np.array(layer.axes, dtype=np.int64), f"{layer.name}/axes")
        ctx.node1(op, [ctx.input(layer, 0), axes], ctx.output(layer), name=layer.name, keepdims=keep)
    else:
        ctx.node1(op, [ctx.input(layer, 0)], ctx.output(layer), name=layer.name, axes=list(layer.axes), keepdims=keep)


@lowering("cast")
def _cast(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Cast", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name, to=ONNX_DTYPES[layer.to])


@lowering("shape")
def _shape(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Shape", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name)


@lowering("range")
def _range(layer: Any, ctx: LoweringContext) -> None:
    ins = [ctx.input(layer, i) for i in range(3)]
    step = layer.inputs[2].producer
    if step is not None and step.type == "constant" and float(np.asarray(step.array).reshape(-1)[0]) < 0:
        # a descending range as the negated ascending one: onnxruntime's extended graph
        # optimizations (1.32) turn Range with a negative delta and a computed start into an
        # empty tensor
        neg = [ctx.node1("Neg", [n], name=f"{layer.name}/neg{i}") for i, n in enumerate(ins)]
        up = ctx.node1("Range", neg, name=f"{layer.name}/ascending")
        ctx.node1("Neg", [up], ctx.output(layer), name=layer.name)
    else:
        ctx.node1("Range", ins, ctx.output(layer), name=layer.name)


@lowering("fill")
def _fill(layer: Any, ctx: LoweringContext) -> None:
    shape = ctx.input(layer, 0)
    if layer.inputs[0].dtype != "int64":
        shape = ctx.node1("Cast", [shape], name=f"{layer.name}/shape", to=ONNX_DTYPES["int64"])
    ctx.node1("Expand", [ctx.input(layer, 1), shape], ctx.output(layer), name=layer.name)


@lowering("pad")
def _pad(layer: Any, ctx: LoweringContext) -> None:
    """TF's [rank, 2] amounts -> ONNX's [all befores, all afters] (a transpose and a flatten)."""
    p = ctx.node1("Cast", [ctx.input(layer, 1)], name=f"{layer.name}/pads_int64", to=ONNX_DTYPES["int64"])
    p = ctx.node1("Transpose", [p], name=f"{layer.name}/pads_t", perm=[1, 0])
    p = ctx.node1("Reshape", [p, ctx.const(np.array([-1], np.int64), f"{layer.name}/flat")], name=f"{layer.name}/pads")
    value = ctx.const(np.array(layer.value, dtype=np.dtype(layer.outputs[0].dtype)).reshape(()), f"{layer.name}/value")
    ctx.node1("Pad", [ctx.input(layer, 0), p, value], ctx.output(layer), name=layer.name, mode="constant")


@lowering("split")
def _split(layer: Any, ctx: LoweringContext) -> None:
    sizes = ctx.const(np.array(layer.sizes, np.int64), f"{layer.name}/sizes")
    ctx.node("Split", [ctx.input(layer, 0), sizes], [ctx.output(layer, i) for i in range(len(layer.sizes))],
             name=layer.name, axis=layer.axis)


@lowering("identity")
def _identity(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Identity", [ctx.input(layer, 0)], ctx.output(layer), name=layer.name)


@lowering("select")
def _select(layer: Any, ctx: LoweringContext) -> None:
    ctx.node1("Where", [ctx.input(layer, i) for i in range(3)], ctx.output(layer), name=layer.name)
