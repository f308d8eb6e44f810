"""Random and file inputs for an engine (used by `tf2rt compare` / `tf2rt bench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import FormatError, ShapeError
from ..limits import check_elements, max_bytes, regular_file


def concrete_shape(shape: tuple, batch: Optional[int] = None) -> tuple[int, ...]:
    """Dynamic dims become 1, or `batch` for a dynamic first dim."""
    return tuple((batch if (i == 0 and batch) else 1) if d is None else d for i, d in enumerate(shape))


def random_inputs(engine: Any, seed: int = 0, batch: Optional[int] = None,
                  fixed: Optional[Mapping[str, Any]] = None) -> dict[str, np.ndarray]:
    """One random array per input: floats ~ N(0, 1); ints in the metadata's [low, high) hint (else [0, 10)).

    `fixed` (input name -> dims, None = free) sets the sizes another model insists on, e.g. the
    original TF graph's fixed [batch, seq] placeholders when comparing against it."""
    rng = np.random.default_rng(seed)
    hints = engine.metadata.get("input_hints", {})
    shapes, total = {}, 0
    for spec in engine.inputs:  # all sizes checked before the first allocation
        dims = spec.shape
        want = (fixed or {}).get(spec.name)
        if want is not None and len(want) == len(dims):
            dims = tuple(w if d is None and w is not None and int(w) >= 0 else d for d, w in zip(dims, want))
        shape = concrete_shape(dims, batch)
        # float64 is what the generator makes before the cast
        total += check_elements(shape, 8, f"random input {spec.name!r} of shape {shape}") * 8
        shapes[spec.name] = shape
    if total > max_bytes():
        check_elements((total,), 1, "random inputs together")
    out = {}
    for spec in engine.inputs:
        shape = shapes[spec.name]
        if spec.dtype in ("float32", "float16"):
            out[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        elif spec.dtype == "bool":
            out[spec.name] = rng.random(shape) < 0.5
        else:
            h = hints.get(spec.name, {})
            out[spec.name] = rng.integers(int(h.get("low", 0)), int(h.get("high", 10)), size=shape).astype(spec.dtype)
    return out


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file keyed by tensor name (no pickles)."""
    from ..weights.npz import NpzFile

    p = regular_file(path, "inputs file")
    with open(p, "rb") as f:
        if f.read(2) != b"PK":
            raise FormatError(f"{p}: not an .npz archive keyed by tensor name; write one with numpy.savez")
    # The weights reader: headers checked against the cap and the zip directory before any
    # array is allocated, unknown compression and pickles refused.
    with NpzFile(p) as src:
        return {info.name: src._read(info) for info in src.infos()}


def save_npz(path: str | Path, arrays: dict[str, np.ndarray], inputs: Any = ()) -> Path:
    """Write `arrays` as an .npz atomically, refusing to overwrite any of `inputs`."""
    from ..outputs import atomic_output

    p = Path(path)
    with atomic_output(p, inputs) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return p


def check_names(engine: Any, feeds: dict[str, np.ndarray]) -> None:
    """ShapeError naming missing / unknown inputs (before any backend is loaded).

    Optional state inputs may be missing: running fills them with zeros."""
    from .stream import optional_state_inputs

    names = [s.name for s in engine.inputs]
    optional = set(optional_state_inputs(engine))
    missing = [n for n in names if n not in feeds and n not in optional]
    unknown = [n for n in feeds if n not in names]
    if missing or unknown:
        msg = []
        if missing:
            msg.append("missing input(s) " + ", ".join(map(repr, missing)))
        if unknown:
            msg.append("unknown input(s) " + ", ".join(map(repr, unknown)))
        raise ShapeError("; ".join(msg) + f" (the engine's inputs are: {', '.join(names)})")
