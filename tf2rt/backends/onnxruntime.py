"""The onnxruntime backend (default): CPU, plus CUDA / TensorRT execution providers when installed.

Options: providers ("cpu", "cuda", "tensorrt", or a list of onnxruntime provider names /
(name, options) pairs), threads (intra-op threads: an int, "auto" or "default"),
optimization ("all" | "extended" | "basic" | "none"), io_binding (bind inputs and outputs
once per call through onnxruntime's IOBinding), spinning (let idle intra-op threads spin
between calls: lowest latency on an otherwise idle machine, much slower on a busy one).

Threads by workload ("auto", the default; docs/engine.md has the measurements): a small
graph (no convolutions, at most SMALL_WEIGHTS weight values, e.g. a small char-RNN step) runs
on 1 thread that never spins - a second thread only adds hand-off cost to such a call; a
medium graph (no convolutions, at most MEDIUM_WEIGHTS) keeps onnxruntime's threads but they
do not spin, so a busy machine does not starve them; larger graphs get onnxruntime's default
(one thread per physical core, spinning). The environment variable
TF2RT_ORT_THREADS (an int, "auto" or "default") sets the default; `threads=` and the
CLI's --threads override it. `runner.threading` says what was chosen and why.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..errors import Tf2rtError, UnsupportedError
from . import Runner

THREADS_ENV = "TF2RT_ORT_THREADS"
SMALL_WEIGHTS = 1_000_000  # weight values up to which a graph without convolutions runs on 1 thread
MEDIUM_WEIGHTS = 8_000_000  # ... up to which its threads do not spin
_CONV_OPS = {"Conv", "ConvTranspose", "QLinearConv", "ConvInteger"}

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


def workload(engine: Any) -> dict[str, Any]:
    """The size of an engine's graph as the thread policy sees it: weight values and convolutions."""
    import numpy as np

    graph = engine.onnx.graph
    weights = sum(int(np.prod(t.dims, dtype=np.int64)) for t in graph.initializer)
    convs = sum(1 for n in graph.node if n.op_type in _CONV_OPS)
    return {"weights": weights, "convolutions": convs, "small": convs == 0 and weights <= SMALL_WEIGHTS,
            "medium": convs == 0 and SMALL_WEIGHTS < weights <= MEDIUM_WEIGHTS}


def choose_threading(engine: Any, threads: Union[None, int, str] = None,
                     spinning: Optional[bool] = None) -> dict[str, Any]:
    """Intra-op threads and spinning for `engine`: explicit values win, then TF2RT_ORT_THREADS, then
    the workload ("auto"). Returns {"threads": int | None (onnxruntime's default), "spinning": bool,
    "reason": str}."""
    import os

    source = "threads option"
    if threads is None:
        env = os.environ.get(THREADS_ENV, "").strip().lower()
        threads, source = (env, THREADS_ENV) if env else ("auto", "auto")
    if isinstance(threads, str):
        text = threads.strip().lower()
        if text in ("auto", "default"):
            threads = text
        else:
            try:
                threads = int(text)
            except ValueError:
                raise Tf2rtError(f"{source}: threads must be a positive integer, 'auto' or 'default', "
                                 f"got {threads!r}") from None
    if isinstance(threads, bool) or (isinstance(threads, int) and threads < 1):
        raise Tf2rtError(f"{source}: threads must be a positive integer, 'auto' or 'default', got {threads!r}")
    if threads == "default":
        return {"threads": None, "spinning": True if spinning is None else bool(spinning),
                "reason": f"onnxruntime's default threads ({source})"}
    if threads == "auto":
        w = workload(engine)
        if w["small"]:
            return {"threads": 1, "spinning": False if spinning is None else bool(spinning),
                    "reason": f"small graph ({w['weights']:,} weight values, no convolutions): 1 thread, no spinning"}
        if w["medium"]:
            return {"threads": None, "spinning": False if spinning is None else bool(spinning),
                    "reason": f"medium graph ({w['weights']:,} weight values, no convolutions): onnxruntime's "
                              "default threads, no spinning"}
        why = f"{w['convolutions']} convolutions" if w["convolutions"] else f"{w['weights']:,} weight values"
        return {"threads": None, "spinning": True if spinning is None else bool(spinning),
                "reason": f"large graph ({why}): onnxruntime's default threads"}
    spin = (threads > 1) if spinning is None else bool(spinning)
    return {"threads": int(threads), "spinning": spin, "reason": f"{threads} thread(s) ({source})"}


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

    def __init__(self, engine: Any, providers: Union[None, str, Sequence[Any]] = None,
                 threads: Union[None, int, str] = None, optimization: str = "all", io_binding: bool = False,
                 inter_op_threads: Optional[int] = None, spinning: Optional[bool] = None):
        super().__init__(engine)
        import onnxruntime as ort

        so = ort.SessionOptions()
        levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                  "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        if optimization not in levels:
            raise Tf2rtError(f"optimization must be one of {', '.join(levels)}, got {optimization!r}")
        so.graph_optimization_level = levels[optimization]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.threading = choose_threading(engine, threads, spinning)
        if self.threading["threads"] is not None:
            so.intra_op_num_threads = self.threading["threads"]
        spinning = self.threading["spinning"]
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
