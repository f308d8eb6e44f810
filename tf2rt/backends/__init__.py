"""Backends run engines; each is one module with the same small lifecycle:

    available() -> bool
    load(engine, **options) -> Runner      # Runner.run(feeds) -> {name: array}; Runner.close()

Runner.run is a template method: it checks the feeds (names, dtypes, shapes; optional state
inputs left out are filled with zeros) and hands them to the backend's `_execute(feeds)`,
the only step a backend implements.

A Runner may also offer `benchmark(feeds, iterations, warmup) -> list[float]` (seconds per
run) when it has a better timer than the host clock (e.g. CUDA events).
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import ShapeError, Tf2rtError, UnsupportedError

# backend name -> module implementing available() and load(engine, **options)
BACKENDS: dict[str, str] = {
    "onnxruntime": "tf2rt.backends.onnxruntime",
    "reference": "tf2rt.backends.reference",
    "cuda": "tf2rt.backends.cuda",
}
DEFAULT_BACKEND = "onnxruntime"


def get_backend(name: str) -> Any:
    """The backend module for `name`; a clear error when unknown or not installed."""
    module = BACKENDS.get(name)
    if module is None:
        raise Tf2rtError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        extra = "cuda" if name == "cuda" else None
        hint = f"pip install 'tf2rt[{extra}]'" if extra else "reinstall tf2rt (pip install tf2rt)"
        raise UnsupportedError(f"backend {name!r} cannot be imported ({exc}); {hint}") from None
    return mod


def available_backends() -> list[str]:
    """Names of the backends usable in this environment."""
    out = []
    for name in BACKENDS:
        try:
            check = getattr(get_backend(name), "available", None)
            if check is not None and check():
                out.append(name)
        except Exception:  # noqa: BLE001 - a probe: a backend that cannot even be checked is unavailable
            pass
    return out


def load(engine: Any, backend: str = DEFAULT_BACKEND, **options: Any) -> "Runner":
    """Load `engine` on `backend`; returns a Runner."""
    mod = get_backend(backend)
    if not hasattr(mod, "load") or not hasattr(mod, "available"):
        raise UnsupportedError(f"backend {backend!r} is incomplete (its module lacks available()/load())")
    if not mod.available():
        raise UnsupportedError(f"backend {backend!r} is not available here"
                               + (f" ({mod.why_unavailable()})" if hasattr(mod, "why_unavailable") else ""))
    if hasattr(engine, "onnx"):  # no backend may resolve a path a model names (engines built in memory too)
        from ..engine.external import refuse_external_data

        refuse_external_data(engine.onnx)
    return mod.load(engine, **options)


class Runner:
    """Base class of loaded engines: feed checking shared by every backend.

    Subclasses implement `_execute(feeds)` (feeds already checked) and never override run().
    """

    backend = ""

    def __init__(self, engine: Any):
        self.engine = engine
        self.inputs = list(engine.inputs)
        self.outputs = list(engine.outputs)
        self.input_names = [s.name for s in self.inputs]
        self.output_names = [s.name for s in self.outputs]
        # (name, dtype, shape, the shape as a tuple when fully static else None): checked every call
        self._specs = [(s.name, s.np_dtype, s.shape, None if None in s.shape else tuple(s.shape))
                       for s in self.inputs]
        from ..engine.stream import optional_state_inputs

        self.optional_inputs = optional_state_inputs(engine)  # state inputs that default to zeros
        states = {i for i, _o in engine.states}
        # model inputs with a dynamic dimension: where zero states take their batch size from
        self._batch_axis = {s.name: s.shape.index(None) for s in self.inputs
                            if s.name not in states and None in s.shape}
        self._batch_probe = list(self._batch_axis)
        self._zero_cache: dict[tuple, dict[str, np.ndarray]] = {}

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Check `feeds` (missing optional states become zeros), run once, return {output name: array}."""
        return self._execute(self.check_feeds(feeds))

    def _execute(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The backend's step: run on feeds that check_feeds() accepted."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; the runner cannot run afterwards."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, *arrays: Any) -> Any:
        out = self.run(dict(zip(self.input_names, arrays)))
        values = tuple(out[n] for n in self.output_names)
        return values[0] if len(values) == 1 else values

    def check_feeds(self, feeds: Mapping[str, Any]) -> Mapping[str, np.ndarray]:
        """Feeds as arrays of the declared dtypes and shapes; ShapeError naming the tensor otherwise.

        Optional state inputs (engine metadata "states") that are not fed become zeros, their
        batch size taken from the fed inputs. Returns `feeds` itself when nothing needed
        converting or filling (the common, cheap case).
        """
        if len(feeds) < len(self._specs) and self.optional_inputs:
            feeds = self._fill_states(feeds)
        converted: Optional[dict[str, np.ndarray]] = None
        try:
            for name, dtype, shape, static in self._specs:
                x = feeds[name]
                if type(x) is not np.ndarray or (x.dtype is not dtype and x.dtype != dtype):
                    x = _coerce(name, x, dtype)
                    if converted is None:
                        converted = dict(feeds)
                    converted[name] = x
                if x.shape != static and (static is not None or len(x.shape) != len(shape) or any(
                        d is not None and d != n for d, n in zip(shape, x.shape))):
                    want = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
                    raise ShapeError(f"input {name!r} has shape {list(x.shape)}, the engine expects {want}")
        except KeyError:
            self._name_error(feeds)
        if len(feeds) != len(self._specs):
            self._name_error(feeds)
        return feeds if converted is None else converted

    def _fill_states(self, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        from ..engine.stream import zero_states

        missing = tuple(n for n in self.optional_inputs if n not in feeds)
        if not missing:
            return feeds
        # one model input tells the batch size; the zero states for it are made once
        # (read-only: no backend writes into its inputs)
        probe = next((n for n in self._batch_probe if n in feeds), None)
        batch = np.shape(feeds[probe])[self._batch_axis[probe]] if probe is not None else None
        key = (missing, batch)
        zeros = self._zero_cache.get(key) if batch is not None else None
        if zeros is None:
            zeros = zero_states(self.engine, feeds)
            for z in zeros.values():
                z.flags.writeable = False
            if batch is not None and len(self._zero_cache) < 16:
                self._zero_cache[key] = zeros
        return {**feeds, **zeros}

    def _name_error(self, feeds: Mapping[str, Any]) -> None:
        names = set(self.input_names)
        missing = [n for n in self.input_names if n not in feeds]
        unknown = [n for n in feeds if n not in names]
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        raise ShapeError("; ".join(parts) + f" (the engine's inputs are: {', '.join(self.input_names)})")


def _coerce(name: str, x: Any, dtype: np.dtype) -> np.ndarray:
    """Accept lists/scalars and lossless dtype changes; refuse lossy ones with a clear error."""
    arr = np.asarray(x)
    if arr.dtype == dtype:
        return arr
    lossless = np.can_cast(arr.dtype, dtype, casting="safe") or (
        arr.dtype.kind in "iu" and dtype.kind in "iu" and (arr.size == 0 or (
            np.iinfo(dtype).min <= arr.min() and arr.max() <= np.iinfo(dtype).max)))
    if not isinstance(x, np.ndarray) and arr.dtype.kind == "f" and dtype.kind == "f":
        lossless = True  # Python floats
    if not lossless:
        raise ShapeError(f"input {name!r} has dtype {arr.dtype}, the engine expects {dtype}; "
                         f"convert it with .astype(np.{dtype})")
    return arr.astype(dtype)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Runner", "get_backend", "available_backends", "load"]
