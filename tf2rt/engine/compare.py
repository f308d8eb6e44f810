"""Compare two sets of outputs: per-output max abs/rel error and the smallest tolerances that pass.

A value passes when |cand - ref| <= atol + rtol * |ref| (numpy.allclose). min_atol is the
smallest atol that passes at the given rtol; min_rtol the smallest rtol at the given atol
(inf where the reference is 0 and the difference exceeds atol: no rtol helps there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np


@dataclass
class OutputComparison:
    """How one output of the candidate differs from the reference."""

    name: str
    shape: tuple
    max_abs: float
    max_rel: float
    min_atol: float  # smallest atol that passes at the given rtol
    passed: bool
    note: str = ""
    min_rtol: float = 0.0  # smallest rtol that passes at the given atol

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "max_abs": self.max_abs, "max_rel": self.max_rel,
                "min_atol": self.min_atol, "min_rtol": self.min_rtol, "passed": self.passed, "note": self.note}


def compare_arrays(name: str, ref: Any, cand: Any, atol: float, rtol: float) -> OutputComparison:
    """Compare one output; passes when |cand - ref| <= atol + rtol * |ref| everywhere (numpy.allclose)."""
    r, c = np.asarray(ref), np.asarray(cand)
    if r.shape != c.shape:
        return OutputComparison(name, r.shape, float("inf"), float("inf"), float("inf"), False,
                                f"shape {list(c.shape)} != reference {list(r.shape)}", float("inf"))
    if r.size == 0:
        return OutputComparison(name, r.shape, 0.0, 0.0, 0.0, True)
    if r.dtype.kind in "iub" and c.dtype.kind in "iub":
        bad = int(np.count_nonzero(r != c))
        diff = np.abs(r.astype(np.int64) - c.astype(np.int64))
        mx = float(diff.max())
        return OutputComparison(name, r.shape, mx, mx / max(float(np.abs(r).max()), 1.0), mx, bad == 0,
                                f"{bad} of {r.size} values differ" if bad else "",
                                _min_rtol(diff.astype(np.float64), np.abs(r.astype(np.float64)), atol))
    r64, c64 = r.astype(np.float64), c.astype(np.float64)
    nan_mismatch = np.isnan(r64) != np.isnan(c64)
    diff = np.abs(r64 - c64)
    diff[np.isnan(r64) & np.isnan(c64)] = 0.0
    max_abs = float(np.nanmax(diff)) if not nan_mismatch.any() else float("inf")
    rel = diff / np.maximum(np.abs(r64), np.finfo(np.float64).tiny)
    max_rel = float(np.nanmax(rel)) if not nan_mismatch.any() else float("inf")
    need = diff - rtol * np.abs(r64)
    min_atol = max(float(np.nanmax(need)), 0.0) if not nan_mismatch.any() else float("inf")
    passed = bool(min_atol <= atol)
    note = "NaN where the reference has none (or the reverse)" if nan_mismatch.any() else ""
    min_rtol = _min_rtol(diff, np.abs(r64), atol) if not nan_mismatch.any() else float("inf")
    return OutputComparison(name, r.shape, max_abs, max_rel, min_atol, passed, note, min_rtol)


def _min_rtol(diff: np.ndarray, mag: np.ndarray, atol: float) -> float:
    """Smallest rtol with diff <= atol + rtol * mag everywhere (inf if a zero reference needs more than atol)."""
    excess = diff - atol
    over = excess > 0
    if not over.any():
        return 0.0
    if (mag[over] == 0).any():
        return float("inf")
    return float(np.max(excess[over] / mag[over]))


def compare_outputs(reference: Mapping[str, Any], candidate: Mapping[str, Any], atol: float = 1e-5,
                    rtol: float = 1e-5, names: Optional[list[str]] = None) -> list[OutputComparison]:
    """Compare every output of `reference` (or `names`) with `candidate`; a missing output fails."""
    out = []
    for name in names or list(reference):
        if name not in candidate:
            out.append(OutputComparison(name, np.shape(reference[name]), float("inf"), float("inf"),
                                        float("inf"), False, "missing from the candidate"))
            continue
        out.append(compare_arrays(name, reference[name], candidate[name], atol, rtol))
    return out


def format_comparison(rows: list[OutputComparison], ref_label: str = "reference", cand_label: str = "candidate") -> str:
    """A Markdown table of comparisons."""
    lines = ["| output | shape | max abs err | max rel err | min atol to pass | min rtol to pass | result |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        res = "ok" if r.passed else "MISMATCH"
        if r.note:
            res += f" ({r.note})"
        lines.append(f"| {r.name} | {list(r.shape)} | {r.max_abs:.3g} | {r.max_rel:.3g} | {r.min_atol:.3g} "
                     f"| {r.min_rtol:.3g} | {res} |")
    return f"{cand_label} vs {ref_label}\n" + "\n".join(lines)
