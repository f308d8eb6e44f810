"""describe(engine) -> a JSON-able summary (what `tf2rt inspect` shows for engine files)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Union

import numpy as np


def _itemsize(data_type: int) -> int:
    """Bytes per element of an ONNX tensor data type (0 for strings and unknown types)."""
    from onnx import helper

    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(data_type))
    except (KeyError, TypeError, ValueError):
        return 0
    return 0 if dt.kind == "O" else dt.itemsize


def _subgraph_sizes(graph: Any) -> dict[str, str]:
    """Each control-flow node of the main graph -> its op and node count (nested bodies included)."""
    from .optimize import subgraphs

    out = {}
    for node in graph.node:
        stack, count = list(subgraphs(node)), 0
        while stack:
            g = stack.pop()
            count += len(g.node)
            stack.extend(sub for n in g.node for sub in subgraphs(n))
        if subgraphs(node):
            out[node.name or node.output[0]] = f"{node.op_type} of {count} nodes"
    return out


def describe(engine_or_path: Union[Any, str, Path]) -> dict[str, Any]:
    """Inputs, outputs, precision, source, model card, op counts (of the main graph; "subgraphs"
    gives the size of each Loop/If body) and weight bytes of an engine."""
    from .engine import Engine, load_engine

    engine = engine_or_path if isinstance(engine_or_path, Engine) else load_engine(engine_or_path)
    graph = engine.onnx.graph
    weight_bytes = sum(int(np.prod(t.dims, dtype=np.int64)) * _itemsize(t.data_type) for t in graph.initializer)
    meta = engine.metadata
    return {
        "format": meta.get("format"),
        "foreign": engine.foreign,
        "producer": meta.get("producer"),
        "version": meta.get("version"),
        "tf2rt_version": meta.get("tf2rt_version"),
        "network": meta.get("network"),
        "precision": engine.precision,
        "source": engine.source,
        "model": meta.get("model", {}),
        "inputs": [s.to_json() for s in engine.inputs],
        "outputs": [s.to_json() for s in engine.outputs],
        "states": [{**s, "optional": bool(s.get("optional", True))} for s in meta.get("states", [])],
        "opset": next((o.version for o in engine.onnx.opset_import if o.domain in ("", "ai.onnx")), None),
        "ops": dict(sorted(Counter(n.op_type for n in graph.node).items())),
        "nodes": len(graph.node),
        "subgraphs": _subgraph_sizes(graph),
        "weights": len(graph.initializer),
        "weight_bytes": weight_bytes,
        "optimizations": meta.get("optimizations", {}),
    }
