"""Convolutional layers: convolution, pooling, padding, parametric ReLU (NCHW, as TensorRT).

Tensors are NCHW inside a network; importers of NHWC models transpose once at the input.
Each layer's parameters follow TensorRT's names (stride_nd, pre_padding, post_padding,
dilation_nd, num_groups, average_count_excludes_padding); setting one re-runs shape
inference. Padding is explicit and may be asymmetric (TensorFlow's SAME pads the extra
row/column at the end); `same_padding()` computes it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .layer import Layer
from .network import Network, as_array, network_method
from .tensor import FLOAT_DTYPES, Shape, Tensor, shape_str


def same_padding(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after) for one spatial dim: the extra pixel goes after."""
    eff = (kernel - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def _pair(v: Any, what: str, layer: Layer, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    t = tuple(int(x) for x in v)
    if len(t) != n:
        raise layer.error(f"{what} needs {n} values (one per spatial dim), got {t}")
    return t


class _Spatial(Layer):
    """Shared parameters of windowed layers; setting one re-infers shapes."""

    _params: tuple[str, ...] = ()

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("stride_nd", "pre_padding", "post_padding", "dilation_nd"):
            # plain int tuples (one per spatial dim): shapes must not carry numpy scalars
            value = (int(value),) * 2 if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
        super().__setattr__(key, value)
        if key in self._params and getattr(self, "outputs", None):
            self.reinfer()

    def _out_dims(self, x: Tensor, window: Sequence[int]) -> list[Optional[int]]:
        dims: list[Optional[int]] = []
        for i, size in enumerate(x.shape[2:]):
            eff = (window[i] - 1) * self.dilation_nd[i] + 1  # type: ignore[attr-defined]
            if size is None:
                dims.append(None)
                continue
            padded = size + self.pre_padding[i] + self.post_padding[i]  # type: ignore[attr-defined]
            if padded < eff:
                raise self.error(f"window {tuple(window)} (dilated {eff}) is larger than the padded input "
                                 f"{padded} along spatial dim {i} of {x.name}{shape_str(x.shape)}")
            dims.append((padded - eff) // self.stride_nd[i] + 1)  # type: ignore[attr-defined]
        return dims

    def _check_input(self) -> Tensor:
        x = self.input_tensor(0)
        if x.rank != 4:
            raise self.error(f"needs an NCHW input, {x.name} has shape {shape_str(x.shape)}")
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"needs a float input, {x.name} is {x.dtype}")
        for what in ("stride_nd", "dilation_nd"):
            if any(v < 1 for v in getattr(self, what)):
                raise self.error(f"{what} must be >= 1, got {getattr(self, what)}")
        if any(v < 0 for v in tuple(self.pre_padding) + tuple(self.post_padding)):  # type: ignore[attr-defined]
            raise self.error("padding must be >= 0")
        return x

    def attributes(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k in self._params if (v := getattr(self, k)) is not None}


class ConvolutionLayer(_Spatial):
    """2-D convolution: kernel [K, C/groups, kh, kw] (TensorRT's KCRS), bias [K] or None."""

    type = "convolution"
    _params = ("stride_nd", "pre_padding", "post_padding", "dilation_nd", "num_groups")

    def __init__(self, x: Tensor, num_output_maps: int, kernel_shape: Sequence[int], kernel: Any, bias: Any,
                 stride: Any, pre_padding: Any, post_padding: Any, dilation: Any, num_groups: int):
        super().__init__([x])
        self.num_output_maps = int(num_output_maps)
        self.kernel_shape = _pair(kernel_shape, "kernel_shape", self)
        self.kernel = as_array(kernel)
        self.bias = None if bias is None or np.size(bias) == 0 else as_array(bias).reshape(-1)
        self.stride_nd = _pair(stride, "stride", self)
        self.pre_padding = _pair(pre_padding, "pre_padding", self)
        self.post_padding = _pair(post_padding, "post_padding", self)
        self.dilation_nd = _pair(dilation, "dilation", self)
        self.num_groups = int(num_groups)

    @property
    def padding_nd(self) -> tuple[int, ...]:
        return self.pre_padding

    @padding_nd.setter
    def padding_nd(self, value: Sequence[int]) -> None:
        self.pre_padding = self.post_padding = _pair(value, "padding", self)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self._check_input()
        k, g = self.num_output_maps, self.num_groups
        c = x.shape[1]
        if c is None:
            raise self.error(f"needs a known channel count, {x.name} is {shape_str(x.shape)}")
        if g < 1 or c % g or k % g:
            raise self.error(f"num_groups {g} must divide the input channels {c} and output maps {k}")
        want = (k, c // g) + self.kernel_shape
        if self.kernel.size != int(np.prod(want)):
            raise self.error(f"kernel has {self.kernel.size} values; [K, C/groups, kh, kw] = {list(want)} needs "
                             f"{int(np.prod(want))}")
        self.kernel = self.kernel.reshape(want)
        if self.bias is not None and self.bias.size != k:
            raise self.error(f"bias has {self.bias.size} values, expected {k}")
        return [(x.dtype, (x.shape[0], k, *self._out_dims(x, self.kernel_shape)))]

    def weights(self) -> dict[str, np.ndarray]:
        return {"kernel": self.kernel} | ({"bias": self.bias} if self.bias is not None else {})

    def attributes(self) -> dict[str, Any]:
        return {"num_output_maps": self.num_output_maps, "kernel_shape": list(self.kernel_shape)} | super().attributes()


POOLING_TYPES = {"max": "max", "average": "average", "avg": "average"}


class PoolingLayer(_Spatial):
    """Max or average pooling; average excludes padded cells by default (TensorFlow's rule)."""

    type = "pooling"
    _params = ("stride_nd", "pre_padding", "post_padding", "average_count_excludes_padding")

    def __init__(self, x: Tensor, type: str, window_size: Sequence[int], stride: Any, pre_padding: Any,
                 post_padding: Any, average_count_excludes_padding: bool):
        super().__init__([x])
        key = str(type).rsplit(".", 1)[-1].lower()
        if key not in POOLING_TYPES:
            raise self.error(f"unknown pooling type {type!r}; use max or average")
        self.pooling_type = POOLING_TYPES[key]
        self.window_size = _pair(window_size, "window_size", self)
        self.stride_nd = _pair(stride if stride is not None else self.window_size, "stride", self)
        self.pre_padding = _pair(pre_padding, "pre_padding", self)
        self.post_padding = _pair(post_padding, "post_padding", self)
        self.dilation_nd = (1, 1)
        self.average_count_excludes_padding = bool(average_count_excludes_padding)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self._check_input()
        return [(x.dtype, (x.shape[0], x.shape[1], *self._out_dims(x, self.window_size)))]

    def attributes(self) -> dict[str, Any]:
        return {"type": self.pooling_type, "window_size": list(self.window_size)} | super().attributes()


class PaddingLayer(_Spatial):
    """Zero padding of the two spatial dims of an NCHW tensor."""

    type = "padding"
    _params = ("pre_padding", "post_padding")

    def __init__(self, x: Tensor, pre_padding: Any, post_padding: Any):
        super().__init__([x])
        self.stride_nd = self.dilation_nd = (1, 1)
        self.pre_padding = _pair(pre_padding, "pre_padding", self)
        self.post_padding = _pair(post_padding, "post_padding", self)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self._check_input()
        dims = [None if d is None else d + a + b for d, a, b in zip(x.shape[2:], self.pre_padding, self.post_padding)]
        return [(x.dtype, (x.shape[0], x.shape[1], *dims))]


class ParametricReLULayer(Layer):
    """y = x if x >= 0 else slope * x, slope broadcast against x (e.g. [C, 1, 1] for NCHW)."""

    type = "parametric_relu"

    def __init__(self, x: Tensor, slope: Any):
        super().__init__([x])
        self.slope = as_array(slope)

    def infer(self) -> list[tuple[str, Shape]]:
        x = self.input_tensor(0)
        if x.dtype not in FLOAT_DTYPES:
            raise self.error(f"needs a float input, {x.name} is {x.dtype}")
        try:
            np.broadcast_shapes(tuple(1 if d is None else d for d in x.shape), self.slope.shape)
        except ValueError:
            raise self.error(f"slope shape {list(self.slope.shape)} does not broadcast with "
                             f"{x.name}{shape_str(x.shape)}") from None
        if self.slope.ndim > x.rank:
            raise self.error(f"slope has rank {self.slope.ndim}, more than the input's {x.rank}")
        return [(x.dtype, x.shape)]

    def weights(self) -> dict[str, np.ndarray]:
        return {"slope": self.slope}


@network_method
def add_convolution_nd(self: Network, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                       kernel: Any, bias: Any = None, stride: Any = 1, pre_padding: Any = 0, post_padding: Any = 0,
                       dilation: Any = 1, num_groups: int = 1, name: Optional[str] = None) -> ConvolutionLayer:
    """2-D convolution of an NCHW tensor; kernel [K, C/num_groups, kh, kw] (depthwise: num_groups = C)."""
    layer = ConvolutionLayer(input, num_output_maps, kernel_shape, kernel, bias, stride, pre_padding, post_padding,
                             dilation, num_groups)
    return self.add_layer(layer, name)  # type: ignore[return-value]


@network_method
def add_pooling_nd(self: Network, input: Tensor, type: str, window_size: Sequence[int], stride: Any = None,
                   pre_padding: Any = 0, post_padding: Any = 0, average_count_excludes_padding: bool = True,
                   name: Optional[str] = None) -> PoolingLayer:
    """Max/average pooling of an NCHW tensor (stride defaults to the window)."""
    layer = PoolingLayer(input, type, window_size, stride, pre_padding, post_padding, average_count_excludes_padding)
    return self.add_layer(layer, name)  # type: ignore[return-value]


@network_method
def add_padding_nd(self: Network, input: Tensor, pre_padding: Sequence[int], post_padding: Sequence[int],
                   name: Optional[str] = None) -> PaddingLayer:
    """Zero-pad the H and W dims of an NCHW tensor."""
    return self.add_layer(PaddingLayer(input, pre_padding, post_padding), name)  # type: ignore[return-value]


@network_method
def add_parametric_relu(self: Network, input: Tensor, slope: Any, name: Optional[str] = None) -> ParametricReLULayer:
    """PReLU with a constant slope array broadcast against the input."""
    return self.add_layer(ParametricReLULayer(input, slope), name)  # type: ignore[return-value]
