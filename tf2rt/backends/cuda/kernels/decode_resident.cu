// Token-by-token decoding in ONE launch for many tokens (resident_decode.py).
//
// The grid is LAYERS * NCTA layer CTAs and one head CTA, all resident at once (a
// cooperative launch). Layer CTA (l, c) owns units [c * UPC, (c + 1) * UPC) of layer l and
// keeps their weight rows (input and recurrent, GW gate rows a unit) in shared memory and
// their h and c in registers for the whole launch. Step s:
//   1. gather the layer's h_{s-1} (the exchange slot of step s-1, or the initial state) and
//      do the recurrent products: nothing of step s is needed for them, so they run while
//      the step's input is still being made;
//   2. gather the input: layer 0 the embedding row of token s (given, or chosen by the head
//      at step s-1), deeper layers the layer below's h_s; do the input products;
//   3. apply the cell, publish h_s in the layer's exchange slot s & 1, count the CTA in.
// The head CTA gathers the last layer's h_s, computes the logits (h_s . head row + bias),
// chooses the token (pick.cuh) unless a forced one (a prompt) overrides it, and publishes it
// for step s + 1. Every wait is one thread polling a counter (flags.cuh); a counter that does
// not move for timeout_ns sets the error word and every CTA leaves.
//
// Two slots per exchange are enough: a slot is written again two steps later, and step
// s + 2 needs token s + 2, which the head makes only after every layer finished step s + 1,
// i.e. after every reader of the slot's step-s contents read them.
//
// State: hstate / cstate [LAYERS][BATCH][HID] in the stack's type, read at the start and
// written at the end (the caller chains launches through them); tok [BATCH]: the first step's
// token in, the token after the last step out.
//
// trace (null, or [grid][TRACE_STEPS][3] times in ns): thread 0 of each CTA records, for the
// first TRACE_STEPS steps, when its h_{s-1} was there (head: h_s), when its input was there
// (head: the token chosen) and when it counted in (a diagnosis of the hand-offs).
//
// Compile-time: CELL, IOTYPE, gate indices (rnn_cell.cuh), HID, LAYERS, IN0 (the first
// layer's input size), BATCH, UPC (units a CTA), NCTA (CTAs a layer), GW (gate rows a unit:
// 4 LSTM, 3 GRU, 1 RNN), PEEP, NTHR (threads a CTA), HEAD_SMEM (head weights in shared memory).

#define FAST_GATES 0
#include "rnn_cell.cuh"
#include "flags.cuh"
#include "pick.cuh"

#define RPC (GW * UPC)  // weight rows a layer CTA holds
#define KINMAX (LAYERS > 1 && HID > IN0 ? HID : IN0)
#define NWARP (NTHR / 32)
#define TRACE_STEPS 64

__device__ __forceinline__ void stamp(unsigned long long* trace, int s, int point) {
    if (trace && s < TRACE_STEPS && threadIdx.x == 0) trace[((size_t)blockIdx.x * TRACE_STEPS + s) * 3 + point] = clock_ns();
}

__host__ __device__ constexpr size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }
// Shared memory of a layer CTA and of the head CTA (resident_decode.py computes the same).
constexpr size_t LAYER_W_BYTES = align16((size_t)RPC * (KINMAX + HID) * sizeof(io_t));
constexpr size_t LAYER_SMEM = LAYER_W_BYTES + 4 * ((size_t)BATCH * HID + (size_t)BATCH * KINMAX + 2 * RPC * BATCH +
                                                   2 * RPC + 3 * UPC + BATCH + 1);

// out[r * BATCH + b] = w[r] . v[b] for the RPC rows w [RPC][K] and the rows v [BATCH][K]:
// a warp per row, the lanes along K.
__device__ __forceinline__ void rows_dot(const io_t* w, int K, const float* v, float* out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int r = warp; r < RPC; r += NWARP) {
        const io_t* wr = w + (size_t)r * K;
        float acc[BATCH];
#pragma unroll
        for (int b = 0; b < BATCH; ++b) acc[b] = 0.0f;
        for (int k = lane; k < K; k += 32) {
            const float wk = io_load(wr + k);
#pragma unroll
            for (int b = 0; b < BATCH; ++b) acc[b] += wk * v[(size_t)b * K + k];
        }
#pragma unroll
        for (int b = 0; b < BATCH; ++b) {
            float a = acc[b];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
            if (lane == 0) out[r * BATCH + b] = a;
        }
    }
}

// Thread 0 waits until *counter >= target (or the error word is set, or timeout_ns pass:
// then it sets the error word); the block learns the outcome. Holds __syncthreads.
__device__ __forceinline__ bool wait_for(const u32* counter, u32 target, u32* err, long long timeout_ns, int* sflag) {
    if (threadIdx.x == 0) {
        int ok = 1;
        if (flag_load(counter) < target) {
            const unsigned long long t0 = clock_ns();
            while (flag_load(counter) < target) {
                if (flag_load(err) || (long long)(clock_ns() - t0) > timeout_ns) {
                    flag_add(err, 1u);
                    ok = 0;
                    break;
                }
                spin_pause();
            }
        }
        *sflag = ok;
    }
    __syncthreads();
    const bool ok = *sflag != 0;
    __syncthreads();  // sflag free for the next wait
    return ok;
}

// The block's writes are done: count this CTA in.
__device__ __forceinline__ void count_in(u32* counter) {
    __syncthreads();
    if (threadIdx.x == 0) flag_add(counter, 1u);
}

__device__ void head_cta(const float* __restrict__ headT, const float* __restrict__ headb, int V, int steps,
                         const float* __restrict__ uniform, float inv_temp, int top_k,
                         const long long* __restrict__ forced, long long* __restrict__ tok,
                         long long* __restrict__ picked, float* __restrict__ logits, const float* hx_last,
                         long long* tokx, u32* sync, long long timeout_ns, unsigned long long* trace,
                         unsigned char* smem) {
    float* sy = reinterpret_cast<float*>(smem);  // [BATCH][HID]
    float* z = sy + BATCH * HID;                  // [V]
    float* wbest = z + V;                         // [NWARP]
    int* wind = reinterpret_cast<int*>(wbest + NWARP);
    int* scount = wind + NWARP;
    int* sflag = scount + 1;
    const float* hw = headT;
#if HEAD_SMEM
    float* shw = reinterpret_cast<float*>(smem + align16(4 * ((size_t)BATCH * HID + V + 2 * NWARP + 2)));
    for (int i = threadIdx.x; i < V * HID; i += NTHR) shw[i] = headT[i];
    hw = shw;
#endif
    const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
    u32* err = sync + LAYERS + 1;
    for (int s = 0; s < steps; ++s) {
        if (!wait_for(sync + LAYERS - 1, (u32)(NCTA * (s + 1)), err, timeout_ns, sflag)) return;
        stamp(trace, s, 0);
        const float* slot = hx_last + (size_t)(s & 1) * BATCH * HID;
        for (int i = t; i < BATCH * HID; i += NTHR) sy[i] = ld_cg(slot + i);
        __syncthreads();
        for (int b = 0; b < BATCH; ++b) {
            for (int v = warp; v < V; v += NWARP) {  // a warp per row of the head
                const float* w = hw + (size_t)v * HID;
                float acc = 0.0f;
                for (int k = lane; k < HID; k += 32) acc += w[k] * sy[b * HID + k];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
                if (lane == 0) z[v] = acc + headb[v];
            }
            __syncthreads();
            const float* u = uniform ? uniform + ((size_t)s * BATCH + b) * V : nullptr;
            const int p = block_pick(z, V, u, inv_temp, top_k, wbest, wind, scount);
            if (t == 0) {
                const long long f = forced ? forced[(size_t)s * BATCH + b] : -1;
                const long long next = f >= 0 ? f : p;
                picked[(size_t)s * BATCH + b] = p;
                tokx[(size_t)((s + 1) & 1) * BATCH + b] = next;
                if (s == steps - 1) tok[b] = next;
            }
            if (s == steps - 1)
                for (int v = t; v < V; v += NTHR) logits[(size_t)b * V + v] = z[v];
            __syncthreads();
        }
        stamp(trace, s, 1);
        count_in(sync + LAYERS);
        stamp(trace, s, 2);
    }
}

extern "C" __global__ void __launch_bounds__(NTHR, 1)
resident_decode(const io_t* __restrict__ wpack, const float* __restrict__ bpack, const float* __restrict__ table,
                const float* __restrict__ headT, const float* __restrict__ headb, int V, int steps,
                const float* __restrict__ uniform, float inv_temp, int top_k, const long long* __restrict__ forced,
                long long* __restrict__ tok, long long* __restrict__ picked, float* __restrict__ logits,
                io_t* __restrict__ hstate, io_t* __restrict__ cstate, float* __restrict__ hx,
                long long* __restrict__ tokx, u32* __restrict__ sync, float clip, long long timeout_ns,
                unsigned long long* __restrict__ trace) {
    extern __shared__ __align__(16) unsigned char smem[];
    if ((int)blockIdx.x == LAYERS * NCTA) {
        head_cta(headT, headb, V, steps, uniform, inv_temp, top_k, forced, tok, picked, logits,
                 hx + (size_t)(LAYERS - 1) * 2 * BATCH * HID, tokx, sync, timeout_ns, trace, smem);
        return;
    }
    const int l = blockIdx.x / NCTA, cta = blockIdx.x % NCTA, t = threadIdx.x;
    const int kin = l == 0 ? IN0 : HID;
    io_t* ws = reinterpret_cast<io_t*>(smem);  // W rows [RPC][kin], then R rows [RPC][HID]
    float* hb = reinterpret_cast<float*>(smem + LAYER_W_BYTES);  // [BATCH][HID]
    float* xb = hb + BATCH * HID;                                 // [BATCH][kin]
    float* racc = xb + BATCH * KINMAX;                            // [RPC][BATCH]
    float* xacc = racc + RPC * BATCH;                             // [RPC][BATCH]
    float* bs = xacc + RPC * BATCH;  // W bias [RPC], R bias [RPC], peepholes i, o, f [UPC] each
    int* tks = reinterpret_cast<int*>(bs + 2 * RPC + 3 * UPC);  // [BATCH]
    int* sflag = tks + BATCH;

    const size_t wblock = (size_t)RPC * (kin + HID);
    const io_t* wsrc = wpack + (l == 0 ? 0 : (size_t)NCTA * RPC * (IN0 + HID) + (size_t)(l - 1) * NCTA * RPC * 2 * HID) +
                       (size_t)cta * wblock;
    for (size_t i = t; i < wblock; i += NTHR) ws[i] = wsrc[i];
    const float* bsrc = bpack + (size_t)(l * NCTA + cta) * (2 * RPC + 3 * UPC);
    for (int i = t; i < 2 * RPC + 3 * UPC; i += NTHR) bs[i] = bsrc[i];

    // One (unit, batch row) a gate thread; its h and c stay in registers.
    const int gu = t % UPC, gb = t / UPC, j = cta * UPC + gu;
    const bool gate = t < UPC * BATCH && j < HID;
    const size_t si = ((size_t)l * BATCH + gb) * HID + j;
    float h = gate ? io_load(hstate + si) : 0.0f;
    float c = 0.0f;
#if CELL == 0
    if (gate) c = io_load(cstate + si);
#endif
    float* hx_own = hx + (size_t)l * 2 * BATCH * HID;
    const float* hx_below = l > 0 ? hx + (size_t)(l - 1) * 2 * BATCH * HID : nullptr;
    u32* err = sync + LAYERS + 1;
    for (int s = 0; s < steps; ++s) {
        // 1. the layer's h_{s-1} and the recurrent products
        if (s == 0) {
            for (int i = t; i < BATCH * HID; i += NTHR) hb[i] = io_load(hstate + (size_t)l * BATCH * HID + i);
        } else {
            if (!wait_for(sync + l, (u32)(NCTA * s), err, timeout_ns, sflag)) return;
            const float* slot = hx_own + (size_t)((s - 1) & 1) * BATCH * HID;
            for (int i = t; i < BATCH * HID; i += NTHR) hb[i] = ld_cg(slot + i);
        }
        stamp(trace, s, 0);
        __syncthreads();
        rows_dot(ws + (size_t)RPC * kin, HID, hb, racc);
        // 2. the input and the input products
        if (l == 0) {
            if (s > 0 && !wait_for(sync + LAYERS, (u32)s, err, timeout_ns, sflag)) return;
            if (t < BATCH) tks[t] = (int)(s == 0 ? tok[t] : ld_cg_i64(tokx + (size_t)(s & 1) * BATCH + t));
            __syncthreads();
            for (int i = t; i < BATCH * IN0; i += NTHR) {
                const int b = i / IN0, k = i - b * IN0;
                xb[i] = table[(size_t)tks[b] * IN0 + k];
            }
        } else {
            if (!wait_for(sync + l - 1, (u32)(NCTA * (s + 1)), err, timeout_ns, sflag)) return;
            const float* slot = hx_below + (size_t)(s & 1) * BATCH * HID;
            for (int i = t; i < BATCH * HID; i += NTHR) xb[i] = ld_cg(slot + i);
        }
        stamp(trace, s, 1);
        __syncthreads();
        rows_dot(ws, kin, xb, xacc);
        __syncthreads();
        // 3. the cell, h_s published
        if (gate) {
            float xv[4] = {0.0f, 0.0f, 0.0f, 0.0f}, rv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int g = 0; g < GW; ++g) {
                const int r = g * UPC + gu;
                xv[g] = xacc[r * BATCH + gb] + bs[r];
                rv[g] = racc[r * BATCH + gb] + bs[RPC + r];
            }
            float pi = 0.0f, po = 0.0f, pf = 0.0f;
#if PEEP
            pi = bs[2 * RPC + gu];
            po = bs[2 * RPC + UPC + gu];
            pf = bs[2 * RPC + 2 * UPC + gu];
#endif
            h = io_round(cell_update(xv, rv, h, c, true, pi, po, pf, clip));
            c = io_round(c);
            hx_own[(size_t)(s & 1) * BATCH * HID + (size_t)gb * HID + j] = h;
        }
        count_in(sync + l);
        stamp(trace, s, 2);
    }
    // The state goes back where it came from once every CTA of the layer has read it (at
    // step 0: a one-step launch would otherwise overwrite it under a slower CTA).
    if (!wait_for(sync + l, (u32)(NCTA * steps), err, timeout_ns, sflag)) return;
    if (gate) {
        io_store(hstate + si, h);
#if CELL == 0
        io_store(cstate + si, c);
#endif
    }
}
