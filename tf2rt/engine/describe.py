"""describe(engine) -> a JSON-able summary (what `tf2rt inspect` shows for engine files)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Union

import numpy as np

_ITEMSIZE = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}


def describe(engine_or_path: Union[Any, str, Path]) -> dict[str, Any]:
    """Inputs, outputs, precision, source, model card, op counts and weight bytes of an engine."""
    from .engine import Engine, load_engine

    engine = engine_or_path if isinstance(engine_or_path, Engine) else load_engine(engine_or_path)
    graph = engine.onnx.graph
    weight_bytes = sum(int(np.prod(t.dims, dtype=np.int64)) * _ITEMSIZE.get(t.data_type, 0) for t in graph.initializer)
    meta = engine.metadata
    return {
        "format": meta.get("format"),
        "version": meta.get("version"),
        "tf2rt_version": meta.get("tf2rt_version"),
        "network": meta.get("network"),
        "precision": engine.precision,
        "source": engine.source,
        "model": meta.get("model", {}),
        "inputs": [s.to_json() for s in engine.inputs],
        "outputs": [s.to_json() for s in engine.outputs],
        "states": meta.get("states", []),
        "opset": next((o.version for o in engine.onnx.opset_import if o.domain in ("", "ai.onnx")), None),
        "ops": dict(sorted(Counter(n.op_type for n in graph.node).items())),
        "nodes": len(graph.node),
        "weights": len(graph.initializer),
        "weight_bytes": weight_bytes,
        "optimizations": meta.get("optimizations", {}),
    }
