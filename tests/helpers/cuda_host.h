// Host emulation of the CUDA C++ the kernels use, so CPU tests can run a kernel's own code:
// a block's threads are fibers that meet at real barriers (__syncthreads, warp shuffles),
// blocks run one after another (so a kernel's __shared__ arrays can be plain statics).
// cuda_host.py compiles a kernel file with this header in front and launches it.
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __cluster_dims__(...)

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
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// A block's threads are fibers (ucontext) switched by one OS thread: a thread runs until it
// reaches a barrier (__syncthreads, or a warp shuffle's exchange) or returns; a barrier
// opens once every thread of the block (warp) that has not returned has reached it.
// Sequential launches run the blocks one after another; concurrent launches (kernels whose
// blocks wait for each other) run every thread of the grid at once, and a thread that polls
// another block's progress yields in emu_spin().
inline dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

struct EmuFiber {
    ucontext_t ctx;
    std::vector<char> stack;
    unsigned block = 0, thread = 0;
    int wait = 0;  // 0 running, 1 at the block barrier, 2 at its warp's barrier, 3 spinning, 4 at the cluster barrier
    bool done = false;
    unsigned or_calls = 0;
};
struct EmuSched {
    ucontext_t main;
    std::vector<EmuFiber> fibers;
    unsigned cur = 0;
    bool concurrent = false;
    const std::function<void()>* kernel = nullptr;
    std::vector<unsigned long long> shfl[2];  // per fiber, double-buffered by the warp's phase
    std::vector<unsigned> phase;              // per warp of the fibers
    std::vector<int> block_or;                // __syncthreads_or: 3 slots a block, by call
    unsigned cluster = 1;                     // blocks a thread-block cluster (consecutive blocks)
};
inline EmuSched emu;
inline std::vector<std::vector<unsigned char>> emu_smem_blocks;  // dynamic shared memory
inline unsigned char* emu_block_smem() { return emu_smem_blocks[emu.concurrent ? blockIdx.x : 0].data(); }

inline void emu_yield(int wait) {
    EmuFiber& f = emu.fibers[emu.cur];
    f.wait = wait;
    swapcontext(&f.ctx, &emu.main);
}
inline void __syncthreads() { emu_yield(1); }
// Thread-block clusters of n consecutive blocks (a concurrent launch): the rank, a peer's copy
// of a shared-memory address, and the barrier of every thread of the cluster.
inline unsigned emu_cluster_rank(unsigned n) {
    emu.cluster = n;
    return blockIdx.x % n;
}
template <typename T>
inline T* emu_peer_smem(T* p, unsigned rank, unsigned n) {
    if (!emu.concurrent) throw std::runtime_error("a cluster's blocks need a concurrent launch");
    const unsigned char* mine = emu_smem_blocks[blockIdx.x].data();
    const auto off = reinterpret_cast<const unsigned char*>(p) - mine;
    return reinterpret_cast<T*>(emu_smem_blocks[blockIdx.x - blockIdx.x % n + rank].data() + off);
}
inline void emu_cluster_sync(unsigned n) {
    emu.cluster = n;
    emu_yield(4);
}
inline void emu_spin() { emu_yield(3); }
inline unsigned __cvta_generic_to_shared(const void* p) { return (unsigned)reinterpret_cast<uintptr_t>(p); }
// Call k of a block uses slot k % 3; entering it clears slot (k + 1) % 3, last read in call
// k - 2 (every thread has passed call k - 1's barrier) and next written in call k + 1.
inline int __syncthreads_or(int p) {
    EmuFiber& f = emu.fibers[emu.cur];
    int* acc = &emu.block_or[(emu.concurrent ? blockIdx.x : 0) * 3];
    const unsigned k = f.or_calls++ % 3;
    acc[(k + 1) % 3] = 0;
    if (p) acc[k] = 1;
    emu_yield(1);
    return acc[k];
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
// How long every thread of a launch may spin without any of them moving on.
constexpr unsigned long long EMU_SPIN_LIMIT_NS = 30ull * 1000 * 1000 * 1000;
inline unsigned long long emu_clock_ns() {
    return (unsigned long long)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A warp shuffle: every lane posts v, the warp meets, each lane reads lane `src`'s value
// (its own where src is past the warp).
template <typename T>
inline T emu_shfl(T v, unsigned src) {
    static_assert(sizeof(T) <= 8, "shuffle of a wider type");
    const unsigned me = emu.cur, w = me / 32, buf = emu.phase[w] & 1;
    unsigned long long bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    emu.shfl[buf][me] = bits;
    emu_yield(2);
    if (src < 32) bits = emu.shfl[buf][(me & ~31u) | src];
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int o, int = 32) {
    return emu_shfl(v, (emu.cur & 31u) ^ (unsigned)o);
}
template <typename T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int = 32) {
    return emu_shfl(v, (emu.cur & 31u) + delta);
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

template <typename T>
inline T atomicExch(T* p, T v) {
    return std::atomic_ref<T>(*p).exchange(v);
}

// Static __shared__ variables of a grid whose blocks run at once (host_source turns each
// declaration into a reference to its block's own slot).
inline std::vector<std::map<std::string, std::vector<unsigned char>>> emu_statics;
template <typename T>
inline T* emu_static(const char* name) {
    auto& slot = emu_statics[emu.concurrent ? blockIdx.x : 0][name];
    if (slot.empty()) slot.assign(sizeof(T) + 16, 0);
    return reinterpret_cast<T*>(slot.data());
}

// A peer block's copy of any shared object of this block (dynamic shared memory, or a
// static __shared__ variable): the same offset in the peer's buffer of the same name.
template <typename T>
inline T* emu_peer_shared(T* p, unsigned rank, unsigned n) {
    const unsigned peer = blockIdx.x - blockIdx.x % n + rank;
    auto* c = reinterpret_cast<unsigned char*>(const_cast<std::remove_const_t<T>*>(p));
    auto& mine = emu_smem_blocks[blockIdx.x];
    if (c >= mine.data() && c < mine.data() + mine.size()) return reinterpret_cast<T*>(emu_smem_blocks[peer].data() + (c - mine.data()));
    for (auto& [name, slot] : emu_statics[blockIdx.x])
        if (c >= slot.data() && c < slot.data() + slot.size()) {
            auto& other = emu_statics[peer][name];
            if (other.empty()) other.assign(slot.size(), 0);
            return reinterpret_cast<T*>(other.data() + (c - slot.data()));
        }
    throw std::runtime_error("emu_peer_shared: not a shared-memory address of this block");
}
// mbarrier with one expected arrival a phase and a transaction count (bulk copies): bits 0-31
// the pending bytes (signed: a copy may land before its bytes are announced), bit 32 whether
// the arrival came, bits 33-63 the completed phases.
inline void emu_mbar_update(void* bar, long long bytes, bool arrive) {
    auto* s = reinterpret_cast<unsigned long long*>(bar);
    int tx = (int)(unsigned)(*s & 0xffffffffull) + (int)bytes;
    bool arrived = ((*s >> 32) & 1ull) || arrive;
    unsigned long long phases = *s >> 33;
    if (arrived && tx == 0) ++phases, arrived = false;
    *s = (phases << 33) | ((unsigned long long)arrived << 32) | (unsigned)tx;
}
inline void emu_mbar_wait(const void* bar, unsigned parity) {
    while (((*reinterpret_cast<const volatile unsigned long long*>(bar) >> 33) & 1ull) == parity) emu_spin();
}
// A bulk copy into the same offsets of the n blocks of this block's cluster, each completing
// its bytes on that block's barrier.
inline void emu_bulk_copy(void* dst, const void* src, unsigned bytes, void* bar, unsigned n) {
    for (unsigned q = 0; q < n; ++q) {
        std::memcpy(emu_peer_shared(dst, q, n), src, bytes);
        emu_mbar_update(emu_peer_shared(bar, q, n), -(long long)bytes, false);
    }
}

// Tensor-core mma.sync (m16n8k16 f16/bf16, m16n8k8 tf32; fp32 accumulate) as the warp's
// lanes do it together: each lane posts its fragment registers, the warp meets, and each
// lane computes its four results from the whole A and B (fragment layouts of the PTX ISA).
enum EmuMmaKind { EMU_MMA_F16 = 0, EMU_MMA_BF16 = 1, EMU_MMA_TF32 = 2 };
inline std::vector<std::array<unsigned, 6>> emu_mma_regs[2];  // per fiber, by the warp's phase
inline float emu_half(unsigned bits, int kind) {
    if (kind == EMU_MMA_BF16) return __uint_as_float((bits & 0xffffu) << 16);
    _Float16 h;
    const unsigned short b = (unsigned short)(bits & 0xffffu);
    std::memcpy(&h, &b, 2);
    return (float)h;
}
inline void emu_mma(int kind, float& c0, float& c1, float& c2, float& c3, unsigned a0, unsigned a1, unsigned a2,
                    unsigned a3, unsigned b0, unsigned b1) {
    const unsigned me = emu.cur, w = me / 32, buf = emu.phase[w] & 1;
    if (emu_mma_regs[buf].size() < emu.fibers.size()) {
        emu_mma_regs[0].resize(emu.fibers.size());
        emu_mma_regs[1].resize(emu.fibers.size());
    }
    emu_mma_regs[buf][me] = {a0, a1, a2, a3, b0, b1};
    emu_yield(2);
    const int K = kind == EMU_MMA_TF32 ? 8 : 16;
    float A[16][16] = {}, B[16][8] = {};
    for (unsigned lane = 0; lane < 32; ++lane) {
        const auto& r = emu_mma_regs[buf][(me & ~31u) | lane];
        const int g = (int)lane >> 2, t = (int)lane & 3;
        if (kind == EMU_MMA_TF32) {  // a0 (g, t) a1 (g+8, t) a2 (g, t+4) a3 (g+8, t+4); b0 (t, g) b1 (t+4, g)
            auto tf = [](unsigned x) { return __uint_as_float(x & 0xffffe000u); };
            A[g][t] = tf(r[0]), A[g + 8][t] = tf(r[1]), A[g][t + 4] = tf(r[2]), A[g + 8][t + 4] = tf(r[3]);
            B[t][g] = tf(r[4]), B[t + 4][g] = tf(r[5]);
            continue;
        }
        for (int i = 0; i < 8; ++i) {  // element i: register i/2, half i%2
            const float v = emu_half(r[i / 2] >> (16 * (i % 2)), kind);
            A[g + 8 * ((i >> 1) & 1)][2 * t + (i & 1) + 8 * (i >= 4)] = v;
        }
        for (int i = 0; i < 4; ++i) {
            const float v = emu_half(r[4 + i / 2] >> (16 * (i % 2)), kind);
            B[2 * t + (i & 1) + 8 * (i >= 2)][g] = v;
        }
    }
    const int g = (int)(me & 31u) >> 2, t = (int)(me & 31u) & 3;
    float* out[4] = {&c0, &c1, &c2, &c3};
    for (int q = 0; q < 4; ++q) {  // c0 (g, 2t) c1 (g, 2t+1) c2 (g+8, 2t) c3 (g+8, 2t+1)
        const int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
        float acc = *out[q];
        for (int k = 0; k < K; ++k) acc += A[row][k] * B[k][col];
        *out[q] = acc;
    }
}
// A shared-memory address as the kernels hold it (the low 32 bits of __cvta_generic_to_shared,
// or a wgmma descriptor's 18) back to a pointer into the running block's shared memory.
inline unsigned char* emu_smem_at(unsigned long long addr, unsigned long long mask) {
    unsigned char* base = emu_block_smem();
    const unsigned long long off = (addr - (reinterpret_cast<uintptr_t>(base) & mask)) & mask;
    return base + off;
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: lane 8q + r names row r of matrix q; lane l gets
// from each matrix q the two 16-bit values of row l/4 at columns 2(l%4), 2(l%4)+1.
inline void emu_ldmatrix_x4(unsigned& r0, unsigned& r1, unsigned& r2, unsigned& r3, unsigned addr) {
    const unsigned me = emu.cur, w = me / 32, buf = emu.phase[w] & 1;
    emu.shfl[buf][me] = addr;
    emu_yield(2);
    unsigned* out[4] = {&r0, &r1, &r2, &r3};
    const unsigned l = me & 31u;
    for (unsigned q = 0; q < 4; ++q) {
        const unsigned row = (unsigned)emu.shfl[buf][(me & ~31u) | (8 * q + l / 4)];
        std::memcpy(out[q], emu_smem_at(row, 0xffffffffull) + 4 * (l % 4), 4);
    }
}

// Hopper's warpgroup MMA, fp16 in, fp32 sums (wgmma.mma_async m64nNk16 .f32.f16.f16), done at
// once (its fence, commit and wait are then no-ops). Operands by descriptor: K-major, no
// swizzle, 8-row x 16-byte core matrices, the leading byte offset between core matrices along
// K and the stride byte offset between them along the rows (the layout an H100 ran,
// benchmarks/cuda_wgmma_probe.py). Accumulators: register 4j + 2i + e of warp w, lane l is
// (row 16w + l/4 + 8i, column 8j + 2(l%4) + e). acc = 0: d = A B, else d += A B.
inline float emu_wgmma_operand(unsigned long long desc, int row, int k) {
    if (desc >> 62) throw std::runtime_error("wgmma emulation: swizzled layouts are not emulated");
    const unsigned char* start = emu_smem_at((desc & 0x3fffull) << 4, 0x3ffffull);
    const unsigned long long lbo = ((desc >> 16) & 0x3fffull) << 4, sbo = ((desc >> 32) & 0x3fffull) << 4;
    unsigned short bits;
    std::memcpy(&bits, start + (row / 8) * sbo + (k / 8) * lbo + (row % 8) * 16 + (k % 8) * 2, 2);
    return emu_half(bits, EMU_MMA_F16);
}
template <typename A>
inline void emu_wgmma(int n, float* d, const A& a_at, unsigned long long db, int acc) {
    const unsigned t = threadIdx.x % 128, w = t / 32, l = t % 32;
    for (int j = 0; j < n / 8; ++j)
        for (int i = 0; i < 2; ++i)
            for (int e = 0; e < 2; ++e) {
                const int m = 16 * w + l / 4 + 8 * i, col = 8 * j + 2 * (l % 4) + e;
                float sum = acc ? d[4 * j + 2 * i + e] : 0.0f;
                for (int k = 0; k < 16; ++k) sum += a_at(m, k) * emu_wgmma_operand(db, col, k);
                d[4 * j + 2 * i + e] = sum;
            }
}
inline void emu_wgmma_ss(int n, float* d, unsigned long long da, unsigned long long db, int acc) {
    emu_wgmma(n, d, [&](int m, int k) { return emu_wgmma_operand(da, m, k); }, db, acc);
}
// A from registers (each warp's 16 rows in mma.sync's A fragment layout): the warpgroup's
// registers meet at the block's barrier, so the block must be that one warpgroup.
inline std::vector<std::array<unsigned, 4>> emu_wgmma_regs;
inline void emu_wgmma_rs(int n, float* d, const unsigned* a, unsigned long long db, int acc) {
    if (blockDim.x != 128) throw std::runtime_error("wgmma emulation: A from registers needs a block of one warpgroup");
    emu_wgmma_regs.resize(128);
    emu_wgmma_regs[threadIdx.x] = {a[0], a[1], a[2], a[3]};
    __syncthreads();
    float A[64][16];
    for (unsigned lane = 0; lane < 128; ++lane) {
        const auto& r = emu_wgmma_regs[lane];
        const int g = (int)(lane % 32) >> 2, tt = (int)lane & 3, row0 = 16 * (int)(lane / 32);
        for (int i = 0; i < 8; ++i)  // element i: register i/2, half i%2
            A[row0 + g + 8 * ((i >> 1) & 1)][2 * tt + (i & 1) + 8 * (i >= 4)] = emu_half(r[i / 2] >> (16 * (i % 2)), EMU_MMA_F16);
    }
    __syncthreads();  // every thread has read the registers before any posts its next ones
    emu_wgmma(n, d, [&](int m, int k) { return A[m][k]; }, db, acc);
}
inline float __expf(float x) { return std::exp(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float __fdividef(float a, float b) { return a / b; }

inline void emu_fiber_main() {
    (*emu.kernel)();
    emu.fibers[emu.cur].done = true;  // uc_link returns to the scheduler
}

// Run fibers [first, first + n) (whole blocks of `block` threads) until all have returned.
// EMU_SLOW_LAST=1 (a build's define): in a concurrent launch of more than one block, the last
// block's threads run only in rounds after one in which no other thread moved on (all wait
// for something): a block that lags far behind the rest, as a block started late on a busy
// GPU does. A kernel whose blocks read what another block writes without waiting for it
// reads it too early here, where the lockstep rounds would hide that.
#ifndef EMU_SLOW_LAST
#define EMU_SLOW_LAST 0
#endif
inline void emu_run(unsigned first, unsigned n, unsigned block) {
    for (unsigned i = first; i < first + n; ++i) {
        EmuFiber& f = emu.fibers[i];
        f.stack.resize(emu.concurrent ? 64 * 1024 : 256 * 1024);
        f.wait = 0;
        f.done = false;
        f.or_calls = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack.data();
        f.ctx.uc_stack.ss_size = f.stack.size();
        f.ctx.uc_link = &emu.main;
        makecontext(&f.ctx, emu_fiber_main, 0);
    }
    std::fill(emu.phase.begin(), emu.phase.end(), 0u);
    std::fill(emu.block_or.begin(), emu.block_or.end(), 0);
    const unsigned warps_a_block = (block + 31) / 32;
    unsigned long long idle = 0, idle_since = 0;
    const unsigned slow = EMU_SLOW_LAST && emu.concurrent && gridDim.x > 1 ? gridDim.x - 1 : ~0u;
    bool others_stuck = false;  // the last round: no thread moved on
    for (;;) {
        bool ran = false, progress = false, held = false;
        for (unsigned i = first; i < first + n; ++i) {
            EmuFiber& f = emu.fibers[i];
            if (f.done || (f.wait && f.wait != 3)) continue;
            if (f.block == slow && !others_stuck) {
                held = true;
                continue;
            }
            const bool spun = f.wait == 3;
            f.wait = 0;
            emu.cur = i;
            blockIdx.x = f.block;
            threadIdx.x = f.thread;
            swapcontext(&emu.main, &f.ctx);
            ran = true;
            progress |= !spun || f.wait != 3;
        }
        // open the barriers every live thread of a block (warp) has reached
        unsigned live_all = 0;
        bool opened = false;
        for (unsigned b0 = first; b0 < first + n; b0 += block) {
            unsigned live = 0, at_block = 0;
            for (unsigned i = b0; i < b0 + block; ++i)
                live += !emu.fibers[i].done, at_block += !emu.fibers[i].done && emu.fibers[i].wait == 1;
            live_all += live;
            if (live && at_block == live) {
                for (unsigned i = b0; i < b0 + block; ++i) emu.fibers[i].wait = 0;
                opened = true;
            }
            for (unsigned w = 0; w < warps_a_block; ++w) {
                const unsigned lo = b0 + w * 32, hi = std::min(b0 + block, lo + 32);
                unsigned wl = 0, ww = 0;
                for (unsigned i = lo; i < hi; ++i)
                    wl += !emu.fibers[i].done, ww += !emu.fibers[i].done && emu.fibers[i].wait == 2;
                if (wl && ww == wl) {
                    for (unsigned i = lo; i < hi; ++i) emu.fibers[i].wait = 0;
                    ++emu.phase[lo / 32];
                    opened = true;
                }
            }
        }
        if (emu.cluster > 1) {  // open the cluster barriers every live thread of a cluster has reached
            const unsigned span = emu.cluster * block;
            for (unsigned c0 = first; c0 < first + n; c0 += span) {
                unsigned live = 0, at = 0;
                for (unsigned i = c0; i < std::min(c0 + span, first + n); ++i)
                    live += !emu.fibers[i].done, at += !emu.fibers[i].done && emu.fibers[i].wait == 4;
                if (live && at == live) {
                    for (unsigned i = c0; i < std::min(c0 + span, first + n); ++i) emu.fibers[i].wait = 0;
                    opened = true;
                }
            }
        }
        if (live_all == 0) break;
        others_stuck = !(progress || opened);
        if (held && others_stuck) continue;  // the held block runs next round
        if (!ran && !opened) throw std::runtime_error("threads wait at different barriers (deadlock)");
        idle = (progress || opened) ? 0 : idle + 1;
        // Rounds in which every thread only spins: a deadlock once there are very many of
        // them, or once they have lasted EMU_SPIN_LIMIT_NS (a big grid makes few rounds a
        // second; waits on the clock move on within milliseconds).
        if (idle == 1) idle_since = emu_clock_ns();
        if (idle > 2000000 || (idle && emu_clock_ns() - idle_since > EMU_SPIN_LIMIT_NS))
            throw std::runtime_error("every thread spins and none moves on (deadlock)");
    }
}

// Run `kernel` over a 1-D grid: blocks in order (a block's __shared__ statics are its own),
// or with `concurrent` every block at once (no static __shared__; see host_source).
inline void emu_launch(unsigned grid, unsigned block, size_t smem, bool concurrent,
                       const std::function<void()>& kernel) {
    if (block > 1024) throw std::runtime_error("more than 1024 threads in a block");
    gridDim.x = grid;
    blockDim.x = block;
    emu.kernel = &kernel;
    emu.concurrent = concurrent;
    emu.cluster = 1;
    const unsigned nf = concurrent ? grid * block : block;
    emu.fibers.resize(nf);
    for (unsigned i = 0; i < nf; ++i) emu.fibers[i].thread = i % block;
    emu.shfl[0].assign(nf, 0);
    emu.shfl[1].assign(nf, 0);
    emu.phase.assign((nf + 31) / 32 + 1, 0);
    emu.block_or.assign(3 * (concurrent ? grid : 1), 0);
    emu_smem_blocks.assign(concurrent ? grid : 1, std::vector<unsigned char>(smem + 16, 0));
    emu_statics.assign(concurrent ? grid : 1, {});
    if (concurrent) {
        for (unsigned i = 0; i < nf; ++i) emu.fibers[i].block = i / block;
        emu_run(0, nf, block);
        return;
    }
    for (unsigned b = 0; b < grid; ++b) {
        for (auto& f : emu.fibers) f.block = b;
        emu_run(0, block, block);
    }
}
