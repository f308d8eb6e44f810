// Host emulation of the CUDA C++ the kernels use, so CPU tests can run a kernel's own code:
// a block's threads are fibers that meet at real barriers (__syncthreads, warp shuffles),
// blocks run one after another (so a kernel's __shared__ arrays can be plain statics).
// cuda_host.py compiles a kernel file with this header in front and launches it.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
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

// A block's threads are fibers (ucontext) switched by one OS thread: a thread runs until it
// reaches a barrier (__syncthreads, or a warp shuffle's exchange) or returns; a barrier
// opens once every thread of the block (warp) that has not returned has reached it.
inline dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct EmuFiber {
    ucontext_t ctx;
    std::vector<char> stack;
    int wait = 0;  // 0 running, 1 at the block barrier, 2 at its warp's barrier
    bool done = false;
};
struct EmuSched {
    ucontext_t main;
    std::vector<EmuFiber> fibers;
    unsigned cur = 0;
    const std::function<void()>* kernel = nullptr;
    unsigned long long shfl[2][1024];  // per thread, double-buffered by the warp's phase
    unsigned phase[32] = {};
};
inline EmuSched emu;
inline std::vector<unsigned char> emu_smem;  // dynamic shared memory of the running block

inline void emu_yield(int wait) {
    EmuFiber& f = emu.fibers[emu.cur];
    f.wait = wait;
    swapcontext(&f.ctx, &emu.main);
}
inline void __syncthreads() { emu_yield(1); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o, int = 32) {
    static_assert(sizeof(T) <= 8, "shuffle of a wider type");
    const unsigned t = threadIdx.x, w = t / 32, buf = emu.phase[w] & 1;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    emu.shfl[buf][t] = bits;
    emu_yield(2);
    bits = emu.shfl[buf][(t & ~31u) | ((t & 31u) ^ (unsigned)o)];
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
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
template <typename T>
inline T atomicAdd(T* p, T v) {
    return std::atomic_ref<T>(*p).fetch_add(v);
}
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }

inline void emu_fiber_main() {
    (*emu.kernel)();
    emu.fibers[emu.cur].done = true;  // uc_link returns to the scheduler
}

// Run `kernel` over a 1-D grid, blocks in order (so a block's __shared__ statics are its own).
inline void emu_launch(unsigned grid, unsigned block, size_t smem, const std::function<void()>& kernel) {
    if (block > 1024) throw std::runtime_error("more than 1024 threads in a block");
    gridDim.x = grid;
    blockDim.x = block;
    emu.kernel = &kernel;
    emu.fibers.resize(block);
    emu_smem.assign(smem + 16, 0);
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx.x = b;
        for (unsigned t = 0; t < block; ++t) {
            EmuFiber& f = emu.fibers[t];
            f.stack.resize(256 * 1024);
            f.wait = 0;
            f.done = false;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = f.stack.data();
            f.ctx.uc_stack.ss_size = f.stack.size();
            f.ctx.uc_link = &emu.main;
            makecontext(&f.ctx, emu_fiber_main, 0);
        }
        std::fill(std::begin(emu.phase), std::end(emu.phase), 0u);
        for (;;) {
            bool ran = false;
            for (unsigned t = 0; t < block; ++t) {
                EmuFiber& f = emu.fibers[t];
                if (f.done || f.wait) continue;
                emu.cur = t;
                threadIdx.x = t;
                swapcontext(&emu.main, &f.ctx);
                ran = true;
            }
            // open the barriers every live thread has reached
            unsigned live = 0, at_block = 0;
            for (auto& f : emu.fibers) live += !f.done, at_block += !f.done && f.wait == 1;
            if (live == 0) break;
            bool opened = false;
            if (at_block == live) {
                for (auto& f : emu.fibers) f.wait = 0;
                opened = true;
            }
            for (unsigned w = 0; w * 32 < block; ++w) {
                unsigned wl = 0, ww = 0;
                for (unsigned t = w * 32; t < std::min(block, w * 32 + 32); ++t)
                    wl += !emu.fibers[t].done, ww += !emu.fibers[t].done && emu.fibers[t].wait == 2;
                if (wl && ww == wl) {
                    for (unsigned t = w * 32; t < std::min(block, w * 32 + 32); ++t) emu.fibers[t].wait = 0;
                    ++emu.phase[w];
                    opened = true;
                }
            }
            if (!ran && !opened) throw std::runtime_error("threads wait at different barriers (deadlock)");
        }
    }
}
