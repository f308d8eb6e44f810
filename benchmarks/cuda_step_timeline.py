"""Where the time of a one-step call goes between its layers: a timeline of the one-launch
layers (kernels/single_step.cu, step_gemv) from the GPU's global timer.

A one-step fp32 H=1024 two-layer stack reads 64 MB of weights a call; a plain read of those
bytes takes 22.5 µs on an H100 and the stack about 30 (benchmarks/results/
cuda_step_bandwidth_probe_h100.md, cuda_step_l2pf_h100.md): this says where the rest goes.
The kernel's source is patched (as benchmarks/cuda_kernel_probes.py does for the persistent
kernel; the shipped kernel has no probes): thread 0 of every block stamps %globaltimer when
the block starts (E), when its wait for the layer below returns (W), when its products are
summed (D) and when its outputs are written (X), and the earliest and latest of each per
layer are kept (atomicMin / atomicMax). Outputs are unchanged; the stamps cost a few
atomics a block.

Per form (TF2RT_CUDA_GEMV_L2PF mask, persisting L2 or not), the medians over replays of a
captured call, in µs from the first block's start: e.g. "L1 E" = when the second layer's
first block started and its last block started, "L0 X" = when the first layer's first and
last block finished.

    python benchmarks/cuda_step_timeline.py --out benchmarks/results/cuda_step_timeline.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POINTS = ("E", "W", "D", "X")  # block start, wait returned, products summed, outputs written
MAX_LAYERS = 4

_STAMP_FN = r"""
__device__ unsigned long long tl_stamps[4 * 4 * 2];  // [layer][point][min, max], ns
__device__ __forceinline__ void tl_stamp(int layer, int point) {
    if (threadIdx.x != 0) return;
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    unsigned long long* s = tl_stamps + (layer * 4 + point) * 2;
    atomicMin(s, t);
    atomicMax(s + 1, t);
}
"""

#: (text in kernels/single_step.cu, replacement): each must occur exactly once.
EDITS = (
    ("#define GV_BOUNDS __launch_bounds__(GV_ROWS * 32, 4)\n",
     "#define GV_BOUNDS __launch_bounds__(GV_ROWS * 32, 4)\n" + _STAMP_FN),
    ("    extern __shared__ __align__(16) float sa[];  // [BATCH][krow]\n",
     "    extern __shared__ __align__(16) float sa[];  // [BATCH][krow]\n"
     "    const int tl_layer = TL_LAYER;\n    tl_stamp(tl_layer, 0);\n"),
    ("    grid_dep_wait();  // the layer below (and whatever wrote x, h0, c0) has finished\n",
     "    grid_dep_wait();  // the layer below (and whatever wrote x, h0, c0) has finished\n"
     "    tl_stamp(tl_layer, 1);\n"),
    ("    __syncthreads();\n    gv_cell(spre, u0, peep, h0, c0, seq, y, hn, cn, hout, clip, y_ds, y_bs, s_gs, s_bs);\n",
     "    __syncthreads();\n    tl_stamp(tl_layer, 2);\n"
     "    gv_cell(spre, u0, peep, h0, c0, seq, y, hn, cn, hout, clip, y_ds, y_bs, s_gs, s_bs);\n"
     "    tl_stamp(tl_layer, 3);\n"),
    # every layer in one launch (step_gemv_layers): the same points a layer, W = the grid-wide
    # count met (the first layer: the block's h0 columns multiplied, its input staged)
    ("        const long long* P = table + 5 * layer;\n",
     "        const long long* P = table + 5 * layer;\n        tl_stamp(layer, 0);\n"),
    ("        __syncthreads();  // (deeper layers) every block has stored the layer below's output\n",
     "        __syncthreads();  // (deeper layers) every block has stored the layer below's output\n"
     "        tl_stamp(layer, 1);\n"),
    ("        __syncthreads();\n        gv_cell(spre, u0, reinterpret_cast",
     "        __syncthreads();\n        tl_stamp(layer, 2);\n        gv_cell(spre, u0, reinterpret_cast"),
    ("                y_ds, y_bs, s_gs, s_bs);\n        if (!last) {\n",
     "                y_ds, y_bs, s_gs, s_bs);\n        tl_stamp(layer, 3);\n        if (!last) {\n"),
)
#: The layer a launch is, from its arguments: the first reads x (or a table), deeper ones
#: the layer below's output `hin`; the last writes y. Two-layer stacks only need x.
TL_LAYER = "(x != nullptr ? 0 : (y != nullptr ? 1 : 2))"


def timeline_source(source: str) -> str:
    """kernels/single_step.cu with the timeline stamps (EDITS); an edit whose text does not
    occur exactly once is an error (the kernel changed: update the edit)."""
    for old, new in EDITS:
        if source.count(old) != 1:
            raise KeyError(f"timeline edit not found exactly once in single_step.cu: {old[:60]!r}")
        source = source.replace(old, new)
    return source.replace("TL_LAYER", TL_LAYER)


def measure(cell: str, hidden: int, dtype: str, forms: list[tuple[str, bool]], reps: int) -> list[dict]:
    import cupy
    import numpy as np
    import torch

    from tf2rt.backends.cuda import single_step
    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits, kernel_source
    from tf2rt.backends.cuda.rnn import make_stack

    from bench_cuda_rnn import _events_times, _graphed, specs_for, step_states

    modules = []

    def compile_patched(defines):
        options = ("--std=c++17",) + tuple(f"-D{k}={v}" for k, v in defines)
        module = cupy.RawModule(code=timeline_source(kernel_source("single_step.cu")), options=options)
        modules.append(module)
        return single_step.StepKernels(module.get_function("stage_operands"), module.get_function("step_gates"),
                                       module.get_function("step_gemv"), module.get_function("step_gemv_layers"))

    original = single_step._compile
    single_step._compile = compile_patched
    rows = []
    try:
        specs = specs_for(cell, hidden, 2, hidden)
        x = torch.randn(1, 1, hidden, device="cuda").to(getattr(torch, dtype))
        h0, c0 = step_states(cell, hidden, 2, dtype)  # a call with a state reads every weight
        for mask, l2 in forms:
            modules.clear()
            fuse = mask.startswith("fuse")
            stack, _ = make_stack(specs, 1, 1, dtype, device_limits(), prefer="step",
                                  options=CudaOptions(gemv_l2pf=mask[4:] if fuse else mask, l2_persist=bool(l2),
                                                      l2_windows="front" if l2 == "l2f" else "",
                                                      gemv_fuse=fuse))
            assert stack.gemv and stack.fused == fuse, "the timeline needs the one-launch form"
            graph = _graphed(lambda: stack(x, h0, c0))
            for _ in range(20):
                graph()
            ptr = modules[-1].get_global("tl_stamps")
            stamps = cupy.ndarray((MAX_LAYERS, 4, 2), cupy.uint64, ptr)
            runs = []
            for _ in range(reps):
                stamps[:, :, 0].fill(np.uint64(np.iinfo(np.uint64).max))  # atomicMin's start
                stamps[:, :, 1].fill(np.uint64(0))
                torch.cuda.synchronize()
                graph()
                torch.cuda.synchronize()
                s = stamps.get().astype(np.float64)
                t0 = s[0, 0, 0]
                runs.append((s - t0) / 1e3)  # µs from the first block's start
            med = np.median(np.stack(runs), axis=0)
            r = {"cell": cell, "hidden": hidden, "dtype": dtype, "mask": mask, "l2": l2}
            for layer in range(2):
                for i, p in enumerate(POINTS):
                    r[f"L{layer} {p}"] = (float(med[layer, i, 0]), float(med[layer, i, 1]))
            r["span_us"] = float(med[1, 3, 1])
            r["call_us"] = statistics.median(_events_times(graph, 50, 5))
            rows.append(r)
            print(r, flush=True)
    finally:
        single_step._compile = original
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_step_timeline.md")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--shapes", default="lstm:1024:float32,gru:1024:float32")
    ap.add_argument("--forms", default="0,0+l2,0+l2f,5,5+l2,fuse", help="mask[+l2|+l2f],... or fuse[mask] (every layer in one "
                                                                    "launch)")
    args = ap.parse_args(argv)
    from bench_cuda_engine import gpu_meta, report_head, write_report

    meta = gpu_meta("cuda_step_timeline.py", argv)
    forms = [(f.split("+")[0], f.split("+")[1] if "+" in f else "") for f in args.forms.split(",")]  # ("fuse4", "")
    rows = []
    for shape in args.shapes.split(","):
        cell, hidden, dtype = shape.split(":")
        rows += measure(cell, int(hidden), dtype, forms, args.reps)
    cols = [f"L{layer} {p}" for layer in range(2) for p in POINTS]
    lines = report_head("Timeline of one-step calls between their layers", meta,
                        "µs from the first block's start (%globaltimer), medians over replays of a captured call; "
                        "each cell is the earliest / latest block of that layer at that point: E started, W its wait "
                        "for the layer below returned, D products summed, X outputs written. mask = "
                        "TF2RT_CUDA_GEMV_L2PF, +l2 = weights persisting in L2 (+l2f: the first layers' lines, TF2RT_CUDA_L2_WINDOWS=front); call = the replay timed with CUDA "
                        "events.")
    lines += ["| cell | H | dtype | form | " + " | ".join(cols) + " | span | call |",
              "|---|---|---|---|" + "---|" * len(cols) + "---:|---:|"]
    for r in rows:
        form = r["mask"] + ("+" + r["l2"] if r["l2"] else "")
        cells = " | ".join(f"{r[c][0]:.1f} / {r[c][1]:.1f}" for c in cols)
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['dtype']} | {form} | {cells} | {r['span_us']:.1f} | "
                     f"{r['call_us']:.1f} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
