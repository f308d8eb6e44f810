"""The fp32 product-form emulation behind plan.BF16X3_MAX_ROW_NORM (CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_spec = importlib.util.spec_from_file_location(
    "precision_fp32_forms", Path(__file__).resolve().parents[1] / "benchmarks" / "precision_fp32_forms.py")
pf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pf)


def test_parts_carry_16_and_21_bits():
    a = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    for form, bits in (("bf16x3", 16), ("tf32x3", 21)):
        hi, lo = pf.parts(a, form)
        rel = np.abs(hi + lo - a.astype(np.float64)) / np.abs(a)
        assert rel.max() <= 2.0 ** -bits, form
        assert rel.max() > 2.0 ** -(bits + 6), form  # and no more than that


def test_bf16_parts_drift_further_than_tf32_parts_with_large_weights():
    rng = np.random.default_rng(2)
    H = 64
    w, r = (rng.standard_normal((3 * H, H)) * 4 / np.sqrt(H) for _ in range(2))
    xs = [rng.standard_normal((H, 1)) for _ in range(10)]
    exact = pf.gru(w, r, xs, "exact")
    err = {f: float(np.abs(pf.gru(w, r, xs, f) - exact).max()) for f in ("bf16x3", "tf32x3")}
    assert err["bf16x3"] > 4 * err["tf32x3"] > 0, err
