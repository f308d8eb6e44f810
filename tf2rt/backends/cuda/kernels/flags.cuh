// Counters between the CTAs of one launch that all run at once (decode_resident.cu). A
// producer stores its data, the block meets at a barrier, one thread fences and adds one to
// a counter; a consumer's one thread waits until the counter reaches a target with acquire
// loads, the block meets at a barrier, then every thread reads the data through L2 (ld.cg:
// the SM's L1 is not coherent and may hold the slot's previous contents).
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
__device__ __forceinline__ float ld_cg(const float* p) { return __ldcg(p); }
__device__ __forceinline__ long long ld_cg_i64(const long long* p) { return __ldcg(p); }
__device__ __forceinline__ unsigned long long clock_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ void spin_pause() {}
