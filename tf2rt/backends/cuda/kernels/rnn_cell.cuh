// Shared by the recurrent kernels (persistent_rnn.cu, single_step.cu); the Python side
// puts this text where a kernel says #include "rnn_cell.cuh".
//
// Needs: IOTYPE (0=f32 1=f16 2=bf16), CELL (0=LSTM 1=GRU 2=RNN-tanh 3=RNN-relu), the gate
// block indices (GI, GO, GF, GC / GZ, GR, GH), FAST_GATES (approximate division in the
// activations).

#include "types.cuh"

// ---- element types -------------------------------------------------------------
#if IOTYPE == 0
typedef float io_t;
#else
typedef u16 io_t;
#endif

__device__ __forceinline__ float io_load(const io_t* p) {
#if IOTYPE == 0
    return *p;
#elif IOTYPE == 1
    return f16_to_f32(*p);
#else
    return bf16_to_f32(*p);
#endif
}
__device__ __forceinline__ void io_store(io_t* p, float v) {
#if IOTYPE == 0
    *p = v;
#elif IOTYPE == 1
    *p = f32_to_f16(v);
#else
    *p = f32_to_bf16(v);
#endif
}

// x_t: the type a kernel reads its input x in, o_t: the type it writes y, hn and cn in
// (XTYPE, OTYPE; both default to IOTYPE). o_store rounds to IOTYPE first, so a stack
// writing another type gives the values it would give in its own.
#ifndef XTYPE
#define XTYPE IOTYPE
#endif
#ifndef OTYPE
#define OTYPE IOTYPE
#endif
#if XTYPE == 0
typedef float x_t;
#else
typedef u16 x_t;
#endif
#if OTYPE == 0
typedef float o_t;
#else
typedef u16 o_t;
#endif

__device__ __forceinline__ float x_load(const x_t* p) {
#if XTYPE == 0
    return *p;
#elif XTYPE == 1
    return f16_to_f32(*p);
#else
    return bf16_to_f32(*p);
#endif
}

// v rounded to the stack's type (IOTYPE), as a float.
__device__ __forceinline__ float io_round(float v) {
#if IOTYPE == 1
    return f16_to_f32(f32_to_f16(v));
#elif IOTYPE == 2
    return bf16_to_f32(f32_to_bf16(v));
#else
    return v;
#endif
}

// v rounded to the stack's type, stored in type code K (0 f32, 1 f16, 2 bf16).
template <int K, typename T>
__device__ __forceinline__ void store_rounded(T* p, float v) {
    v = io_round(v);
    if constexpr (K == 0) *p = v;
    else if constexpr (K == 1) *p = f32_to_f16(v);
    else *p = f32_to_bf16(v);
}
__device__ __forceinline__ void o_store(o_t* p, float v) { store_rounded<OTYPE>(p, v); }

// y_t: the type a launch writes y in (YTYPE, default OTYPE): a stack's lower layers write
// their y in the stack's own type for the next layer, and every layer's hn/cn in OTYPE.
#ifndef YTYPE
#define YTYPE OTYPE
#endif
#if YTYPE == 0
typedef float y_t;
#else
typedef u16 y_t;
#endif
__device__ __forceinline__ void y_store(y_t* p, float v) { store_rounded<YTYPE>(p, v); }

// ---- activations (exp-based: accurate to ~1e-7 absolute, no tanhf slow path) --------
#if FAST_GATES
// Approximate division (MUFU.RCP + FMUL, ~2 ulp) instead of IEEE division: the gates sit
// on the step's critical path. 1/(1+inf) is 0, so saturation stays exact. fp32 engines
// keep IEEE division: they are held to 1e-4 of the reference.
__device__ __forceinline__ float sigm(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }
__device__ __forceinline__ float tanh_(float x) { return 1.0f - __fdividef(2.0f, 1.0f + __expf(2.0f * x)); }
#else
__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + __expf(-x)); }
__device__ __forceinline__ float tanh_(float x) { return 1.0f - 2.0f / (1.0f + __expf(2.0f * x)); }
#endif
__device__ __forceinline__ float clipf(float x, float c) { return c > 0.0f ? fminf(fmaxf(x, -c), c) : x; }

// One (unit, batch) state update from the gates' input and recurrent parts (biases added):
// returns the new h and updates c (LSTM). Inactive (padded) steps keep the state. GRU here
// is reset-after (linear_before_reset); the reset-before form runs in the original step.
__device__ __forceinline__ float cell_update(const float* xv, const float* rv, float h, float& c, bool active,
                                             float pi, float po, float pf, float clip) {
#if CELL == 0
    const float ig = sigm(clipf(xv[GI] + rv[GI] + pi * c, clip));
    const float fg = sigm(clipf(xv[GF] + rv[GF] + pf * c, clip));
    const float gg = tanh_(clipf(xv[GC] + rv[GC], clip));
    const float cnew = fg * c + ig * gg;
    const float og = sigm(clipf(xv[GO] + rv[GO] + po * cnew, clip));
    if (!active) return h;
    c = cnew;
    return og * tanh_(cnew);
#elif CELL == 1
    const float z = sigm(clipf(xv[GZ] + rv[GZ], clip));
    const float r = sigm(clipf(xv[GR] + rv[GR], clip));
    const float hh = tanh_(clipf(xv[GH] + r * rv[GH], clip));
    return active ? (1.0f - z) * hh + z * h : h;
#elif CELL == 2
    return active ? tanh_(clipf(xv[0] + rv[0], clip)) : h;
#else
    return active ? fmaxf(clipf(xv[0] + rv[0], clip), 0.0f) : h;
#endif
}
