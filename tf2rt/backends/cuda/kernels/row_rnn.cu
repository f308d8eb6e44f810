// Row kernel: one CTA runs a whole sequence of one layer-direction for BPC batch rows, with
// every recurrent weight of the layer on its SM (the first KREG columns of each row in
// registers, the rest in shared memory). A step's h never leaves the CTA, so there is no
// exchange between CTAs and no grid-wide wait: a step costs the products from on-chip
// weights and two block barriers. CTAs are independent (no co-residency needed), so any
// batch runs, in waves if there are more CTAs than SMs. For small hidden sizes (the whole
// R of a layer fits one SM: fp32 GRU H <= ~160, fp16 LSTM H <= ~200), where the persistent
// kernel's exchange between CTAs dominates a step. row.py plans and launches it.
//
// A layer too large for one SM runs on a thread-block cluster of CLUSTER CTAs (2 to 8):
// each holds the rows of UPC units (every gate) and the whole h, and writes its units' new
// h straight into every peer's shared memory; the CTAs meet at the cluster barrier, a
// step's only wait between CTAs (no trip through L2).
//
// Compile-time configuration (row.py, -D):
//   CELL, IOTYPE, OTYPE, FAST_GATES and the gate block indices as in rnn_cell.cuh;
//   YTYPE (y's type, default OTYPE: a lower layer writes y in the stack's type for the
//   next layer and its final states, like the last layer's outputs, in OTYPE);
//   HID, NGATE (gates per cell), THREADS, RPT (gate rows a thread: row = tid + i*THREADS),
//   BPC (batch rows a CTA), KREG (columns of each row held in registers, a multiple of 4),
//   LBR (GRU linear_before_reset), PEEP (LSTM peepholes), CLUSTER (CTAs sharing a layer).
// Weights R: per direction and cluster rank [NPAIR][RP] pairs of consecutive columns of one
// row (k-major: a warp reads 32 consecutive rows' pairs); a CTA's rows are gate-major over
// its UPC units (row g*UPC + u is row g*HID + rank*UPC + u of the layer), zero padded to RP
// rows and KP columns. xp: the input projection (biases Wb included) in the stack's type,
// element (t, b) of direction d at xp + t*xs_t + b*xs_b + d*NGATE*HID.

#include "rnn_cell.cuh"

#ifndef CLUSTER
#define CLUSTER 1
#endif
#define ROWS (NGATE * HID)                       // rows of the layer
#define UPC ((HID + CLUSTER - 1) / CLUSTER)      // units a CTA
#define CROWS (NGATE * UPC)                      // rows a CTA
#define RP (THREADS * RPT)
#define KP ((HID + 3) / 4 * 4)
#define NPAIR (KP / 2)
#define NPREG (KREG / 2)
#define NPREG_A (NPREG > 0 ? NPREG : 1)
#define NU ((BPC * UPC + THREADS - 1) / THREADS)  // (batch row, unit) pairs a thread updates
#define GRU_RB (CELL == 1 && LBR == 0)            // GRU reset-before: r*h before its product

// The CTAs of a cluster: this one's rank, a peer's copy of a shared-memory address, and
// the barrier of all of them (release/acquire: shared-memory writes to peers before it are
// seen after it). One CTA: rank 0, its own memory, a block barrier.
#if CLUSTER > 1
__device__ __forceinline__ unsigned cluster_rank() {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
__device__ __forceinline__ float* peer_smem(float* p, unsigned rank) {
    unsigned long long out;
    asm volatile("mapa.u64 %0, %1, %2;" : "=l"(out) : "l"(p), "r"(rank));
    return reinterpret_cast<float*>(out);
}
__device__ __forceinline__ void cluster_sync() {
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
#define CLUSTER_DIMS __cluster_dims__(CLUSTER, 1, 1)
#else
__device__ __forceinline__ unsigned cluster_rank() { return 0; }
__device__ __forceinline__ float* peer_smem(float* p, unsigned) { return p; }
__device__ __forceinline__ void cluster_sync() { __syncthreads(); }
#define CLUSTER_DIMS
#endif
// v at element i of every cluster CTA's copy of buffer `buf` (this CTA's included).
__device__ __forceinline__ void share(float* buf, int i, float v) {
#pragma unroll
    for (int r = 0; r < CLUSTER; ++r) peer_smem(buf, (unsigned)r)[i] = v;
}

#if IOTYPE == 0
typedef float2 wpair_t;
__device__ __forceinline__ float2 unpair(wpair_t w) { return w; }
#else
typedef u32 wpair_t;  // two fp16/bf16 values, the lower column in the low half
__device__ __forceinline__ float2 unpair(wpair_t w) {
    float2 r;
#if IOTYPE == 1
    r.x = f16_to_f32((u16)(w & 0xffffu));
    r.y = f16_to_f32((u16)(w >> 16));
#else
    r.x = bf16_to_f32((u16)(w & 0xffffu));
    r.y = bf16_to_f32((u16)(w >> 16));
#endif
    return r;
}
#endif

// gs[b][row] = row . h_b over every column for this thread's rows (tid + i*THREADS) that
// `take` marks. hb: BPC vectors of KP values (shared memory); wr: the register columns; ws:
// the rest.
// Two partial sums a row (even and odd columns): two chains of FMAs, each half as long, so
// a thread's products are not bound by the latency of one dependent chain.
__device__ __forceinline__ void pair_fma(float (&a)[2], float2 w0, float2 w1, float4 h) {
    a[0] = fmaf(w0.x, h.x, a[0]);
    a[1] = fmaf(w0.y, h.y, a[1]);
    a[0] = fmaf(w1.x, h.z, a[0]);
    a[1] = fmaf(w1.y, h.w, a[1]);
}
// Columns 4q..4q+3 of every batch row's h (broadcast reads: every lane the same address).
__device__ __forceinline__ void load_h(float4 (&hv)[BPC], const float* hb, int q) {
#pragma unroll
    for (int b = 0; b < BPC; ++b) hv[b] = *reinterpret_cast<const float4*>(hb + b * KP + 4 * q);
}
__device__ __forceinline__ void products(float* gs, const wpair_t (&wr)[RPT][NPREG_A],
                                         const wpair_t* ws, const float* hb, const bool (&take)[RPT]) {
    const int tid = threadIdx.x;
    float part[RPT][BPC][2];
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
        for (int b = 0; b < BPC; ++b) part[i][b][0] = part[i][b][1] = 0.0f;
#pragma unroll
    for (int q = 0; q < NPREG / 2; ++q) {  // 4 columns: register pairs 2q and 2q+1
        float4 hv[BPC];
        load_h(hv, hb, q);
#pragma unroll
        for (int i = 0; i < RPT; ++i) {
            if (!take[i]) continue;
            const float2 w0 = unpair(wr[i][2 * q]), w1 = unpair(wr[i][2 * q + 1]);
#pragma unroll
            for (int b = 0; b < BPC; ++b) pair_fma(part[i][b], w0, w1, hv[b]);
        }
    }
#pragma unroll 4
    for (int q = NPREG / 2; q < NPAIR / 2; ++q) {
        float4 hv[BPC];
        load_h(hv, hb, q);
        const wpair_t* w = ws + (size_t)(2 * q - NPREG) * RP + tid;
#pragma unroll
        for (int i = 0; i < RPT; ++i) {
            if (!take[i]) continue;
            const float2 w0 = unpair(w[i * THREADS]), w1 = unpair(w[RP + i * THREADS]);
#pragma unroll
            for (int b = 0; b < BPC; ++b) pair_fma(part[i][b], w0, w1, hv[b]);
        }
    }
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
        for (int b = 0; b < BPC; ++b)
            if (take[i]) gs[b * RP + tid + i * THREADS] = part[i][b][0] + part[i][b][1];
}

__device__ __forceinline__ float io_value(io_t v) { return io_load(&v); }

// Raw input projections of step s for this thread's (batch row, unit) pairs that are active
// at s (the rest keep what they hold: an inactive step does not use them).
__device__ __forceinline__ void load_inputs(io_t (&xn)[NU][NGATE], const io_t* xd, long long xs_t, long long xs_b,
                                            const int (&len)[NU], int b0, int j0, bool backwards, int s) {
#pragma unroll
    for (int u = 0; u < NU; ++u) {
        const int idx = threadIdx.x + u * THREADS, bg = b0 + idx / UPC, j = j0 + idx % UPC;
        if (s < len[u]) {
            const int t = backwards ? len[u] - 1 - s : s;
            const io_t* xr = xd + t * xs_t + bg * xs_b + j;
#pragma unroll
            for (int g = 0; g < NGATE; ++g) xn[u][g] = xr[g * HID];
        }
    }
}

// R: [DIRS][CLUSTER][NPAIR][RP] pairs; rb: [DIRS][ROWS] recurrent biases; peep: [DIRS][3*HID] or null.
// h0, c0: [DIRS][B][HID] in the stack's type or null (zeros). y: element (t, d, b, j) at
// y + t*ys_t + d*ys_d + b*ys_b + j; hn, cn (cn null unless LSTM) at d*s_d + b*s_b + j.
// seq: [B] int32 lengths or null (all T). reverse: the stack's single direction runs
// backwards (direction 1 of a bidirectional stack always does).
extern "C" __global__ void __launch_bounds__(THREADS, 1) CLUSTER_DIMS
    row_rnn(const wpair_t* __restrict__ R, const float* __restrict__ rb, const float* __restrict__ peep,
            const io_t* __restrict__ xp, long long xs_t, long long xs_b, const io_t* __restrict__ h0,
            const io_t* __restrict__ c0, y_t* __restrict__ y, long long ys_t, long long ys_d, long long ys_b,
            o_t* __restrict__ hn, o_t* __restrict__ cn, long long s_d, long long s_b, const int* __restrict__ seq,
            int T, int B, int reverse, float clip) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int tid = threadIdx.x;
    const int groups = (B + BPC - 1) / BPC;
    const int cl = blockIdx.x / CLUSTER;  // this CTA's cluster: (direction, batch group)
    const unsigned rank = cluster_rank();
    const int d = cl / groups, b0 = (cl % groups) * BPC, j0 = (int)rank * UPC;
    const bool backwards = reverse || d == 1;

    wpair_t* ws = reinterpret_cast<wpair_t*>(smem);  // [NPAIR - NPREG][RP]
    float* hs = reinterpret_cast<float*>(smem + sizeof(wpair_t) * (size_t)(NPAIR - NPREG) * RP);  // [2][BPC][KP]
    float* gs = hs + 2 * BPC * KP;   // [BPC][RP] products of the step
    float* rh = gs + BPC * RP;       // GRU reset-before: [BPC][KP] r*h

    // ---- weights: register columns, then the shared-memory slab (16-byte copies) ----
    const wpair_t* Rd = R + ((size_t)d * CLUSTER + rank) * NPAIR * RP;
    wpair_t wr[RPT][NPREG_A];
#pragma unroll
    for (int i = 0; i < RPT; ++i)
#pragma unroll
        for (int p = 0; p < NPREG_A; ++p) wr[i][p] = Rd[(size_t)(p < NPREG ? p : 0) * RP + tid + i * THREADS];
    {
        const uint4* src = reinterpret_cast<const uint4*>(Rd + (size_t)NPREG * RP);
        uint4* dst = reinterpret_cast<uint4*>(ws);
        const int n = (int)(sizeof(wpair_t) * (size_t)(NPAIR - NPREG) * RP / 16);
        for (int i = tid; i < n; i += THREADS) dst[i] = src[i];
    }

    // ---- the (batch row, unit) pairs this thread updates: state, biases, lengths ----
    float h[NU], c[NU], rbu[NU][NGATE], xv[NU][NGATE], pi[NU], po[NU], pf[NU];
    int len[NU];
#pragma unroll
    for (int u = 0; u < NU; ++u) {
        const int idx = tid + u * THREADS, b = idx / UPC, j = j0 + idx % UPC, bg = b0 + b;
        const bool mine = idx < BPC * UPC && j < HID && bg < B;
        const size_t st = ((size_t)d * B + bg) * HID + j;
        h[u] = mine && h0 ? io_load(h0 + st) : 0.0f;
        c[u] = mine && c0 ? io_load(c0 + st) : 0.0f;
        len[u] = mine ? (seq ? seq[bg] : T) : 0;
#pragma unroll
        for (int g = 0; g < NGATE; ++g) rbu[u][g] = mine ? rb[d * ROWS + g * HID + j] : 0.0f;
        const bool pp = mine && PEEP && peep;
        pi[u] = pp ? peep[d * 3 * HID + j] : 0.0f;
        po[u] = pp ? peep[d * 3 * HID + HID + j] : 0.0f;
        pf[u] = pp ? peep[d * 3 * HID + 2 * HID + j] : 0.0f;
    }
    for (int i = tid; i < BPC * KP; i += THREADS) {
        const int b = i / KP, k = i % KP, bg = b0 + b;
        hs[i] = (k < HID && bg < B && h0) ? io_load(h0 + ((size_t)d * B + bg) * HID + k) : 0.0f;
        hs[BPC * KP + i] = 0.0f;
        if (GRU_RB) rh[i] = 0.0f;
    }
    bool take[RPT], take_h[RPT];
#pragma unroll
    for (int i = 0; i < RPT; ++i) {
        const int row = tid + i * THREADS;
        take_h[i] = GRU_RB && row / UPC == GH;  // reset-before: these rows multiply r*h instead
        take[i] = row < CROWS && !take_h[i];
    }
    cluster_sync();  // every CTA of the cluster set up before any peer writes into it

    // Each step's input projections are loaded a step ahead (raw, converted where used), so
    // their latency hides behind a whole step instead of one step's products.
    const io_t* xd = xp + (size_t)d * ROWS;
    io_t xn[NU][NGATE] = {};
    load_inputs(xn, xd, xs_t, xs_b, len, b0, j0, backwards, 0);
    for (int s = 0; s < T; ++s) {
        const float* hcur = hs + (s & 1) * BPC * KP;
        float* hnext = hs + ((s + 1) & 1) * BPC * KP;
#pragma unroll
        for (int u = 0; u < NU; ++u)
#pragma unroll
            for (int g = 0; g < NGATE; ++g) xv[u][g] = io_value(xn[u][g]);
        if (s + 1 < T) load_inputs(xn, xd, xs_t, xs_b, len, b0, j0, backwards, s + 1);
        products(gs, wr, ws, hcur, take);
        __syncthreads();
#if GRU_RB
        // r from its product, then r*h (rounded as a staged operand) for the h~ rows
#pragma unroll
        for (int u = 0; u < NU; ++u) {
            const int idx = tid + u * THREADS, b = idx / UPC, jl = idx % UPC;
            if (idx < BPC * UPC && j0 + jl < HID) {
                const float r = sigm(clipf(xv[u][GR] + gs[b * RP + GR * UPC + jl] + rbu[u][GR], clip));
                share(rh, b * KP + j0 + jl, io_round(r * h[u]));
            }
        }
        cluster_sync();
        products(gs, wr, ws, rh, take_h);
        __syncthreads();
#endif
#pragma unroll
        for (int u = 0; u < NU; ++u) {
            const int idx = tid + u * THREADS, b = idx / UPC, jl = idx % UPC, j = j0 + jl, bg = b0 + b;
            if (idx >= BPC * UPC || j >= HID || bg >= B) continue;
            float rv[NGATE], xin[NGATE];
#pragma unroll
            for (int g = 0; g < NGATE; ++g) rv[g] = gs[b * RP + g * UPC + jl] + rbu[u][g], xin[g] = xv[u][g];
#if GRU_RB
            xin[GH] += rv[GH];  // h~ = tanh(x_h + R_h (r*h) + Rb_h): nothing left for r to scale
            rv[GH] = 0.0f;
#endif
            const bool active = s < len[u];
            h[u] = cell_update(xin, rv, h[u], c[u], active, pi[u], po[u], pf[u], clip);
            share(hnext, b * KP + j, io_round(h[u]));
            // padded steps (s >= length) output zeros at position s, in either direction
            const int t = active ? (backwards ? len[u] - 1 - s : s) : s;
            y_store(y + t * ys_t + d * ys_d + bg * ys_b + j, active ? h[u] : 0.0f);
        }
        cluster_sync();  // the next step reads h from every CTA of the cluster
    }
#pragma unroll
    for (int u = 0; u < NU; ++u) {
        const int idx = tid + u * THREADS, b = idx / UPC, j = j0 + idx % UPC, bg = b0 + b;
        if (idx >= BPC * UPC || j >= HID || bg >= B) continue;
        o_store(hn + d * s_d + bg * s_b + j, h[u]);
        if (cn) o_store(cn + d * s_d + bg * s_b + j, c[u]);
    }
}
