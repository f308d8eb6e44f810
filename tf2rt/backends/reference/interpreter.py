"""Interpret an ONNX graph with the numpy op registry, node by node."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ...errors import Tf2rtError, UnsupportedError
from .registry import load_ops

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
    """Outputs of one node on the given input arrays."""
    fn = load_ops().get(node.op_type)
    if fn is None or (node.domain not in ("", "ai.onnx")):
        raise UnsupportedError(f"reference backend: no implementation of ONNX op {node.domain or ''}{node.op_type!r}")
    out = fn(list(inputs), node_attributes(node))
    outs = list(out) if isinstance(out, tuple) else [out]
    return [np.asarray(o) for o in outs][: len(node.output)]


class Interpreter:
    """A prepared graph: initializers decoded once, node functions looked up once."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        ops = load_ops()
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in self.constants]
        self.output_names = [o.name for o in graph.output]
        self.steps = []
        for node in graph.node:
            fn = ops.get(node.op_type)
            if fn is None or node.domain not in ("", "ai.onnx"):
                raise UnsupportedError(f"reference backend: no implementation of ONNX op {node.op_type!r} "
                                       f"(node {node.name!r}); use the onnxruntime backend")
            self.steps.append((fn, list(node.input), list(node.output), node_attributes(node), node.name))

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[str, Any] = dict(self.constants)
        env.update(feeds)
        for fn, ins, outs, attrs, name in self.steps:
            try:
                result = fn([env[n] if n else None for n in ins], attrs)
            except UnsupportedError:
                raise
            except Exception as exc:  # e.g. an embedding index out of range in the user's input
                raise Tf2rtError(f"reference backend: node {name!r} failed: {exc}") from exc
            values = result if isinstance(result, tuple) else (result,)
            for n, v in zip(outs, values):
                if n:
                    env[n] = np.asarray(v)
        return {n: env[n] for n in self.output_names}
