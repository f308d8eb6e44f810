"""Network: a TensorRT-style, layer-by-layer model definition (INetworkDefinition in Python)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from ..errors import ShapeError
from . import layers_core as core
from . import layers_shape as shp
from .layer import Layer
from .tensor import Tensor, normalize_dtype, normalize_shape, shape_str

if TYPE_CHECKING:  # pragma: no cover
    from .layers_rnn import RNNv2Layer


class Network:
    """Layers added one by one; every add_* returns the layer (TensorRT style)."""

    def __init__(self, name: str = "network"):
        self.name = name
        self.layers: list[Layer] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []
        self._tensors: dict[str, Tensor] = {}
        self._layer_names: set[str] = set()
        # (state input, state output) pairs: an engine run feeds each output back as the input.
        self.states: list[tuple[Tensor, Tensor]] = []
        # Per-input value hints, e.g. {"tokens": {"low": 0, "high": 65}} for random test inputs.
        self.input_hints: dict[str, dict[str, Any]] = {}
        self.metadata: dict[str, Any] = {}

    # --- inputs and outputs -------------------------------------------------------
    def add_input(self, name: str, dtype: Any, shape: Sequence[Any]) -> Tensor:
        """A network input; None (or -1) in `shape` marks a dynamic dimension."""
        t = Tensor(name, normalize_dtype(dtype), normalize_shape(shape, f"input {name!r}"))
        self._register(t)
        self._inputs.append(t)
        return t

    def mark_output(self, tensor: Tensor, name: Optional[str] = None) -> None:
        self._own(tensor, "mark_output")
        if name is not None and name != tensor.name:
            tensor.name = name
        if tensor not in self._outputs:
            self._outputs.append(tensor)

    def unmark_output(self, tensor: Tensor) -> None:
        if tensor in self._outputs:
            self._outputs.remove(tensor)

    def mark_state(self, input: Tensor, output: Tensor) -> None:
        """Declare that `output` (final state) feeds `input` (initial state) on the next streaming step."""
        self._own(input, "mark_state")
        self._own(output, "mark_state")
        if not input.is_network_input:
            raise ShapeError(f"mark_state: {input.name} is not a network input")
        if input.dtype != output.dtype or input.shape != output.shape:
            raise ShapeError(f"mark_state: {input.name} {input.dtype}{shape_str(input.shape)} and "
                             f"{output.name} {output.dtype}{shape_str(output.shape)} differ")
        if output not in self._outputs:
            self.mark_output(output)
        self.states = [(i, o) for i, o in self.states if i is not input] + [(input, output)]

    @property
    def inputs(self) -> list[Tensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[Tensor]:
        return list(self._outputs)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_input(self, index: int) -> Tensor:
        return self._inputs[index]

    def get_output(self, index: int) -> Tensor:
        return self._outputs[index]

    def get_layer(self, index: int) -> Layer:
        return self.layers[index]

    def tensor(self, name: str) -> Tensor:
        """The tensor with this name."""
        if name not in self._tensors:
            raise ShapeError(f"no tensor named {name!r} in network {self.name!r}")
        return self._tensors[name]

    # --- the extension point: every add_* ends here ---------------------------------
    def add_layer(self, layer: Layer, name: Optional[str] = None) -> Layer:
        """Add a constructed layer: name it, check its inputs, infer its outputs."""
        base = name or f"{layer.type}_{len(self.layers)}"
        layer.name = self._unique(base, self._layer_names)
        self._layer_names.add(layer.name)
        layer.network = self
        for i, t in enumerate(layer.inputs):
            if t is not None:
                self._own(t, f"layer {layer.name!r} input {i}")
        specs = layer.infer()
        names = layer.output_names
        for i, (dtype, shape) in enumerate(specs):
            tname = layer.name if len(specs) == 1 else f"{layer.name}/{names[i] if i < len(names) else i}"
            t = Tensor(self._unique(tname, self._tensors), dtype, shape, producer=layer, index=i)
            self._register(t)
            layer.outputs.append(t)
        self.layers.append(layer)
        return layer

    # --- core layers (TensorRT names, snake_case) -----------------------------------
    def add_constant(self, shape: Sequence[int], array: Any, name: Optional[str] = None) -> core.ConstantLayer:
        return self.add_layer(core.ConstantLayer(shape, array), name)  # type: ignore[return-value]

    def add_elementwise(self, a: Tensor, b: Tensor, op: str, name: Optional[str] = None) -> core.ElementWiseLayer:
        """op: sum|prod|sub|div|max|min|pow, equal|greater|less (-> bool), and|or|xor (of bools); numpy broadcasting."""
        return self.add_layer(core.ElementWiseLayer(a, b, op), name)  # type: ignore[return-value]

    def add_activation(self, input: Tensor, type: str, alpha: Optional[float] = None,
                       beta: Optional[float] = None, name: Optional[str] = None) -> core.ActivationLayer:
        """TensorRT activation types; alpha/beta None = that type's usual default (see ACTIVATION_DEFAULTS)."""
        return self.add_layer(core.ActivationLayer(input, type, alpha, beta), name)  # type: ignore[return-value]

    def add_matrix_multiply(self, a: Tensor, op_a: str, b: Tensor, op_b: str,
                            name: Optional[str] = None) -> core.MatrixMultiplyLayer:
        """op_a(a) @ op_b(b); op "none" or "transpose" (of the last two dims)."""
        return self.add_layer(core.MatrixMultiplyLayer(a, op_a, b, op_b), name)  # type: ignore[return-value]

    def add_fully_connected(self, input: Tensor, num_outputs: int, kernel: Any, bias: Any = None,
                            name: Optional[str] = None, kernel_layout: str = "kn") -> core.FullyConnectedLayer:
        """y = x @ kernel + bias on the last dim; kernel [K, num_outputs] ("kn", TF/Keras) or
        [num_outputs, K] ("nk", TensorRT/PyTorch)."""
        layer = core.FullyConnectedLayer(input, num_outputs, kernel, bias, kernel_layout)
        return self.add_layer(layer, name)  # type: ignore[return-value]

    def add_softmax(self, input: Tensor, axis: int = -1, name: Optional[str] = None) -> core.SoftmaxLayer:
        return self.add_layer(core.SoftmaxLayer(input, axis), name)  # type: ignore[return-value]

    def add_topk(self, input: Tensor, op: str, k: int, axis: int = -1, name: Optional[str] = None) -> core.TopKLayer:
        """Outputs 0: values, 1: indices (int32)."""
        return self.add_layer(core.TopKLayer(input, op, k, axis), name)  # type: ignore[return-value]

    def add_gather(self, data: Tensor, indices: Tensor, axis: int = 0, name: Optional[str] = None) -> core.GatherLayer:
        layer = self.add_layer(core.GatherLayer(data, indices, axis), name)
        n = data.shape[layer.axis]  # type: ignore[attr-defined]
        if indices.is_network_input and n is not None:  # random test inputs must be valid indices
            self.input_hints.setdefault(indices.name, {}).update(low=0, high=n)
        return layer  # type: ignore[return-value]

    def add_shuffle(self, input: Tensor, reshape_dims: Optional[Sequence[int]] = None,
                    first_transpose: Optional[Sequence[int]] = None, second_transpose: Optional[Sequence[int]] = None,
                    name: Optional[str] = None) -> shp.ShuffleLayer:
        layer = shp.ShuffleLayer(input, reshape_dims, first_transpose, second_transpose)
        return self.add_layer(layer, name)  # type: ignore[return-value]

    def add_concatenation(self, inputs: Sequence[Tensor], axis: int = 0,
                          name: Optional[str] = None) -> shp.ConcatenationLayer:
        return self.add_layer(shp.ConcatenationLayer(inputs, axis), name)  # type: ignore[return-value]

    def add_slice(self, input: Tensor, start: Sequence[int], shape: Sequence[int], stride: Sequence[int],
                  name: Optional[str] = None) -> shp.SliceLayer:
        return self.add_layer(shp.SliceLayer(input, start, shape, stride), name)  # type: ignore[return-value]

    def add_scale(self, input: Tensor, mode: str, shift: Any = None, scale: Any = None, power: Any = None,
                  channel_axis: int = 1, name: Optional[str] = None) -> shp.ScaleLayer:
        """(x * scale + shift) ** power; mode uniform|channel|elementwise."""
        layer = shp.ScaleLayer(input, mode, shift, scale, power, channel_axis)
        return self.add_layer(layer, name)  # type: ignore[return-value]

    def add_unary(self, input: Tensor, op: str, name: Optional[str] = None) -> shp.UnaryLayer:
        return self.add_layer(shp.UnaryLayer(input, op), name)  # type: ignore[return-value]

    def add_reduce(self, input: Tensor, op: str, axes: Any, keep_dims: bool = False,
                   name: Optional[str] = None) -> shp.ReduceLayer:
        """op sum|prod|max|min|avg; axes: a list of axes, or an int bit mask as in TensorRT."""
        return self.add_layer(shp.ReduceLayer(input, op, axes, keep_dims), name)  # type: ignore[return-value]

    def add_cast(self, input: Tensor, dtype: Any, name: Optional[str] = None) -> shp.CastLayer:
        return self.add_layer(shp.CastLayer(input, dtype), name)  # type: ignore[return-value]

    def add_shape(self, input: Tensor, name: Optional[str] = None) -> shp.ShapeLayer:
        """The input's shape at run time (int64 [rank])."""
        return self.add_layer(shp.ShapeLayer([input]), name)  # type: ignore[return-value]

    def add_range(self, start: Tensor, limit: Tensor, delta: Tensor, name: Optional[str] = None) -> shp.RangeLayer:
        """start, start + delta, ... below limit (scalars of one dtype; the length is known at run time)."""
        return self.add_layer(shp.RangeLayer([start, limit, delta]), name)  # type: ignore[return-value]

    def add_fill(self, shape: Tensor, value: Tensor, dims: Sequence[Optional[int]],
                 name: Optional[str] = None) -> shp.FillLayer:
        """`value` (a scalar) broadcast to the run-time shape `shape`; dims: the sizes known now."""
        return self.add_layer(shp.FillLayer(shape, value, dims), name)  # type: ignore[return-value]

    def add_pad(self, input: Tensor, pads: Tensor, value: float = 0.0, name: Optional[str] = None) -> shp.PadLayer:
        """input padded with `value` by run-time amounts pads [rank, 2] (before, after per axis)."""
        return self.add_layer(shp.PadLayer(input, pads, value), name)  # type: ignore[return-value]

    def add_split(self, input: Tensor, axis: int, sizes: Sequence[int], name: Optional[str] = None) -> shp.SplitLayer:
        """Consecutive parts of input along `axis`, of `sizes` elements each (one output per part)."""
        return self.add_layer(shp.SplitLayer(input, axis, sizes), name)  # type: ignore[return-value]

    def add_identity(self, input: Tensor, name: Optional[str] = None) -> shp.IdentityLayer:
        return self.add_layer(shp.IdentityLayer([input]), name)  # type: ignore[return-value]

    def add_rnn_v2(self, input: Tensor, layer_count: int, hidden_size: int, max_seq_length: int, op: str,
                   direction: str = "unidirection", input_mode: str = "linear",
                   name: Optional[str] = None) -> "RNNv2Layer":
        """A stack of LSTM/GRU/RNN layers over input [N, S, E]; see RNNv2Layer."""
        from .layers_rnn import RNNv2Layer

        layer = RNNv2Layer(input, layer_count, hidden_size, max_seq_length, op, direction, input_mode)
        return self.add_layer(layer, name)  # type: ignore[return-value]

    # --- internals ----------------------------------------------------------------
    def _own(self, t: Any, what: str) -> None:
        if not isinstance(t, Tensor):
            raise ShapeError(f"{what}: expected a Tensor of this network, got {type(t).__name__}")
        if t.network is not self:
            raise ShapeError(f"{what}: tensor {t.name!r} belongs to another network")

    def _register(self, t: Tensor) -> None:
        if t.name in self._tensors:
            raise ShapeError(f"a tensor named {t.name!r} already exists in network {self.name!r}")
        t.network = self
        self._tensors[t.name] = t

    def _rename_tensor(self, t: Tensor, new: str) -> None:
        if new in self._tensors and self._tensors[new] is not t:
            raise ShapeError(f"cannot rename {t.name!r} to {new!r}: that name is taken")
        hint = self.input_hints.pop(t.name, None)
        self._tensors.pop(t.name, None)
        t._name = new
        self._tensors[new] = t
        if hint is not None:
            self.input_hints[new] = hint

    @staticmethod
    def _unique(base: str, taken: Any) -> str:
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def summary(self) -> str:
        """A text table of the layers: name, type, input and output shapes, weight count."""
        rows = [("layer", "type", "inputs", "outputs", "weights")]
        for layer in self.layers:
            ins = ", ".join(f"{t.name}{shape_str(t.shape)}" for t in layer.inputs if t is not None)
            outs = ", ".join(f"{t.name}{shape_str(t.shape)}" for t in layer.outputs)
            n = sum(int(np.size(w)) for w in layer.weights().values())
            note = getattr(layer, "summary_note", None)  # e.g. a loop's body size
            kind = f"{layer.type} ({note()})" if note else layer.type
            rows.append((layer.name, kind, ins, outs, f"{n:,}" if n else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        ins = ", ".join(f"{t.name}:{t.dtype}{shape_str(t.shape)}" for t in self._inputs)
        outs = ", ".join(f"{t.name}:{t.dtype}{shape_str(t.shape)}" for t in self._outputs)
        return f"network {self.name!r}: inputs {ins}; outputs {outs}\n" + "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<Network {self.name!r}: {len(self._inputs)} inputs, {len(self.layers)} layers, "
                f"{len(self._outputs)} outputs>")


def network_method(fn: Callable) -> Callable:
    """Attach an add_* function to Network (for layer modules outside this file)."""
    setattr(Network, fn.__name__, fn)
    return fn


def as_array(value: Any, dtype: Any = np.float32) -> np.ndarray:
    """Weights given as numpy arrays, lists or TensorRT-style Weights objects (with .numpy())."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.ascontiguousarray(np.asarray(value, dtype=dtype))
