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
LOWERING_MODULES: tuple[str, ...] = ("lower_core", "lower_rnn", "lower_cnn", "lower_detect", "lower_control",
                                     "lower_resize")

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
    """Collects ONNX nodes and initializers; hands out unique value names.

    A child context (`child()`) lowers a sub-network (a loop body, an If branch) into a
    subgraph: its value and node names carry a prefix and are unique across the whole
    model (so they neither clash with nor shadow outer names), and its initializers go to
    the main graph, where the subgraph reads them by outer-scope name."""

    def __init__(self, network: Any, parent: Optional["LoweringContext"] = None, prefix: str = ""):
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.network = network
        self.parent = parent
        self.prefix = prefix
        self.nodes: list[Any] = []
        self._renamed: dict[int, str] = {}  # id(tensor) -> value name, where it is not the tensor's name
        if parent is None:
            self.initializers: list[Any] = []
            self._taken: set[str] = set(network._tensors)
            self._node_names: set[str] = set()
        else:  # shared with the whole model
            self.initializers, self._taken, self._node_names = parent.initializers, parent._taken, parent._node_names
            for t in network._tensors.values():
                self._renamed[id(t)] = self.fresh(f"{prefix}{t.name}")

    def bind_outer(self, tensor: Any, outer_name: str) -> None:
        """This (child) network's input `tensor` is the enclosing scope's value `outer_name`."""
        self._renamed[id(tensor)] = outer_name
        self.__dict__.setdefault("outer_names", set()).add(outer_name)

    def child(self, network: Any, prefix: str) -> "LoweringContext":
        """A context lowering `network` into a subgraph whose names start with `prefix`."""
        ctx: Optional[LoweringContext] = self
        while ctx is not None:
            if ctx.network is network:
                raise UnsupportedError(f"network {network.name!r} contains itself (a loop or If body refers back "
                                       "to a network that encloses it)")
            ctx = ctx.parent
        return LoweringContext(network, self, self.prefix + prefix)

    # --- names of the layer's tensors ----------------------------------------------
    def name_of(self, tensor: Any) -> str:
        """The value name of a tensor of this context's network."""
        return self._renamed.get(id(tensor), tensor.name)

    def input(self, layer: Any, index: int) -> str:
        return self.name_of(layer.inputs[index])

    def output(self, layer: Any, index: int = 0) -> str:
        return self.name_of(layer.outputs[index])

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
        name = hint if exact else self.fresh(self.prefix + hint)
        if exact:
            self._taken.add(name)
        arr = np.asarray(array)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(arr, order="C"), name))  # keeps rank 0
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
        base = self.prefix + (name or op_type)
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

    # --- whole networks -------------------------------------------------------------
    def lower_layers(self) -> None:
        """Emit the nodes of every layer of this context's network that reaches an output."""
        from ..errors import ShapeError

        if not self.network.outputs:
            raise ShapeError(f"network {self.network.name!r} has no outputs; call mark_output(tensor) first")
        registry = load_lowerings()
        for layer in live_layers(self.network):
            layer.check()
            fn = registry.get(layer.type)
            if fn is None:
                raise UnsupportedError(f"layer {layer.name!r}: no ONNX lowering for layer type {layer.type!r}")
            fn(layer, self)

    def value_info(self, tensor: Any, name: Optional[str] = None) -> Any:
        return value_info(self._helper, name or self.name_of(tensor), tensor.dtype, tensor.shape)

    def subgraph(self, graph_name: str, inputs: Sequence[Any]) -> Any:
        """Lower this child's network into a GraphProto with the given input value infos
        (values bound otherwise, e.g. by Identity nodes of outer names, are emitted first).
        Each network output becomes a graph output; one that is a graph input or repeats
        goes through an Identity, so every subgraph output is written inside the subgraph."""
        self.lower_layers()
        seen = {vi.name for vi in inputs} | getattr(self, "outer_names", set())  # outputs must be written here
        outputs = []
        for t in self.network.outputs:
            name = self.name_of(t)
            if name in seen:
                name = self.node1("Identity", [name], name=f"{t.name}/out")
            seen.add(name)
            outputs.append(self.value_info(t, name))
        return self._helper.make_graph(self.nodes, graph_name, list(inputs), outputs)


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

    ctx = LoweringContext(network)
    ctx.lower_layers()
    inputs = [ctx.value_info(t) for t in network.inputs]
    outputs = [ctx.value_info(t) for t in network.outputs]
    graph = helper.make_graph(ctx.nodes, network.name, inputs, outputs, initializer=ctx.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tf2rt")
    model.ir_version = 8  # opset 17 pairs with IR 8; keeps older onnxruntime releases able to load it
    return model
