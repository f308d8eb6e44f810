// Single-step recurrent stack (T = 1): no state carries over to a next step, so there is
// nothing to keep on chip. Each layer is one GEMM over [x | h0] (single_step.py builds the
// weights so that one GEMM gives every gate's pre-activation) and one elementwise kernel
// here that turns the GEMM's output into the new state. A first kernel here stages every
// GEMM's left operand ("A"); each layer's gate kernel writes the next layer's x part.
//
// Compile-time configuration (single_step.py, -D):
//   CELL, IOTYPE and the gate block indices as in rnn_cell.cuh; BATCH, HID, DIRS, LAYERS,
//   IN0 (the first layer's input size); K0, K1: row lengths of the first layer's and of the
//   deeper layers' A (multiples of 8); GW: gate blocks per direction in the GEMM output
//   (LSTM 4, GRU 4: z, r, the input part of h~ and, in block 3, its recurrent part; RNN 1);
//   NCOL: output columns of one part (DIRS * GW * HID, rounded up to 8).
//   SPLIT=1: fp32 operands as bf16 hi + lo parts. A has 2*BATCH rows (hi rows, then lo
//   rows), the weights are [W_hi | W_lo], so the GEMM's [2*BATCH, 2*NCOL] output holds
//   x_hi.W_hi, x_hi.W_lo, x_lo.W_hi and x_lo.W_lo; the gate kernel adds the first three
//   (lo*lo is below fp32 rounding), an fp32-accurate product from bf16 tensor-core passes
//   that reads each weight's 4 bytes once. SPLIT=0: A in the stack's own type.
//   PEEP: LSTM peepholes. GEMV=1: also build step_gemv (one launch a layer, batch <= 4).
//   XTYPE: x's type, OTYPE: the type y, hn and cn are written in (0=f32 1=f16 2=bf16; both
//   default to IOTYPE). Outputs are rounded to IOTYPE first, so an fp16 stack writing fp32
//   outputs gives the values it would give in fp16, without a cast kernel after it. The
//   outputs' batch and group strides are arguments: the stack writes the layout the
//   engine's next op wants (e.g. batch-major) instead of [DIRS, BATCH, HID].

#define FAST_GATES 0
#include "rnn_cell.cuh"
#include "pdl.cuh"
#include "flags.cuh"

#if SPLIT
typedef u16 op_t;  // bf16
#define A_ROWS (2 * BATCH)
#define P_COLS (2 * NCOL)
#else
typedef io_t op_t;
#define A_ROWS BATCH
#define P_COLS NCOL
#endif

// v at row b, column `col` of an A operand with rows of `k` values.
__device__ __forceinline__ void put_operand(op_t* a, int k, int b, int col, float v) {
#if SPLIT
    const u16 hi = f32_to_bf16(v);
    a[(size_t)b * k + col] = hi;
    a[(size_t)(BATCH + b) * k + col] = f32_to_bf16(v - bf16_to_f32(hi));
#else
    io_store(a + (size_t)b * k + col, v);
#endif
}

// Pre-activation of output column n for batch row b (bias included).
__device__ __forceinline__ float pre(const float* p, const float* bias, int b, int n) {
#if SPLIT
    const float* row = p + (size_t)b * P_COLS;
    const float* lo = p + (size_t)(BATCH + b) * P_COLS;
    return (row[NCOL + n] + lo[n]) + row[n] + bias[n];
#else
    return p[(size_t)b * P_COLS + n] + bias[n];
#endif
}

// A0 <- [x | h0 of layer 0], and the h0 part of every deeper layer's A (A1: LAYERS-1
// operands of A_ROWS x K1 each, the x part written later by the layer below's gate
// kernel). h0 [LAYERS*DIRS, BATCH, HID] or null (zeros).
extern "C" __global__ void stage_operands(const x_t* __restrict__ x, const io_t* __restrict__ h0,
                                          op_t* __restrict__ a0, op_t* __restrict__ a1) {
    const int nx = BATCH * IN0;
    const int nh = LAYERS * DIRS * BATCH * HID;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < nx + nh; i += gridDim.x * blockDim.x) {
        if (i < nx) {
            const int b = i / IN0, col = i % IN0;
            put_operand(a0, K0, b, col, x_load(x + i));
            continue;
        }
        const int r = i - nx;  // (layer, direction, b, j) in h0's layout
        const int j = r % HID, b = (r / HID) % BATCH, g = r / (HID * BATCH);
        const int layer = g / DIRS, d = g % DIRS;
        const float v = h0 ? io_load(h0 + r) : 0.0f;
        if (layer == 0)
            put_operand(a0, K0, b, IN0 + d * HID + j, v);
        else
            put_operand(a1 + (size_t)(layer - 1) * A_ROWS * K1, K1, b, DIRS * HID + d * HID + j, v);
    }
}

// One layer's new state from its GEMM output p [A_ROWS, P_COLS]. h0/c0/peep/seq/y/cn/a_next
// may be null. Writes hn/cn (this layer's slice: direction d, batch row b at d * s_gs +
// b * s_bs), y (the last layer: d * y_ds + b * y_bs) and the next layer's x part of A
// (a_next, rows of K1).
extern "C" __global__ void step_gates(const float* __restrict__ p, const float* __restrict__ bias,
                                      const float* __restrict__ peep, const io_t* __restrict__ h0,
                                      const io_t* __restrict__ c0, const int* __restrict__ seq,
                                      o_t* __restrict__ y, o_t* __restrict__ hn, o_t* __restrict__ cn,
                                      op_t* __restrict__ a_next, float clip, long long y_ds, long long y_bs,
                                      long long s_gs, long long s_bs) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= DIRS * BATCH * HID) return;
    const int j = i % HID, b = (i / HID) % BATCH, d = i / (HID * BATCH);
    const int base = d * GW * HID + j;
    float xv[4] = {0.0f, 0.0f, 0.0f, 0.0f}, rv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#if CELL == 0
    for (int g = 0; g < 4; ++g) xv[g] = pre(p, bias, b, base + g * HID);
#elif CELL == 1
    for (int g = 0; g < 3; ++g) xv[g] = pre(p, bias, b, base + g * HID);
    rv[GH] = pre(p, bias, b, base + 3 * HID);  // R_h h0 + Rb_h, scaled by r in cell_update
#else
    xv[0] = pre(p, bias, b, base);
#endif
    const float h = h0 ? io_load(h0 + i) : 0.0f;
    float c = c0 ? io_load(c0 + i) : 0.0f;
    float pi = 0.0f, po = 0.0f, pf = 0.0f;
#if PEEP
    if (peep) {
        pi = peep[d * 3 * HID + j];
        po = peep[d * 3 * HID + HID + j];
        pf = peep[d * 3 * HID + 2 * HID + j];
    }
#endif
    const bool active = seq == nullptr || seq[b] > 0;
    const float hnew = cell_update(xv, rv, h, c, active, pi, po, pf, clip);
    const size_t so = (size_t)d * s_gs + (size_t)b * s_bs + j;
    o_store(hn + so, hnew);
#if CELL == 0
    if (cn) o_store(cn + so, c);
#endif
    const float out = active ? hnew : 0.0f;  // padded rows' output is zero
    if (y) o_store(y + (size_t)d * y_ds + (size_t)b * y_bs + j, out);
    if (a_next) put_operand(a_next, K1, b, d * HID + j, out);
}

// ---- small batches: one launch a layer (GEMV form) --------------------------------------
// At batch <= 4 a GEMM of a few rows reads every weight once but launches a GEMM, a gate
// kernel and a staging kernel per stack. Here one kernel a layer does both: one warp per
// gate row of the transposed stacked weight wT [rows, krow] (rows = DIRS * GW * HID in the
// GEMM's column order, krow = the layer's K), 16-byte weight loads along K, the operand
// [x | h0] (every batch row) staged in shared memory, the row sums reduced by shuffles,
// then one thread per (unit, batch row) applies the cell. x: the first layer's input
// [BATCH, kin] in XTYPE (else null), or with xrow (int64 [BATCH]) rows xrow[b] of a table
// x [rows, kin] (an embedding lookup fused into the first layer; the caller checks the
// indices' range); hin: a deeper layer's input, the layer below's output [BATCH, kin]
// (fp32, written by its launch as hout).
// Built only where the layer runs this way (GEMV=1, batch <= 4): its per-thread arrays and
// unrolled loops are BATCH long, which a large batch could not compile.
#if GEMV
#define GV_UNITS (GW == 1 ? 8 : 2)
#define GV_ROWS (GV_UNITS * GW)
// Weight loads (16 bytes of fp32, 8 of fp16/bf16 per lane) each warp issues before it waits
// for its inputs: they do not depend on the layer below, so their latency overlaps the
// wait, the operand's staging and, launched as a programmatic dependent, the layer below.
// GV_PF of them per lane (single_step.py: the whole row where it takes at most 8 fp32 or 16
// fp16/bf16 loads, about 60 registers a thread, no spills).
#ifndef GV_PF
#define GV_PF (IOTYPE == 0 ? 8 : 16)
#endif
#if IOTYPE == 0
typedef float4 wraw_t;
#else
typedef uint2 wraw_t;
#endif

__device__ __forceinline__ void unpack4w(wraw_t v, float* w) {
#if IOTYPE == 0
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
#else
    const u16 e[4] = {(u16)(v.x & 0xffffu), (u16)(v.x >> 16), (u16)(v.y & 0xffffu), (u16)(v.y >> 16)};
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = io_load(&e[i]);
#endif
}

// acc[b] += w . a (4 values) for every batch row of the staged operand at column k.
__device__ __forceinline__ void dot4(float* acc, const float* sa, int krow, int k, const float* w) {
#pragma unroll
    for (int b = 0; b < BATCH; ++b) {
        const float4 a = *reinterpret_cast<const float4*>(sa + (size_t)b * krow + k);
        acc[b] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w;
    }
}

// Inputs [x | h0] are staged a contiguous run at a time, two loads in flight a thread before
// their stores (stage_run); four blocks an SM kept by the launch bounds. (Staging one
// element at a time behind per-element branches was 1-10 us slower a one-step call on an
// H100 in 16 of 16 shapes, benchmarks/results/cuda_step_runs_h100.md.)
struct XLoad { __device__ __forceinline__ float operator()(const x_t* p) const { return x_load(p); } };
struct IoLoad { __device__ __forceinline__ float operator()(const io_t* p) const { return io_load(p); } };
struct FLoad { __device__ __forceinline__ float operator()(const float* p) const { return *p; } };

// dst[k] = load(src + k) for this thread's k < n (k = threadIdx.x + i * blockDim.x).
template <typename T, typename Load>
__device__ __forceinline__ void stage_run(float* dst, const T* src, int n, Load load) {
    const int s = blockDim.x;
    int k = threadIdx.x;
    for (; k + s < n; k += 2 * s) {
        const float v0 = load(src + k), v1 = load(src + k + s);
        dst[k] = v0;
        dst[k + s] = v1;
    }
    if (k < n) dst[k] = load(src + k);
}
#define GV_BOUNDS __launch_bounds__(GV_ROWS * 32, 4)

// L2 prefetches of a one-launch layer (GV_L2PF, a bit mask; 0 = none):
//   1: the NEXT layer's rows that the same block of the next launch will read (wnext, knext:
//      its transposed weight and row length; the units, and so the rows, are the same),
//      issued once the warp's own loads are, so the device memory stream does not stop at
//      the layer boundary: while this layer's tail, exit and the next launch's start run,
//      the next layer's weights are arriving.
//   2: this row's weights beyond the GV_PF loads held in registers, so they are in flight
//      while the warp waits for the layer below instead of after.
//   4: this layer's own weight loads are streaming (evict first in L2), leaving L2 to the
//      lines prefetched for the next layer.
//   8: (the host's choice of wnext, with 1) the last layer prefetches the first layer's rows,
//      which the next call reads first.
// Prefetches change no value: a build with any mask computes exactly what GV_L2PF=0 does.
#ifndef GV_ALT
#define GV_ALT 0
#endif
#if GV_ALT && (GV_L2PF & 2)
#error "GV_ALT: the held loads move, so the prefetch of the rest of the own row (GV_L2PF bit 2) does not apply"
#endif
#ifndef GV_L2PF
#define GV_L2PF 0
#endif

// The 128-byte lines [p, p + bytes) into L2, spread over the warp's lanes.
__device__ __forceinline__ void l2_prefetch_lines(const void* p, int bytes, int lane) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const char* c = static_cast<const char*>(p);
    for (int o = lane * 128; o < bytes; o += 32 * 128)
        asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(c + o));
#endif
}

// Weights are read-only for the whole launch: the non-coherent path (step_gemv_layers reads
// them through table pointers the compiler cannot prove read-only on its own).
__device__ __forceinline__ wraw_t load_w(const io_t* p) {
#if (GV_L2PF & 4) && defined(__CUDA_ARCH__)
    return __ldcs(reinterpret_cast<const wraw_t*>(p));
#elif defined(__CUDA_ARCH__)
    return __ldg(reinterpret_cast<const wraw_t*>(p));
#else
    return *reinterpret_cast<const wraw_t*>(p);
#endif
}

// A gate row's columns as one virtual range: [0, n0) at columns [0, n0), then [n0, n0 + n1)
// at columns [s1, s1 + n1); 4-aligned, read 4 values a lane at a time.
struct VRange {
    int n0, s1, n1;
    __device__ __forceinline__ int n() const { return n0 + n1; }
    __device__ __forceinline__ int col(int kv) const { return kv < n0 ? kv : s1 + kv - n0; }
};

// Gate row of unit u (d * HID + j; none past DIRS * HID), gate block g, in a layer whose
// input is kin long: its row of wT, and its non-zero columns as 4-aligned runs: the input
// [0, a_end) and this direction's h0 columns [b_beg, b_end) (the other direction's are
// zero; a GRU's input part of h~ has no h0 columns, its recurrent part no input columns).
// Without an initial state (state false: h0 is zeros) the h0 columns are left out: a call
// from a zero state reads only the input's weights (half an input = hidden layer's bytes).
struct GvRow {
    int row, a_end, b_beg, b_end;
    // Both runs as one range (joined where they touch or overlap).
    __device__ __forceinline__ VRange all() const {
        if (a_end >= b_beg) return VRange{b_end > a_end ? b_end : a_end, 0, 0};
        return VRange{a_end, b_beg, b_end - b_beg};
    }
    // The columns that are not the input's (h0 and padding): readable before the layer below is.
    __device__ __forceinline__ VRange own() const {
        const int e0 = b_beg > a_end ? b_beg : a_end;
        return VRange{0, e0, b_end > e0 ? b_end - e0 : 0};
    }
    // The input's columns (with any h0 columns that share their last 4-aligned run).
    __device__ __forceinline__ VRange input() const { return VRange{a_end, 0, 0}; }
};

__device__ __forceinline__ GvRow gv_row(int u, int g, int kin, bool state) {
    GvRow r{0, 0, 0, 0};
    if (u < DIRS * HID) {
        const int d = u / HID, j = u - d * HID;
        r.row = d * GW * HID + g * HID + j;
        r.a_end = (kin + 3) & ~3;
        r.b_beg = (kin + d * HID) & ~3;
        r.b_end = (kin + (d + 1) * HID + 3) & ~3;
#if CELL == 1
        if (g == 2) r.b_beg = r.b_end = r.a_end;
        if (g == 3) r.a_end = 0;
#endif
        if (!state) r.b_beg = r.b_end = r.a_end;
    }
    return r;
}

// wp[i] <- the lane's i-th 4 weights of range r of row wr (those inside it).
template <int PF>
__device__ __forceinline__ void vr_preload(wraw_t (&wp)[PF], const io_t* wr, VRange r, int lane) {
#pragma unroll
    for (int i = 0; i < PF; ++i) {
        const int kv = lane * 4 + i * 128;
        if (kv < r.n()) wp[i] = load_w(wr + r.col(kv));
    }
}

// acc[b] += the lane's share of row wr . the staged operand over range r: the PF preloaded
// chunks wp first, then the rest of the range loaded here.
template <int PF>
__device__ __forceinline__ void vr_dot(float* acc, const float* sa, int krow, const io_t* wr, VRange r,
                                       const wraw_t* wp, int lane) {
    const int n = r.n();
#pragma unroll
    for (int i = 0; i < PF; ++i) {
        const int kv = lane * 4 + i * 128;
        if (kv < n) {
            float w[4];
            unpack4w(wp[i], w);
            dot4(acc, sa, krow, r.col(kv), w);
        }
    }
#pragma unroll 4
    for (int kv = lane * 4 + PF * 128; kv < n; kv += 128) {
        const int k = r.col(kv);
        float w[4];
        unpack4w(load_w(wr + k), w);
        dot4(acc, sa, krow, k, w);
    }
}

#if GV_ALT
// GV_ALT=1: a call reads each row's held loads from the row's tail every other call (chunk
// p0 = the row's chunk count - PF on odd calls, 0 on even ones), so it starts with the lines
// the call before read last, which L2 may still hold; the sums run in ascending chunks either
// way, so every call gives exactly what GV_ALT=0 gives.
template <int PF>
__device__ __forceinline__ void vr_preload_at(wraw_t (&wp)[PF], const io_t* wr, VRange r, int lane, int p0) {
#pragma unroll
    for (int i = 0; i < PF; ++i) {
        const int kv = lane * 4 + (p0 + i) * 128;
        if (kv < r.n()) wp[i] = load_w(wr + r.col(kv));
    }
}

// vr_dot with the held chunks at p0: the chunks before them loaded here, then the held ones,
// then the rest (for p0 = 0 vr_dot's order).
template <int PF>
__device__ __forceinline__ void vr_dot_at(float* acc, const float* sa, int krow, const io_t* wr, VRange r,
                                          const wraw_t* wp, int lane, int p0) {
    const int n = r.n(), head = min(n, p0 * 128);
#pragma unroll 4
    for (int kv = lane * 4; kv < head; kv += 128) {
        const int k = r.col(kv);
        float w[4];
        unpack4w(load_w(wr + k), w);
        dot4(acc, sa, krow, k, w);
    }
#pragma unroll
    for (int i = 0; i < PF; ++i) {
        const int kv = lane * 4 + (p0 + i) * 128;
        if (kv < n) {
            float w[4];
            unpack4w(wp[i], w);
            dot4(acc, sa, krow, r.col(kv), w);
        }
    }
#pragma unroll 4
    for (int kv = lane * 4 + (p0 + PF) * 128; kv < n; kv += 128) {
        const int k = r.col(kv);
        float w[4];
        unpack4w(load_w(wr + k), w);
        dot4(acc, sa, krow, k, w);
    }
}
#endif

// A deeper layer's input (the layer below's output, fp32 [BATCH, kin]) as stored in this launch
// by other blocks (step_gemv_layers): read through L2, never from a stale L1 line.
struct CoherentLoad {
    __device__ __forceinline__ float operator()(const float* p) const {
#ifdef __CUDA_ARCH__
        return __ldcg(p);
#else
        return *p;
#endif
    }
};

// Operand columns [0, kin) of every batch row: x's row b (or a table's row xrow[b]; the
// caller keeps them in range), else the layer below's output hin.
template <typename HinLoad>
__device__ __forceinline__ void stage_input(float* sa, int krow, int kin, const x_t* x, const long long* xrow,
                                            const float* hin, HinLoad hin_load) {
#pragma unroll 1
    for (int b = 0; b < BATCH; ++b) {
        float* srow = sa + (size_t)b * krow;
        if (x)
            stage_run(srow, x + (size_t)(xrow ? xrow[b] : b) * kin, kin, XLoad());
        else
            stage_run(srow, hin + (size_t)b * kin, kin, hin_load);
    }
}

// Operand columns [kin, krow) of every batch row: each direction's h0 (zeros without), padding.
__device__ __forceinline__ void stage_state(float* sa, int krow, int kin, const io_t* h0) {
    const int ktot = kin + DIRS * HID;
#pragma unroll 1
    for (int b = 0; b < BATCH; ++b) {
        float* srow = sa + (size_t)b * krow;
        for (int d = 0; d < DIRS; ++d) {
            float* dst = srow + kin + d * HID;
            if (h0)
                stage_run(dst, h0 + ((size_t)d * BATCH + b) * HID, HID, IoLoad());
            else
                for (int j = threadIdx.x; j < HID; j += blockDim.x) dst[j] = 0.0f;
        }
        for (int k = ktot + threadIdx.x; k < krow; k += blockDim.x) srow[k] = 0.0f;
    }
}

// The warp's row sums (all lanes' acc) into spre[warp][b], bias added (zeros past the rows).
__device__ __forceinline__ void gv_reduce(float* acc, float (*spre)[BATCH], int warp, int lane, bool real,
                                          float bias) {
#pragma unroll
    for (int b = 0; b < BATCH; ++b) {
        float v = acc[b];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) spre[warp][b] = real ? v + bias : 0.0f;
    }
}

// One thread per (unit, batch row) of the block's units u0...: the cell from the summed rows
// spre, then hn, cn (this layer's slices), y (where given) and hout (the next layer's input).
__device__ __forceinline__ void gv_cell(const float (*spre)[BATCH], int u0, const float* peep, const io_t* h0,
                                        const io_t* c0, const int* seq, o_t* y, o_t* hn, o_t* cn, float* hout,
                                        float clip, long long y_ds, long long y_bs, long long s_gs,
                                        long long s_bs) {
    const int t = threadIdx.x;
    if (t >= GV_UNITS * BATCH) return;
    const int cu = t % GV_UNITS, b = t / GV_UNITS, unit = u0 + cu;
    if (unit >= DIRS * HID) return;
    const int d = unit / HID, j = unit - d * HID;
    float xv[4] = {0.0f, 0.0f, 0.0f, 0.0f}, rv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#if CELL == 0
    for (int g = 0; g < 4; ++g) xv[g] = spre[g * GV_UNITS + cu][b];
#elif CELL == 1
    for (int g = 0; g < 3; ++g) xv[g] = spre[g * GV_UNITS + cu][b];
    rv[GH] = spre[3 * GV_UNITS + cu][b];
#else
    xv[0] = spre[cu][b];
#endif
    const size_t i = ((size_t)d * BATCH + b) * HID + j;
    const float h = h0 ? io_load(h0 + i) : 0.0f;
    float c = c0 ? io_load(c0 + i) : 0.0f;
    float pi = 0.0f, po = 0.0f, pf = 0.0f;
#if PEEP
    if (peep) {
        pi = peep[d * 3 * HID + j];
        po = peep[d * 3 * HID + HID + j];
        pf = peep[d * 3 * HID + 2 * HID + j];
    }
#endif
    const bool active = seq == nullptr || seq[b] > 0;
    const float hnew = cell_update(xv, rv, h, c, active, pi, po, pf, clip);
    const size_t so = (size_t)d * s_gs + (size_t)b * s_bs + j;
    o_store(hn + so, hnew);
#if CELL == 0
    if (cn) o_store(cn + so, c);
#endif
    const float out = active ? hnew : 0.0f;
    if (y) o_store(y + (size_t)d * y_ds + (size_t)b * y_bs + j, out);
    if (hout) hout[(size_t)b * DIRS * HID + unit] = io_round(out);  // as the GEMM form's operand
}

extern "C" __global__ void GV_BOUNDS
step_gemv(const io_t* __restrict__ wT, int krow, int kin, const float* __restrict__ bias,
          const float* __restrict__ peep, const x_t* __restrict__ x, const long long* __restrict__ xrow,
          const float* __restrict__ hin,
          const io_t* __restrict__ h0, const io_t* __restrict__ c0, const int* __restrict__ seq,
          o_t* __restrict__ y, o_t* __restrict__ hn, o_t* __restrict__ cn, float* __restrict__ hout,
          float clip, long long y_ds, long long y_bs, long long s_gs, long long s_bs,
          const io_t* __restrict__ wnext, int knext
#if GV_ALT
          , unsigned int* calls, int count_call
#endif
          ) {
    extern __shared__ __align__(16) float sa[];  // [BATCH][krow]
    __shared__ float spre[GV_ROWS][BATCH];
    grid_dep_launch();  // the next layer may start now and fetch its own weights
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = blockIdx.x * GV_UNITS;  // this block's first unit (d * HID + j)
    const int uu = warp % GV_UNITS, g = warp / GV_UNITS, u = u0 + uu;
    const GvRow rw = gv_row(u, g, kin, h0 != nullptr);
    const int row = rw.row;
    const io_t* wr = wT + (size_t)row * krow;
    const VRange r = rw.all();
    wraw_t wp[GV_PF];
#if GV_ALT
    // The call's parity: the last layer's blocks each add one per call, so before this block
    // adds its own the count is in [k * gridDim.x, (k + 1) * gridDim.x). A racing read only
    // changes which loads come first, never a value.
    const unsigned int ncall = *reinterpret_cast<volatile unsigned int*>(calls) / gridDim.x;
    const int p0 = (ncall & 1u) ? max((r.n() + 127) / 128 - GV_PF, 0) : 0;
    vr_preload_at<GV_PF>(wp, wr, r, lane, p0);
#else
    vr_preload<GV_PF>(wp, wr, r, lane);
#endif
#if GV_L2PF & 2
    if (r.n() > GV_PF * 128) {  // the rest of this row: [r0, n) of the virtual range
        const int r0 = GV_PF * 128, o1 = r0 > r.n0 ? r0 - r.n0 : 0;  // o1: where it starts in the second run
        if (r0 < r.n0) l2_prefetch_lines(wr + r0, (r.n0 - r0) * (int)sizeof(io_t), lane);
        if (o1 < r.n1) l2_prefetch_lines(wr + r.s1 + o1, (r.n1 - o1) * (int)sizeof(io_t), lane);
    }
#endif
    grid_dep_wait();  // the layer below (and whatever wrote x, h0, c0) has finished
    stage_input(sa, krow, kin, x, xrow, hin, FLoad());
    stage_state(sa, krow, kin, h0);
    __syncthreads();
    {
        float acc[BATCH];
#pragma unroll
        for (int b = 0; b < BATCH; ++b) acc[b] = 0.0f;
#if GV_ALT
        vr_dot_at<GV_PF>(acc, sa, krow, wr, r, wp, lane, p0);
#else
        vr_dot<GV_PF>(acc, sa, krow, wr, r, wp, lane);
#endif
#if GV_L2PF & 1
        // Every own load is issued: the warp's next-layer rows go out now, behind them.
        if (wnext && u < DIRS * HID) l2_prefetch_lines(wnext + (size_t)row * knext, knext * (int)sizeof(io_t), lane);
#endif
        gv_reduce(acc, spre, warp, lane, u < DIRS * HID, u < DIRS * HID ? bias[row] : 0.0f);
    }
    __syncthreads();
    gv_cell(spre, u0, peep, h0, c0, seq, y, hn, cn, hout, clip, y_ds, y_bs, s_gs, s_bs);
#if GV_ALT
    if (count_call && threadIdx.x == 0) atomicAdd(calls, 1u);  // the last layer: this call is done here
#endif
}

// ---- every layer in one launch (small batches) ------------------------------------------
// step_gemv's layers in one launch: each block keeps its units through every layer and the
// layers meet at a grid-wide count (`count`, u64, never reset: the k-th arrival of every
// block is the k-th boundary). Between layers a block neither exits nor relaunches: it
// arrives once its outputs are stored, then reads the next layer's h0 columns (which do not
// depend on the layer below) and issues the first loads of the input columns, and only then
// waits for the other blocks. So device memory keeps streaming weights across the boundary
// instead of draining at the end of one launch and refilling at the start of the next. Every
// block must be resident at once (single_step.py checks the occupancy); DIRS * HID /
// GV_UNITS blocks.
// table: per layer (wT, bias, peep, krow, kin) as 64-bit words; hbuf: two [BATCH, DIRS *
// HID] fp32 buffers `hstride` apart (ping-pong); h0/c0: [nlayers * DIRS, BATCH, HID], a layer
// `slab` elements after the one before; hn/cn: a layer DIRS * s_gs elements on; y: the last
// layer's. The GV_L2PF prefetches of the next layer are step_gemv's only (here the next
// layer's own columns are read before the boundary anyway); bit 4 (streaming loads) holds.
// Weight loads a lane issues early in step_gemv_layers (its loop state takes registers of
// step_gemv's GV_PF; single_step.py: the most that compile without spills at batch 1).
#ifndef GVL_PF
#define GVL_PF GV_PF
#endif
extern "C" __global__ void GV_BOUNDS
step_gemv_layers(const long long* __restrict__ table, int nlayers, const x_t* __restrict__ x,
                 const long long* __restrict__ xrow, float* hbuf, long long hstride,
                 const io_t* __restrict__ h0, const io_t* __restrict__ c0, long long slab,
                 const int* __restrict__ seq, o_t* __restrict__ y, o_t* __restrict__ hn, o_t* __restrict__ cn,
                 float clip, long long y_ds, long long y_bs, long long s_gs, long long s_bs, u64* count) {
    extern __shared__ __align__(16) float sa[];  // [BATCH][krow] of the layer being run
    __shared__ float spre[GV_ROWS][BATCH];
    grid_dep_launch();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = blockIdx.x * GV_UNITS;
    const int uu = warp % GV_UNITS, g = warp / GV_UNITS, u = u0 + uu;
    // (thread 0) the count at which every block has stored the layer below; in shared
    // memory, as are the layer's rarely used pointers re-read from the table: registers are
    // the weight loads' (64 a thread for four blocks an SM)
    __shared__ u64 target;
#pragma unroll 1
    for (int layer = 0; layer < nlayers; ++layer) {
        const long long* P = table + 5 * layer;
        const int krow = (int)P[3], kin = (int)P[4];
        const bool last = layer + 1 == nlayers;
        const GvRow rw = gv_row(u, g, kin, h0 != nullptr);
        const io_t* wr = reinterpret_cast<const io_t*>(P[0]) + (size_t)rw.row * krow;
        const io_t* h0l = h0 ? h0 + (size_t)layer * slab : nullptr;
        // The h0 columns first (the first layer's once the kernel ahead has finished, deeper
        // layers' at once), then the input columns once the layer below is stored.
        wraw_t wp[GVL_PF];
        vr_preload<GVL_PF>(wp, wr, rw.own(), lane);
        if (layer == 0) grid_dep_wait();  // whatever wrote x, h0, c0 has finished
        stage_state(sa, krow, kin, h0l);
        __syncthreads();
        float acc[BATCH];
#pragma unroll
        for (int b = 0; b < BATCH; ++b) acc[b] = 0.0f;
        vr_dot<GVL_PF>(acc, sa, krow, wr, rw.own(), wp, lane);
        vr_preload<GVL_PF>(wp, wr, rw.input(), lane);
        if (layer > 0 && threadIdx.x == 0) {
            while ((long long)(count_load(count) - target) < 0) spin_pause();
            __threadfence();
        }
        __syncthreads();  // (deeper layers) every block has stored the layer below's output
        if (layer == 0)
            stage_input(sa, krow, kin, x, xrow, nullptr, FLoad());
        else
            stage_input(sa, krow, kin, nullptr, nullptr, hbuf + ((layer - 1) & 1) * hstride, CoherentLoad());
        __syncthreads();
        vr_dot<GVL_PF>(acc, sa, krow, wr, rw.input(), wp, lane);
        gv_reduce(acc, spre, warp, lane, u < DIRS * HID,
                  u < DIRS * HID ? reinterpret_cast<const float*>(P[1])[rw.row] : 0.0f);
        __syncthreads();
        gv_cell(spre, u0, reinterpret_cast<const float*>(P[2]), h0l, c0 ? c0 + (size_t)layer * slab : nullptr, seq,
                last ? y : nullptr, hn + (size_t)layer * DIRS * s_gs,
                cn ? cn + (size_t)layer * DIRS * s_gs : nullptr, last ? nullptr : hbuf + (layer & 1) * hstride, clip,
                y_ds, y_bs, s_gs, s_bs);
        if (!last) {
            __syncthreads();  // the block's outputs are stored (and spre read) before it arrives
            if (threadIdx.x == 0) {
                const u64 ticket = count_add(count, 1);
                target = (ticket / gridDim.x + 1) * gridDim.x;
            }
        }
    }
}
#endif  // GEMV
