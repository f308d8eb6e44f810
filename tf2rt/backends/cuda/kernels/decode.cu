// The dense head and the choice of the next token, one block per batch row (decode.py).
//
// logits[b, v] = y[b] . wT[v] + bias[v] for every vocabulary entry v, then the token
// (pick.cuh: greedy, or sampled with noise uniform[b, v], temperature and top-k).
// The token goes to picked[b] and, unless forced[b] >= 0 overrides it (a prompt being fed),
// to tok[b], the next step's input row.
//
// Compile-time: YTYPE (y's type: 0=f32 1=f16 2=bf16), DECODE_THREADS.

#include "types.cuh"
#include "pdl.cuh"
#include "pick.cuh"

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

    const int p = block_pick(z, V, uniform ? uniform + (size_t)b * V : nullptr, inv_temp, top_k, wbest, wind, &scount);
    if (t == 0) {
        picked[b] = p;
        tok[b] = (forced && forced[b] >= 0) ? forced[b] : p;
    }
}
