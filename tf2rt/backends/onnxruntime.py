"""The onnxruntime backend (default): CPU, plus CUDA / TensorRT execution providers when installed.

Options: providers ("cpu", "cuda", "tensorrt", or a list of onnxruntime provider names /
(name, options) pairs), threads (intra-op threads; default: onnxruntime's choice),
optimization ("all" | "extended" | "basic" | "none"), io_binding (bind inputs and outputs
once per call through onnxruntime's IOBinding), spinning (let idle intra-op threads spin
between calls: lowest latency on an otherwise idle machine; turn off on a busy one).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import Tf2rtError, UnsupportedError
from . import Runner

_SHORT = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
          "trt": "TensorrtExecutionProvider"}


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def why_unavailable() -> str:
    return "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"


def default_providers() -> list[str]:
    """CUDA then CPU when this onnxruntime has CUDA, else CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in have]


def _providers(spec: Union[None, str, Sequence[Any]]) -> list[Any]:
    import onnxruntime as ort

    if spec is None:
        return default_providers()
    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[Any] = []
    have = ort.get_available_providers()
    for item in items:
        name = item[0] if isinstance(item, tuple) else item
        full = _SHORT.get(str(name).lower(), name)
        if full not in have:
            raise UnsupportedError(f"onnxruntime execution provider {name!r} is not available here "
                                   f"(this onnxruntime has: {', '.join(have)})")
        out.append((full, item[1]) if isinstance(item, tuple) else full)
    if "CPUExecutionProvider" not in [p[0] if isinstance(p, tuple) else p for p in out]:
        out.append("CPUExecutionProvider")  # fallback for ops the accelerator lacks
    return out


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, engine: Any, providers: Union[None, str, Sequence[Any]] = None, threads: Optional[int] = None,
                 optimization: str = "all", io_binding: bool = False, inter_op_threads: Optional[int] = None,
                 spinning: bool = True):
        super().__init__(engine)
        import onnxruntime as ort

        so = ort.SessionOptions()
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if optimization not in levels:
            raise Tf2rtError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
        so.graph_optimization_level = levels[optimization]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if threads is not None:
            so.intra_op_num_threads = int(threads)
        if inter_op_threads is not None:
            so.inter_op_num_threads = int(inter_op_threads)
        so.log_severity_level = 4  # failures reach the caller as Tf2rtError; no duplicate log lines
        if not spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(engine.serialize(), so, providers=_providers(providers))
        except Tf2rtError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise UnsupportedError(f"onnxruntime could not load the engine: {exc}") from None
        self.providers = self.session.get_providers()
        self._run = self.session.run
        self._binding = self.session.io_binding() if io_binding else None

    def _execute(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.run_list(feeds)))

    def run_list(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in engine order, feeds NOT checked: the lowest-overhead path for hot loops."""
        try:
            if self._binding is not None:
                return self._run_bound(feeds)
            return self._run(self.output_names, feeds)
        except Tf2rtError:
            raise
        except Exception as exc:  # onnxruntime's own exception types, e.g. an index out of range
            raise Tf2rtError(f"onnxruntime failed running the engine: {str(exc).splitlines()[0]}") from None

    def _run_bound(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        b = self._binding
        for name, x in feeds.items():
            b.bind_cpu_input(name, x)
        for name in self.output_names:
            b.bind_output(name)
        self.session.run_with_iobinding(b)
        return b.copy_outputs_to_cpu()

    def close(self) -> None:
        self._binding = None
        self.session = None  # type: ignore[assignment]
        self._run = _closed


def _closed(*_: Any) -> Any:
    raise Tf2rtError("this runner was closed; load the engine again")


def load(engine: Any, **options: Any) -> OnnxRuntimeRunner:
    allowed = {"providers", "threads", "optimization", "io_binding", "inter_op_threads", "spinning"}
    bad = set(options) - allowed
    if bad:
        raise Tf2rtError(f"unknown onnxruntime backend option(s) {', '.join(sorted(bad))}; "
                         f"use {', '.join(sorted(allowed))}")
    return OnnxRuntimeRunner(engine, **options)
