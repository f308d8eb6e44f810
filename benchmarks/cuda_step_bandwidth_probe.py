"""How close one-step fp32 stacks at batch 1 come to streaming their weights: the
single-step stack (one launch a layer) with 1 and 2 layers, with and without a share of
its weights persisting in L2 (TF2RT_CUDA_L2_PERSIST), against cuDNN in a CUDA graph and
two plain reads of the same bytes: torch.sum, and the fastest of a grid of streaming-read
kernels (16-byte loads, cached or streaming, 4-16 of them in flight a thread, 2-8
blocks an SM): the rate this GPU reads that many bytes at, the ceiling of a call that
streams them.

At H=1024 fp32 a 2-layer LSTM reads 64 MB of weights a call (GRU 48 MB): every call
streams them from HBM, so the call's time over those bytes is the bandwidth it reaches.

    python benchmarks/cuda_step_bandwidth_probe.py --out benchmarks/results/cuda_step_bandwidth_probe.md
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_rnn import _events_median, _graphed, specs_for, step_states  # noqa: E402

READ_SRC = r"""
extern "C" __global__ void stream_read(const float4* __restrict__ w, long long n4, float* __restrict__ sink) {
    float acc = 0.0f;
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = LOAD(w + i + u * stride);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc += v[u].x + v[u].y + v[u].z + v[u].w;
    }
    for (; i < n4; i += stride) { const float4 v = w[i]; acc += v.x + v.y + v.z + v.w; }
    if (acc == 1234.5f) sink[0] = acc;  // keeps the loads; never true for these data
}
"""


def best_read(w, reps: int) -> tuple[float, str]:
    """The fastest streaming read of `w` (µs) over a grid of forms, and the form."""
    import cupy
    import torch

    sms = torch.cuda.get_device_properties(w.device).multi_processor_count
    sink = torch.zeros(1, device=w.device)
    n4 = w.numel() // 4
    best = (float("inf"), "")
    for unroll, load in itertools.product((4, 8, 16), ("__ldg", "__ldcs")):
        fn = cupy.RawModule(code=READ_SRC, options=(f"-DUNROLL={unroll}", f"-DLOAD={load}")).get_function("stream_read")
        for per_sm in (2, 4, 8):
            args = (cupy.uint64(w.data_ptr()), cupy.int64(n4), cupy.uint64(sink.data_ptr()))

            def call(fn=fn, grid=sms * per_sm, args=args):
                # the stream current when called: inside a capture, the capturing one (a
                # stream taken before the capture launched outside it: an empty graph)
                fn((grid,), (256,), args, stream=cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream))

            us = _events_median(_graphed(call), reps)
            best = min(best, (us, f"{unroll} x {load}, {per_sm} blocks/SM"))
    return best


def measure(cell: str, hidden: int, reps: int) -> list[dict]:
    import torch

    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    limits = device_limits()
    G = {"lstm": 4, "gru": 3}[cell]
    rows = []
    for layers in (1, 2):
        specs = specs_for(cell, hidden, layers, hidden)
        x = torch.randn(1, 1, hidden, device="cuda")
        h0, c0 = step_states(cell, hidden, layers)  # a call with a state reads every weight
        step, plan = make_stack(specs, 1, 1, "float32", limits, prefer="step")
        step_l2, _ = make_stack(specs, 1, 1, "float32", limits, prefer="step", options=CudaOptions(l2_persist=True))
        cudnn, _ = make_stack(specs, 1, 1, "float32", limits, prefer="cudnn")
        nbytes = layers * G * hidden * 2 * hidden * 4
        w = torch.randn(nbytes // 4, device="cuda")
        sink = torch.empty((), device="cuda")
        r = {"cell": cell, "hidden": hidden, "layers": layers, "MB": nbytes / 2**20, "engine": plan.engine,
             "step_us": _events_median(_graphed(lambda: step(x, h0, c0)), reps),
             "step_l2_us": _events_median(_graphed(lambda: step_l2(x, h0, c0)), reps),
             "cudnn_us": _events_median(_graphed(lambda: cudnn(x, h0, c0)), reps),
             "read_us": _events_median(_graphed(lambda: torch.sum(w, dim=0, out=sink)), reps)}
        r["best_read_us"], r["best_read_form"] = best_read(w, reps)
        for k in ("step", "step_l2", "cudnn", "read", "best_read"):
            r[f"{k}_TBps"] = nbytes / (r[f"{k}_us"] * 1e-6) / 1e12
        rows.append(r)
        print(r, flush=True)
    return rows


PREFETCH_SHAPES = "lstm:1024:float32,gru:1024:float32,lstm:1024:float16,gru:1024:float16,lstm:512:float32,gru:512:float16"


def measure_prefetch(masks: list[str], reps: int, shapes: str = PREFETCH_SHAPES, fuse: str = "") -> list[dict]:
    """One-step stacks of 2 layers at batch 1 with each L2 prefetch mask of the one-launch
    layers (TF2RT_CUDA_GEMV_L2PF: 1 the next layer's rows, 2 the rest of the own row, 4
    streaming own loads), without and with weights persisting in L2, and with every layer
    in one launch (TF2RT_CUDA_GEMV_FUSE=1) at each mask of `fuse`, in one process, in turns
    (each round times every form once; medians over rounds). Prefetches change no value:
    the other masks' outputs must equal the first's exactly; "max diff" is the largest
    difference of any form from it (the one-launch form sums a deeper layer's h0 columns
    first)."""
    import torch

    from tf2rt.backends.cuda.options import CudaOptions
    from tf2rt.backends.cuda.persistent import device_limits
    from tf2rt.backends.cuda.rnn import make_stack

    limits = device_limits()
    rows = []
    for shape in shapes.split(","):
        cell, hidden, dtype = shape.split(":")
        hidden = int(hidden)
        specs = specs_for(cell, hidden, 2, hidden)
        x = torch.randn(1, 1, hidden, device="cuda").to(getattr(torch, dtype))
        h0, c0 = step_states(cell, hidden, 2, dtype)  # a call with a state reads every weight
        forms = {}
        for m, l2 in itertools.product(masks, ("", "l2", "l2f")):
            stack, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step",
                                  options=CudaOptions(gemv_l2pf=m, l2_persist=bool(l2),
                                                      l2_windows="front" if l2 == "l2f" else ""))
            forms[m + ("+" + l2 if l2 else "")] = stack
        for m in filter(None, fuse.split(",")):
            stack, _ = make_stack(specs, 1, 1, dtype, limits, prefer="step",
                                  options=CudaOptions(gemv_l2pf=m, l2_persist=False, gemv_fuse=True))
            assert stack.fused, "every block of the one-launch form should fit this GPU at once"
            forms[f"fuse{m}"] = stack
        want = [t.clone() for t in forms[f"{masks[0]}"](x, h0, c0) if t is not None]
        outs = {k: [t.clone() for t in st(x, h0, c0) if t is not None] for k, st in forms.items()}
        same = all(torch.equal(w, g) for k, o in outs.items() if not k.startswith("fuse") for w, g in zip(want, o))
        diff = max(float((w.float() - g.float()).abs().max()) for o in outs.values() for w, g in zip(want, o))
        graphs = {k: _graphed(lambda st=st: st(x, h0, c0)) for k, st in forms.items()}
        times = {k: [] for k in forms}
        for _ in range(5):
            for k, g in graphs.items():
                times[k].append(_events_median(g, max(reps // 5, 5)))
        r = {"cell": cell, "hidden": hidden, "dtype": dtype, "identical": same, "max diff": diff,
             **{k: sorted(v)[len(v) // 2] for k, v in times.items()}}
        rows.append(r)
        print(r, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_step_bandwidth_probe.md")
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--prefetch-masks", default="",
                    help="comma-separated L2 prefetch masks (e.g. 0,1,3,5): time 2-layer one-step stacks with each "
                         "instead of the bandwidth table")
    ap.add_argument("--prefetch-shapes", default=PREFETCH_SHAPES, help="cell:hidden:dtype,... for --prefetch-masks")
    ap.add_argument("--fuse", default="", help="with --prefetch-masks: also every layer in one launch, at these "
                                                "comma-separated masks (e.g. 0,4)")
    args = ap.parse_args(argv)
    from bench_cuda_engine import gpu_meta, report_head, write_report

    meta = gpu_meta("cuda_step_bandwidth_probe.py", argv)
    if args.prefetch_masks:
        masks = args.prefetch_masks.split(",")
        rows = measure_prefetch(masks, args.reps, args.prefetch_shapes, args.fuse)
        keys = [k for k in rows[0] if k not in ("cell", "hidden", "dtype", "identical", "max diff")]
        lines = report_head("One-step stacks at batch 1 with L2 prefetches of the next layer's weights", meta,
                            "µs, medians over 5 rounds of CUDA-event-timed graph replays, every form once a round; "
                            "2 layers, input = hidden, batch 1. Column m = TF2RT_CUDA_GEMV_L2PF mask (1 the next "
                            "layer's rows into L2 once the own loads are out, 2 the rest of the own row before the "
                            "wait, 4 streaming own loads, 8 with 1 the last layer the first layer's rows), +l2 = with "
                            "a share of every layer's weights persisting in L2, +l2f = with the first layers' weights "
                            "persisting (TF2RT_CUDA_L2_WINDOWS=front), fuse m = every layer in one launch (mask m). "
                            f"identical = every mask's outputs equal mask {masks[0]}'s; max diff = the largest "
                            "difference of any form's from them.")
        lines += ["| cell | H | dtype | " + " | ".join(keys) + " | identical | max diff |",
                  "|---|---|---|" + "---:|" * len(keys) + "---|---:|"]
        for r in rows:
            lines.append(f"| {r['cell']} | {r['hidden']} | {r['dtype']} | "
                         + " | ".join(f"{r[k]:.1f}" for k in keys) + f" | {r['identical']} | {r['max diff']:.1e} |")
        write_report(args.out, lines)
        return 0
    rows = measure("lstm", 1024, args.reps) + measure("gru", 1024, args.reps)
    lines = report_head("One-step fp32 stacks at batch 1 against streaming their weights", meta,
                        "µs, medians of CUDA-event-timed graph replays; TB/s = the layers' recurrent and input weights "
                        "(fp32) over the time; L2 persist = the stack with TF2RT_CUDA_L2_PERSIST=1; torch.sum = "
                        "torch.sum over a tensor of that many bytes; best read = the fastest streaming-read kernel "
                        "(form in the last column).")
    lines += ["| cell | H | layers | weights (MB) | single-step stack | TB/s | L2 persist | TB/s | cuDNN | TB/s "
              "| torch.sum | TB/s | best read | TB/s | read form |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [f"{r[k + '_us']:.1f} | {r[k + '_TBps']:.2f}" for k in ("step", "step_l2", "cudnn", "read", "best_read")]
        lines.append(f"| {r['cell']} | {r['hidden']} | {r['layers']} | {r['MB']:.0f} | {' | '.join(cells)} | "
                     f"{r['best_read_form']} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
