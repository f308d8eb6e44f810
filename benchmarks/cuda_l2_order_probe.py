"""Whether a one-step stack could keep part of its weights in L2 from one call to the next by
streaming them in the opposite order every other call.

A 2-layer fp32 H=1024 LSTM reads 64 MB of weights a call, more than an H100's 50 MB L2: read
in the same order every call, the lines still in L2 at the end of a call (the last ones read)
are evicted by the first misses of the next before they are read again, so every call
streams from device memory. Read backwards every other call, each call would start with the
lines the previous one read last. The probe reads a buffer split in two "layers" (each layer
read after the other, as the stack must), in graph replays of two calls: forward then
forward, against forward then backward (each layer reversed, the layers still in order).
Per call µs and the rate over the bytes; the streaming-read kernel's form is the fastest of
cuda_step_bandwidth_probe.py's grid on an H100 (16 loads in flight a thread, 4 blocks an SM).

    python benchmarks/cuda_l2_order_probe.py --out benchmarks/results/cuda_l2_order_probe.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_cuda_rnn import _events_median, _graphed  # noqa: E402

#: One layer's read: float4 i of [0, n4) taken in address order, or from the end when rev.
READ_SRC = r"""
extern "C" __global__ void layer_read(const float4* __restrict__ w, long long n4, int rev, float* __restrict__ sink) {
    float acc = 0.0f;
    const long long stride = (long long)gridDim.x * blockDim.x;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + (UNROLL - 1) * stride < n4; i += UNROLL * stride) {
        float4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const long long j = i + u * stride;
            v[u] = LOAD(w + (rev ? n4 - 1 - j : j));
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc += v[u].x + v[u].y + v[u].z + v[u].w;
    }
    for (; i < n4; i += stride) { const float4 v = w[rev ? n4 - 1 - i : i]; acc += v.x + v.y + v.z + v.w; }
    if (acc == 1234.5f) sink[0] = acc;  // keeps the loads; never true for these data
}
"""

#: (name, MB a layer): the weights of 2-layer H=1024 stacks (input = hidden).
SIZES = [("fp32 LSTM", 32), ("fp32 GRU", 24), ("fp16 LSTM", 16), ("fp32 LSTM H=1536", 72)]


def measure(reps: int) -> list[dict]:
    import cupy
    import torch

    fns = {load: cupy.RawModule(code=READ_SRC, options=("-DUNROLL=16", f"-DLOAD={load}")).get_function("layer_read")
           for load in ("__ldg", "__ldcs")}
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    sink = torch.zeros(1, device="cuda")
    rows = []
    for name, mb in SIZES:
        layers = [torch.randn(mb << 18, device="cuda") for _ in range(2)]  # mb MB of fp32 each

        def read(rev: int, load: str) -> None:
            fn, stream = fns[load], cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
            for w in layers:
                fn((sms * 4,), (256,), (cupy.uint64(w.data_ptr()), cupy.int64(w.numel() // 4), cupy.int32(rev),
                                       cupy.uint64(sink.data_ptr())), stream=stream)

        forms = {f"{order} {load}": (lambda rev=rev, load=load: (read(0, load), read(rev, load)))
                 for load in ("__ldg", "__ldcs") for order, rev in (("same", 0), ("alternating", 1))}
        graphs = {k: _graphed(f) for k, f in forms.items()}
        us = {k: _events_median(g, reps) / 2 for k, g in graphs.items()}
        us.update({k + " (2nd round)": _events_median(g, reps) / 2 for k, g in graphs.items()})
        r = {"weights": name, "MB": 2 * mb, **us}
        rows.append(r)
        print(r, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_l2_order_probe.md")
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args(argv)
    from bench_cuda_engine import gpu_meta, report_head, write_report

    meta = gpu_meta("cuda_l2_order_probe.py", argv)
    rows = measure(args.reps)
    keys = [k for k in rows[0] if k not in ("weights", "MB")]
    lines = report_head("Two layers of weights read in the same order every call or in alternating orders", meta,
                        "µs a call (a graph replay of two calls, halved), medians; each layer read by 4 blocks an SM "
                        "with 16 16-byte loads in flight a thread, cached (__ldg) or streaming (__ldcs, evict "
                        "first); TB/s over the bytes a call reads. same = every call reads in address order; "
                        "alternating = every second call reads each layer from its end. The 2nd round times the "
                        "same graphs again (the spread).")
    lines += ["| weights | MB a call | " + " | ".join(keys) + " | TB/s same __ldg | TB/s alternating __ldg |",
              "|---|---:|" + "---:|" * (len(keys) + 2)]
    for r in rows:
        tb = [r["MB"] * 2**20 / (r[k] * 1e-6) / 1e12 for k in ("same __ldg", "alternating __ldg")]
        lines.append(f"| {r['weights']} | {r['MB']} | " + " | ".join(f"{r[k]:.1f}" for k in keys)
                     + f" | {tb[0]:.2f} | {tb[1]:.2f} |")
    write_report(args.out, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
