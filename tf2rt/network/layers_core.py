"""Core (non-recurrent) layers: constants, elementwise, activations, matmul, shape ops."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .layer import Layer, broadcast_shapes, norm_axis
from .tensor import FLOAT_DTYPES, Shape, Tensor, normalize_dtype, shape_str


def _canon(kind: str, value: Any, choices: dict[str, str]) -> str:
    """Accept "sum", "SUM", "ElementWiseOperation.SUM" style names."""
    key = str(value).rsplit(".", 1)[-1].lower()
    if key not in choices:
        from ..errors import ShapeError

        raise ShapeError(f"unknown {kind} {value!r}; use one of {', '.join(sorted(set(choices)))}")
    return choices[key]


class ConstantLayer(Layer):
    type = "constant"

    def __init__(self, shape: Sequence[int], array: Any):
        super().__init__([])
        arr = np.asarray(array)
        if arr.dtype == np.float64:  # numpy's default float; networks compute in float32
            arr = arr.astype(np.float32)
        self.array = np.ascontiguousarray(arr)
        self.shape = tuple(int(d) for d in shape)

    def infer(self) -> list[tuple[str, Shape]]:
        dtype = normalize_dtype(self.array.dtype)
        if self.array.size != int(np.prod(self.shape, dtype=np.int64)):
            raise self.error(f"array has {self.array.size} elements but shape {shape_str(self.shape)} needs "
                             f"{int(np.prod(self.shape, dtype=np.int64))}")
        self.array = self.array.reshape(self.shape)
        return [(dtype, self.shape)]

    def weights(self) -> dict[str, np.ndarray]:
        return {"value": self.array}


ELEMENTWISE_OPS = {k: k for k in ("sum", "prod", "sub", "div", "max", "min", "pow", "equal", "greater", "less",
                                   "and", "or", "xor", "floor_div", "mod")}
ELEMENTWISE_OPS.update({"add": "sum", "mul": "prod", "product": "prod", "maximum": "max", "minimum": "min"})
COMPARISON_OPS = ("equal", "greater", "less")
LOGICAL_OPS = ("and", "or", "xor")  # on bool tensors


class ElementWiseLayer(Layer):
    type = "elementwise"

    def __init__(self, a: Tensor, b: Tensor, op: str):
        super().__init__([a, b])
        self.op = _canon("elementwise operation", op, ELEMENTWISE_OPS)

    def infer(self) -> list[tuple[str, Shape]]:
        a, b = self.input_tensor(0), self.input_tensor(1)
        if a.dtype != b.dtype:
            raise self.error(f"input dtypes differ: {a.name} is {a.dtype}, {b.name} is {b.dtype}; add a cast layer")
        if (self.op in LOGICAL_OPS) != (a.dtype == "bool"):
            raise self.error(f"{self.op!r} takes {'bool' if self.op in LOGICAL_OPS else 'numeric'} inputs, "
                             f"{a.name} is {a.dtype}")
        shape = broadcast_shapes(self, a.shape, b.shape)
        return [("bool" if self.op in COMPARISON_OPS else a.dtype, shape)]

    def attributes(self) -> dict[str, Any]:
        return {"op": self.op}


# Activation types and the (alpha, beta) used when the caller passes None.
ACTIVATION_DEFAULTS: dict[str, tuple[float, float]] = {
    "relu": (0.0, 0.0), "sigmoid": (0.0, 0.0), "tanh": (0.0, 0.0), "softsign": (0.0, 0.0),
    "leaky_relu": (0.01, 0.0), "elu": (1.0, 0.0), "selu": (1.6732632423543772, 1.0507009873554805),
    "softplus": (1.0, 1.0), "clip": (0.0, 6.0), "hard_sigmoid": (0.2, 0.5), "scaled_tanh": (1.0, 1.0),
    "thresholded_relu": (1.0, 0.0), "gelu_erf": (0.0, 0.0), "gelu_tanh": (0.0, 0.0),
}
_ACT_NAMES = {k: k for k in ACTIVATION_DEFAULTS}
_ACT_NAMES.update({"leakyrelu": "leaky_relu", "hardsigmoid": "hard_sigmoid", "relu6": "clip"})


class ActivationLayer(Layer):
    """TensorRT activation semantics: leaky_relu/elu/thresholded_relu use alpha; selu is
    beta*(x>0 ? x : alpha*(exp(x)-1)); softplus alpha*log(1+exp(beta*x)); clip [alpha, beta];
    hard_sigmoid max(0, min(1, alpha*x+beta)); scaled_tanh alpha*tanh(beta*x)."""

    type = "activation"

    def __init__(self, x: Tensor, type: str, alpha: Optional[float] = None, beta: Optional[float] = None):
        super().__init__([x])
        self.activation = _canon("activation type", type, _ACT_NAMES)
        da, db = ACTIVATION_DEFAULTS[self.activation]
        self.alpha = float(da if alpha is None else alpha)
        self.beta = float(db if beta is None else beta)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"activation needs a float input, {x.name} is {x.dtype}")
        return [(x.dtype, x.shape)]

    def attributes(self) -> dict[str, Any]:
        return {"type": self.activation, "alpha": self.alpha, "beta": self.beta}


MATRIX_OPS = {"none": "none", "transpose": "transpose"}


class MatrixMultiplyLayer(Layer):
    """Batched matrix product op_a(a) @ op_b(b) over the last two dims (batch dims broadcast)."""

    type = "matrix_multiply"

    def __init__(self, a: Tensor, op_a: str, b: Tensor, op_b: str):
        super().__init__([a, b])
        self.op_a = _canon("matrix operation", op_a, MATRIX_OPS)
        self.op_b = _canon("matrix operation", op_b, MATRIX_OPS)

    def infer(self) -> list[tuple[str, Shape]]:
        a, b = self.input_tensor(0), self.input_tensor(1)
        if a.dtype != b.dtype or a.dtype not in FLOAT_DTYPES:
            raise self.error(f"inputs must both be float32 or both float16, got {a.dtype} and {b.dtype}")
        if a.rank < 2 or b.rank < 2:
            raise self.error(f"inputs must have rank >= 2, got {shape_str(a.shape)} and {shape_str(b.shape)}")
        sa = a.shape[:-2] + (a.shape[-1], a.shape[-2]) if self.op_a == "transpose" else a.shape
        sb = b.shape[:-2] + (b.shape[-1], b.shape[-2]) if self.op_b == "transpose" else b.shape
        if sa[-1] is not None and sb[-2] is not None and sa[-1] != sb[-2]:
            raise self.error(f"inner dimensions differ: {shape_str(sa)} @ {shape_str(sb)}")
        batch = broadcast_shapes(self, sa[:-2], sb[:-2])
        return [(a.dtype, batch + (sa[-2], sb[-1]))]

    def attributes(self) -> dict[str, Any]:
        return {"op_a": self.op_a, "op_b": self.op_b}


class FullyConnectedLayer(Layer):
    """y = x @ kernel + bias over the last dimension; kernel stored as [K, num_outputs]."""

    type = "fully_connected"

    def __init__(self, x: Tensor, num_outputs: int, kernel: Any, bias: Any = None, kernel_layout: str = "kn"):
        super().__init__([x])
        self.num_output_channels = int(num_outputs)
        self.kernel_layout = kernel_layout
        self._kernel_in = np.asarray(kernel, dtype=np.float32)
        self.bias = None if bias is None or np.size(bias) == 0 else np.asarray(bias, dtype=np.float32).reshape(-1)
        self.kernel = self._kernel_in

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"needs a float input, {x.name} is {x.dtype}")
        if x.rank < 1 or x.shape[-1] is None:
            raise self.error(f"input {x.name}{shape_str(x.shape)} needs a known last dimension")
        k, n = x.shape[-1], self.num_output_channels
        w = self._kernel_in
        if self.kernel_layout not in ("kn", "nk"):
            raise self.error("kernel_layout must be 'kn' ([K, num_outputs], x @ W) or 'nk' ([num_outputs, K], W x)")
        want = (k, n) if self.kernel_layout == "kn" else (n, k)
        if w.ndim == 1 and w.size == k * n:
            w = w.reshape(want)
        if w.shape != want:
            hint = " (a [num_outputs, K] kernel needs kernel_layout='nk')" if w.shape == (n, k) else ""
            raise self.error(f"kernel shape {w.shape} does not fit input {x.name}{shape_str(x.shape)} and "
                             f"num_outputs={n}: expected {want}{hint}")
        self.kernel = np.ascontiguousarray(w if self.kernel_layout == "kn" else w.T)
        if self.bias is not None and self.bias.shape != (n,):
            raise self.error(f"bias has shape {self.bias.shape}, expected ({n},)")
        return [(x.dtype, x.shape[:-1] + (n,))]

    def weights(self) -> dict[str, np.ndarray]:
        return {"kernel": self.kernel} | ({"bias": self.bias} if self.bias is not None else {})


class SoftmaxLayer(Layer):
    type = "softmax"

    def __init__(self, x: Tensor, axis: int = -1):
        super().__init__([x])
        self.axis = int(axis)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"needs a float input, {x.name} is {x.dtype}")
        self.axis = norm_axis(self, self.axis, x.rank)
        return [(x.dtype, x.shape)]

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}


class TopKLayer(Layer):
    type = "topk"
    output_names = ("values", "indices")

    def __init__(self, x: Tensor, op: str, k: "int | Tensor", axis: int = -1):
        run_time = isinstance(k, Tensor)  # k computed by the network (an int scalar), not a number
        super().__init__([x, k] if run_time else [x])
        self.op = _canon("top-k operation", op, {"max": "max", "min": "min"})
        self.k, self.axis = (0 if run_time else int(k)), int(axis)  # type: ignore[arg-type]

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        self.axis = norm_axis(self, self.axis, x.rank)
        n = x.shape[self.axis]
        if len(self.inputs) > 1:
            k = self.input_tensor(1)
            if k.dtype not in ("int32", "int64") or k.rank > 1 or (k.rank == 1 and k.shape[0] not in (1, None)):
                raise self.error(f"k {k.name}{shape_str(k.shape)} must be one int")
            shape = x.shape[: self.axis] + (None,) + x.shape[self.axis + 1:]
            return [(x.dtype, shape), ("int32", shape)]
        if self.k < 1 or (n is not None and self.k > n):
            raise self.error(f"k={self.k} must be in [1, {n}] for axis {self.axis} of {x.name}{shape_str(x.shape)}")
        shape = x.shape[: self.axis] + (self.k,) + x.shape[self.axis + 1:]
        return [(x.dtype, shape), ("int32", shape)]

    def attributes(self) -> dict[str, Any]:
        return {"op": self.op, "k": self.k, "axis": self.axis}


class GatherLayer(Layer):
    type = "gather"

    def __init__(self, data: Tensor, indices: Tensor, axis: int = 0):
        super().__init__([data, indices])
        self.axis = int(axis)

    def infer(self) -> list[tuple[str, Shape]]:
        d, i = self.input_tensor(0), self.input_tensor(1)
        if i.dtype not in ("int32", "int64"):
            raise self.error(f"indices {i.name} must be int32 or int64, got {i.dtype}")
        self.axis = norm_axis(self, self.axis, d.rank)
        return [(d.dtype, d.shape[: self.axis] + i.shape + d.shape[self.axis + 1:])]

    def attributes(self) -> dict[str, Any]:
        return {"axis": self.axis}
