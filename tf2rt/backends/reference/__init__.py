"""The reference backend: interprets the engine's ONNX graph with numpy, one function per op.

Slow and exact; independent of onnxruntime; the spec other backends are tested against.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .. import Runner
from .interpreter import Interpreter
from .registry import OPS, load_ops, op


def available() -> bool:
    try:
        import onnx  # noqa: F401  (the graph is read with onnx's protobuf classes)
    except ImportError:
        return False
    return True


class ReferenceRunner(Runner):
    backend = "reference"

    def __init__(self, engine: Any):
        super().__init__(engine)
        self._interp = Interpreter(engine.onnx)

    def _execute(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self._interp.run(feeds)


def load(engine: Any, **options: Any) -> ReferenceRunner:
    if options:
        from ...errors import Tf2rtError

        raise Tf2rtError(f"the reference backend takes no options (got {', '.join(options)})")
    return ReferenceRunner(engine)


__all__ = ["available", "load", "ReferenceRunner", "Interpreter", "OPS", "op", "load_ops"]
