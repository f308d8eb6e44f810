"""One-step engines at small batches: the one-launch-a-layer stack launched the ordinary way
and as programmatic dependents (TF2RT_CUDA_PDL=1), and the GEMM form, against cuDNN in a
CUDA graph.

Run on an NVIDIA GPU (Hopper or later for the dependent launches):

    python benchmarks/bench_cuda_step.py --out benchmarks/results/cuda_step_h100.md

The engines are those of bench_cuda_engine.py (2 layers, weights from torch.nn.LSTM/GRU, T=1),
run with `engine.runner("cuda", prefer="step")` so both columns time the same kernels; the
runner's own choice between its engines is bench_cuda_engine.py's business. Outputs of the
two launch forms must be identical (same arithmetic); the error column is against cuDNN.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_engine import _times, build, cudnn_call, gpu_meta, grid_arguments, state_feeds  # noqa: E402


def measure(cell: str, B: int, H: int, precision: str, reps: int, state: bool = False) -> dict:
    import torch

    from tf2rt.backends.cuda.cudagraph import CapturedCall

    engine, mod = build(cell, B, H, 1, precision, state=state)
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((B, 1, H)).astype(np.float32), **(state_feeds(cell, B, H, rng) if state else {})}
    rp = "fp16" if precision == "fp16" else None
    row = {"cell": cell, "batch": B, "hidden": H, "precision": precision, "state": state}
    outs = {}
    for form, pdl, gemv in (("plain", "0", "1"), ("pdl", "1", "1"), ("gemm", "0", "0")):
        # read by the runner when it is created
        os.environ["TF2RT_CUDA_PDL"], os.environ["TF2RT_CUDA_GEMV"] = pdl, gemv
        runner = engine.runner("cuda", prefer="step", rnn_precision=rp)
        outs[form] = runner.run(feeds)
        row[f"{form}_us"] = statistics.median(runner.benchmark(feeds, reps, 10)) * 1e6
        stack = runner.executor.chains[0].stack
        row[f"{form}_launch"] = "dependent" if getattr(stack, "pdl", False) else "ordinary"
        row[f"{form}_one_launch"] = bool(getattr(stack, "gemv", False))
        runner.close()
    for name in ("TF2RT_CUDA_PDL", "TF2RT_CUDA_GEMV"):
        os.environ.pop(name, None)
    states = tuple(torch.from_numpy(v).cuda() for k, v in feeds.items() if k != "x")
    call = cudnn_call(mod, cell, torch.from_numpy(feeds["x"]).cuda(), precision, states)
    want = [o.cpu().numpy() for o in call()]
    row["cudnn_us"] = statistics.median(_times(CapturedCall(call), reps))
    names = ("y", "h_n", "c_n")[:len(want)]
    row["identical"] = all(np.array_equal(outs["plain"][k], outs["pdl"][k]) for k in names)
    row["gemm_err"] = max(float(np.abs(outs["gemm"][k] - w).max()) for k, w in zip(names, want))
    row["max_abs_err"] = max(float(np.abs(outs["pdl"][k] - w).max()) for k, w in zip(names, want))
    row["speedup_plain"] = row["cudnn_us"] / row["plain_us"]
    row["speedup_pdl"] = row["cudnn_us"] / row["pdl_us"]
    return row


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# One-step engines, ordinary vs programmatic dependent launches — {meta['gpu']}", "",
             f"{meta['date']}; torch {meta['torch']}, cuDNN {meta['cudnn']}. Command: `{meta['command']}`", "",
             "Times in µs, medians of CUDA-event-timed replays of each engine's captured call (`runner.benchmark`, "
             "prefer=\"step\"); cuDNN = torch.nn.LSTM/GRU doing the same computation in a CUDA graph.", "",
             "ordinary/dependent: one launch a layer (step_gemv) where the batch allows, launched the ordinary "
             "way or as programmatic dependents; GEMM form: TF2RT_CUDA_GEMV=0 (a GEMM and a gate kernel a layer); "
             "identical: the two one-launch forms give the same outputs; state: the engines take initial states "
             "h0/c0 (cuDNN too; without, both start from zeros).", "",
             "| cell | prec | B | H | state | ordinary | dependent | GEMM form | cuDNN | speed-up (ordinary) "
             "| speed-up (dependent) | identical | max abs err |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        form = "" if r["plain_one_launch"] else " (GEMM)"
        lines.append(f"| {r['cell']} | {r['precision']} | {r['batch']} | {r['hidden']} | "
                     f"{'h0' if r.get('state') else '-'} | {r['plain_us']:.1f}{form} | "
                     f"{r['pdl_us']:.1f} ({r['pdl_launch']}) | {r['gemm_us']:.1f} | "
                     f"{r['cudnn_us']:.1f} | {r['speedup_plain']:.2f}x | {r['speedup_pdl']:.2f}x | "
                     f"{'yes' if r['identical'] else '**no**'} | {r['max_abs_err']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid_arguments(ap, "benchmarks/results/cuda_step.md", "1,4")
    ap.add_argument("--gemv-max-batch", type=int, default=None,
                    help="largest batch run one launch a layer (default: single_step.GEMV_MAX_BATCH)")
    args = ap.parse_args(argv)
    if args.gemv_max_batch is not None:
        from tf2rt.backends.cuda import single_step

        single_step.GEMV_MAX_BATCH = args.gemv_max_batch
    meta = gpu_meta("bench_cuda_step.py", argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for cell in args.cells.split(","):
        for prec in args.precisions.split(","):
            for B in map(int, args.batches.split(",")):
                for H, st in ((h, s) for h in map(int, args.hiddens.split(",")) for s in map(int, args.state.split(","))):
                    try:
                        r = measure(cell, B, H, prec, args.reps, bool(st))
                    except Exception as e:  # report and go on
                        print(f"{cell} {prec} B={B} H={H} state={st}: {type(e).__name__}: {e}", flush=True)
                        continue
                    rows.append(r)
                    print(f"{cell} {prec} B={B} H={H} state={st}: ordinary {r['plain_us']:.1f} dependent {r['pdl_us']:.1f} "
                          f"({r['pdl_launch']}) gemm {r['gemm_us']:.1f} cudnn {r['cudnn_us']:.1f} identical {r['identical']} "
                          f"err {r['max_abs_err']:.1e}", flush=True)
                    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
                    out.write_text(to_markdown(rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
