"""Lowering a Network to an ONNX graph: a registry of one function per layer type.

A lowering function `fn(layer, ctx)` emits ONNX nodes through the LoweringContext so that
the values named `ctx.output(layer, i)` exist afterwards. Register it with
`@lowering("<layer.type>")`; see docs/network.md, "How to add a layer".
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from ..errors import UnsupportedError

OPSET = 17

LoweringFn = Callable[[Any, "LoweringContext"], None]
LOWERINGS: dict[str, LoweringFn] = {}

# Modules holding lowering functions, imported on first use (absent ones are skipped).
LOWERING_MODULES: tuple[str, ...] = ("lower_core", "lower_rnn", "lower_cnn", "lower_detect")

class _OnnxDtypes(dict):
    """dtype name ("float32", "int32", ...) -> onnx.TensorProto enum, from onnx.helper on first use."""

    def __missing__(self, name: str) -> int:
        import numpy as np
        from onnx import helper

        value = int(helper.np_dtype_to_tensor_dtype(np.dtype(name)))
        self[name] = value
        return value


ONNX_DTYPES = _OnnxDtypes()


def lowering(layer_type: str) -> Callable[[LoweringFn], LoweringFn]:
    """Register `fn` as the ONNX lowering of layers whose `type` is `layer_type`."""

    def register(fn: LoweringFn) -> LoweringFn:
        LOWERINGS[layer_type] = fn
        return fn

    return register


def load_lowerings() -> dict[str, LoweringFn]:
    for mod in LOWERING_MODULES:
        full = f"{__package__}.{mod}"
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)
    return LOWERINGS


class LoweringContext:
    """Collects ONNX nodes and initializers; hands out unique value names."""

    def __init__(self, network: Any):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.network = network
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._taken: set[str] = set(network._tensors)
        self._node_names: set[str] = set()
        self._renamed: dict[int, str] = {}  # id(tensor) -> value name, when a value is aliased

    # --- names of the layer's tensors ----------------------------------------------
    def input(self, layer: Any, index: int) -> str:
        t = layer.inputs[index]
        return self._renamed.get(id(t), t.name)

    def output(self, layer: Any, index: int = 0) -> str:
        return layer.outputs[index].name

    def fresh(self, hint: str) -> str:
        """A new unique value name based on `hint`."""
        name, i = hint, 1
        while name in self._taken:
            name, i = f"{hint}_{i}", i + 1
        self._taken.add(name)
        return name

    # --- emitting ---------------------------------------------------------------------
    def weight(self, layer: Any, key: str, array: np.ndarray) -> str:
        """An initializer named '<layer name>/<key>' (kept readable: names follow the model)."""
        return self.initializer(f"{layer.name}/{key}", array)

    def initializer(self, hint: str, array: np.ndarray, exact: bool = False) -> str:
        name = hint if exact else self.fresh(hint)
        if exact:
            self._taken.add(name)
        arr = np.asarray(array)
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, array: Any, hint: str = "const", dtype: Any = None) -> str:
        """A small constant (shapes, axes, scalars) as an initializer."""
        arr = np.asarray(array, dtype=dtype) if dtype is not None else np.asarray(array)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        return self.initializer(hint, arr)

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str] | int = 1,
             name: Optional[str] = None, **attrs: Any) -> list[str]:
        """Append a node; `outputs` is a list of names or a count of fresh names. Returns output names."""
        base = name or op_type
        if isinstance(outputs, int):
            outputs = [self.fresh(f"{base}:{i}" if outputs > 1 else base) for i in range(outputs)]
        nname, i = base, 1
        while nname in self._node_names:
            nname, i = f"{base}_{i}", i + 1
        self._node_names.add(nname)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self._helper.make_node(op_type, list(inputs), list(outputs), name=nname, **attrs))
        return list(outputs)

    def node1(self, op_type: str, inputs: Sequence[str], out: Optional[str] = None,
              name: Optional[str] = None, **attrs: Any) -> str:
        """Append a single-output node; returns its output name."""
        return self.node(op_type, inputs, [out] if out else 1, name=name, **attrs)[0]


def live_layers(network: Any) -> list[Any]:
    """Layers that reach a marked output, in insertion (topological) order."""
    needed: set[int] = set()
    stack = [t.producer for t in network.outputs if t.producer is not None]
    while stack:
        layer = stack.pop()
        if id(layer) in needed:
            continue
        needed.add(id(layer))
        stack.extend(t.producer for t in layer.inputs if t is not None and t.producer is not None)
    return [layer for layer in network.layers if id(layer) in needed]


def value_info(helper: Any, name: str, dtype: str, shape: Iterable[Optional[int]]) -> Any:
    dims = [d if d is not None else f"{name}_d{i}" for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, ONNX_DTYPES[dtype], dims)


def lower(network: Any) -> Any:
    """The network as an ONNX ModelProto (fp32, unoptimized, unchecked)."""
    from onnx import helper

    from ..errors import ShapeError

    if not network.outputs:
        raise ShapeError(f"network {network.name!r} has no outputs; call mark_output(tensor) first")
    registry = load_lowerings()
    ctx = LoweringContext(network)
    for layer in live_layers(network):
        layer.check()
        fn = registry.get(layer.type)
        if fn is None:
            raise UnsupportedError(f"layer {layer.name!r}: no ONNX lowering for layer type {layer.type!r}")
        fn(layer, ctx)
    inputs = [value_info(helper, t.name, t.dtype, t.shape) for t in network.inputs]
    outputs = [value_info(helper, t.name, t.dtype, t.shape) for t in network.outputs]
    graph = helper.make_graph(ctx.nodes, network.name, inputs, outputs, initializer=ctx.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tf2rt")
    model.ir_version = 8  # opset 17 pairs with IR 8; keeps older onnxruntime releases able to load it
    return model
