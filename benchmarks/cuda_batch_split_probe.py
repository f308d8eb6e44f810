"""Would splitting a large batch across the GPU pay? The persistent kernel at batch B on
every SM against two independent stacks of B/2 rows, each planned for half the SMs and
launched side by side (two streams in one CUDA graph), and cuDNN in a CUDA graph.

Each CTA of the persistent kernel copies every batch row of h it multiplies each step
(B x H values); two half-batch stacks copy half as much per CTA but hold twice the weights
a CTA. This times both before the kernel grows a batch split of its own.

    python benchmarks/cuda_batch_split_probe.py --out benchmarks/results/cuda_batch_split_probe.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_rnn import _events_median, _graphed, specs_for  # noqa: E402


def measure(cell: str, hidden: int, batch: int, T: int, dtype: str, layers: int, reps: int) -> dict:
    import torch

    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    limits = device_limits()
    half = dataclasses.replace(limits, sm_count=limits.sm_count // 2)
    specs = specs_for(cell, hidden, layers, hidden + batch)
    x = torch.randn(T, batch, hidden, device="cuda", dtype=getattr(torch, dtype))
    hb = batch // 2
    row = {"cell": cell, "hidden": hidden, "batch": batch, "T": T, "dtype": dtype}
    cudnn, _ = make_stack(specs, batch, T, dtype, limits, prefer="cudnn")
    row["cudnn_us"] = _events_median(_graphed(lambda: cudnn(x)), reps)
    want = cudnn(x)[0].float().clone()
    full, plan = make_stack(specs, batch, T, dtype, limits, prefer="persistent")
    row["full_engine"] = plan.engine + " " + str(plan.describe().get("step", ""))
    row["full_us"] = _events_median(_graphed(lambda: full(x)), reps)
    row["full_err"] = float((full(x)[0].float() - want).abs().max())
    a, pa = make_stack(specs, hb, T, dtype, half, prefer="persistent")
    b, _ = make_stack(specs, hb, T, dtype, half, prefer="persistent")
    row["half_engine"] = pa.engine + " " + str(pa.describe().get("step", ""))
    xa, xb = x[:, :hb].contiguous(), x[:, hb:].contiguous()
    row["half_alone_us"] = _events_median(_graphed(lambda: a(xa)), reps)
    side = torch.cuda.Stream()

    def both():
        main = torch.cuda.current_stream()
        side.wait_stream(main)
        ya = a(xa)[0]
        with torch.cuda.stream(side):
            yb = b(xb)[0]
        main.wait_stream(side)
        return ya, yb

    row["split_us"] = _events_median(_graphed(both), reps)
    ya, yb = both()
    torch.cuda.synchronize()
    got = torch.cat([ya.float(), yb.float()], dim=2)  # y [T, D, B, H]
    row["split_err"] = float((got - want).abs().max())
    row["speedup_split_vs_cudnn"] = row["cudnn_us"] / row["split_us"]
    row["speedup_full_vs_cudnn"] = row["cudnn_us"] / row["full_us"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_batch_split_probe.md")
    ap.add_argument("--shapes", default="lstm:1024:64:float16,gru:1024:64:float16,lstm:512:64:float16")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args(argv)
    import torch

    rows = []
    for shape in args.shapes.split(","):
        cell, H, B, dt = shape.split(":")
        try:
            r = measure(cell, int(H), int(B), args.steps, dt, 2, args.reps)
        except Exception as exc:  # report and go on
            print(f"{shape}: {type(exc).__name__}: {exc}", flush=True)
            continue
        print(r, flush=True)
        rows.append(r)
    lines = [f"# Batch split probe — {torch.cuda.get_device_name()}", "",
             f"Command: `python benchmarks/cuda_batch_split_probe.py {' '.join(argv or sys.argv[1:])}`", "",
             "2 layers, T as given; µs, medians of CUDA-event-timed graph replays. full: the persistent kernel "
             "at batch B on every SM; half alone: one stack of B/2 rows planned for half the SMs; split: two such "
             "stacks side by side (two streams in one graph); err: largest difference of y from cuDNN.", "",
             "| cell | H | B | dtype | cuDNN | full | half alone | split | split vs cuDNN | full engine | half engine "
             "| err full | err split |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['batch']} | {r['dtype']} | {r['cudnn_us']:.1f} | "
                     f"{r['full_us']:.1f} | {r['half_alone_us']:.1f} | {r['split_us']:.1f} | "
                     f"{r['speedup_split_vs_cudnn']:.2f}x | {r['full_engine']} | {r['half_engine']} | "
                     f"{r['full_err']:.1e} | {r['split_err']:.1e} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
