"""Metadata for ONNX models tf2rt did not build ("foreign" models), read from the graph itself.

tf2rt runs, inspects, compares and benchmarks any ONNX model, as Polygraphy and trtexec do:
inputs and outputs (names, dtypes, shapes; symbolic or unknown dims become None) come from
the graph's value infos, and the metadata says `"foreign": true`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FormatError


def _dtype(elem_type: int, name: str, where: str) -> str:
    from onnx import helper

    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{where}: tensor {name!r} has ONNX element type {elem_type}, which tf2rt cannot "
                          "feed or return; only numeric and bool tensors are supported") from None
    if dt.kind not in "biuf" or dt.itemsize > 8:
        raise FormatError(f"{where}: tensor {name!r} has dtype {dt}, which tf2rt cannot feed or return")
    return "bfloat16" if elem_type == 16 else dt.name


def _spec(value_info: Any, where: str) -> dict[str, Any]:
    t = value_info.type
    if t.WhichOneof("value") != "tensor_type":
        raise FormatError(f"{where}: graph input/output {value_info.name!r} is not a tensor "
                          "(sequences and maps are not supported)")
    tt = t.tensor_type
    if not tt.HasField("shape"):
        raise FormatError(f"{where}: graph input/output {value_info.name!r} has no declared rank; "
                          "tf2rt needs each tensor's rank")
    shape = [int(d.dim_value) if d.HasField("dim_value") else None for d in tt.shape.dim]
    return {"name": value_info.name, "dtype": _dtype(tt.elem_type, value_info.name, where), "shape": shape}


def foreign_metadata(model: Any, where: str, format_name: str, format_version: int) -> dict[str, Any]:
    """Engine metadata synthesised from an ONNX model's graph (inputs that are initializers are left out)."""
    graph = model.graph
    init = {t.name for t in graph.initializer}
    inputs = [_spec(v, where) for v in graph.input if v.name not in init]
    outputs = [_spec(v, where) for v in graph.output]
    float_types = {s["dtype"] for s in inputs + outputs if s["dtype"].startswith(("float", "bfloat"))}
    precision = "fp16" if float_types == {"float16"} else "fp32"
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "format": format_name,
        "version": format_version,
        "foreign": True,
        "network": graph.name or "",
        "precision": precision,
        "opset": opset,
        "producer": " ".join(v for v in (model.producer_name, model.producer_version) if v) or None,
        "inputs": inputs,
        "outputs": outputs,
        "states": [],
        "input_hints": {},
        "source": None,
    }


__all__ = ["foreign_metadata"]
