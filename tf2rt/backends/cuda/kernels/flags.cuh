// Hand-offs between the CTAs of one launch that all run at once (decode_resident.cu).
// Tagged words: a 64-bit word holds a 32-bit tag (whose step it is) and a 32-bit value, and
// is stored and loaded whole through L2 (relaxed, gpu scope), so a reader that sees the tag
// has the value: no fence, no counter, one L2 round trip per hand-off. Counters (a fence
// and an atomic add; acquire loads) serve the rare barriers.
// The host emulation of the kernels (tests) replaces this file with host equivalents.

#include "types.cuh"

__device__ __forceinline__ u32 flag_load(const u32* p) {
    u32 v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void flag_add(u32* p, u32 v) {
    __threadfence();
    atomicAdd(p, v);
}
// 64-bit counts (a grid-wide count that is never reset does not wrap): an acquire load, and
// a fenced add that returns the count before it.
__device__ __forceinline__ u64 count_load(const u64* p) {
    u64 v;
    asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ u64 count_add(u64* p, u64 v) {
    __threadfence();
    return atomicAdd(p, v);
}
__device__ __forceinline__ u64 word_load(const u64* p) {
    u64 v;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void word_store(u64* p, u64 v) {
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ unsigned long long clock_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ void spin_pause() {}
