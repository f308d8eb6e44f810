"""build_engine: Network -> lowered, optimized, precision-converted, checked ONNX + metadata."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..errors import ShapeError, Tf2rtError
from .engine import FORMAT_NAME, FORMAT_VERSION, Engine, TensorSpec, attach_metadata
from .lowering import OPSET, lower
from .precision import PRECISIONS, to_fp16


def build_engine(network: Any, precision: str = "fp32", optimize: bool = True,
                 metadata: Optional[Mapping[str, Any]] = None) -> Engine:
    """Build an Engine from a Network.

    precision: "fp32" or "fp16" (see tf2rt.engine.precision for what fp16 means).
    metadata: extra JSON-able entries; "source" (where the model came from) and "model"
    (a model-card dict) are the conventional keys.
    """
    import onnx

    from .. import __version__

    if precision not in PRECISIONS:
        raise Tf2rtError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    model = lower(network)
    stats: dict[str, int] = {}
    if optimize:
        from .optimize import optimize as run_passes

        stats = run_passes(model)
    if precision == "fp16":
        to_fp16(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # a lowering bug, not a user error: say so plainly
        raise Tf2rtError(f"internal error: the lowered ONNX graph of network {network.name!r} fails "
                         f"onnx.checker ({str(exc).strip().splitlines()[0]}); please report it") from None
    except onnx.shape_inference.InferenceError as exc:
        raise ShapeError(f"network {network.name!r}: ONNX shape inference failed: {exc}") from None

    meta: dict[str, Any] = {}
    meta.update(network.metadata)
    meta.update(dict(metadata or {}))
    declared = list(network.states)
    for layer in network.layers:  # RNN layers whose initial state is an input and final state an output
        for i, o in getattr(layer, "state_pairs", lambda: [])():
            if all(i is not d for d, _ in declared):
                declared.append((i, o))
    # state inputs exist for streaming; the model never had them: not feeding one means zeros
    states = [{"input": i.name, "output": o.name, "optional": True} for i, o in declared]
    meta.update({
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "tf2rt_version": __version__,
        "network": network.name,
        "precision": precision,
        "opset": OPSET,
        "inputs": [TensorSpec(t.name, t.dtype, t.shape).to_json() for t in network.inputs],
        "outputs": [TensorSpec(t.name, t.dtype, t.shape).to_json() for t in network.outputs],
        "states": states,
        "input_hints": {k: v for k, v in network.input_hints.items() if k in {t.name for t in network.inputs}},
        "optimizations": stats,
    })
    meta.setdefault("source", None)
    meta.setdefault("model", {})
    attach_metadata(model, meta)
    return Engine(model, meta)
