"""Persistent recurrent kernel vs PyTorch nn.LSTM/nn.GRU (cuDNN), eager and CUDA graph.

Run on an NVIDIA GPU:

    python benchmarks/bench_cuda_rnn.py --out benchmarks/results/cuda_rnn_h100.md

Grid: batch 1, 8, 64 x hidden 256, 512, 1024 x T 1, 100 x fp32/fp16, 2 layers, LSTM and
GRU (input size = hidden). Times are medians of CUDA-event-timed runs (after warm-up);
"graph" rows replay a captured torch.cuda.CUDAGraph of the whole forward. "ours" is the
cuda backend's choice for the shape (persistent kernel or its cuDNN fallback) and
"persistent" the kernel forced; ratios are cuDNN-in-a-graph time / ours.
Also measures the step-exchange latency (the floor's main term) with a microbenchmark.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXCHANGE_SRC = r"""
typedef unsigned long long u64;
__device__ __forceinline__ u64 ldr(const u64* p) { u64 v; asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory"); return v; }
__device__ __forceinline__ void str_(u64* p, u64 v) { asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" :: "l"(p), "l"(v) : "memory"); }
// Tagged all-gather: every step each CTA publishes `per` words and reads all n words.
extern "C" __global__ void exchange(u64* buf, int n, int per, int steps, unsigned epoch, float* sink) {
    float acc = 0.f;
    for (int s = 0; s < steps; ++s) {
        u64* slot = buf + (size_t)(s & 1) * n;
        unsigned tag = epoch + s;
        for (int i = threadIdx.x; i < per; i += blockDim.x) {
            int k = blockIdx.x * per + i;
            if (k < n) str_(slot + k, ((u64)tag << 32) | (unsigned)k);
        }
        for (int k = threadIdx.x; k < n; k += blockDim.x) {
            u64 v; do { v = ldr(slot + k); } while ((unsigned)(v >> 32) != tag);
            acc += (float)(unsigned)v;
        }
        __syncthreads();
    }
    if (acc == -1.f) sink[0] = acc;
}
// L2 broadcast rate: every CTA copies the same region into shared memory (16-byte
// cp.async, cached in L2 only), `reps` times, cycling over `regions` regions.
extern "C" __global__ void broadcast_read(const uint4* buf, int n16, int regions, int reps, unsigned* sink) {
    extern __shared__ uint4 sm[];
    for (int r = 0; r < reps; ++r) {
        const uint4* src = buf + (size_t)(r % regions) * n16;
        for (int i = threadIdx.x; i < n16; i += blockDim.x) {
            unsigned d = (unsigned)__cvta_generic_to_shared(sm + i);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(d), "l"(src + i) : "memory");
        }
        asm volatile("cp.async.wait_all;" ::: "memory");
        __syncthreads();
    }
    if (sm[threadIdx.x].x == 0x9e3779b9u) sink[0] = 1u;
}
// Counter barrier (arrive with an atomic, spin until everyone arrived) for comparison.
extern "C" __global__ void counter_barrier(unsigned* ctr, int steps, unsigned base) {
    for (int s = 0; s < steps; ++s) {
        __syncthreads();
        if (threadIdx.x == 0) {
            __threadfence();
            atomicAdd(ctr, 1u);
            unsigned want = base + (unsigned)(s + 1) * gridDim.x;
            while (*(volatile unsigned*)ctr < want) {}
        }
        __syncthreads();
    }
}
"""


def _events_times(fn, reps: int, warmup: int = 3) -> list[float]:
    """Microseconds of each of `reps` calls, CUDA-event timed, after `warmup` calls."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1000.0)
    return times


def _events_median(fn, reps: int, warmup: int = 3) -> float:
    return statistics.median(_events_times(fn, reps, warmup))


def _graphed(fn):
    """`fn` captured in a CUDA graph; the returned callable replays it."""
    from tf2rt.backends.cuda.cudagraph import CapturedCall

    return CapturedCall(fn)


def measure_exchange(sm_count: int) -> dict:
    """What the floor model needs from this GPU: per-step latency of the tagged all-gather
    and of a counter barrier (microseconds), the rate at which L2 serves a buffer every CTA
    copies (TB/s), and the replay of a CUDA graph of one empty kernel (microseconds)."""
    import cupy
    import torch

    mod = cupy.RawModule(code=EXCHANGE_SRC, options=("--std=c++17",))
    ex, bar = mod.get_function("exchange"), mod.get_function("counter_barrier")
    out = {}
    steps = 2000
    sink = cupy.zeros(1, cupy.float32)
    epoch = [1]
    for words in (256, 512, 1024, 4096):
        buf = cupy.zeros(2 * words, cupy.uint64)
        per = -(-words // sm_count)

        def run():
            ex((sm_count,), (256,), (buf, np.int32(words), np.int32(per), np.int32(steps), np.uint32(epoch[0]), sink))
            epoch[0] += steps

        stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
        with stream:
            t = _events_median(run, 5)
        out[f"allgather_{words}w_us"] = t / steps
    ctr = cupy.zeros(1, cupy.uint32)
    base = [0]

    def run_bar():
        bar((sm_count,), (256,), (ctr, np.int32(steps), np.uint32(base[0])))
        base[0] += steps * sm_count

    with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        out["counter_barrier_us"] = _events_median(run_bar, 5) / steps

    bc = mod.get_function("broadcast_read")
    region, regions, reps = 32 * 1024, 8, 800  # 32 KB: under the default dynamic shared memory limit
    buf = cupy.ones(region * regions // 4, cupy.uint32)
    flag = cupy.zeros(1, cupy.uint32)

    def run_bc():
        bc((sm_count,), (256,), (buf, np.int32(region // 16), np.int32(regions), np.int32(reps), flag),
           shared_mem=region)

    with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        t = _events_median(run_bc, 5)
    out["l2_broadcast_tb_s"] = sm_count * region * reps / (t * 1e-6) / 1e12
    empty = cupy.RawKernel('extern "C" __global__ void empty() {}', "empty")

    def launch_empty():
        with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            empty((1,), (32,), ())

    # A floor term: the fastest of many replays (the median moved between 9.3 and 14.6 us
    # from run to run, once above a whole T=1 stack's median in the same run).
    out["graph_launch_us"] = min(_events_times(_graphed(launch_empty), 300, warmup=50))
    return out


def _limits_dict(limits) -> dict:
    from dataclasses import asdict

    d = asdict(limits)
    d["compute_capability"] = list(d["compute_capability"])
    return d


def refloor(path: str, out_md: str | None) -> int:
    """Recompute the floor columns of a saved run (`--json` output) with this build's floor
    model, from the run's own measured inputs and device facts; rewrite the JSON (and the
    Markdown table). Times are left as measured."""
    from tf2rt.backends.cuda.plan import DeviceLimits, RnnProblem, make_plan

    data = json.loads(Path(path).read_text())
    meta, rows = data["meta"], data["rows"]
    if "limits" not in meta:
        raise SystemExit(f"{path}: no device facts in the run's meta (\"limits\"); only runs made by this "
                         "build can be recomputed")
    facts = dict(meta["limits"], compute_capability=tuple(meta["limits"]["compute_capability"]))
    limits = measured_limits(DeviceLimits(**facts), meta["exchange"])
    for r in rows:
        problem = RnnProblem(r["cell"], r["hidden"], r["hidden"], r["batch"], r["T"], layers=r["layers"],
                             dtype=r["dtype"], linear_before_reset=True)
        plan = make_plan(problem, limits, prefer="persistent")
        if plan.engine == "persistent" and "floor_us" in r:
            r["floor_us"], r["full_floor_us"] = plan.floor_us, plan.full_floor_us
    meta["refloored"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    Path(path).write_text(json.dumps(data, indent=1))
    if out_md:
        Path(out_md).write_text(markdown(rows, meta))
    return 0


def measured_limits(limits, exchange: dict):
    """The planner's device facts with this run's measurements in place of the defaults, so
    the floors in the table come from the same machine and run as the times."""
    from dataclasses import replace

    return replace(limits, exchange_us=exchange["allgather_512w_us"],
                   l2_bytes_per_s=exchange["l2_broadcast_tb_s"] * 1e12,
                   # this run's launch cost unless a lower one was measured before (it moves
                   # between runs; a floor has to stay below every measured time)
                   launch_us=min(limits.launch_us, exchange["graph_launch_us"]))


class _env:
    """Set one environment variable for the duration of a with-block."""

    def __init__(self, key: str, value: str) -> None:
        self.key, self.value = key, value

    def __enter__(self) -> None:
        import os

        self.old = os.environ.get(self.key)
        os.environ[self.key] = self.value

    def __exit__(self, *exc) -> None:
        import os

        if self.old is None:
            os.environ.pop(self.key, None)
        else:
            os.environ[self.key] = self.old


def _variant(name: str, pers, plan, specs, limits):
    """The same stack built another way, or None where that way does not apply:
    "original" the original step loop, "smem" weight fragments in shared memory instead of
    registers, "nosplit" deeper wavefront layers without the split input product, "xin" the
    other choice of in-kernel vs GEMM input projection for the first layer."""
    from dataclasses import replace

    from tf2rt.backends.cuda.persistent import PersistentStack
    from tf2rt.backends.cuda.projection import XPROJ_ENV
    from tf2rt.backends.cuda.plan import (BF16X3_ENV, STATIC_SMEM_RESERVE, STEP_ENV, WPART_ENV, batch_chunk, kernel_config,
                                          make_plan, large_batch_applies, large_batch_config, wreg_applies)

    k = plan.kernel
    if name == "original":
        if not (k.two_barrier or k.large_batch):
            return None
        k2 = replace(k, two_barrier=False, large_batch=False, wreg=False, split_x=False, tf32=False, packf=False,
                     wpart=0, ring_slots=0, bf16x3=False, bch=batch_chunk(pers.problem))
    elif name == "large-batch":  # the large-batch step (flag exchange) at this batch
        if k.large_batch or not large_batch_applies(k, pers.problem):
            return None
        k2 = large_batch_config(replace(k, two_barrier=False, split_x=False, packf=False), pers.problem)
    elif name in ("xplain", "xtf32x3", "xbf16x3"):  # fp32 input projection GEMM in another form
        if k.wtype != 0:
            return None
        with _env(XPROJ_ENV, name[1:]):
            return PersistentStack(pers.problem, plan, [s.weights for s in specs])
    elif name.startswith("ring") and "x" in name:  # large-batch step: staged rows through S slots of G n-tiles
        slots, gt = (int(v) for v in name[4:].split("x"))
        if not k.large_batch or k.fused:
            return None
        k2 = replace(k, ring_slots=slots, group_tiles=gt)
    elif name in ("kbf16x3", "ktf32x3"):  # fp32 step: products as three bf16 or TF32 passes
        if not (k.large_batch or k.two_barrier) or (k.fused and not k.large_batch) or k.wtype != 0 or k.bf16x3 == (name == "kbf16x3"):
            return None
        with _env(BF16X3_ENV, "1" if name == "kbf16x3" else "0"):
            other = make_plan(pers.problem, limits, prefer="persistent")
        if other.engine != "persistent" or other.kernel.bf16x3 != (name == "kbf16x3"):
            return None
        return PersistentStack(pers.problem, other, [s.weights for s in specs])
    elif name in ("wpart", "nowpart"):  # large-batch step: fragments split registers/smem, or not
        if not (k.large_batch or (k.two_barrier and k.bf16x3)) or k.wreg or bool(k.wpart) == (name == "wpart"):
            return None
        with _env(WPART_ENV, "1" if name == "wpart" else "0"):
            other = make_plan(pers.problem, limits, prefer="persistent")
        if other.engine != "persistent" or bool(other.kernel.wpart) != (name == "wpart"):
            return None
        return PersistentStack(pers.problem, other, [s.weights for s in specs])
    elif name == "no-large-batch":  # the planner's choice with the large-batch step switched off
        if not k.large_batch:
            return None
        with _env(STEP_ENV, "2"):
            other = make_plan(pers.problem, limits, prefer="persistent")
        if other.engine != "persistent":
            return None
        return PersistentStack(pers.problem, other, [s.weights for s in specs])
    elif name == "mode":  # the other schedule: one launch a layer instead of a wavefront, or back
        wave = plan.mode != "wavefront"
        if wave and not (pers.problem.layers > 1 and pers.problem.directions == 1):
            return None
        k2 = kernel_config(pers.problem, pers.problem.layers if wave else pers.problem.directions, wave, limits,
                           k.fuse_input)
        if k2.smem_bytes + STATIC_SMEM_RESERVE > limits.smem_per_block:
            return None
        steps = pers.problem.seq_len + pers.problem.layers - 1 if wave else pers.problem.layers * pers.problem.seq_len
        return PersistentStack(pers.problem, replace(plan, kernel=k2, mode="wavefront" if wave else "layerwise",
                                                     steps=steps), [s.weights for s in specs])
    elif name == "cudacores":  # fp32 products on CUDA cores instead of three TF32 passes
        if not k.tf32 or k.large_batch:  # the large-batch step has no CUDA-core form ("original" instead)
            return None
        k2 = replace(k, tf32=False, packf=False, wreg=False)
    elif name == "tf32":  # fp32 products as three TF32 tensor-core passes at this batch
        if k.tf32 or k.wtype != 0 or not k.two_barrier:
            return None
        k2 = replace(k, tf32=True)
        k2 = replace(k2, wreg=wreg_applies(k2))
    elif name == "smem":
        if not k.wreg:
            return None
        k2 = replace(k, wreg=False)
    elif name == "nosplit":
        if k.large_batch and plan.mode == "wavefront" and pers.problem.layers > 1:  # large-batch step: LARGE_BATCH_NOSPLIT
            return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("LARGE_BATCH_NOSPLIT",))
        if not k.split_x:
            return None
        k2 = replace(k, split_x=False)
    elif name == "xin":
        if plan.mode != "wavefront" or pers.problem.input_size != pers.problem.hidden:
            return None  # kx stays the hidden size: only then is the toggle shape-neutral
        k2 = replace(k, fuse_input=not k.fuse_input)
    elif name == "noncoop":  # same kernel, plain (non-cooperative) launch: timing only
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("NONCOOP",))
    elif name == "splitround":  # TF32X3 rounding both parts of every operand at every use
        if not k.tf32:
            return None
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("TF32_SPLIT_ROUND",))
    elif name == "nopack":  # one fp32 h per exchange word instead of two staged values
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("NO_PACK2",))
    elif name == "nopipe":  # large-batch step: every row copied before the first product
        if not k.large_batch or k.ring_slots:  # a ring has no room for every row
            return None
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("LARGE_BATCH_NOPIPE",))
    elif name == "xregs":  # no in-kernel input product, but registers for its fragments anyway
        if k.fused or k.wpart or k.ring_slots or k.bf16x3 or not (k.two_barrier or k.large_batch):  # (these need FUSED=0)
            return None
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=("FUSED=1",))
    elif name.startswith("gt") and name[2:].isdigit():  # large-batch step: N n-tiles per copy group
        if not k.large_batch or k.ring_slots:  # a ring's slots are sized for the planned groups
            return None
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=(f"GROUP_TILES={name[2:]}",))
    elif name == "share":  # large-batch step: every warp all row tiles of its K slice (MT_SHARE)
        if not (k.large_batch and k.wreg) or k.mt_share or k.rows_padded // 16 < 2:
            return None
        k2 = replace(k, mt_share=True)
    elif name.startswith("bulk") and name[4:].isdigit():  # large-batch step: bulk row copies, clusters of N
        n = int(name[4:])
        if not k.large_batch or k.ring_slots or k.fused or k.bulk == n or k.ctas_per_group % max(n, 1):
            return None
        k2 = replace(k, bulk=n)
    elif name.startswith("nt") and name[2:].isdigit():  # large-batch step: n-tiles unrolled by N
        if not k.large_batch:
            return None
        return PersistentStack(pers.problem, plan, [s.weights for s in specs], probe=(f"NT_UNROLL={name[2:]}",))
    else:
        raise ValueError(f"unknown variant {name!r}")
    if k2.smem_bytes + STATIC_SMEM_RESERVE > limits.smem_per_block:
        return None
    return PersistentStack(pers.problem, replace(plan, kernel=k2), [s.weights for s in specs])


def step_states(cell: str, hidden: int, layers: int, dtype: str = "float32", batch: int = 1) -> tuple:
    """Random initial states (h0, c0 or None) [layers, batch, hidden] on the GPU for a
    one-step stack's call: with them the call reads every weight (from a zero state a
    one-step stack leaves the recurrent ones out)."""
    import torch

    dt = getattr(torch, dtype)
    h0 = (0.5 * torch.randn(layers, batch, hidden, device="cuda")).to(dt)
    c0 = (0.5 * torch.randn(layers, batch, hidden, device="cuda")).to(dt) if cell == "lstm" else None
    return h0, c0


def specs_for(cell: str, hidden: int, layers: int, seed: int) -> list:
    """`layers` random LSTM/GRU (reset-after) layers of `hidden` units, input size = hidden,
    weights in torch.nn's init range."""
    from tf2rt.backends.cuda.rnn import node_spec

    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3}[cell]
    s = 1.0 / np.sqrt(hidden)
    specs = []
    for _ in range(layers):
        W = rng.uniform(-s, s, (1, G * hidden, hidden)).astype(np.float32)
        R = rng.uniform(-s, s, (1, G * hidden, hidden)).astype(np.float32)
        B = rng.uniform(-0.5, 0.5, (1, 2 * G * hidden)).astype(np.float32)
        attrs = {"hidden_size": hidden, "linear_before_reset": 1} if cell == "gru" else {"hidden_size": hidden}
        specs.append(node_spec(cell.upper(), attrs, W, R, B, None))
    return specs


def bench_one(cell: str, hidden: int, batch: int, T: int, dtype: str, layers: int, reps: int, limits,
              variants: tuple[str, ...] = ()) -> dict:
    import torch

    from tf2rt.backends.cuda.rnn import make_stack

    specs = specs_for(cell, hidden, layers, hidden + batch + T)
    tdt = getattr(torch, dtype)
    x = torch.randn(T, batch, hidden, device="cuda", dtype=tdt)
    row = {"cell": cell, "hidden": hidden, "batch": batch, "T": T, "dtype": dtype, "layers": layers}

    cudnn, _ = make_stack(specs, batch, T, dtype, limits, prefer="cudnn")
    row["cudnn_eager_us"] = _events_median(lambda: cudnn(x), reps)
    row["cudnn_graph_us"] = _events_median(_graphed(lambda: cudnn(x)), reps)
    try:
        pers, plan = make_stack(specs, batch, T, dtype, limits, prefer="persistent")
        if plan.engine == "persistent":
            row["persistent_graph_us"] = _events_median(_graphed(lambda: pers(x)), reps)
            row["persistent_eager_us"] = _events_median(lambda: pers(x), reps)
            row["mode"] = plan.mode
            row["floor_us"] = plan.floor_us
            row["full_floor_us"] = plan.full_floor_us
            k = plan.kernel
            row["step"] = ("two-barrier" if k.two_barrier else "large-batch" if k.large_batch else "original") + ("+wreg" if k.wreg else "") + ("+split" if k.split_x else "") \
                + ("+xin" if k.fuse_input else "") + ("+tf32" if k.tf32 else "") + ("+bf16x3" if k.bf16x3 else "") \
                + ("+packf" if k.packf else "") \
                + (f"+wpart{k.wpart}" if k.wpart else "") + (f"+ring{k.ring_slots}x{k.group_tiles}" if k.ring_slots else "") \
                + "".join(sorted({f"+x{pj.mode}" for pj in getattr(pers, "proj", []) if pj and pj.mode != "plain"}))
            y1 = pers(x)[0].float()
            y2 = cudnn(x)[0].float()
            row["max_abs_diff_vs_cudnn"] = float((y1 - y2).abs().max())
            for name in variants:  # the same stack built another way, timed in the same run
                try:
                    other = _variant(name, pers, plan, specs, limits)
                    if other is not None:
                        row[f"variant_{name}_us"] = _events_median(_graphed(lambda: other(x)), reps)
                        y4 = other(x)[0].float()
                        row[f"variant_{name}_max_abs_diff_vs_cudnn"] = float((y4 - y2).abs().max())
                except Exception as exc:  # one variant's failure leaves the others (and the row) standing
                    row[f"variant_{name}_error"] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            row["persistent_skip"] = plan.reason
    except Exception as exc:  # keep the sweep going; the table shows the error
        row["persistent_error"] = f"{type(exc).__name__}: {exc}"[:200]
    if T == 1:  # the single-step stack competes at one step
        try:
            step, splan = make_stack(specs, batch, T, dtype, limits, prefer="step")
            if splan.engine == "step":
                row["step_graph_us"] = _events_median(_graphed(lambda: step(x)), reps)
                row["step_max_abs_diff_vs_cudnn"] = float((step(x)[0].float() - cudnn(x)[0].float()).abs().max())
        except Exception as exc:
            row["step_error"] = f"{type(exc).__name__}: {exc}"[:200]
    _, auto = make_stack(specs, batch, T, dtype, limits)
    row["table_engine"] = auto.engine
    # The runner's first-run measurement (autotune) keeps whichever engine was fastest.
    times = {"cudnn": row["cudnn_graph_us"], "persistent": row.get("persistent_graph_us"),
             "step": row.get("step_graph_us")}
    row["auto_engine"] = min((e for e in times if times[e] is not None), key=lambda e: times[e])
    ours = times[row["auto_engine"]]
    pg = row.get("persistent_graph_us")
    row["ours_graph_us"] = ours
    row["speedup_vs_cudnn_graph"] = row["cudnn_graph_us"] / ours
    row["speedup_vs_cudnn_eager"] = row["cudnn_eager_us"] / ours
    if "persistent_graph_us" in row:
        row["persistent_speedup_vs_cudnn_graph"] = row["cudnn_graph_us"] / row["persistent_graph_us"]
    return row


PROBE_SHAPES = "lstm:512:1:100:float16,lstm:512:8:100:float16,lstm:512:64:100:float16,lstm:512:1:1:float16," \
               "lstm:512:8:100:float32,lstm:1024:8:100:float16"


def probe(reps: int, limits, shapes: str = PROBE_SHAPES) -> list[dict]:
    """Where a persistent step's time goes: the kernel with parts switched off by source
    patches (cuda_kernel_probes.py; wrong outputs, timing only), and the cost of replaying a graph of one empty kernel."""
    import cupy
    import torch

    from cuda_kernel_probes import probe_source, split_probes

    from tf2rt.backends.cuda.persistent import PersistentStack, kernel_source
    from tf2rt.backends.cuda.plan import make_plan
    from tf2rt.backends.cuda.rnn import node_spec

    rows = []
    empty = cupy.RawKernel('extern "C" __global__ void empty() {}', "empty")

    def launch_empty():
        with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            empty((1,), (32,), ())

    rows.append({"probe": "graph of one empty kernel", "us": _events_median(_graphed(launch_empty), reps)})
    rows.append({"probe": "one empty kernel, eager", "us": _events_median(launch_empty, reps)})
    for shape in shapes.split(","):
        cell, hidden, batch, T, dtype = shape.split(":")
        hidden, batch, T = int(hidden), int(batch), int(T)
        if cell != "lstm":
            raise SystemExit(f"--probe-shapes: {shape!r}: the probe builds LSTM stacks only")
        rng = np.random.default_rng(0)
        specs = [node_spec("LSTM", {"hidden_size": hidden},
                           rng.uniform(-.05, .05, (1, 4 * hidden, hidden)).astype(np.float32),
                           rng.uniform(-.05, .05, (1, 4 * hidden, hidden)).astype(np.float32),
                           rng.uniform(-.5, .5, (1, 8 * hidden)).astype(np.float32), None) for _ in range(2)]
        from tf2rt.backends.cuda.rnn import problem_for

        problem = problem_for(specs, batch, T, dtype)
        plan = make_plan(problem, limits, prefer="persistent")
        x = torch.randn(T, batch, hidden, device="cuda", dtype=getattr(torch, dtype))
        variants = [(), ("PROBE_NO_DOT",), ("PROBE_NO_SPIN",), ("PROBE_NO_DOT", "PROBE_NO_SPIN")]
        if plan.kernel.large_batch:  # the large-batch step also copies whole rows after the flags
            off = ("PROBE_NO_COPY", "PROBE_NO_SPIN", "PROBE_NO_DOT")
            # each part alone too: whether the projection loads and the gates sit on the step's
            # critical path or hide behind the wait and the copies
            variants += [("PROBE_ONE_SLICE",), ("PROBE_NO_XG",), ("PROBE_NO_GATES",), ("PROBE_NO_Y",),
                         ("PROBE_NO_COPY",), ("PROBE_NO_COPY", "PROBE_NO_SPIN"), off,
                         # what is left: the projection loads and the output stores
                         off + ("PROBE_NO_XG",), off + ("PROBE_NO_Y",), off + ("PROBE_NO_XG", "PROBE_NO_Y"),
                         off + ("PROBE_NO_XG", "PROBE_NO_GATES"), off + ("PROBE_NO_XG", "PROBE_NO_GATES", "PROBE_NO_FLAG")]
        st = PersistentStack(problem, plan, [s.weights for s in specs])
        gemms = [(pj, torch.empty(T * batch, pj.k, device="cuda", dtype=x.dtype), st.xp[0][: T * batch])
                 for pj in st.proj if pj is not None]
        if gemms:  # the input projections alone (a GEMM per layer outside the kernel)
            t = _events_median(_graphed(lambda: [pj(inp, out) for pj, inp, out in gemms]), reps)
            rows.append({"probe": f"{cell} H={hidden} B={batch} T={T} {dtype} projection GEMMs only "
                                  f"({'+'.join(sorted({pj.mode for pj, _, _ in gemms}))})", "us": t})
            print(rows[-1], flush=True)
        for variant in variants:
            probes, switches = split_probes(variant)
            st = PersistentStack(problem, plan, [s.weights for s in specs], probe=switches,
                                 source=probe_source(kernel_source(), probes))
            t = _events_median(_graphed(lambda: st(x)), reps)
            steps = plan.steps
            rows.append({"probe": f"{cell} H={hidden} B={batch} T={T} {dtype} {plan.mode} {'+'.join(variant) or 'full'}",
                         "us": t, "us_per_step": t / steps})
            print(rows[-1], flush=True)
    return rows


def probe_launch(reps: int, limits) -> list[dict]:
    """What launching a captured graph costs: CUDAGraph.replay() against the driver's
    cuGraphLaunch through ctypes (stream looked up per call, or cached), for a graph of one
    empty kernel and for 2-layer LSTM H=512 fp16 batch-1 T=1 stacks (persistent, cuDNN)."""
    import ctypes

    import cupy
    import torch

    from tf2rt.backends.cuda.rnn import make_stack, node_spec

    lib = ctypes.CDLL("libcuda.so.1")
    launch = lib.cuGraphLaunch
    launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    empty = cupy.RawKernel('extern "C" __global__ void empty() {}', "empty")

    def launch_empty():
        with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            empty((1,), (32,), ())

    rng = np.random.default_rng(0)
    specs = [node_spec("LSTM", {"hidden_size": 512},
                       rng.uniform(-.05, .05, (1, 2048, 512)).astype(np.float32),
                       rng.uniform(-.05, .05, (1, 2048, 512)).astype(np.float32),
                       rng.uniform(-.5, .5, (1, 4096)).astype(np.float32), None) for _ in range(2)]
    x = torch.randn(1, 1, 512, device="cuda", dtype=torch.float16)
    pers, _ = make_stack(specs, 1, 1, "float16", limits, prefer="persistent")
    cud, _ = make_stack(specs, 1, 1, "float16", limits, prefer="cudnn")
    rows = []
    for name, fn in [("empty kernel", launch_empty), ("persistent T=1", lambda: pers(x)), ("cuDNN T=1", lambda: cud(x))]:
        call = _graphed(fn)
        exe = ctypes.c_void_p(call.graph.raw_cuda_graph_exec())
        stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

        def raw_lookup():
            launch(exe, ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))

        def raw_cached():
            launch(exe, stream)

        for how, f in [("replay()", call.graph.replay), ("cuGraphLaunch, stream looked up", raw_lookup),
                       ("cuGraphLaunch, stream cached", raw_cached)]:
            ev = _events_median(f, reps)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(200):
                f()
                torch.cuda.current_stream().synchronize()
            wall = (time.perf_counter() - t0) / 200 * 1e6
            rows.append({"graph": name, "launch": how, "events_us": ev, "wall_us_with_sync": wall})
            print(rows[-1], flush=True)
    return rows


def bench_stream(cell: str, hidden: int, batch: int, dtype: str, layers: int, steps: int, limits) -> dict:
    """One streaming step, host to host (x in host memory -> y in host memory), wall clock:
    a resident StreamSession against a CUDA graph of cuDNN (and of the persistent kernel)
    fed through pinned buffers: copy x in, replay, copy y out, synchronize. The graphs'
    event-timed replay (device side only, no copies) is listed too."""
    import torch

    from tf2rt.backends.cuda.resident import StreamSession
    from tf2rt.backends.cuda.rnn import make_stack, node_spec

    rng = np.random.default_rng(hidden + batch)
    G = {"lstm": 4, "gru": 3}[cell]
    specs = []
    for _ in range(layers):
        s = 1.0 / np.sqrt(hidden)
        attrs = {"hidden_size": hidden, "linear_before_reset": 1} if cell == "gru" else {"hidden_size": hidden}
        specs.append(node_spec(cell.upper(), attrs, rng.uniform(-s, s, (1, G * hidden, hidden)).astype(np.float32),
                               rng.uniform(-s, s, (1, G * hidden, hidden)).astype(np.float32),
                               rng.uniform(-0.5, 0.5, (1, 2 * G * hidden)).astype(np.float32), None))
    xs = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    tdt = getattr(torch, dtype)
    row = {"cell": cell, "hidden": hidden, "batch": batch, "dtype": dtype, "layers": layers, "steps": steps}

    def host_to_host(stack):
        x_dev = torch.zeros(1, batch, hidden, device="cuda", dtype=tdt)
        x_pin = torch.zeros(1, batch, hidden, dtype=tdt).pin_memory()
        out = {}

        def fwd():
            out["y"] = stack(x_dev)[0]
            return out["y"]

        call = _graphed(fwd)
        y_pin = torch.zeros(tuple(call.outputs.shape), dtype=tdt).pin_memory()
        stream = torch.cuda.current_stream()
        times, ys = [], []
        for t in range(steps):
            x_pin.copy_(torch.from_numpy(xs[t]).reshape(1, batch, hidden))
            t0 = time.perf_counter()
            x_dev.copy_(x_pin, non_blocking=True)
            call()
            y_pin.copy_(call.outputs, non_blocking=True)
            stream.synchronize()
            times.append(time.perf_counter() - t0)
            ys.append(y_pin.float().numpy().reshape(batch, hidden).copy())
        return statistics.median(times[10:]) * 1e6, np.stack(ys), _events_median(call, 50)

    cudnn, _ = make_stack(specs, batch, 1, dtype, limits, prefer="cudnn")
    row["cudnn_graph_h2h_us"], _, row["cudnn_graph_events_us"] = host_to_host(cudnn)
    pers, _ = make_stack(specs, batch, 1, dtype, limits, prefer="persistent")
    row["persistent_graph_h2h_us"], _, row["persistent_graph_events_us"] = host_to_host(pers)
    sess = StreamSession(specs, batch, dtype, limits)
    times, ys = [], []
    with sess:
        for t in range(steps):
            t0 = time.perf_counter()
            ys.append(sess.step(xs[t]))
            times.append(time.perf_counter() - t0)
    row["resident_h2h_us"] = statistics.median(times[10:]) * 1e6
    row["resident_p90_us"] = float(np.percentile(times[10:], 90) * 1e6)
    # cuDNN ran each step from zero state (a T=1 graph); the session carries state, so its
    # outputs are checked against cuDNN over the whole sequence instead.
    full, _ = make_stack(specs, batch, steps, dtype, limits, prefer="cudnn")
    y_seq = full(torch.from_numpy(xs).to("cuda", tdt))[0].float().cpu().numpy().reshape(steps, batch, hidden)
    row["resident_max_abs_diff_vs_cudnn_sequence"] = float(np.abs(np.stack(ys) - y_seq).max())
    row["speedup_vs_cudnn_graph_h2h"] = row["cudnn_graph_h2h_us"] / row["resident_h2h_us"]
    row["speedup_vs_cudnn_graph_events"] = row["cudnn_graph_events_us"] / row["resident_h2h_us"]
    print(json.dumps(row), flush=True)
    return row


def stream_markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Streaming step (T=1) host to host — {meta['gpu']}", "",
             f"Measured {meta['date']} with `{meta['command']}` (torch {meta['torch']}, cuDNN {meta['cudnn']})."
        + (f" Floor columns recomputed {meta['refloored']} from this run's measurements with a later "
           "floor model (`--refloor`; docs/cuda.md)." if meta.get("refloored") else ""),
             "Wall-clock µs per step, median over the steps after the first 10: x starts in host memory and the "
             "step ends when y is in host memory. `resident` = a StreamSession (one kernel launch for the whole "
             "stream; state carried on chip). `graph h2h` = a CUDA graph of one T=1 step fed through pinned buffers "
             "(copy in, replay, copy out, synchronize); `graph events` = the same graph's replay timed with CUDA "
             "events, device side only, no copies (the batch table's T=1 measure). 2 layers, input = hidden.", "",
             "| cell | dtype | H | batch | resident | resident p90 | cuDNN graph h2h | persistent graph h2h | "
             "cuDNN graph events | persistent graph events | × vs cuDNN graph h2h | × vs cuDNN graph events | "
             "max |Δ| vs cuDNN (sequence) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['dtype']} | {r['hidden']} | {r['batch']} | {r['resident_h2h_us']:.1f} | "
                     f"{r['resident_p90_us']:.1f} | {r['cudnn_graph_h2h_us']:.1f} | {r['persistent_graph_h2h_us']:.1f} | "
                     f"{r['cudnn_graph_events_us']:.1f} | {r['persistent_graph_events_us']:.1f} | "
                     f"{r['speedup_vs_cudnn_graph_h2h']:.2f} | {r['speedup_vs_cudnn_graph_events']:.2f} | "
                     f"{r['resident_max_abs_diff_vs_cudnn_sequence']:.1e} |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return "" if v is None else f"{v:.1f}"


def _ratio(a, b) -> str:
    return f"{a / b:.1f}" if a and b else ""


def markdown(rows: list[dict], meta: dict) -> str:
    variants = meta.get("variants", [])
    head = ["cell", "dtype", "H", "batch", "T", "cuDNN eager", "cuDNN graph", "persistent (graph)", "kernel", "mode",
            "single step (graph)",
            "floor", "full floor", "ours", "engine", "table", "× vs cuDNN graph", "× vs cuDNN eager", "persistent / floor",
            "ours / floor", "ours / full floor",
            *[f"variant {v}" for v in variants], "max |Δ| vs cuDNN"]
    lines = [
        f"# Persistent RNN kernel vs cuDNN — {meta['gpu']}",
        "",
        f"Measured {meta['date']} with `{meta['command']}` (torch {meta['torch']}, cuDNN {meta['cudnn']})."
        + (f" Floor columns recomputed {meta['refloored']} from this run's measurements with a later "
           "floor model (`--refloor`; docs/cuda.md)." if meta.get("refloored") else ""),
        "Times in µs (median of CUDA-event-timed runs, inputs on the GPU). cuDNN = torch.nn.LSTM/GRU, eager and "
        "replayed from a captured CUDA graph; the persistent kernel in a CUDA graph too. `ours` = the engine "
        "the backend's first-run measurement keeps (persistent kernel, its cuDNN fallback or, at T=1, the single-step "
        "stack: one GEMM over [x | h0] and one gate kernel a layer, docs/cuda.md). `table` = the engine "
        "the built-in table picks without measuring. 2 layers, input = hidden. floor = the persistent schedule's "
        "hardware floor (docs/cuda.md): per step the exchange latency plus the weight stream; `full floor` adds "
        "per call the graph launch and reading every weight once (from L2 where they fit, else device memory), "
        "and per step takes the largest of the weight stream, the B x K operand every "
        "CTA receives through L2 and the math at peak rate (all from this run's measurements below). `kernel`: two-barrier, large-batch or original step, +wreg = weight "
        "fragments in registers, +split = deeper wavefront layers do their input product before waiting on their "
        "own h, +xin = first layer's input products in the kernel, +tf32 = fp32 products as three TF32 "
        "tensor-core passes, +bf16x3 = fp32 products as three bf16 tensor-core passes over operands split ahead of time, "
        "+packf = two fp32 h per exchange word, +wpartN = the first N K steps of every warp's "
        "fragments in registers and the rest in shared memory, +ringSxG = staged rows through a ring of S copy groups of "
        "G n-tiles, +xtf32x3/+xbf16x3 = fp32 input projection GEMM as three TF32 or bf16 tensor-core passes. `variant X` = the same stack built another way, "
        "timed in the same run (original: original step; large-batch: large-batch step; smem: fragments in shared memory; nosplit: no split; xin: the "
        "other choice of in-kernel vs GEMM input projection; noncoop: a plain instead of a cooperative launch; "
        "nopack: one fp32 h per exchange word instead of two fp16/bf16 values; cudacores: fp32 products on CUDA cores "
        "instead of three TF32 tensor-core passes; tf32: the reverse; splitround: TF32X3 "
        "operands rounded to hi/lo parts at every use instead of split by a mask; nopipe: large-batch step with "
        "every row copied before the first product instead of copies and products overlapped by n-tile groups; "
        "gtN: large-batch step copying N n-tiles per group (default 2); xregs: a build without in-kernel "
        "input products that still reserves registers for their fragments; "
        "xplain/xtf32x3/xbf16x3: fp32 input projection GEMM as plain fp32, or three TF32 or bf16 passes; "
        "ringSxG: large-batch step staging rows through S slots of G n-tiles; "
        "kbf16x3/ktf32x3: fp32 step (two-barrier or large-batch) with its products as three bf16 or three TF32 passes; "
        "wpart/nowpart: large-batch step with or without fragments split between registers and shared memory; "
        "no-large-batch: the planner's choice without the large-batch step; mode: the other schedule, one launch a layer "
        "instead of a wavefront or back).",
        "",
        "Floor inputs measured in this run (tagged all-gather through L2 per step, 1 CTA per SM; counter "
        "barrier; L2 broadcast rate; graph launch): "
        + ", ".join(f"{k} = {v:.2f}" for k, v in meta["exchange"].items())
        + "; from the device's attributes: "
        + ", ".join(f"{k} = {v:.2f}" for k, v in meta.get("device", {}).items()),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        pg = r.get("persistent_graph_us")
        cells = [r["cell"], r["dtype"], r["hidden"], r["batch"], r["T"], _fmt(r["cudnn_eager_us"]),
                 _fmt(r["cudnn_graph_us"]), _fmt(pg), r.get("step", ""), r.get("mode", r.get("persistent_skip", r.get("persistent_error", ""))),
                 _fmt(r.get("step_graph_us")) or r.get("step_error", ""),
                 _fmt(r.get("floor_us")), _fmt(r.get("full_floor_us")), _fmt(r["ours_graph_us"]), r["auto_engine"],
                 r["table_engine"], f"{r['speedup_vs_cudnn_graph']:.2f}", f"{r['speedup_vs_cudnn_eager']:.1f}",
                 _ratio(pg, r.get("floor_us")), _ratio(r["ours_graph_us"], r.get("floor_us")),
                 _ratio(r["ours_graph_us"], r.get("full_floor_us")),
                 *[_fmt(r.get(f"variant_{v}_us")) for v in variants],
                 f"{r.get('max_abs_diff_vs_cudnn', float('nan')):.1e}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="Markdown table path")
    ap.add_argument("--json", default=None, help="raw rows as JSON")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--hidden", default="256,512,1024")
    ap.add_argument("--batch", default="1,8,64")
    ap.add_argument("--T", default="1,100")
    ap.add_argument("--dtypes", default="float16,float32")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--probe", action="store_true", help="time kernel variants with parts switched off")
    ap.add_argument("--probe-shapes", default=PROBE_SHAPES,
                    help="--probe: comma list of cell:hidden:batch:T:dtype (LSTM only)")
    ap.add_argument("--refloor", metavar="JSON", default=None,
                    help="recompute the floor columns of a saved run (its --json file, rewritten; with --out also "
                         "the table) from the run's own measurements; needs no GPU")
    ap.add_argument("--probe-launch", action="store_true", help="time graph launches: replay() vs cuGraphLaunch")
    ap.add_argument("--stream", action="store_true",
                    help="streaming steps host to host: resident StreamSession vs CUDA graphs (uses --cells, "
                         "--dtypes, --hidden, --batch, --layers)")
    ap.add_argument("--steps", type=int, default=1000, help="steps per streaming measurement")
    ap.add_argument("--variants", default="",
                    help="comma list of other builds to time in the same run: original (original step), large-batch (large-batch step), "
                         "smem (fragments in shared memory), nosplit (no split input product), xin (the other "
                         "in-kernel/GEMM choice for the first layer's input), noncoop (plain launch), nopack (one h per "
                         "exchange word), ntN (large-batch step with N n-tiles unrolled), cudacores (fp32 products on CUDA "
                         "cores instead of three TF32 tensor-core passes), tf32 (the reverse), splitround (TF32X3 operands "
                         "rounded to hi/lo at every use instead of split by a mask), nopipe (large-batch step without "
                         "overlapping row copies and products), no-large-batch (no large-batch step), gtN (large-batch step, N n-tiles per "
                         "copy group), xregs (registers reserved for unused input-weight fragments), mode (the other "
                         "schedule: layerwise vs wavefront), bulkN (large-batch step: rows by bulk copies, "
                         "multicast across clusters of N CTAs; bulk0: 16-byte cp.async), share (large-batch step: each warp "
                         "multiplies every row tile over its own K slice)")
    args = ap.parse_args(argv)
    if args.refloor:
        return refloor(args.refloor, args.out)

    import torch

    from tf2rt.backends.cuda.persistent import device_limits

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    limits = device_limits()
    variants = [v for v in args.variants.split(",") if v]
    if args.probe:
        for row in probe(args.reps, limits, args.probe_shapes):
            print(row)
        return 0
    if args.stream:
        meta = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
                "command": "python benchmarks/bench_cuda_rnn.py " + " ".join(argv if argv is not None else sys.argv[1:])}
        rows = [bench_stream(cell, hidden, batch, dtype, args.layers, args.steps, limits)
                for cell in args.cells.split(",") for dtype in args.dtypes.split(",")
                for hidden in map(int, args.hidden.split(",")) for batch in map(int, args.batch.split(","))]
        md = stream_markdown(rows, meta)
        print(md)
        if args.out:
            Path(args.out).write_text(md)
        if args.json:
            Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return 0
    if args.probe_launch:
        rows = probe_launch(args.reps, limits)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return 0
    meta = {
        "gpu": torch.cuda.get_device_name(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "command": "python benchmarks/bench_cuda_rnn.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "exchange": measure_exchange(limits.sm_count),
        "device": {"hbm_tb_s": limits.hbm_bytes_per_s / 1e12, "l2_mb": limits.l2_size / 2**20},
        "limits": _limits_dict(limits),  # the device's facts as the planner read them (--refloor)
        "variants": variants,
    }
    print("exchange:", meta["exchange"], "device:", meta["device"], flush=True)
    limits = measured_limits(limits, meta["exchange"])
    rows = []
    for cell in args.cells.split(","):
        for dtype in args.dtypes.split(","):
            for hidden in map(int, args.hidden.split(",")):
                for batch in map(int, args.batch.split(",")):
                    for T in map(int, args.T.split(",")):
                        r = bench_one(cell, hidden, batch, T, dtype, args.layers, args.reps, limits, variants)
                        rows.append(r)
                        print(json.dumps(r), flush=True)
    md = markdown(rows, meta)
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(md)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
