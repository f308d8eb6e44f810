"""How fast can the CTAs of one layer share h each step? Thread-block clusters against L2.

The persistent kernel hands each step's h between CTAs through L2 as tagged words (about
0.93 µs a step at 512 words on an H100: the `allgather_512w_us` of bench_cuda_rnn.py), the
largest part of a step at batch 1. Hopper's thread-block clusters let up to 8 CTAs (16 with
the non-portable size) write straight into each other's shared memory and meet at a
hardware cluster barrier. This probe times that exchange alone, as a kernel step would do
it: every CTA of a cluster writes its share of `words` fp32 values into a double-buffered
slot of every peer's shared memory (mapa + st.shared::cluster), all meet at
barrier.cluster (arrive.release / wait.acquire), then each reads the whole slot; one
barrier a step (the double buffer makes a second unnecessary). Many clusters run at once,
filling the SMs as a kernel would. Same process: the L2 tagged all-gather over one
cluster's worth of CTAs and over all SMs, for comparison.

    python benchmarks/cuda_cluster_probe.py --out benchmarks/results/cuda_cluster_probe_h100.md

Needs an NVIDIA GPU of compute capability 9.0 or later, PyTorch (CUDA) and CuPy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLUSTER_SRC = r"""
// CLUSTER: CTAs a cluster (compile-time, __cluster_dims__).
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ unsigned peer_address(const float* p, unsigned rank) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p), r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(rank));
    return r;
}
__device__ __forceinline__ void peer_store(unsigned addr, float v) {
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory");
}
__device__ __forceinline__ void cluster_barrier() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
extern "C" __global__ void __cluster_dims__(CLUSTER, 1, 1) cluster_exchange(int words, int steps, float* sink) {
    extern __shared__ float slots[];  // [2][words]
    const unsigned me = cluster_rank();
    const int per = words / CLUSTER;
    float acc = 0.0f;
    cluster_barrier();  // every peer has started (its shared memory exists)
    for (int s = 0; s < steps; ++s) {
        float* slot = slots + (s & 1) * words;
        for (int i = threadIdx.x; i < per * CLUSTER; i += blockDim.x) {
            const int peer = i / per, k = i - peer * per;
            peer_store(peer_address(slot + me * per + k, (unsigned)peer), (float)(s + k));
        }
        cluster_barrier();
        for (int k = threadIdx.x; k < words; k += blockDim.x) acc += slot[k];
    }
    cluster_barrier();  // no CTA leaves while a peer may still write into it
    if (acc == -1.0f) sink[0] = acc;
}
"""


def compile_options(cluster: int) -> tuple[str, ...]:
    return ("--std=c++17", f"-DCLUSTER={cluster}")


def measure(clusters: list[int], words_list: list[int], steps: int) -> list[dict]:
    import cupy
    import torch

    from bench_cuda_rnn import EXCHANGE_SRC, _events_median

    sm = torch.cuda.get_device_properties(0).multi_processor_count
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)
    sink = cupy.zeros(1, cupy.float32)
    rows = []
    ex = cupy.RawModule(code=EXCHANGE_SRC, options=("--std=c++17",)).get_function("exchange")
    epoch = [1]

    def l2_gather(ctas: int, words: int) -> float:
        buf = cupy.zeros(2 * words, cupy.uint64)
        per = -(-words // ctas)

        def run():
            ex((ctas,), (256,), (buf, np.int32(words), np.int32(per), np.int32(steps), np.uint32(epoch[0]), sink))
            epoch[0] += steps

        with stream:
            return _events_median(run, 7) / steps

    for cluster in clusters:
        kernel = cupy.RawModule(code=CLUSTER_SRC, options=compile_options(cluster)).get_function("cluster_exchange")
        for words in words_list:
            smem = 2 * words * 4
            kernel.max_dynamic_shared_size_bytes = max(smem, 48 * 1024)
            grid = sm // cluster * cluster
            row = {"cluster": cluster, "words": words, "ctas": grid}
            try:
                def run():
                    kernel((grid,), (256,), (np.int32(words), np.int32(steps), sink), shared_mem=smem)

                with stream:
                    row["cluster_us"] = _events_median(run, 7) / steps
            except Exception as e:  # e.g. a cluster size the GPU refuses
                row["error"] = f"{type(e).__name__}: {e}"
            row["l2_cluster_ctas_us"] = l2_gather(cluster, words)
            row["l2_all_sms_us"] = l2_gather(sm, words)
            rows.append(row)
            print(row, flush=True)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"# Sharing h between CTAs each step: thread-block clusters vs L2 — {meta['gpu']}", "",
             f"{meta['date']}; command: `{meta['command']}`", "",
             "Microseconds a step (median of 7 CUDA-event-timed launches of many steps). cluster: every CTA of a cluster writes its "
             "share of the words into every peer's shared memory and all meet at barrier.cluster, as many clusters "
             "as fill the SMs; L2: the persistent kernel's tagged all-gather through L2 over the same number of CTAs "
             "as a cluster, and over every SM.", "",
             "| cluster | words | CTAs | cluster exchange | L2, cluster's CTAs | L2, all SMs |", "|---|---|---|---|---|---|"]
    for r in rows:
        c = f"{r['cluster_us']:.3f}" if "cluster_us" in r else r.get("error", "-")
        lines.append(f"| {r['cluster']} | {r['words']} | {r['ctas']} | {c} | {r['l2_cluster_ctas_us']:.3f} | "
                     f"{r['l2_all_sms_us']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_cluster_probe.md")
    ap.add_argument("--clusters", default="2,4,8")
    ap.add_argument("--words", default="256,512,1024,4096")
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    if torch.cuda.get_device_capability() < (9, 0):
        raise SystemExit("thread-block clusters need compute capability 9.0 or later")
    meta = {"gpu": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python benchmarks/cuda_cluster_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows = measure([int(c) for c in args.clusters.split(",")], [int(w) for w in args.words.split(",")], args.steps)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
