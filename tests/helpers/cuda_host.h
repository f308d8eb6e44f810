// Host emulation of the CUDA C++ the kernels use, so CPU tests can run a kernel's own code:
// a block's threads are OS threads (so __syncthreads and warp shuffles are real barriers),
// blocks run one after another (so a kernel's __shared__ arrays can be plain statics).
// cuda_host.py compiles a kernel file with this header in front and launches it.
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct EmuWarp {
    std::barrier<> bar{32};
    unsigned long long v[32];
};
struct EmuBlock {
    explicit EmuBlock(unsigned n) : bar(n), warps((n + 31) / 32) {}
    std::barrier<> bar;
    std::vector<EmuWarp> warps;
};
inline EmuBlock* emu_block = nullptr;
inline std::vector<unsigned char> emu_smem;  // dynamic shared memory of the running block

inline void __syncthreads() { emu_block->bar.arrive_and_wait(); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o, int = 32) {
    static_assert(sizeof(T) <= 8, "shuffle of a wider type");
    EmuWarp& w = emu_block->warps[threadIdx.x / 32];
    const int lane = threadIdx.x % 32;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    w.v[lane] = bits;
    w.bar.arrive_and_wait();
    bits = w.v[lane ^ o];
    w.bar.arrive_and_wait();
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

// Run `kernel` over a 1-D grid: blocks in order, each block's threads at once.
inline void emu_launch(unsigned grid, unsigned block, size_t smem, const std::function<void()>& kernel) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        EmuBlock eb(block);
        emu_block = &eb;
        emu_smem.assign(smem + 16, 0);
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([&, b, t] {
                blockIdx.x = b;
                threadIdx.x = t;
                kernel();
            });
        for (auto& th : threads) th.join();
        emu_block = nullptr;
    }
}
