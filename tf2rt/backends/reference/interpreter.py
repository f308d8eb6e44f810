"""Interpret an ONNX graph with the numpy op registry, node by node."""

from __future__ import annotations

from collections import ChainMap
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ...errors import Tf2rtError, UnsupportedError
from .registry import SCOPED_OPS, load_ops


class _NpDtypes(dict):
    """ONNX TensorProto dtype enum -> numpy dtype (for Cast and friends), from onnx.helper on first use."""

    def __missing__(self, enum: int) -> np.dtype:
        from onnx import helper

        try:
            value = np.dtype(helper.tensor_dtype_to_np_dtype(int(enum)))
        except (KeyError, TypeError, ValueError):
            raise UnsupportedError(f"reference backend: ONNX element type {enum} has no numpy dtype") from None
        self[enum] = value
        return value


NP_DTYPES = _NpDtypes()


def node_attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    attrs = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode("utf-8") for s in v]
        attrs[a.name] = v
    return attrs


def evaluate_node(node: Any, inputs: Sequence[Optional[np.ndarray]]) -> list[np.ndarray]:
    """Outputs of one node on the given input arrays (not for nodes with subgraphs)."""
    fn = load_ops().get(node.op_type)
    if fn is None or (node.domain not in ("", "ai.onnx")) or node.op_type in SCOPED_OPS:
        raise UnsupportedError(f"reference backend: no implementation of ONNX op {node.domain or ''}{node.op_type!r}"
                               + (" outside a graph" if node.op_type in SCOPED_OPS else ""))
    out = fn(list(inputs), node_attributes(node))
    outs = list(out) if isinstance(out, tuple) else [out]
    return [np.asarray(o) for o in outs][: len(node.output)]


class Graph:
    """A prepared GraphProto: initializers decoded once, node functions looked up once, the
    subgraphs of control-flow nodes (Loop, If) prepared as Graphs too. `run` evaluates it with
    an optional outer environment, whose values the graph's nodes may read by name."""

    def __init__(self, graph: Any, ops: Mapping[str, Any]):
        from onnx import AttributeProto, numpy_helper

        self.name = graph.name
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.constants]
        self.output_names = [o.name for o in graph.output]
        # declared (dtype, dims or None) of each output: the per-iteration shape of an empty scan
        self.output_types = [_declared(o) for o in graph.output]
        self.steps = []
        for node in graph.node:
            fn = ops.get(node.op_type)
            if fn is None or node.domain not in ("", "ai.onnx"):
                raise UnsupportedError(f"reference backend: no implementation of ONNX op {node.op_type!r} "
                                       f"(node {node.name!r}); use the onnxruntime backend")
            attrs = node_attributes(node)
            for a in node.attribute:
                if a.type == AttributeProto.GRAPH:
                    attrs[a.name] = Graph(a.g, ops)
            scoped = node.op_type in SCOPED_OPS
            self.steps.append((fn, list(node.input), list(node.output), attrs, node.name, scoped))

    def run(self, feeds: Mapping[str, Any], outer: Optional[Mapping[str, Any]] = None) -> list[np.ndarray]:
        """The graph's outputs, in order, for `feeds` (by input name) in the scope `outer`."""
        local: dict[str, Any] = dict(self.constants)
        local.update(feeds)
        env: Any = local if outer is None else ChainMap(local, outer)
        for fn, ins, outs, attrs, name, scoped in self.steps:
            try:
                args = [env[n] if n else None for n in ins]
                result = fn(args, attrs, env) if scoped else fn(args, attrs)
            except Tf2rtError:
                raise
            except Exception as exc:  # e.g. an embedding index out of range in the user's input
                where = f"node {name!r}" if outer is None else f"node {name!r} of subgraph {self.name!r}"
                raise Tf2rtError(f"reference backend: {where} failed: {exc}") from exc
            values = result if isinstance(result, tuple) else (result,)
            for n, v in zip(outs, values):
                if n:
                    local[n] = np.asarray(v)
        return [env[n] for n in self.output_names]


def _declared(value_info: Any) -> tuple[np.dtype, Optional[list[Optional[int]]]]:
    tt = value_info.type.tensor_type
    dims = [int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim] \
        if tt.HasField("shape") else None
    return NP_DTYPES[tt.elem_type] if tt.elem_type else np.dtype(np.float32), dims


class Interpreter:
    """The main graph of a model, prepared for running."""

    def __init__(self, model: Any):
        self.graph = Graph(model.graph, load_ops())
        self.constants = self.graph.constants
        self.input_names = self.graph.input_names
        self.output_names = self.graph.output_names

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.graph.run(feeds)))
