"""How far the cuda backend's fp32 product forms drift in a recurrence (CPU emulation).

The persistent kernel, the input projection and the single-step stack can run fp32
products on tensor cores as three passes over hi/lo parts of each operand: bf16 parts
(about 16 significant bits an operand) or TF32 parts (about 21). This script runs a GRU
for a number of steps in float64 with every recurrent product computed from the parts
exactly as the kernel forms them (hi*hi + hi*lo + lo*hi), state rounded to fp32 each step,
and reports the largest difference from exact products, for weights of growing row norm.
It is what set plan.BF16X3_MAX_ROW_NORM.

    python benchmarks/precision_fp32_forms.py --out benchmarks/results/precision_fp32_forms.md
"""

from __future__ import annotations

import argparse

import numpy as np


def _bf16(x: np.ndarray) -> np.ndarray:
    """Round fp32 values to bf16 (nearest even), returned as float64."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return b.astype(np.uint32).view(np.float32).astype(np.float64)


def _tf32(x: np.ndarray) -> np.ndarray:
    """TF32 part as the kernel's pairs carry it (mantissa cut to 10 bits)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32) & np.uint32(0xFFFFE000)
    return b.view(np.float32).astype(np.float64)


def parts(a: np.ndarray, form: str) -> tuple[np.ndarray, np.ndarray]:
    cut = _bf16 if form == "bf16x3" else _tf32
    a32 = a.astype(np.float32)
    hi = cut(a32)
    return hi, cut((a32 - hi.astype(np.float32)).astype(np.float32))


def product(w: np.ndarray, h: np.ndarray, form: str) -> np.ndarray:
    if form == "exact":
        return w @ h
    wh, wl = parts(w, form)
    hh, hl = parts(h, form)
    return wh @ hh + wh @ hl + wl @ hh


def gru(w: np.ndarray, r: np.ndarray, xs: list, form: str) -> np.ndarray:
    H = r.shape[1]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    h = np.zeros((H, 1))
    for x in xs:
        xp, rh = w @ x, product(r, h, form)
        z, rr = sig(xp[:H] + rh[:H]), sig(xp[H:2 * H] + rh[H:2 * H])
        h = (1 - z) * np.tanh(xp[2 * H:] + rr * rh[2 * H:]) + z * h
        h = h.astype(np.float32).astype(np.float64)
    return h


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="96,512")
    ap.add_argument("--norms", default="0.5,1,2,4,4.9")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None, help="Markdown table path")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    lines = ["# fp32 product forms in a recurrence (CPU emulation)", "",
             f"`python benchmarks/precision_fp32_forms.py --hidden {args.hidden} --norms {args.norms} "
             f"--steps {args.steps} --seeds {args.seeds}`: GRU, {args.steps} steps, normal weights whose rows "
             "have the given expected L2 norm; largest |h - h_exact| over the seeds.", "",
             "| H | row norm | bf16x3 | tf32x3 |", "|---:|---:|---:|---:|"]
    for H in (int(v) for v in args.hidden.split(",")):
        for norm in (float(v) for v in args.norms.split(",")):
            std = norm / np.sqrt(H)
            worst = {"bf16x3": 0.0, "tf32x3": 0.0}
            for _ in range(args.seeds):
                w, r = rng.standard_normal((3 * H, H)) * std, rng.standard_normal((3 * H, H)) * std
                xs = [rng.standard_normal((H, 1)) for _ in range(args.steps)]
                exact = gru(w, r, xs, "exact")
                for form in worst:
                    worst[form] = max(worst[form], float(np.abs(gru(w, r, xs, form) - exact).max()))
            lines.append(f"| {H} | {norm:g} | {worst['bf16x3']:.1e} | {worst['tf32x3']:.1e} |")
            print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
