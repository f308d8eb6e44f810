"""Build engines from Networks, save/load engine files, describe them.

An engine file IS a valid .onnx model (recurrent layers as native ONNX LSTM/GRU/RNN ops)
with tf2rt's metadata JSON in metadata_props["tf2rt"].
"""

from __future__ import annotations

from .build import build_engine
from .compare import OutputComparison, compare_arrays, compare_outputs, format_comparison
from .describe import describe
from .engine import Engine, TensorSpec, from_bytes, load_engine
from .lowering import LOWERINGS, OPSET, LoweringContext, lowering
from .precision import PRECISIONS

__all__ = ["build_engine", "Engine", "TensorSpec", "load_engine", "from_bytes", "describe", "compare_outputs",
           "compare_arrays", "format_comparison", "OutputComparison", "lowering", "LoweringContext", "LOWERINGS",
           "OPSET", "PRECISIONS"]
