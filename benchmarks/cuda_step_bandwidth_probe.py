"""How close one-step fp32 stacks at batch 1 come to streaming their weights: the
single-step stack (one launch a layer) with 1 and 2 layers against a plain read of the
same bytes (torch.sum over a tensor of the weights' size) and cuDNN in a CUDA graph.

At H=1024 fp32 a 2-layer LSTM reads 64 MB of weights a call (GRU 48 MB): every call
streams them from HBM, so the call's time over those bytes is the bandwidth it reaches.

    python benchmarks/cuda_step_bandwidth_probe.py --out benchmarks/results/cuda_step_bandwidth_probe.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_rnn import _events_median, _graphed, specs_for  # noqa: E402


def measure(cell: str, hidden: int, reps: int) -> list[dict]:
    import torch

    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    limits = device_limits()
    G = {"lstm": 4, "gru": 3}[cell]
    rows = []
    for layers in (1, 2):
        specs = specs_for(cell, hidden, layers, hidden)
        x = torch.randn(1, 1, hidden, device="cuda")
        step, plan = make_stack(specs, 1, 1, "float32", limits, prefer="step")
        cudnn, _ = make_stack(specs, 1, 1, "float32", limits, prefer="cudnn")
        nbytes = layers * G * hidden * 2 * hidden * 4
        w = torch.randn(nbytes // 4, device="cuda")
        sink = torch.empty((), device="cuda")
        r = {"cell": cell, "hidden": hidden, "layers": layers, "MB": nbytes / 2**20, "engine": plan.engine,
             "step_us": _events_median(_graphed(lambda: step(x)), reps),
             "cudnn_us": _events_median(_graphed(lambda: cudnn(x)), reps),
             "read_us": _events_median(_graphed(lambda: torch.sum(w, dim=0, out=sink)), reps)}
        for k in ("step", "cudnn", "read"):
            r[f"{k}_TBps"] = nbytes / (r[f"{k}_us"] * 1e-6) / 1e12
        rows.append(r)
        print(r, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_step_bandwidth_probe.md")
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args(argv)
    from bench_cuda_engine import gpu_meta

    meta = gpu_meta("cuda_step_bandwidth_probe.py", argv)
    rows = measure("lstm", 1024, args.reps) + measure("gru", 1024, args.reps)
    lines = [f"# One-step fp32 stacks at batch 1 against streaming their weights — {meta['gpu']}", "",
             f"{meta['date']}; torch {meta['torch']}. Command: `{meta['command']}`", "",
             "µs, medians of CUDA-event-timed graph replays; TB/s = the layers' recurrent and input weights "
             "(fp32) over the time; read = torch.sum over a tensor of that many bytes.", "",
             "| cell | H | layers | weights (MB) | single-step stack | TB/s | cuDNN | TB/s | plain read | TB/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['layers']} | {r['MB']:.0f} | {r['step_us']:.1f} | "
                     f"{r['step_TBps']:.2f} | {r['cudnn_us']:.1f} | {r['cudnn_TBps']:.2f} | {r['read_us']:.1f} | "
                     f"{r['read_TBps']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
