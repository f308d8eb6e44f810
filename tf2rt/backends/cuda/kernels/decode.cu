// The dense head and the choice of the next token, one block per batch row (decode.py).
//
// logits[b, v] = y[b] . wT[v] + bias[v] for every vocabulary entry v, then the token:
//   greedy (uniform == null): the largest logit, the lowest index on ties (numpy's argmax);
//   sampled: the largest logit * inv_temp + Gumbel noise -log(-log(u[b, v])), which draws v
//   with probability softmax(logits * inv_temp) (the Gumbel-max identity);
//   top_k > 0: only entries whose logit is at least the k-th largest take part (ties at the
//   cut included, like a partition on the host).
// The token goes to picked[b] and, unless forced[b] >= 0 overrides it (a prompt being fed),
// to tok[b], the next step's input row.
//
// Compile-time: YTYPE (y's type: 0=f32 1=f16 2=bf16), DECODE_THREADS.

#include "types.cuh"
#include "pdl.cuh"

#if YTYPE == 0
typedef float y_t;
__device__ __forceinline__ float y_load(const y_t* p) { return *p; }
#elif YTYPE == 1
typedef u16 y_t;
__device__ __forceinline__ float y_load(const y_t* p) { return f16_to_f32(*p); }
#else
typedef u16 y_t;
__device__ __forceinline__ float y_load(const y_t* p) { return bf16_to_f32(*p); }
#endif

#define NWARPS (DECODE_THREADS / 32)
#define FULL_MASK 0xffffffffu

// Unsigned keys in the order of the floats they come from.
__device__ __forceinline__ u32 order_key(float f) {
    const u32 u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// (score, index) of the better of two: larger score, lower index on ties.
__device__ __forceinline__ void better(float& s, int& i, float os, int oi) {
    if (os > s || (os == s && oi < i)) {
        s = os;
        i = oi;
    }
}

extern "C" __global__ void __launch_bounds__(DECODE_THREADS)
head_pick(const y_t* __restrict__ y, long long y_bs, int hid, const float* __restrict__ wT,
          const float* __restrict__ bias, int V, const float* __restrict__ uniform, float inv_temp, int top_k,
          const long long* __restrict__ forced, long long* __restrict__ tok, long long* __restrict__ picked,
          float* __restrict__ logits) {
    extern __shared__ float sy[];  // [hid]
    __shared__ float wbest[NWARPS];
    __shared__ int wind[NWARPS];
    __shared__ int scount;
    const int b = blockIdx.x, t = threadIdx.x, lane = t & 31, warp = t >> 5;
    grid_dep_launch();  // the next step's first layer (a dependent launch) may fetch its weights now
    for (int k = t; k < hid; k += DECODE_THREADS) sy[k] = y_load(y + (size_t)b * y_bs + k);
    __syncthreads();
    float* z = logits + (size_t)b * V;
    for (int v = warp; v < V; v += NWARPS) {  // a warp per row of the head
        const float* w = wT + (size_t)v * hid;
        float acc = 0.0f;
        for (int k = lane; k < hid; k += 32) acc += w[k] * sy[k];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(FULL_MASK, acc, o);
        if (lane == 0) z[v] = acc + bias[v];
    }
    __syncthreads();  // z is visible to the whole block

    // top-k: the largest key `cut` with at least top_k logits at or above it, bit by bit.
    u32 cut = 0u;
    if (top_k > 0 && top_k < V) {
        for (int bit = 31; bit >= 0; --bit) {
            const u32 trial = cut | (1u << bit);
            if (t == 0) scount = 0;
            __syncthreads();
            int c = 0;
            for (int v = t; v < V; v += DECODE_THREADS) c += order_key(z[v]) >= trial;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(FULL_MASK, c, o);
            if (lane == 0 && c) atomicAdd(&scount, c);
            __syncthreads();
            if (scount >= top_k) cut = trial;
            __syncthreads();
        }
    }

    float best = -__int_as_float(0x7f800000);  // -inf
    int bi = 0x7fffffff;
    const float* u = uniform ? uniform + (size_t)b * V : nullptr;
    for (int v = t; v < V; v += DECODE_THREADS) {
        const float zv = z[v];
        if (order_key(zv) < cut) continue;
        const float s = u ? zv * inv_temp - logf(-logf(u[v])) : zv;
        better(best, bi, s, v);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float os = __shfl_xor_sync(FULL_MASK, best, o);
        const int oi = __shfl_xor_sync(FULL_MASK, bi, o);
        better(best, bi, os, oi);
    }
    if (lane == 0) {
        wbest[warp] = best;
        wind[warp] = bi;
    }
    __syncthreads();
    if (t == 0) {
        for (int w = 1; w < NWARPS; ++w) better(best, bi, wbest[w], wind[w]);
        const long long p = bi < V ? bi : 0;  // every score NaN: token 0
        picked[b] = p;
        tok[b] = (forced && forced[b] >= 0) ? forced[b] : p;
    }
}
