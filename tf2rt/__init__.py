"""tf2rt: TensorFlow models to fast inference engines, without TensorFlow at run time.

The flow is one-directional:

    files --read--> Weights --convert--> per-gate weights --set--> Network
          --build--> Engine (ONNX + metadata) --run--> backend (onnxruntime, reference, cuda)

`import tf2rt` is cheap: the public names below are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Weights": "tf2rt.weights.base",
    "TensorInfo": "tf2rt.weights.base",
    "load_weights": "tf2rt.weights.api",
    "dump_weights": "tf2rt.weights.api",
    "open_weights": "tf2rt.weights.api",
    "Tf2rtError": "tf2rt.errors",
    "Network": "tf2rt.network",
    "build_engine": "tf2rt.engine",
    "Engine": "tf2rt.engine",
    "load_engine": "tf2rt.engine",
    "convert": "tf2rt.importers",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tf2rt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
