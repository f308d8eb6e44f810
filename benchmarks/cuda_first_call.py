"""What a user waits for before the first result: the first `runner.run` of an engine on
the cuda backend (recurrent stacks built and compiled, the first-run measurement of their
candidates, the CUDA graph captured), against a later call.

    python benchmarks/cuda_first_call.py --out benchmarks/results/cuda_first_call.md

Each engine is timed in a fresh runner; kernels compiled by an earlier runner of the same
process come from the compile cache, so the first engine of each shape pays the compiles
and a second runner of it shows the rest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_engine import build, gpu_meta, state_feeds  # noqa: E402

SHAPES = ["lstm:1:512:100:fp16", "gru:1:512:1:fp32", "lstm:64:256:100:fp32", "gru:64:1024:100:fp16"]


def first_call(engine, feeds: dict, precision: str) -> dict:
    import torch

    rp = "fp16" if precision == "fp16" else None
    out = {}
    for attempt in ("first", "again"):  # the second runner finds the kernels compiled
        t0 = time.perf_counter()
        runner = engine.runner("cuda", rnn_precision=rp)
        runner.run(feeds)
        torch.cuda.synchronize()
        out[f"{attempt}_s"] = time.perf_counter() - t0
        if attempt == "first":
            out["engine"] = runner.describe()["recurrent"][0].get("engine")
            out["measured_us"] = runner.describe()["recurrent"][0].get("measured_us")
            out["call_us"] = statistics.median(runner.benchmark(feeds, 20, 5)) * 1e6
        runner.close()
    return out


def write(out: Path, rows: list[dict], meta: dict) -> None:
    lines = [f"# First call of an engine on the cuda backend — {meta['gpu']}", "",
             f"{meta['date']}; torch {meta['torch']}. Command: `{meta['command']}`", "",
             "first: seconds from creating the runner to the first result (stacks built, kernels compiled, "
             "candidates measured, graph captured); again: the same with a second runner (kernels already "
             "compiled in this process); call: a later call, µs; measured: the first-run measurement's times (µs).",
             "", "| engine | first (s) | again (s) | call (µs) | stack | measured |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        name = (f"{r['cell'].upper()} H={r['hidden']} batch {r['batch']} T={r['T']} {r['precision']}"
                + (", given h0/c0" if r.get("state") else ""))
        lines.append(f"| {name} | {r['first_s']:.2f} | {r['again_s']:.2f} | {r['call_us']:.1f} | {r['engine']} | "
                     f"{r['measured_us']} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_first_call.md")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help="cell:batch:hidden:T:precision[:h0],... (h0: the engine takes initial states)")
    args = ap.parse_args(argv)
    meta = gpu_meta("cuda_first_call.py", argv)
    rows = []
    for shape in args.shapes.split(","):
        cell, B, H, T, prec, *extra = shape.split(":")
        B, H, T, state = int(B), int(H), int(T), extra == ["h0"]
        engine, _ = build(cell, B, H, T, prec, state=state)
        rng = np.random.default_rng(0)
        feeds = {"x": rng.standard_normal((B, T, H)).astype(np.float32), **(state_feeds(cell, B, H, rng) if state else {})}
        r = {"cell": cell, "batch": B, "hidden": H, "T": T, "precision": prec, "state": state,
             **first_call(engine, feeds, prec)}
        print(r, flush=True)
        rows.append(r)
        write(Path(args.out), rows, meta)  # after every engine: a run cut short keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
