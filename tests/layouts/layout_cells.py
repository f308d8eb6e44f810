"""Helpers for layout tests: random cells with a different value in every gate and bias."""

from __future__ import annotations

import numpy as np
from tf2rt.layouts import CellWeights, gates_for


def random_cell(
    kind: str, E: int, H: int, *, seed: int = 0, zero_rb: bool = False, dtype=np.float32, **kw
) -> CellWeights:
    """A cell whose every weight is a distinct random value (so a gate mix-up cannot pass)."""
    rng = np.random.default_rng(seed)
    gates = gates_for(kind)
    P = kw.get("projection")
    rec = H if P is None else P.shape[0]

    def r(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(dtype)

    W = {g: r(H, E) for g in gates}
    R = {g: r(H, rec) for g in gates}
    Wb = {g: r(H) for g in gates}
    Rb = {g: (np.zeros(H, dtype) if zero_rb else r(H)) for g in gates}
    return CellWeights(kind, E, H, W=W, R=R, Wb=Wb, Rb=Rb, **kw)
