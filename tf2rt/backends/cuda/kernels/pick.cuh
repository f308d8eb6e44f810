// The choice of the next token from a row of logits, by one whole block (decode.cu's
// head_pick, decode_resident.cu's head):
//   greedy (u == null): the largest logit, the lowest index on ties (numpy's argmax);
//   sampled: the largest logit * inv_temp + Gumbel noise -log(-log(u[v])), which draws v
//   with probability softmax(logits * inv_temp) (the Gumbel-max identity);
//   top_k > 0: only entries whose logit is at least the k-th largest take part (ties at the
//   cut included, like a partition on the host).
// Scratch is passed in (shared memory of the caller), so the function keeps no statics.

#include "types.cuh"

#define PICK_FULL_MASK 0xffffffffu

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

// The token chosen from z[0..V) (shared or global memory every thread of the block can
// read), returned to every thread. wbest/wind: one slot per warp; scount: one int.
// Every thread of the block calls it (it holds __syncthreads).
__device__ __forceinline__ int block_pick(const float* z, int V, const float* u, float inv_temp, int top_k,
                                          float* wbest, int* wind, int* scount) {
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5, nthr = blockDim.x, nwarps = nthr >> 5;
    // top-k: the largest key `cut` with at least top_k logits at or above it, bit by bit.
    u32 cut = 0u;
    if (top_k > 0 && top_k < V) {
        for (int bit = 31; bit >= 0; --bit) {
            const u32 trial = cut | (1u << bit);
            if (t == 0) *scount = 0;
            __syncthreads();
            int c = 0;
            for (int v = t; v < V; v += nthr) c += order_key(z[v]) >= trial;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(PICK_FULL_MASK, c, o);
            if (lane == 0 && c) atomicAdd(scount, c);
            __syncthreads();
            if (*scount >= top_k) cut = trial;
            __syncthreads();
        }
    }
    float best = -__int_as_float(0x7f800000);  // -inf
    int bi = 0x7fffffff;
    for (int v = t; v < V; v += nthr) {
        const float zv = z[v];
        if (order_key(zv) < cut) continue;
        const float s = u ? zv * inv_temp - logf(-logf(u[v])) : zv;
        better(best, bi, s, v);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float os = __shfl_xor_sync(PICK_FULL_MASK, best, o);
        const int oi = __shfl_xor_sync(PICK_FULL_MASK, bi, o);
        better(best, bi, os, oi);
    }
    if (lane == 0) {
        wbest[warp] = best;
        wind[warp] = bi;
    }
    __syncthreads();
    if (t == 0) {
        for (int w = 1; w < nwarps; ++w) better(best, bi, wbest[w], wind[w]);
        *scount = bi < V ? bi : 0;  // every score NaN: token 0
    }
    __syncthreads();
    const int pick = *scount;
    __syncthreads();  // scratch free for the next call
    return pick;
}
