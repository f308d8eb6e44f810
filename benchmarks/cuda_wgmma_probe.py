"""How fast one CTA's product of a large-batch fp16 step can run: warp-level mma.sync (the
persistent kernel's way) against Hopper's warpgroup wgmma, on the shape of the fp16 H=1024
batch-64 LSTM step (per CTA: 32 gate rows x 64 batch rows x K=1024).

At that shape the step's products take about 1.4 of its 6.7 µs (H100,
benchmarks/results/cuda_probe_fp16_1024_bulk_h100.md) and halving their shared-memory loads
changed nothing (MT_SHARE, cuda_rnn_bulk_share_h100.md): the tensor-core issue rate bounds
them, which wgmma raises. This probe times the product alone, the same number of CTAs as
the kernel, each repeating it `iters` times on operands in shared memory:

- mma: 8 warps, weights as A fragments in registers (2 row tiles x 4 K slices), h as B
  fragments by ldmatrix from padded rows, K slices summed through shared memory;
- wgmma WG=1 / WG=2: one warpgroup (M = the 64 batch rows, N = the 32 gate rows, K-major
  operands in 8x16-byte core matrices, no swizzle), or two splitting K and summing;
- wgmma with h from registers: each warp's A fragment by ldmatrix from the padded rows the
  kernel stages today, the weights by descriptor (the form the kernel could take);
- the mma.sync products alone (no per-repeat K-slice sums) and wgmma with 2 or 4 independent
  accumulator chains: whether the forms are bound by the sums, by one chain's latency, or by
  the operands' shared-memory traffic at N = 32.

Each form's result is checked against torch first: the wgmma result is read back from the
raw accumulator registers, and where the assumed register layout does not match, the
probe reports the layout it finds (so a failed check still says what is true). The
descriptor's two strides are tried both ways; the table says which matched.

    python benchmarks/cuda_wgmma_probe.py --out benchmarks/results/cuda_wgmma_probe.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

M, N, K = 64, 32, 1024  # batch rows, gate rows, K

SRC = r"""
typedef unsigned short half_t;  // fp16 bits: the probe only moves them
typedef unsigned int u32;
typedef unsigned long long u64;
#define M 64
#define N 32
#define K 1024
#define HS (K + 8)  // padded h row (halves) of the mma form: ldmatrix rows on distinct banks
#ifndef RED
#define RED 1  // the mma form sums its K slices through shared memory every repeat, as a step does
#endif

__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// out [gridDim.x][N][M]: the last iteration's product W h^T of this CTA.
extern "C" __global__ void __launch_bounds__(256, 1)
prod_mma(const half_t* __restrict__ hg, const half_t* __restrict__ wg, float* __restrict__ out, int iters) {
    extern __shared__ __align__(16) unsigned char smem[];
    half_t* sh = reinterpret_cast<half_t*>(smem);  // [M][HS]
    float* red = reinterpret_cast<float*>(smem + M * HS * 2);  // [4][N][M]
    for (int i = threadIdx.x; i < M * K; i += blockDim.x) sh[(i / K) * HS + i % K] = hg[i];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int mt = warp & 1, ks = warp >> 1;  // row tile of 16, K slice of 256
    u32 a[16][4];
#pragma unroll
    for (int s = 0; s < 16; ++s) {
        const int r = mt * 16 + lane / 4, c = ks * 256 + s * 16 + 2 * (lane % 4);
        a[s][0] = *reinterpret_cast<const u32*>(wg + r * K + c);
        a[s][1] = *reinterpret_cast<const u32*>(wg + (r + 8) * K + c);
        a[s][2] = *reinterpret_cast<const u32*>(wg + r * K + c + 8);
        a[s][3] = *reinterpret_cast<const u32*>(wg + (r + 8) * K + c + 8);
    }
    __syncthreads();
    for (int it = 0; it < iters; ++it) {
        float acc[8][4];
#pragma unroll
        for (int t = 0; t < 8; ++t) acc[t][0] = acc[t][1] = acc[t][2] = acc[t][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < 16; ++s) {
            const int k0 = ks * 256 + s * 16;
#pragma unroll
            for (int np = 0; np < 4; ++np) {  // two n-tiles (16 batch rows) a ldmatrix.x4
                u32 b[4];
                const int row = np * 16 + (lane & 7) + ((lane >> 4) << 3), col = k0 + ((lane >> 3) & 1) * 8;
                const u32 addr = (u32)__cvta_generic_to_shared(sh + row * HS + col);
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                             : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(addr));
                mma16816(acc[2 * np], a[s], b[0], b[1]);
                mma16816(acc[2 * np + 1], a[s], b[2], b[3]);
            }
        }
#if !RED  // the product alone: K slices summed on the last repeat only
        if (it < iters - 1) {
            if (acc[0][0] == 1234.5f) out[0] = acc[7][3];  // keeps the products; never true here
            continue;
        }
#endif
#pragma unroll
        for (int t = 0; t < 8; ++t) {
            const int r = mt * 16 + lane / 4, bb = t * 8 + 2 * (lane % 4);
            float* p = red + ks * N * M;
            p[r * M + bb] = acc[t][0];
            p[r * M + bb + 1] = acc[t][1];
            p[(r + 8) * M + bb] = acc[t][2];
            p[(r + 8) * M + bb + 1] = acc[t][3];
        }
        __syncthreads();
        for (int i = threadIdx.x; i < N * M; i += blockDim.x) {
            const float v = red[i] + red[N * M + i] + red[2 * N * M + i] + red[3 * N * M + i];
            if (it == iters - 1) out[(size_t)blockIdx.x * N * M + i] = v;
        }
        __syncthreads();
    }
}

#if WGMMA  // built for sm_90a only
// Core-matrix tiling of a K-major [rows][K] fp16 operand: 8 rows x 8 halves (128 bytes) per
// core matrix, core matrices along K 128 bytes apart, along rows K * 16 bytes apart.
__device__ __forceinline__ int tiled(int r, int k) { return ((r >> 3) * (K >> 3) + (k >> 3)) * 64 + (r & 7) * 8 + (k & 7); }

__device__ __forceinline__ u64 desc(const void* p, u32 lbo, u32 sbo) {
    const u32 a = (u32)__cvta_generic_to_shared(p);
    return (u64)((a & 0x3FFFF) >> 4) | ((u64)((lbo & 0x3FFFF) >> 4) << 16) | ((u64)((sbo & 0x3FFFF) >> 4) << 32);
}

// dst (tiled) <- src [rows][K]; then visible to wgmma (the async proxy) after the barrier.
__device__ __forceinline__ void stage_tiled(half_t* dst, const half_t* src, int rows) {
    for (int i = threadIdx.x; i < rows * K; i += blockDim.x) dst[tiled(i / K, i % K)] = src[i];
}

// The descriptor's leading (along K) and stride (along rows) byte offsets; swap: the other way.
__device__ __forceinline__ void strides(int swap, u32& lbo, u32& sbo) {
    const u32 along_k = 128, along_rows = K * 16;
    lbo = swap ? along_rows : along_k;
    sbo = swap ? along_k : along_rows;
}

#ifndef CH
#define CH 1
#endif
// d (+)= A B for one k16 step, both operands by descriptor (acc = 0: d = A B).
__device__ __forceinline__ void wgmma_ss(float* d, u64 da, u64 db, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, %16, %17, p, 1, 1, 0, 0;\n}"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),
                   "+f"(d[15])
                 : "l"(da), "l"(db), "r"(acc));
}

// Zero the accumulators and open a wgmma sequence; close it and wait for every wgmma.
__device__ __forceinline__ void wgmma_begin(float* d) {
#pragma unroll
    for (int i = 0; i < 16; ++i) d[i] = 0.0f;
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}
__device__ __forceinline__ void wgmma_end() {
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
}

// Assumed accumulator layout: d[4j + 2i + e] = (batch 16w + l/4 + 8i, gate row 8j + 2(l%4) + e).
// dst [N][M] (+= add [N][M] where given), or (scatter) dst[...] = d.
__device__ __forceinline__ void store_d(float* dst, const float* d, int w, int l, const float* add) {
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const int n = 8 * j + 2 * (l % 4) + e, m = 16 * w + l / 4 + 8 * i;
                dst[n * M + m] = d[4 * j + 2 * i + e] + (add ? add[n * M + m] : 0.0f);
            }
}

// out [gridDim.x][N][M] as mma's (WG warpgroups split K); raw [128][16]: block 0's
// accumulator registers of warpgroup 0 at iteration 0 (read back to check their layout).
extern "C" __global__ void __launch_bounds__(128 * WG, 1)
prod_wgmma(const half_t* __restrict__ hg, const half_t* __restrict__ wg, float* __restrict__ out,
           float* __restrict__ raw, int iters, int swap) {
    extern __shared__ __align__(128) unsigned char smem[];
    half_t* sa = reinterpret_cast<half_t*>(smem);  // h: A [M][K], tiled
    half_t* sb = sa + M * K;                        // W: B [N][K], tiled
#if WG == 2
    float* red = reinterpret_cast<float*>(sb + N * K);  // [N][M]: the second warpgroup's sums
#endif
    stage_tiled(sa, hg, M);
    stage_tiled(sb, wg, N);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    const int g = threadIdx.x >> 7, t = threadIdx.x & 127, w = t >> 5, l = t & 31;
    u32 lbo, sbo;
    strides(swap, lbo, sbo);
    for (int it = 0; it < iters; ++it) {
        float d[16], dc[CH][16];  // CH chains: k-step s accumulates into chain s % CH
#pragma unroll
        for (int c = 0; c < CH; ++c)
#pragma unroll
            for (int i = 0; i < 16; ++i) dc[c][i] = 0.0f;
        wgmma_begin(d);
#pragma unroll 4
        for (int s0 = 0; s0 < K / 16 / WG; s0 += CH) {
#pragma unroll
            for (int c = 0; c < CH; ++c) {
                const int s = s0 + c, k0 = (g * (K / WG)) + s * 16;
                const u64 da = desc(sa + (k0 >> 3) * 64, lbo, sbo), db = desc(sb + (k0 >> 3) * 64, lbo, sbo);
                wgmma_ss(dc[c], da, db, s0);
            }
        }
        wgmma_end();
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            d[i] = dc[0][i];
#pragma unroll
            for (int c = 1; c < CH; ++c) d[i] += dc[c][i];
        }
        if (raw && it == 0 && blockIdx.x == 0 && g == 0)
            for (int i = 0; i < 16; ++i) raw[t * 16 + i] = d[i];
#if WG == 2
        if (g == 1) store_d(red, d, w, l, nullptr);
        __syncthreads();
        if (g == 0 && it == iters - 1) store_d(out + (size_t)blockIdx.x * N * M, d, w, l, red);
        __syncthreads();
#else
        if (it == iters - 1) store_d(out + (size_t)blockIdx.x * N * M, d, w, l, nullptr);
#endif
    }
}

// The same with A (h) from registers: each warp's 16 batch rows x k16 by ldmatrix from padded
// rows (the persistent kernel's staging), B (W) by descriptor as above. One warpgroup.
extern "C" __global__ void __launch_bounds__(128, 1)
prod_wgmma_ra(const half_t* __restrict__ hg, const half_t* __restrict__ wg, float* __restrict__ out,
              float* __restrict__ raw, int iters, int swap) {
    extern __shared__ __align__(128) unsigned char smem[];
    half_t* sb = reinterpret_cast<half_t*>(smem);  // W: B [N][K], tiled (first: 128-byte aligned)
    half_t* sh = sb + N * K;                        // h [M][HS]
    for (int i = threadIdx.x; i < M * K; i += blockDim.x) sh[(i / K) * HS + i % K] = hg[i];
    stage_tiled(sb, wg, N);
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    const int t = threadIdx.x, w = t >> 5, l = t & 31;
    u32 lbo, sbo;
    strides(swap, lbo, sbo);
    for (int it = 0; it < iters; ++it) {
        float d[16];
        wgmma_begin(d);
#pragma unroll 4
        for (int s = 0; s < K / 16; ++s) {
            const int k0 = s * 16;
            u32 a[4];
            const u32 addr = (u32)__cvta_generic_to_shared(sh + (16 * w + (l & 15)) * HS + k0 + (l >> 4) * 8);
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]) : "r"(addr));
            const u64 db = desc(sb + (k0 >> 3) * 64, lbo, sbo);
            asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
                         "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 "
                         "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, {%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
                           "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
                           "+f"(d[14]), "+f"(d[15])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(s));
        }
        wgmma_end();
        if (raw && it == 0 && blockIdx.x == 0)
            for (int i = 0; i < 16; ++i) raw[t * 16 + i] = d[i];
        if (it == iters - 1) store_d(out + (size_t)blockIdx.x * N * M, d, w, l, nullptr);
    }
}
#endif  // WGMMA
"""


def _sm90a_module(src: str, options: tuple):
    """A module built for sm_90a (wgmma needs the arch-specific target; cupy's own choice is
    the plain one): the arch given to cupy's NVRTC step, else as an option."""
    import cupy

    errors = []
    compile_nvrtc = getattr(cupy.cuda.compiler, "compile_using_nvrtc", None)
    if compile_nvrtc is not None:
        try:
            image = compile_nvrtc(src, options, "90a")
            mod = cupy.cuda.function.Module()
            if isinstance(image, str):
                image = image.encode()
            mod.load(image)
            return mod
        except Exception as e:  # noqa: BLE001 - try the next way
            errors.append(f"compile_using_nvrtc: {str(e).splitlines()[0][:150]}")
    try:
        mod = cupy.RawModule(code=src, options=options + ("-arch=sm_90a",))
        mod.get_function("prod_wgmma")
        return mod
    except Exception as e:  # noqa: BLE001
        errors.append(f"RawModule: {str(e).splitlines()[0][:150]}")
    raise RuntimeError("; ".join(errors))


def _layout(raw, want) -> str:
    """Where each accumulator register of warpgroup 0 landed: (thread, register) -> (batch,
    gate row) of the reference product, described by the first threads' findings."""
    import numpy as np

    found = []
    for t in (0, 1, 4, 32):
        regs = []
        for i in range(16):
            hits = np.argwhere(np.abs(want - raw[t, i]) <= 1e-3 * max(1.0, abs(float(raw[t, i]))))
            regs.append(tuple(int(v) for v in hits[0]) if len(hits) else None)
        found.append(f"t{t}: " + " ".join(f"d{i}=(n{r[0]},m{r[1]})" if r else f"d{i}=?" for i, r in enumerate(regs)))
    return "; ".join(found)


#: The forms timed: name -> (label, -D switches, kernel, threads, shared bytes). The wgmma
#: forms are built for sm_90a; CH = independent accumulator chains a warpgroup interleaves.
FORMS = {
    "mma": ("mma.sync, 8 warps, K slices summed every repeat (as a step does)", {"RED": 1}, "prod_mma", 256,
            M * (K + 8) * 2 + 4 * N * M * 4),
    "mma_product": ("mma.sync, 8 warps, the products alone", {"RED": 0}, "prod_mma", 256,
                    M * (K + 8) * 2 + 4 * N * M * 4),
    "wgmma1": ("wgmma, 1 warpgroup", {"WG": 1, "CH": 1}, "prod_wgmma", 128, (M + N) * K * 2 + N * M * 4),
    "wgmma1x4": ("wgmma, 1 warpgroup, 4 accumulator chains", {"WG": 1, "CH": 4}, "prod_wgmma", 128,
                 (M + N) * K * 2 + N * M * 4),
    "wgmma2": ("wgmma, 2 warpgroups splitting K", {"WG": 2, "CH": 1}, "prod_wgmma", 256, (M + N) * K * 2 + N * M * 4),
    "wgmma2x2": ("wgmma, 2 warpgroups, 2 chains each", {"WG": 2, "CH": 2}, "prod_wgmma", 256,
                 (M + N) * K * 2 + N * M * 4),
    "wgmma_ra": ("wgmma, 1 warpgroup, h from registers (ldmatrix of padded rows)", {"WG": 1}, "prod_wgmma_ra", 128,
                 N * K * 2 + M * (K + 8) * 2),
}


def run(ctas: int, iters: int, reps: int, forms: list[str]) -> dict:
    import cupy
    import numpy as np
    import torch

    from bench_cuda_rnn import _events_times

    dev = torch.device("cuda")
    gen = torch.Generator(device="cpu").manual_seed(5)
    h = (torch.rand(M, K, generator=gen) - 0.5).to(torch.float16).to(dev)
    w = (torch.rand(N, K, generator=gen) - 0.5).to(torch.float16).to(dev)
    want = (w.float() @ h.float().T).cpu().numpy()  # [N][M]
    out = torch.zeros(ctas, N, M, device=dev)
    raw = torch.zeros(128, 16, device=dev)
    res = {"ctas": ctas, "iters": iters}
    stream = lambda: cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)  # noqa: E731
    ptrs = (cupy.uint64(h.data_ptr()), cupy.uint64(w.data_ptr()), cupy.uint64(out.data_ptr()))

    for name in forms:
        _, defines, kernel, threads, smem = FORMS[name]
        wg = kernel != "prod_mma"
        options = ("--std=c++17", f"-DWGMMA={int(wg)}") + tuple(f"-D{k}={v}" for k, v in defines.items())
        try:
            fn = (_sm90a_module(SRC, options) if wg else cupy.RawModule(code=SRC, options=options)).get_function(kernel)
        except Exception as e:  # noqa: BLE001 - report and go on
            res[f"{name}_error"] = str(e).splitlines()[0][:200]
            print(name, "did not build:", e, flush=True)
            continue
        fn.max_dynamic_shared_size_bytes = smem
        for swap in ((0, 1) if wg else (0,)):
            args = (lambda n, swap=swap: ptrs + (cupy.uint64(raw.data_ptr()), cupy.int32(n), cupy.int32(swap))) if wg \
                else (lambda n: ptrs + (cupy.int32(n),))
            out.zero_()
            raw.zero_()
            fn((ctas,), (threads,), args(1), shared_mem=smem, stream=stream())
            torch.cuda.synchronize()
            res[f"{name}_err"] = float(np.abs(out[0].cpu().numpy() - want).max())
            res[f"{name}_swap"] = swap
            if res[f"{name}_err"] < 0.05:
                break
        if wg and res[f"{name}_err"] >= 0.05:
            res[f"{name}_layout_found"] = _layout(raw.cpu().numpy(), want)
        times = _events_times(lambda: fn((ctas,), (threads,), args(iters), shared_mem=smem, stream=stream()), reps, 2)
        res[f"{name}_us"] = statistics.median(times) / iters
        print(name, res[f"{name}_us"], "us a product, max abs err", res[f"{name}_err"], flush=True)
    return res


def _sm_clock_ghz() -> float:
    """The SM clock the device reports (kHz in CUDA), in GHz; nan where it reports none (the
    attribute is deprecated in newer CUDA)."""
    import cupy

    rt = cupy.cuda.runtime
    try:
        khz = rt.getDeviceProperties(0).get("clockRate") or rt.deviceGetAttribute(rt.cudaDevAttrClockRate, 0)
        return float(khz) / 1e6 if khz else float("nan")
    except Exception:  # noqa: BLE001 - the rate column is then nan, the times stand
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/cuda_wgmma_probe.md")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--forms", default=",".join(FORMS), help="comma-separated: " + ", ".join(FORMS))
    args = ap.parse_args(argv)
    import torch

    from bench_cuda_engine import gpu_meta, report_head, write_report

    meta = gpu_meta("cuda_wgmma_probe.py", argv)
    ctas = 128  # the fp16 H=1024 batch-64 stack's CTAs, one an SM
    forms = args.forms.split(",")
    r = run(ctas, args.iters, args.reps, forms)
    ghz = _sm_clock_ghz()
    fma = N * M * K  # multiply-adds a product
    lines = report_head("One CTA's large-batch step product, mma.sync against wgmma", meta,
                        f"Per CTA: [{N} gate rows x {K}] x [{K} x {M} batch rows] fp16, fp32 sums, operands in shared "
                        f"memory; {ctas} CTAs, each repeating the product {args.iters} times; µs a product (median "
                        f"of {args.reps} launches over the repeats); multiply-adds a clock = the product's over the "
                        f"time at the SM clock the device reports ({ghz:.2f} GHz; an H100 SM's tensor cores peak at "
                        "2048 a clock, fp16 dense); err = max abs difference from torch's fp32 product of the same "
                        "values.")
    lines += ["| form | µs a product | multiply-adds a clock (an SM) | max abs err | note |", "|---|---:|---:|---:|---|"]
    for name in forms:
        label = FORMS[name][0]
        if f"{name}_us" not in r:
            lines.append(f"| {label} | - | - | - | {r.get(f'{name}_error', '')} |")
            continue
        note = "" if FORMS[name][2] == "prod_mma" else \
            f"descriptor strides {'swapped' if r[f'{name}_swap'] else 'as documented'}"
        rate = fma / (r[f"{name}_us"] * 1e3 * ghz)
        lines.append(f"| {label} | {r[f'{name}_us']:.3f} | {rate:.0f} | {r[f'{name}_err']:.1e} | {note} |")
    for name in forms:
        if f"{name}_layout_found" in r:
            lines += ["", f"Accumulator registers found ({name}): {r[f'{name}_layout_found']}"]
    write_report(args.out, lines)
    print(torch.cuda.get_device_name())
    return 0


if __name__ == "__main__":
    sys.exit(main())
