// Token-by-token decoding in ONE launch for many tokens (resident_decode.py).
//
// The grid is LAYERS * NCTA layer CTAs and one head CTA, all resident at once (a
// cooperative launch). Layer CTA (l, c) owns units [c * UPC, (c + 1) * UPC) of layer l and
// keeps their weight rows (input and recurrent, GW gate rows a unit) in shared memory and
// their h and c in registers for the whole launch. Step s:
//   1. gather the layer's h_{s-1} (its exchange slot of step s-1, or the initial state) and
//      do the recurrent products: nothing of step s is needed for them, so they run while
//      the step's input is still being made;
//   2. gather the input: layer 0 the embedding row of token s (given, or chosen by the head
//      at step s-1), deeper layers the layer below's h_s; do the input products;
//   3. apply the cell and publish h_s in the layer's exchange slot s & 1.
// The head CTA gathers the last layer's h_s, computes the logits (h_s . head column + bias),
// chooses the token (pick.cuh) unless a forced one (a prompt) overrides it, and publishes it
// for step s + 1.
//
// Every hand-off is a tagged word (flags.cuh): the tag of step s is epoch + s + 1 (epoch:
// the host's count of the steps of earlier launches, so no word left by an earlier launch
// carries a tag of this one), the value an fp32 h or a token; a reader polls each word it
// needs until its tag is the step's. A word that does not arrive within timeout_ns sets the
// error word, and every CTA leaves.
//
// Two slots per exchange are enough: a slot is written again two steps later, and step
// s + 2 needs token s + 2, which the head makes only after every layer finished step s + 1,
// i.e. after every reader of the slot's step-s contents read them.
//
// State: hstate / cstate [LAYERS][BATCH][HID] in the stack's type, read at the start and
// written at the end (the caller chains launches through them; a counter makes every CTA of
// a layer wait until all have read it); tok [BATCH]: the first step's token in, the token
// after the last step out. head_kv [HID][V] (the head weight, k-major), head_b [V].
//
// trace (null, or [grid][TRACE_STEPS][3] times in ns): thread 0 of each CTA records, for the
// first TRACE_STEPS steps, when its h_{s-1} was there (head: h_s), when its input was there
// (head: the token chosen) and when it published h_s (a diagnosis of the hand-offs).
//
// xtab (XTAB=1): the first layer's input products of every table row, [rows][NCTA * RPC]
// (CTA c's rows at c * RPC), made once on the host side: layer 0 then reads its rows' values
// for the token instead of the embedding row and its products.
//
// Compile-time: CELL, IOTYPE, gate indices (rnn_cell.cuh), HID, LAYERS, IN0 (the first
// layer's input size), BATCH, UPC (units a CTA), NCTA (CTAs a layer), GW (gate rows a unit:
// 4 LSTM, 3 GRU, 1 RNN), PEEP, NTHR (threads a CTA), XTAB (the first layer's input products
// from xtab). The head's weights sit in the head CTA's shared memory.

#define FAST_GATES 0
#include "rnn_cell.cuh"
#include "flags.cuh"
#include "pick.cuh"

#define RPC (GW * UPC)  // weight rows a layer CTA holds
#define KINMAX (LAYERS > 1 && HID > IN0 ? HID : IN0)
#define NWARP (NTHR / 32)
#define RPW ((RPC + NWARP - 1) / NWARP)  // rows a warp
#define TRACE_STEPS 64

__host__ __device__ constexpr size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }
// Shared memory of a layer CTA (resident_decode.py computes the same).
// (the R rows start 8 values past a multiple of 8 at most: 16-byte aligned rows for rows_dot)
constexpr size_t LAYER_W_BYTES = align16(((size_t)RPC * (KINMAX + HID) + 8) * sizeof(io_t));

__device__ __forceinline__ void stamp(unsigned long long* trace, int s, int point) {
    if (trace && s < TRACE_STEPS && threadIdx.x == 0) trace[((size_t)blockIdx.x * TRACE_STEPS + s) * 3 + point] = clock_ns();
}
__device__ __forceinline__ u64 tagged(u32 tag, u32 bits) { return ((u64)tag << 32) | bits; }

// Four weights of a row from shared memory (16 bytes in fp32, 8 in fp16 / bf16).
__device__ __forceinline__ void load4(const io_t* p, float* w) {
#if IOTYPE == 0
    const float4 q = *reinterpret_cast<const float4*>(p);
    w[0] = q.x; w[1] = q.y; w[2] = q.z; w[3] = q.w;
#else
    const uint2 q = *reinterpret_cast<const uint2*>(p);
    const u16 e[4] = {(u16)(q.x & 0xffffu), (u16)(q.x >> 16), (u16)(q.y & 0xffffu), (u16)(q.y >> 16)};
#pragma unroll
    for (int i = 0; i < 4; ++i) w[i] = io_load(&e[i]);
#endif
}

// out[r * BATCH + b] = w[r] . v[b] for the RPC rows w [RPC][K] and the rows v [BATCH][K]:
// warp `warp` takes rows warp, warp + NWARP, ... all at once (independent sums), the lanes
// run along K (four values a lane at a time where K allows: rows stay 16-byte aligned).
template <int K>
__device__ __forceinline__ void rows_dot(const io_t* w, const float* v, float* out) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float acc[RPW][BATCH];
#pragma unroll
    for (int i = 0; i < RPW; ++i)
#pragma unroll
        for (int b = 0; b < BATCH; ++b) acc[i][b] = 0.0f;
    if constexpr (K % 4 == 0) {
#pragma unroll 2
        for (int k = lane * 4; k < K; k += 128) {
            float4 vk[BATCH];
#pragma unroll
            for (int b = 0; b < BATCH; ++b) vk[b] = *reinterpret_cast<const float4*>(v + b * K + k);
#pragma unroll
            for (int i = 0; i < RPW; ++i) {
                const int r = warp + i * NWARP;
                if (RPC % NWARP == 0 || r < RPC) {
                    float wk[4];
                    load4(w + (size_t)r * K + k, wk);
#pragma unroll
                    for (int b = 0; b < BATCH; ++b)
                        acc[i][b] += wk[0] * vk[b].x + wk[1] * vk[b].y + wk[2] * vk[b].z + wk[3] * vk[b].w;
                }
            }
        }
    } else {
#pragma unroll 4
        for (int k = lane; k < K; k += 32) {
            float vk[BATCH];
#pragma unroll
            for (int b = 0; b < BATCH; ++b) vk[b] = v[b * K + k];
#pragma unroll
            for (int i = 0; i < RPW; ++i) {
                const int r = warp + i * NWARP;
                if (RPC % NWARP == 0 || r < RPC) {
                    const float wk = io_load(w + (size_t)r * K + k);
#pragma unroll
                    for (int b = 0; b < BATCH; ++b) acc[i][b] += wk * vk[b];
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < RPW; ++i)
#pragma unroll
        for (int b = 0; b < BATCH; ++b)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) acc[i][b] += __shfl_xor_sync(0xffffffffu, acc[i][b], o);
    if (lane == 0) {
#pragma unroll
        for (int i = 0; i < RPW; ++i) {
            const int r = warp + i * NWARP;
            if (RPC % NWARP == 0 || r < RPC)
#pragma unroll
                for (int b = 0; b < BATCH; ++b) out[r * BATCH + b] = acc[i][b];
        }
    }
}

// Waits until `w` carries `tag` (re-reading it from p); false if the error word is set or
// timeout_ns pass first (then it sets the error word).
__device__ __forceinline__ bool await_word(const u64* p, u64& w, u32 tag, u32* err, long long timeout_ns) {
    if ((u32)(w >> 32) == tag) return true;
    const unsigned long long t0 = clock_ns();
    for (;;) {
        spin_pause();
        w = word_load(p);
        if ((u32)(w >> 32) == tag) return true;
        if (flag_load(err) || (long long)(clock_ns() - t0) > timeout_ns) {
            flag_add(err, 1u);
            return false;
        }
    }
}

// dst[i] = the value of slot word i, i < N, once it carries `tag`: every word of a thread
// is loaded at once, then the late ones polled. Ends with a barrier; false on error.
template <int N>
__device__ __forceinline__ bool gather(const u64* slot, float* dst, u32 tag, u32* err, long long timeout_ns) {
    constexpr int EPT = (N + NTHR - 1) / NTHR;
    u64 w[EPT];
#pragma unroll
    for (int e = 0; e < EPT; ++e) {
        const int i = threadIdx.x + e * NTHR;
        w[e] = i < N ? word_load(slot + i) : 0ull;
    }
    bool ok = true;
#pragma unroll
    for (int e = 0; e < EPT; ++e) {
        const int i = threadIdx.x + e * NTHR;
        if (i < N && ok) {
            ok = await_word(slot + i, w[e], tag, err, timeout_ns);
            dst[i] = __uint_as_float((u32)w[e]);
        }
    }
    return __syncthreads_or(!ok) == 0;
}

// Thread 0 waits until *counter >= target (or the error word is set, or timeout_ns pass:
// then it sets the error word); the block learns the outcome.
__device__ __forceinline__ bool wait_for(const u32* counter, u32 target, u32* err, long long timeout_ns) {
    int ok = 1;
    if (threadIdx.x == 0 && flag_load(counter) < target) {
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
    return __syncthreads_or(!ok) == 0;
}

__device__ void head_cta(const float* __restrict__ head_kv, const float* __restrict__ headb, int V, int steps,
                         const float* __restrict__ uniform, float inv_temp, int top_k,
                         const long long* __restrict__ forced, long long* __restrict__ tok,
                         long long* __restrict__ picked, float* __restrict__ logits, const u64* hx_last, u64* tokx,
                         u32 epoch, u32* err, long long timeout_ns, unsigned long long* trace, unsigned char* smem) {
    const int P = V >= NTHR ? 1 : NTHR / V;  // partitions of K a logit is summed in
    float* sy = reinterpret_cast<float*>(smem);  // [BATCH][HID]
    float* z = sy + BATCH * HID;                  // [V]
    float* part = z + V;                          // [P][V] (P * V <= NTHR where P > 1)
    float* wbest = part + NTHR;                   // [NWARP]
    int* wind = reinterpret_cast<int*>(wbest + NWARP);
    int* scount = wind + NWARP;
    float* hw = reinterpret_cast<float*>(smem + align16(4 * ((size_t)BATCH * HID + V + NTHR + 2 * NWARP + 1)));
    for (int i = threadIdx.x; i < V * HID; i += NTHR) hw[i] = head_kv[i];
    const int t = threadIdx.x, per = (HID + P - 1) / P;
    for (int s = 0; s < steps; ++s) {
        stamp(trace, s, 0);
        if (!gather<BATCH * HID>(hx_last + (size_t)(s & 1) * BATCH * HID, sy, epoch + (u32)s + 1u, err, timeout_ns))
            return;
        stamp(trace, s, 1);
        for (int b = 0; b < BATCH; ++b) {
            const float* y = sy + b * HID;
            for (int idx = t; idx < V * P; idx += NTHR) {  // thread (v, q): part q of logit v
                const int v = idx % V, q = idx / V, k1 = min(HID, (q + 1) * per);
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                int k = q * per;
                for (; k + 3 < k1; k += 4) {
                    a0 += y[k] * hw[(size_t)k * V + v];
                    a1 += y[k + 1] * hw[(size_t)(k + 1) * V + v];
                    a2 += y[k + 2] * hw[(size_t)(k + 2) * V + v];
                    a3 += y[k + 3] * hw[(size_t)(k + 3) * V + v];
                }
                for (; k < k1; ++k) a0 += y[k] * hw[(size_t)k * V + v];
                if (P == 1)
                    z[v] = headb[v] + ((a0 + a1) + (a2 + a3));
                else
                    part[q * V + v] = (a0 + a1) + (a2 + a3);
            }
            __syncthreads();
            if (P > 1) {
                for (int v = t; v < V; v += NTHR) {
                    float a = headb[v];
                    for (int q = 0; q < P; ++q) a += part[q * V + v];
                    z[v] = a;
                }
                __syncthreads();
            }
            const float* u = uniform ? uniform + ((size_t)s * BATCH + b) * V : nullptr;
            const int p = block_pick(z, V, u, inv_temp, top_k, wbest, wind, scount);
            if (t == 0) {
                const long long f = forced ? forced[(size_t)s * BATCH + b] : -1;
                const long long next = f >= 0 ? f : p;
                word_store(tokx + (size_t)((s + 1) & 1) * BATCH + b, tagged(epoch + (u32)s + 2u, (u32)next));
                picked[(size_t)s * BATCH + b] = p;
                if (s == steps - 1) tok[b] = next;
            }
            if (s == steps - 1)
                for (int v = t; v < V; v += NTHR) logits[(size_t)b * V + v] = z[v];
        }
        stamp(trace, s, 2);
    }
}

extern "C" __global__ void __launch_bounds__(NTHR, 1)
resident_decode(const io_t* __restrict__ wpack, const float* __restrict__ bpack, const float* __restrict__ table,
                const float* __restrict__ xtab, const float* __restrict__ head_kv, const float* __restrict__ headb, int V, int steps,
                const float* __restrict__ uniform, float inv_temp, int top_k, const long long* __restrict__ forced,
                long long* __restrict__ tok, long long* __restrict__ picked, float* __restrict__ logits,
                io_t* __restrict__ hstate, io_t* __restrict__ cstate, u64* __restrict__ hx, u64* __restrict__ tokx,
                u32* __restrict__ sync, unsigned epoch, float clip, long long timeout_ns,
                unsigned long long* __restrict__ trace) {
    extern __shared__ __align__(16) unsigned char smem[];
    u32* err = sync + LAYERS;
    if ((int)blockIdx.x == LAYERS * NCTA) {
        head_cta(head_kv, headb, V, steps, uniform, inv_temp, top_k, forced, tok, picked, logits,
                 hx + (size_t)(LAYERS - 1) * 2 * BATCH * HID, tokx, epoch, err, timeout_ns, trace, smem);
        return;
    }
    const int l = blockIdx.x / NCTA, cta = blockIdx.x % NCTA, t = threadIdx.x;
    const int kin = l == 0 ? IN0 : HID;
    io_t* ws = reinterpret_cast<io_t*>(smem);  // W rows [RPC][kin], then (aligned) R rows [RPC][HID]
    float* hb = reinterpret_cast<float*>(smem + LAYER_W_BYTES);  // [BATCH][HID]
    float* xb = hb + ((BATCH * HID + 3) & ~3);                    // [BATCH][kin], 16-byte aligned
    float* racc = xb + BATCH * KINMAX;                            // [RPC][BATCH]
    float* xacc = racc + RPC * BATCH;                             // [RPC][BATCH]
    float* bs = xacc + RPC * BATCH;  // W bias [RPC], R bias [RPC], peepholes i, o, f [UPC] each
    int* tks = reinterpret_cast<int*>(bs + 2 * RPC + 3 * UPC);  // [BATCH]

    const size_t wblock = (size_t)RPC * (kin + HID), wpart = (size_t)RPC * kin, rstart = (wpart + 7) & ~(size_t)7;
    const io_t* wsrc = wpack + (l == 0 ? 0 : (size_t)NCTA * RPC * (IN0 + HID) + (size_t)(l - 1) * NCTA * RPC * 2 * HID) +
                       (size_t)cta * wblock;
    for (size_t i = t; i < wblock; i += NTHR) ws[i < wpart ? i : rstart + (i - wpart)] = wsrc[i];
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
    u64* hx_own = hx + (size_t)l * 2 * BATCH * HID;
    const u64* hx_below = l > 0 ? hx + (size_t)(l - 1) * 2 * BATCH * HID : nullptr;
    const io_t* rows_r = ws + rstart;
    for (int s = 0; s < steps; ++s) {
        const u32 tag = epoch + (u32)s + 1u;
        // 1. the layer's h_{s-1} and the recurrent products
        if (s == 0) {
            for (int i = t; i < BATCH * HID; i += NTHR) hb[i] = io_load(hstate + (size_t)l * BATCH * HID + i);
            __syncthreads();
        } else if (!gather<BATCH * HID>(hx_own + (size_t)((s - 1) & 1) * BATCH * HID, hb, tag - 1u, err, timeout_ns)) {
            return;
        }
        stamp(trace, s, 0);
        rows_dot<HID>(rows_r, hb, racc);
        // 2. the input and the input products
        if (l == 0) {
            bool ok = true;
            if (t < BATCH) {
                if (s == 0) {
                    tks[t] = (int)tok[t];
                } else {
                    const u64* p = tokx + (size_t)(s & 1) * BATCH + t;
                    u64 w = word_load(p);
                    ok = await_word(p, w, tag, err, timeout_ns);
                    tks[t] = (int)(u32)w;
                }
            }
            if (__syncthreads_or(!ok)) return;
#if XTAB
            for (int i = t; i < RPC * BATCH; i += NTHR) {
                const int r = i / BATCH, b = i - r * BATCH;
                xacc[i] = xtab[(size_t)tks[b] * (NCTA * RPC) + cta * RPC + r];
            }
            stamp(trace, s, 1);
#else
            for (int i = t; i < BATCH * IN0; i += NTHR) {
                const int b = i / IN0, k = i - b * IN0;
                xb[i] = table[(size_t)tks[b] * IN0 + k];
            }
            stamp(trace, s, 1);
            __syncthreads();
            rows_dot<IN0>(ws, xb, xacc);
#endif
        } else {
            if (!gather<BATCH * HID>(hx_below + (size_t)(s & 1) * BATCH * HID, xb, tag, err, timeout_ns)) return;
            stamp(trace, s, 1);
            rows_dot<HID>(ws, xb, xacc);
        }
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
            word_store(hx_own + (size_t)(s & 1) * BATCH * HID + (size_t)gb * HID + j, tagged(tag, __float_as_uint(h)));
        }
        stamp(trace, s, 2);
    }
    // The state goes back where it came from once every CTA of the layer has read it (at
    // step 0: a one-step launch would otherwise overwrite it under a slower CTA).
    __syncthreads();
    if (t == 0) flag_add(sync + l, 1u);
    if (!wait_for(sync + l, (u32)NCTA, err, timeout_ns)) return;
    if (gate) {
        io_store(hstate + si, h);
#if CELL == 0
        io_store(cstate + si, c);
#endif
    }
}
