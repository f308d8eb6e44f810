// Persistent recurrent kernel: LSTM, GRU (both reset variants) and plain RNN (tanh/relu).
//
// One launch runs every time step of one or more "groups" (a group = one layer x one
// direction). Each CTA owns UPC hidden units of its group and keeps the recurrent weight
// rows of every gate of those units in shared memory for the whole sequence, so R is read
// from device memory once per launch instead of once per step.
//
// Step-to-step exchange: every CTA writes its slice of h_t as 64-bit words
// {float bits, epoch} into a per-step slot of an exchange buffer; consumers spin on the
// tag. Data and tag travel in one single-copy-atomic 64-bit store, so one L2 round trip
// replaces a grid barrier (arrive + release). Every slot is written once per launch, and
// the epoch (bumped by the last CTA to finish) makes stale slots of earlier launches
// unequal to the tag the consumers wait for, so no reset is needed between launches.
//
// Compile-time configuration (set by persistent.py through -D):
//   CELL 0=LSTM 1=GRU 2=RNN-tanh 3=RNN-relu, LBR (GRU linear_before_reset), HID, UPC,
//   BATCH, BCH (batch chunk), NTHR, WTYPE/IOTYPE 0=f32 1=f16 2=bf16, KP (row length
//   padded to 8), KX (row length of in-kernel input weights), NDESC (descriptor fields), and the gate block indices (GI, GO, GF, GC for
//   LSTM; GZ, GR, GH for GRU) derived from the gate-order data in packing.py.
//   STEP_TWO_BARRIER=1 selects the two-barrier step (see the STEP_TWO_BARRIER loop below); 0 keeps the
//   original step with a barrier around every phase. WREG=1 (two-barrier step on tensor
//   cores only) keeps each warp's weight fragments in registers for the whole sequence
//   instead of re-reading them from shared memory every step. SPLITX=1 (two-barrier
//   step) lets a deeper wavefront layer do its input product before it waits on its own
//   h_{t-1}. TF32X3=1 (fp32 weights, two-barrier step) runs the fp32 products on tensor
//   cores as three TF32 passes (see mma_acc).
//
// Launched as a programmatic dependent of the input-projection GEMM just ahead of it
// (persistent.py, launch.py), a CTA starts its prologue while that GEMM finishes: the copies
// of its weights into shared memory and its biases (nothing writes them). grid_dep_wait()
// then holds every read of what kernels write (epoch, lengths, initial state, xp) and every
// global write. Launched the ordinary way the wait does nothing.

#ifndef CELL
#error "CELL must be defined"
#endif

#if CELL == 0
#define NG 4
#elif CELL == 1
#define NG 3
#else
#define NG 1
#endif

#define ROWS (NG * UPC)
#define NWARP (NTHR / 32)

#ifndef STEP_TWO_BARRIER
#define STEP_TWO_BARRIER 0
#endif
#if STEP_TWO_BARRIER && (BATCH > 8 || BCH != BATCH || UPC * BATCH > NTHR || (CELL == 1 && LBR == 0))
#error "STEP_TWO_BARRIER needs one batch chunk of at most 8 rows, UPC*BATCH <= NTHR and no GRU reset-before"
#endif
#ifndef WREG
#define WREG 0
#endif
#ifndef SPLITX
#define SPLITX 0
#endif
#ifndef RESIDENT
#define RESIDENT 0
#endif
#if RESIDENT && !STEP_TWO_BARRIER
#error "RESIDENT needs the two-barrier step"
#endif
#ifndef STEP_LARGE_BATCH
#define STEP_LARGE_BATCH 0
#endif
#ifndef TF32X3
#define TF32X3 0
#endif
#ifndef FUSED
#define FUSED 1  // some group projects its input inside the kernel (plan.KernelConfig.fused)
#endif
// BF16X3=1 (fp32 weights and io; large-batch step, or two-barrier step without in-kernel
// input products): the products as three bf16 tensor-core passes, a*b ~ ah*bh + ah*bl + al*bh
// over operands split into bf16 hi + lo ahead of time: weights on the host (two fragment
// planes, hi then lo), h by its producer (large-batch step: an exchange slot holds a hi
// plane, then a lo plane; two-barrier step: see PACKF). Half the mma work of TF32X3
// (m16n8k16 instead of m16n8k8) and no splitting in the loop, at about 16 instead of 22
// bits per operand. The two-barrier step keeps its weights in shared memory then (no WREG).
#ifndef BF16X3
#define BF16X3 0
#endif
#if BF16X3 && (WTYPE != 0 || IOTYPE != 0 || !(STEP_TWO_BARRIER || STEP_LARGE_BATCH) || TF32X3 || (STEP_TWO_BARRIER && (WREG || RESIDENT || FUSED)))
#error "BF16X3 needs fp32 weights and io on the large-batch step or the two-barrier step (no WREG, no RESIDENT, no in-kernel input products)"
#endif
#define WPLANES (BF16X3 ? 2 : 1)  // weight fragment planes and staged planes (hi, lo)
#if STEP_LARGE_BATCH && (STEP_TWO_BARRIER || (WTYPE == 0 && !TF32X3 && !BF16X3) || BCH != BATCH || (CELL == 1 && LBR == 0) || HID % 8 != 0)
#error "STEP_LARGE_BATCH needs tensor cores, one batch chunk, HID % 8 == 0, no GRU reset-before"
#endif
#if TF32X3 && (WTYPE != 0 || !(STEP_TWO_BARRIER || STEP_LARGE_BATCH))
#error "TF32X3 needs fp32 weights on the two-barrier or large-batch step"
#endif
// Either step that is not the original one (both end a step with two barriers, not one per phase).
#define NEWER_STEP (STEP_TWO_BARRIER || STEP_LARGE_BATCH)
#if WREG && !(NEWER_STEP && (WTYPE != 0 || TF32X3 || BF16X3))
#error "WREG needs the two-barrier step on tensor cores"
#endif
// WPART=n (two-barrier or large-batch step without in-kernel input products): the first n
// K steps of each warp's recurrent fragments live in registers, the rest in shared memory
// (a compact [row tile][K slice][step][lane] block). For weights too large for either
// alone (fp32 H=1024: 128 KB a CTA), it frees shared memory for staged rows and takes part
// of the weight stream off shared memory.
#ifndef WPART
#define WPART 0
#endif
#if WPART && (WREG || !(STEP_TWO_BARRIER || STEP_LARGE_BATCH) || FUSED || RESIDENT)
#error "WPART needs the two-barrier or large-batch step without in-kernel input products, and not WREG"
#endif
// RING_SLOTS=n (large-batch step without in-kernel input products): staged rows go through a
// ring of n copy groups instead of all rows at once; a group's slot is refilled once its
// products are done. 0: every group has its own slot.
#ifndef RING_SLOTS
#define RING_SLOTS 0
#endif
#if RING_SLOTS && (!STEP_LARGE_BATCH || FUSED)
#error "RING_SLOTS needs the large-batch step without in-kernel input products"
#endif
// BULK=n (large-batch step, every row staged): a step's rows (own h, and a deeper wavefront
// layer's input, the layer below's h) come by bulk copies (cp.async.bulk, one per batch row
// and plane, completing on one mbarrier per copy group and source) instead of 16-byte
// cp.async from every thread. n > 1: the CTAs run in clusters of n, and each row is read from
// L2 once per cluster and multicast into every CTA of it (each CTA issues the rows r with
// r % n == its rank), so L2 delivers 1/n of the bytes.
#ifndef BULK
#define BULK 0
#endif
#if BULK && (!STEP_LARGE_BATCH || RING_SLOTS)
#error "BULK needs the large-batch step with every row staged"
#endif

// fp16/bf16 weights run the products on tensor cores (mma.m16n8k16, fp32 accumulate):
// weights are packed in fragment order (packing.to_mma_fragments), the staged h/x vectors
// are fp16/bf16 [8 batch rows][K + 8] (the +8 keeps the B-fragment loads conflict-free).
// fp32 weights use tensor cores too under TF32X3 (mma.m16n8k8 on fp32 staging rows
// [8][K + 4]), else CUDA-core FMAs on fp32 staging vectors.
#if WTYPE != 0 || TF32X3 || BF16X3
#define USE_MMA 1
// K per mma and elements of one lane's 16-byte A fragment.
#define MMA_K (TF32X3 ? 8 : 16)
#define FRAG_E (TF32X3 ? 4 : 8)
#define MT ((ROWS + 15) / 16)
#define ROWS_P (MT * 16)
// Staged batch rows: one 8-column n-tile (two-barrier step), NBT of them (large batch).
#define NBT (STEP_LARGE_BATCH ? (BATCH + 7) / 8 : 1)
#ifndef NT_UNROLL
#define NT_UNROLL 2  // two n-tiles in flight: independent mma chains hide each other's latency
#endif
// Large-batch step: n-tiles per copy group (LARGE_BATCH_NOPIPE: one group, every copy lands before
// the first product), copy groups per step and staging slots (RING_SLOTS, ring).
#ifdef LARGE_BATCH_NOPIPE
#undef GROUP_TILES
#define GROUP_TILES NBT
#elif !defined(GROUP_TILES)
#define GROUP_TILES NT_UNROLL
#endif
#define NGROUPS ((NBT + GROUP_TILES - 1) / GROUP_TILES)
#define STAGE_RING (RING_SLOTS > 0 && RING_SLOTS < NGROUPS)
#define STAGE_SLOTS (STAGE_RING ? RING_SLOTS : NGROUPS)
#define STG_ROWS (STAGE_RING ? 8 * GROUP_TILES * RING_SLOTS : 8 * NBT)
#define LDH (KP + (TF32X3 ? 4 : 8))
// BF16X3: the lo planes sit this many elements after the hi ones (staged rows; weight
// fragments in shared memory, compact under WPART).
#define HS_PLANE (STG_ROWS * LDH)
#define RS_PLANE (WPART ? MT * KSPLIT_M * (NIT_R - WPART) * 32 * FRAG_E : ROWS_P * KP)
#define LDX (KX + (TF32X3 ? 4 : 8))
// BF16X3: lo planes of the in-kernel input weights and of the staged input rows.
#define WS_PLANE (ROWS_P * KX)
#define XS_PLANE (STG_ROWS * LDX)
// MT_SHARE=1 (large-batch step, fragments in registers): every warp multiplies all MT row
// tiles over its own K slice (NWARP slices), so each staged value it loads from shared
// memory feeds MT mma instead of one; otherwise a warp owns one row tile and one of
// NWARP / MT K slices, and the warps of different tiles load the same values.
#ifndef MT_SHARE
#define MT_SHARE 0
#endif
#if MT_SHARE && !(STEP_LARGE_BATCH && WREG && !WPART)
#error "MT_SHARE needs the large-batch step with every fragment in registers"
#endif
#define KSPLIT_M (MT_SHARE ? NWARP : ((NWARP / MT) > 0 ? (NWARP / MT) : 1))
// Row tiles whose fragments one warp holds in registers.
#define FRAG_TILES (MT_SHARE ? MT : 1)
// Per warp: NIT_R (NIT_X) K steps of the recurrent (input) product per row tile it owns.
#define NIT_R ((KP / MMA_K + KSPLIT_M - 1) / KSPLIT_M)
#define NIT_X ((KX / MMA_K + KSPLIT_M - 1) / KSPLIT_M)
// Registers for input-weight fragments only where some group projects its input in the
// kernel (FUSED); otherwise one unused slot instead of NIT_X.
#define NIT_XR (FUSED ? NIT_X : 1)
// Large-batch step: the initial h/c go to registers before the first product, so they
// can borrow the partial-sum space instead of their own (fp32 H=1024 batch 64 needs it).
#define STATE_IN_RED (STEP_LARGE_BATCH && 2 * UPC * BATCH <= MT * KSPLIT_M * 128 * NBT)
#if WPART && ((KP / MMA_K) % KSPLIT_M != 0 || WPART >= NIT_R || MT > NWARP)
#error "WPART needs K steps divisible among the warps of a row tile, fewer than NIT_R, one row tile per warp"
#endif
#if WREG && MT > NWARP && !MT_SHARE
#error "WREG needs at most one row tile per warp"
#endif
#else
#define USE_MMA 0
#define STATE_IN_RED 0
#define ROWS_P ROWS
#define STG_ROWS BCH
#define LDH KP
#define HS_PLANE (STG_ROWS * LDH)
#define LDX KX
#define XS_PLANE (STG_ROWS * LDX)
#endif

#define FAST_GATES (NEWER_STEP && WTYPE != 0)
#include "rnn_cell.cuh"
#include "pdl.cuh"

// xp_t: the type a launch reads its input projections (the GEMM's output) in: PTYPE, default
// the stack's own; 0 (fp32) where an fp16/bf16 stack's projection runs as one TF32 GEMM
// straight from fp32 x (projection.py, mode "tf32": no cast of x ahead of it).
#ifndef PTYPE
#define PTYPE IOTYPE
#endif
#if PTYPE == IOTYPE
typedef io_t xp_t;
__device__ __forceinline__ float xp_load(const xp_t* p) { return io_load(p); }
#elif PTYPE == 0
typedef float xp_t;
__device__ __forceinline__ float xp_load(const xp_t* p) { return *p; }
#else
#error "PTYPE: the stack's own type or 0 (fp32)"
#endif

// One launch a layer writes y of the layers below the last in the stack's own type (YTYPE:
// the next layer's projection reads them) and the last layer's y, like hn and cn, in OTYPE.
#if WTYPE == 0 && !BF16X3
typedef float wt_t;
#else
typedef u16 wt_t;  // fp16/bf16 weights, or BF16X3's bf16 planes
#endif

#if TF32X3
typedef float stage_t;
// x moved to the nearest "TF32 pair": hi (x truncated to TF32, a 10-bit mantissa) plus lo
// (the rest, rounded to TF32). Such a value splits into two exact TF32 numbers with a mask
// and a subtraction (split_pair), so the products split each operand in two instructions;
// the rounding moves x by at most 2^-22 |x|. Staged h/x get it here, weights on the host
// (packing.round_tf32_pair). hi + lo spans at most 22 significant bits: exact in fp32.
__device__ __forceinline__ float tf32_pair(float x) {
    const u32 hi = __float_as_uint(x) & 0xffffe000u;
    const float lo = x - __uint_as_float(hi);
    return __uint_as_float(hi) + __uint_as_float((__float_as_uint(lo) + 0x1000u) & 0xffffe000u);
}
__device__ __forceinline__ stage_t to_stage(float v) { return tf32_pair(v); }
#elif USE_MMA
typedef u16 stage_t;
__device__ __forceinline__ stage_t to_stage(float v) {
#if WTYPE == 1
    return f32_to_f16(v);
#else
    return f32_to_bf16(v);
#endif
}
#else
typedef float stage_t;
__device__ __forceinline__ stage_t to_stage(float v) { return v; }
#endif

// Stage v at p: its staged value, and under BF16X3 the bf16 remainder `plane` elements
// further on (default: the staged rows' lo plane).
__device__ __forceinline__ void stage_hl(stage_t* p, float v, size_t plane = HS_PLANE) {
    p[0] = to_stage(v);
#if BF16X3
    p[plane] = to_stage(v - bf16_to_f32(p[0]));
#else
    (void)plane;
#endif
}

// Eight consecutive weights of one row, widened to fp32.
__device__ __forceinline__ void load8(const wt_t* p, float w[8]) {
#if WTYPE == 0
    float4 a = *reinterpret_cast<const float4*>(p);
    float4 b = *reinterpret_cast<const float4*>(p + 4);
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
    w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
#else
    uint4 v = *reinterpret_cast<const uint4*>(p);
    u32 q[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#if WTYPE == 1
        w[2 * i] = f16_to_f32((u16)(q[i] & 0xffffu));
        w[2 * i + 1] = f16_to_f32((u16)(q[i] >> 16));
#else
        w[2 * i] = __uint_as_float(q[i] << 16);
        w[2 * i + 1] = __uint_as_float(q[i] & 0xffff0000u);
#endif
    }
#endif
}

// ---- exchange words ---------------------------------------------------------------
__device__ __forceinline__ u64 ld_relaxed(const u64* p) {
    u64 v;
    asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_relaxed(u64* p, u64 v) {
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ u64 pack(float h, u32 epoch) {
    return ((u64)epoch << 32) | (u64)__float_as_uint(h);
}

// ---- descriptor fields (one row of NDESC long longs per group) ----------------------
enum {
    D_R = 0, D_W, D_RB, D_WB, D_P, D_XP, D_XP_STRIDE, D_H0, D_C0, D_Y, D_Y_TSTRIDE,
    D_HN, D_CN, D_EX, D_IN_EX, D_EX2, D_CTA_BEGIN, D_NCTA, D_REVERSE, D_SEQLEN,
    D_FEED, D_TIMEOUT_NS,  // RESIDENT: this group feeds x from the host; idle timeout
    D_SLOTS,               // steps the exchange buffer holds
    D_OSTRIDE              // batch strides of y (low 32 bits) and of hn/cn (high 32 bits); 0: HID
};

// Gather BCH batch rows [c0, c0+BCH) of a step's exchange slot into smem (fp32), spinning
// until every word carries this launch's epoch. All loads are issued before any is waited
// on, so the wait costs one L2 round trip, not one per element.
#define EPT ((BCH * HID + NTHR - 1) / NTHR)

// Exchange word format. fp16/bf16 two-barrier builds carry two units' h per word, already
// in the staging type the products read ({lo: unit 2k, hi: unit 2k+1, tag}): half the
// words to move and poll per step, and no precision change (the consumer would round h to
// the staging type anyway). The two values come from neighbouring gate threads of one warp
// (shuffle), hence the conditions. Otherwise one fp32 h per word ({h, tag}).
//
// fp32 under TF32X3 (per-step slots, not streaming; where the planner asks for it with
// PACKF_REQ: it pays where a CTA gathers many values) packs two units' h per word as well:
// {lo: unit 2k, hi: unit 2k+1}, each the TF32 pair the consumer stages (to_stage) rounded
// to 31 bits, whose lowest bit carries the launch's tag, the parity of the epoch. Parity is enough because every slot is rewritten by every launch of its
// stack and the stack's epoch moves on by one per launch (a launch shorter than the
// buffer still stamps the rest: see the step loop's tail); zeroed memory never matches
// the first epoch, 1.
#define PAIR_OK ((HID % 2 == 0) && (UPC % 2 == 0) && (32 % (2 * BATCH) == 0) && !defined(NO_PACK2))
#ifndef PACKF_REQ
#define PACKF_REQ 0
#endif
#if STEP_TWO_BARRIER && (TF32X3 || BF16X3) && !RESIDENT && PAIR_OK && PACKF_REQ
#define PACKF 1
#else
#define PACKF 0
#endif
// fp16/bf16 pack where a slot holds at least 2048 values: at batch 1 (H <= 1024) one h per
// word was as fast or faster on an H200 (GRU H=512 T=100: 134 vs 145 us, LSTM H=256: 144
// vs 159 us), at batch 8 packing wins (LSTM H=256: 192 vs 235 us, H=512: 259 vs 375 us).
#if STEP_TWO_BARRIER && USE_MMA && (PACKF || (!TF32X3 && !BF16X3 && BATCH * HID >= 2048)) && PAIR_OK
#define PACK2 1
#define EXW (BATCH * HID / 2)
#else
#define PACK2 0
#define EXW (BATCH * HID)
#endif
// The tag a word carries, and the tag a consumer of this launch waits for.
__device__ __forceinline__ u32 word_tag(u64 v) {
#if PACKF
    return (u32)v & 1u;
#else
    return (u32)(v >> 32);
#endif
}
__device__ __forceinline__ u32 want_tag(u32 epoch) { return PACKF ? (epoch & 1u) : epoch; }
#if PACKF && BF16X3
// BF16X3: a word is {lo: the two units' bf16 lo parts, hi: their bf16 hi parts}, the
// lowest bit (of the first unit's lo part, about 2^-16 of h) carrying the tag; the
// consumer copies both halves into the hi and lo staging planes as they are.
__device__ __forceinline__ u64 packed_hl(float h, float hp, u32 bit) {
    const u32 hh = f32_to_bf16(h), hph = f32_to_bf16(hp);
    const u32 lo = ((u32)f32_to_bf16(h - bf16_to_f32((u16)hh)) & ~1u) | bit;
    const u32 lop = f32_to_bf16(hp - bf16_to_f32((u16)hph));
    return ((u64)(hh | (hph << 16)) << 32) | (lo | (lop << 16));
}
#elif PACKF
// h as the consumer stages it (a TF32 pair), rounded to 31 bits (a pair's lo may end in the
// lowest bit; rounding it off keeps a pair), with `bit` in the lowest bit.
__device__ __forceinline__ u32 tagged31(float h, u32 bit) { return ((__float_as_uint(to_stage(h)) + 1u) & ~1u) | bit; }
#endif
#define EPW ((EXW + NTHR - 1) / NTHR)
// Word w of a step's exchange slot into the staging rows (stride ld).
__device__ __forceinline__ void unpack_store(u64 v, int w, stage_t* dst, int ld) {
#if PACKF && BF16X3
    const int b = w / (HID / 2), k = 2 * (w - b * (HID / 2));
    *reinterpret_cast<u32*>(dst + b * ld + k) = (u32)(v >> 32);
    *reinterpret_cast<u32*>(dst + HS_PLANE + b * ld + k) = (u32)v & ~1u;
#elif PACKF
    const int b = w / (HID / 2), k = 2 * (w - b * (HID / 2));
    *reinterpret_cast<uint2*>(dst + b * ld + k) = make_uint2((u32)v & ~1u, (u32)(v >> 32) & ~1u);
#elif PACK2
    const int b = w / (HID / 2), k = 2 * (w - b * (HID / 2));
    *reinterpret_cast<u32*>(dst + b * ld + k) = (u32)v;
#else
    const int b = w / HID, k = w - b * HID;
    stage_hl(dst + b * ld + k, __uint_as_float((u32)v));
#endif
}
// Publish this thread's h of (unit gu, batch gb) into a step's exchange slot. With PACK2
// every thread of the block must call it (warp shuffle); `act` says whether the thread
// owns a unit.
__device__ __forceinline__ void publish_h(u64* slot, float h, bool act, int gu, int gb, int gj, u32 tag) {
#if PACK2
    const float hp = __shfl_down_sync(0xffffffffu, h, BATCH);  // unit gu + 1, same batch row
    if (act && (gu & 1) == 0) {
#if PACKF && BF16X3
        const u64 w = packed_hl(h, hp, tag & 1u);
#elif PACKF
        const u64 w = ((u64)tagged31(hp, tag & 1u) << 32) | tagged31(h, tag & 1u);
#else
        const u64 w = ((u64)tag << 32) | ((u32)to_stage(h) | ((u32)to_stage(hp) << 16));
#endif
        st_relaxed(slot + (size_t)gb * (HID / 2) + gj / 2, w);
    }
#else
    (void)gu;
    if (act) st_relaxed(slot + (size_t)gb * HID + gj, ((u64)tag << 32) | (u64)__float_as_uint(h));
#endif
}

// Polling helpers. A thread issues the loads of all its words of a slot first, then
// re-polls every word not ready yet in one pass, so a pass costs one L2 round trip for all
// of them (polling word by word would queue the round trips). Thread t owns words
// t, t + NTHR, ... of the first `total` words at `slot`.
template <int N>
__device__ __forceinline__ void issue_words(const u64* slot, u64 (&v)[N], int total) {
#pragma unroll
    for (int e = 0; e < N; ++e)
        if ((int)threadIdx.x + e * NTHR < total) v[e] = ld_relaxed(slot + threadIdx.x + e * NTHR);
}
// One pass: reload every word whose tag (under `mask`) is not `tag`; true while any was not.
template <int N>
__device__ __forceinline__ bool repoll(const u64* slot, u64 (&v)[N], int total, u32 tag, u32 mask = 0xffffffffu) {
    bool pending = false;
#pragma unroll
    for (int e = 0; e < N; ++e) {
        const int idx = threadIdx.x + e * NTHR;
        if (idx < total && (word_tag(v[e]) & mask) != tag) {
            v[e] = ld_relaxed(slot + idx);
            pending = true;
        }
    }
    return pending;
}
#define SPIN_WHILE(cond) while (cond) {}

// Gather batch rows [c0, c0 + BCH) of a step's exchange slot into the staging rows (stride
// ld), spinning until every word carries `epoch`. The two-barrier step has one batch chunk
// (c0 == 0) and maybe packed words; the original step one fp32 h per word.
__device__ __forceinline__ void gather(const u64* slot, int c0, stage_t* dst, int ld, u32 epoch) {
#if STEP_TWO_BARRIER
    (void)c0;
    u64 v[EPW];
    issue_words(slot, v, EXW);
    SPIN_WHILE(repoll(slot, v, EXW, want_tag(epoch)));
#pragma unroll
    for (int e = 0; e < EPW; ++e)
        if ((int)threadIdx.x + e * NTHR < EXW) unpack_store(v[e], threadIdx.x + e * NTHR, dst, ld);
#else
    const u64* base = slot + (size_t)c0 * HID;
    const int total = min(BCH, BATCH - c0) * HID;
    u64 v[EPT];
    issue_words(base, v, total);
    SPIN_WHILE(repoll(base, v, total, epoch));
#pragma unroll
    for (int e = 0; e < EPT; ++e) {
        const int idx = threadIdx.x + e * NTHR;
        if (idx < total) {
            const int b = idx / HID, k = idx - b * HID;
            dst[b * ld + k] = to_stage(__uint_as_float((u32)v[e]));
        }
    }
#endif
}

#if STEP_TWO_BARRIER
// gather() of two slots at once (one batch chunk): a deeper wavefront layer needs its own
// h_{t-1} and the layer below's h_t; issuing both slots' loads before waiting on either
// costs one L2 round trip instead of two in a row.
#define PAIR_GATHER (2 * EPW <= 16)
#define EPTX ((BATCH * KX + NTHR - 1) / NTHR)
__device__ __forceinline__ void gather_pair(const u64* sa, stage_t* da, int lda, const u64* sb, stage_t* db,
                                            int ldb, u32 epoch) {
    u64 va[EPW], vb[EPW];
    issue_words(sa, va, EXW);
    issue_words(sb, vb, EXW);
    const u32 want = want_tag(epoch);
    SPIN_WHILE(repoll(sa, va, EXW, want) | repoll(sb, vb, EXW, want));  // `|`: poll both every pass
#pragma unroll
    for (int e = 0; e < EPW; ++e) {
        const int idx = threadIdx.x + e * NTHR;
        if (idx < EXW) {
            unpack_store(va[e], idx, da, lda);
            unpack_store(vb[e], idx, db, ldb);
        }
    }
}
#endif

// Initial state (or zeros) into smem, same layout as gather().
__device__ __forceinline__ void load_init(const io_t* h0, int c0, stage_t* dst) {
    for (int idx = threadIdx.x; idx < BCH * HID; idx += NTHR) {
        int b = idx / HID, k = idx - b * HID;
        if (c0 + b < BATCH) stage_hl(dst + b * LDH + k, h0 ? io_load(h0 + (size_t)(c0 + b) * HID + k) : 0.0f);
    }
}

// out[r][c0+b] = rows[r] . vec[b] for r in [0, nrows). Warp w owns RB consecutive rows and
// computes them together, so every staged h value read from shared memory feeds RB rows
// (one h read per RB weights) and the RB shuffle reductions overlap instead of queueing.
template <int RB, int KLEN>
__device__ __forceinline__ void dot_rows(const wt_t* rows, const float* vec, float* out, int nrows, int c0) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = warp * RB;
    if (r0 >= nrows) return;
    float acc[RB][BCH];
#pragma unroll
    for (int q = 0; q < RB; ++q)
#pragma unroll
        for (int b = 0; b < BCH; ++b) acc[q][b] = 0.0f;
#pragma unroll 2
    for (int k = lane * 8; k < KLEN; k += 256) {
        float x[BCH][8];
#pragma unroll
        for (int b = 0; b < BCH; ++b) {
            const float4 x0 = *reinterpret_cast<const float4*>(vec + b * KLEN + k);
            const float4 x1 = *reinterpret_cast<const float4*>(vec + b * KLEN + k + 4);
            x[b][0] = x0.x; x[b][1] = x0.y; x[b][2] = x0.z; x[b][3] = x0.w;
            x[b][4] = x1.x; x[b][5] = x1.y; x[b][6] = x1.z; x[b][7] = x1.w;
        }
#pragma unroll
        for (int q = 0; q < RB; ++q) {
            if (r0 + q < nrows) {
                float w[8];
                load8(rows + (size_t)(r0 + q) * KLEN + k, w);
#pragma unroll
                for (int b = 0; b < BCH; ++b) {
                    float a = acc[q][b];
#pragma unroll
                    for (int e = 0; e < 8; ++e) a = fmaf(w[e], x[b][e], a);
                    acc[q][b] = a;
                }
            }
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int q = 0; q < RB; ++q)
#pragma unroll
            for (int b = 0; b < BCH; ++b) acc[q][b] += __shfl_xor_sync(0xffffffffu, acc[q][b], o);
    if (lane == 0) {
#pragma unroll
        for (int q = 0; q < RB; ++q)
#pragma unroll
            for (int b = 0; b < BCH; ++b)
                if (r0 + q < nrows && c0 + b < BATCH) out[(r0 + q) * BATCH + c0 + b] = acc[q][b];
    }
}

// Input rows x_t of the first layer into smem (fp32), per batch row at its own time index.
__device__ __forceinline__ void load_x(const x_t* x, int kx, int s, int reverse, const int* lens, int c0, stage_t* dst) {
    for (int idx = threadIdx.x; idx < BCH * kx; idx += NTHR) {
        int b = idx / kx, k = idx - b * kx;
        if (c0 + b < BATCH) {
            int len = lens[c0 + b];
            int t = reverse ? max(len - 1 - s, 0) : s;
            stage_hl(dst + b * LDX + k, x_load(x + ((size_t)t * BATCH + c0 + b) * kx + k), XS_PLANE);
        }
    }
}

#define RB_ALL ((ROWS + NWARP - 1) / NWARP)
#define RB_UNIT ((UPC + NWARP - 1) / NWARP)

#if USE_MMA
#if TF32X3
__device__ __forceinline__ void mma_tf32(float c[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
// x = hi + lo exactly for a TF32 pair (tf32_pair): hi by the mask, lo the (exact) rest.
__device__ __forceinline__ void split_pair(u32 x, u32& hi, u32& lo) {
#ifdef TF32_SPLIT_ROUND  // timing comparison: round both parts at every use instead
    hi = (x + 0x1000u) & 0xffffe000u;
    lo = (__float_as_uint(__uint_as_float(x) - __uint_as_float(hi)) + 0x1000u) & 0xffffe000u;
#else
    hi = x & 0xffffe000u;
    lo = __float_as_uint(__uint_as_float(x) - __uint_as_float(hi));
#endif
}
#endif
// A 16x8 accumulator tile (lane: rows g, g+8 x columns 2t, 2t+1). TF32X3 keeps the small
// terms in a second tile, so a K step's three passes form two dependency chains, not one.
#if TF32X3 || BF16X3
struct acc_t { float v[4] = {0.f, 0.f, 0.f, 0.f}; float lo[4] = {0.f, 0.f, 0.f, 0.f}; };
__device__ __forceinline__ float acc_get(const acc_t& c, int i) { return c.v[i] + c.lo[i]; }
#else
struct acc_t { float v[4] = {0.f, 0.f, 0.f, 0.f}; };
__device__ __forceinline__ float acc_get(const acc_t& c, int i) { return c.v[i]; }
#endif

// c += A (16 x MMA_K fragment a) * B (MMA_K x 8 fragment b0, b1), fp32 accumulate.
// TF32X3: fp32 as hi + lo TF32 parts, a*b ~ ah*bh + ah*bl + al*bh (al*bl, ~2^-22 of a*b,
// is dropped): about fp32 accuracy at three tensor-core passes.
__device__ __forceinline__ void mma_acc(acc_t& acc, const uint4& a, u32 b0, u32 b1) {
    float* c = acc.v;
#if TF32X3
    u32 ah0, al0, ah1, al1, ah2, al2, ah3, al3, bh0, bl0, bh1, bl1;
    split_pair(a.x, ah0, al0);
    split_pair(a.y, ah1, al1);
    split_pair(a.z, ah2, al2);
    split_pair(a.w, ah3, al3);
    split_pair(b0, bh0, bl0);
    split_pair(b1, bh1, bl1);
    float* cl = acc.lo;  // same speed as one chain on an H200, and closer to fp32
    mma_tf32(cl, al0, al1, al2, al3, bh0, bh1);
    mma_tf32(cl, ah0, ah1, ah2, ah3, bl0, bl1);
    mma_tf32(c, ah0, ah1, ah2, ah3, bh0, bh1);
#elif WTYPE == 1
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
#endif
}
#if BF16X3
__device__ __forceinline__ void mma_bf16(float c[4], const uint4& a, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
}
// c += (ah + al)(bh + bl) without al*bl (about 2^-16 of a*b): three bf16 passes, the small
// terms in their own accumulator.
__device__ __forceinline__ void mma_acc3(acc_t& acc, const uint4& ah, const uint4& al, u32 bh0, u32 bh1, u32 bl0,
                                         u32 bl1) {
    mma_bf16(acc.lo, al, bh0, bh1);
    mma_bf16(acc.lo, ah, bl0, bl1);
    mma_bf16(acc.v, ah, bh0, bh1);
}
#endif

// out[r][c0+n] = rows[r] . vec[n] on tensor cores. Warps split the K dimension of each
// 16-row tile (MT tiles x KSPLIT slices), partial sums are reduced through smem `red`.
template <int KLEN, int LDV>
__device__ __forceinline__ void dot_mma(const wt_t* frag, const stage_t* vec, float* out, int nrows, int c0,
                                        float* red) {
    constexpr int KS = KLEN / MMA_K;
    constexpr int KSPLIT = KSPLIT_M;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    __syncthreads();  // `red` may still be read by the previous call's reduction
    for (int tile = warp; tile < MT * KSPLIT; tile += NWARP) {
        const int mt = tile % MT, ksl = tile / MT;
        acc_t c, d;
        int ks = ksl;
#pragma unroll 2
        for (; ks + KSPLIT < KS; ks += 2 * KSPLIT) {
            const uint4 a0 = *reinterpret_cast<const uint4*>(frag + ((size_t)(mt * KS + ks) * 32 + lane) * FRAG_E);
            const uint4 a1 = *reinterpret_cast<const uint4*>(frag + ((size_t)(mt * KS + ks + KSPLIT) * 32 + lane) * FRAG_E);
            const stage_t* v0 = vec + g * LDV + ks * MMA_K + t * (MMA_K / 8);
            const stage_t* v1 = v0 + KSPLIT * MMA_K;
            mma_acc(c, a0, *reinterpret_cast<const u32*>(v0), *reinterpret_cast<const u32*>(v0 + MMA_K / 2));
            mma_acc(d, a1, *reinterpret_cast<const u32*>(v1), *reinterpret_cast<const u32*>(v1 + MMA_K / 2));
        }
        if (ks < KS) {
            const uint4 a0 = *reinterpret_cast<const uint4*>(frag + ((size_t)(mt * KS + ks) * 32 + lane) * FRAG_E);
            const stage_t* v0 = vec + g * LDV + ks * MMA_K + t * (MMA_K / 8);
            mma_acc(c, a0, *reinterpret_cast<const u32*>(v0), *reinterpret_cast<const u32*>(v0 + MMA_K / 2));
        }
        float* rr = red + (size_t)(ksl * MT + mt) * 128;
        rr[g * 8 + 2 * t] = acc_get(c, 0) + acc_get(d, 0);
        rr[g * 8 + 2 * t + 1] = acc_get(c, 1) + acc_get(d, 1);
        rr[(g + 8) * 8 + 2 * t] = acc_get(c, 2) + acc_get(d, 2);
        rr[(g + 8) * 8 + 2 * t + 1] = acc_get(c, 3) + acc_get(d, 3);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < MT * 16 * 8; i += NTHR) {
        const int row = i >> 3, n = i & 7;
        const int mt = row >> 4, rl = row & 15;
        if (row < nrows && n < BCH && c0 + n < BATCH) {
            float acc = 0.f;
#pragma unroll
            for (int k = 0; k < KSPLIT; ++k) acc += red[(size_t)(k * MT + mt) * 128 + rl * 8 + n];
            out[row * BATCH + c0 + n] = acc;
        }
    }
}
#define DOT_H(rows, vec, out, nrows, c0) dot_mma<KP, LDH>(rows, vec, out, nrows, c0, red)
#define DOT_X(rows, vec, out, nrows, c0) dot_mma<KX, LDX>(rows, vec, out, nrows, c0, red)
#else
#define DOT_H(rows, vec, out, nrows, c0) dot_rows<RB_ALL, KP>(rows, vec, out, nrows, c0)
#define DOT_X(rows, vec, out, nrows, c0) dot_rows<RB_ALL, KX>(rows, vec, out, nrows, c0)
#endif

#if USE_MMA && NEWER_STEP
// Two scalar stores: `red` is only 4-byte aligned for some tilings (its offset in the
// carve-up depends on UPC and BATCH).
__device__ __forceinline__ void put2(float* p, float a, float b) {
    p[0] = a;
    p[1] = b;
}

#if MT_SHARE
// One K step of every row tile (MT_SHARE) on the staged B fragment at v (its lo plane VPL_
// further on under BF16X3); a tile's fragments are a[mt * P + it] (al: their lo planes).
template <int P, size_t VPL_>
__device__ __forceinline__ void share_step(acc_t (&c)[MT], const uint4* a, const uint4* al, const stage_t* v, int it) {
    const u32 b0 = *reinterpret_cast<const u32*>(v), b1 = *reinterpret_cast<const u32*>(v + MMA_K / 2);
#if BF16X3
    const u32 l0 = *reinterpret_cast<const u32*>(v + VPL_), l1 = *reinterpret_cast<const u32*>(v + VPL_ + MMA_K / 2);
#else
    (void)al;
#endif
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#if BF16X3
        mma_acc3(c[mt], a[mt * P + it], al[mt * P + it], b0, b1, l0, l1);
#else
        mma_acc(c[mt], a[mt * P + it], b0, b1);
#endif
    }
}
#endif

// Recurrent and input products of one step in one tensor-core pass (STEP_TWO_BARRIER). Warp w owns
// row tile mt and K slice ksl for both products; R and W mma chains are interleaved into
// four independent accumulators, so the tensor pipe never waits on a single chain. The
// KSPLIT partial sums stay in `red`/`redx`: the gate threads add them up themselves, which
// saves the reduction pass and its two barriers.
// WITH_X: also the input product. Where the K steps divide evenly among the KSPLIT warps
// of a row tile (the usual case) every iteration's guard is a compile-time constant, so
// the loop is straight-line code and all shared-memory loads can be issued ahead of the
// mma chain instead of one basic block at a time.
// With WREG the A fragments come from the registers `ar`/`ax` the warp loaded once
// (load_frags) instead of from shared memory.
// RPL/VPL: where the lo planes of `fr` and `hv` sit (BF16X3; the input product's own
// planes are WS_PLANE/XS_PLANE, `axl` its lo fragments in registers).
template <int KR, int LDR, int KXL, int LDXL, bool WITH_X, size_t RPL = RS_PLANE, size_t VPL = HS_PLANE>
__device__ __forceinline__ void dot_two_barrier(const wt_t* fr, const stage_t* hv, const wt_t* fx, const stage_t* xv,
                                       float* red, float* redx, const uint4* ar, const uint4* ax,
                                       const uint4* arl = nullptr, const uint4* axl = nullptr) {
    constexpr int KSR = KR / MMA_K, KSX = KXL / MMA_K;
    constexpr int KSPLIT = KSPLIT_M;
    constexpr int KSM = (KSR > KSX && WITH_X) || !WITH_X ? KSR : KSX;
    constexpr int NIT = (KSM + KSPLIT - 1) / KSPLIT;
    constexpr bool RDIV = KSR % KSPLIT == 0, XDIV = KSX % KSPLIT == 0;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
#if MT_SHARE
    {
        // Warp `warp` = K slice; each staged pair of B registers feeds every row tile, whose
        // fragments sit at ar[mt * PR + it] (load_frags). The MT accumulators are the
        // independent chains.
        const int ksl = warp;
        constexpr int PR = (KSR + KSPLIT - 1) / KSPLIT, PX = (KSX + KSPLIT - 1) / KSPLIT;  // fragments a tile
        acc_t c[MT], e[MT];
#pragma unroll
        for (int it = 0; it < NIT; ++it) {
            const int ks = ksl + it * KSPLIT;
            if (RDIV ? (it < KSR / KSPLIT) : (ks < KSR))
                share_step<PR, VPL>(c, ar, arl, hv + g * LDR + ks * MMA_K + t * (MMA_K / 8), it);
            if (WITH_X && (XDIV ? (it < KSX / KSPLIT) : (ks < KSX)))
                share_step<PX, XS_PLANE>(e, ax, axl, xv + g * LDXL + ks * MMA_K + t * (MMA_K / 8), it);
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            const size_t base = (size_t)(ksl * MT + mt) * 128;
            put2(red + base + g * 8 + 2 * t, acc_get(c[mt], 0), acc_get(c[mt], 1));
            put2(red + base + (g + 8) * 8 + 2 * t, acc_get(c[mt], 2), acc_get(c[mt], 3));
            if (WITH_X) {
                put2(redx + base + g * 8 + 2 * t, acc_get(e[mt], 0), acc_get(e[mt], 1));
                put2(redx + base + (g + 8) * 8 + 2 * t, acc_get(e[mt], 2), acc_get(e[mt], 3));
            }
        }
        (void)fr; (void)fx;
    }
#else
    for (int tile = warp; tile < MT * KSPLIT; tile += NWARP) {
        const int mt = tile % MT, ksl = tile / MT;
        acc_t c[2], e[2];
#pragma unroll
        for (int it = 0; it < NIT; ++it) {
            const int ks = ksl + it * KSPLIT;
            // ks < KSR  <=>  it < KSR / KSPLIT  when KSPLIT divides KSR (ksl < KSPLIT)
            if (RDIV ? (it < KSR / KSPLIT) : (ks < KSR)) {
                const size_t fi = WPART ? (size_t)((mt * KSPLIT + ksl) * (NIT - WPART) + it - WPART) * 32 + lane
                                        : (size_t)(mt * KSR + ks) * 32 + lane;  // fragment index in smem
                const bool in_reg = WREG || it < WPART;
                const uint4 a = in_reg ? ar[it] : *reinterpret_cast<const uint4*>(fr + fi * FRAG_E);
                const stage_t* v = hv + g * LDR + ks * MMA_K + t * (MMA_K / 8);
#if BF16X3
                const uint4 al = in_reg ? arl[it] : *reinterpret_cast<const uint4*>(fr + RPL + fi * FRAG_E);
                const stage_t* vl = v + VPL;
                mma_acc3(c[it & 1], a, al, *reinterpret_cast<const u32*>(v), *reinterpret_cast<const u32*>(v + MMA_K / 2),
                         *reinterpret_cast<const u32*>(vl), *reinterpret_cast<const u32*>(vl + MMA_K / 2));
#else
                mma_acc(c[it & 1], a, *reinterpret_cast<const u32*>(v), *reinterpret_cast<const u32*>(v + MMA_K / 2));
#endif
            }
            if (WITH_X && (XDIV ? (it < KSX / KSPLIT) : (ks < KSX))) {
                const size_t fi = (size_t)(mt * KSX + ks) * 32 + lane;
                const uint4 a = WREG ? ax[it] : *reinterpret_cast<const uint4*>(fx + fi * FRAG_E);
                const stage_t* v = xv + g * LDXL + ks * MMA_K + t * (MMA_K / 8);
#if BF16X3
                const uint4 al = WREG ? axl[it] : *reinterpret_cast<const uint4*>(fx + WS_PLANE + fi * FRAG_E);
                const stage_t* vl = v + XS_PLANE;
                mma_acc3(e[it & 1], a, al, *reinterpret_cast<const u32*>(v), *reinterpret_cast<const u32*>(v + MMA_K / 2),
                         *reinterpret_cast<const u32*>(vl), *reinterpret_cast<const u32*>(vl + MMA_K / 2));
#else
                mma_acc(e[it & 1], a, *reinterpret_cast<const u32*>(v), *reinterpret_cast<const u32*>(v + MMA_K / 2));
#endif
            }
        }
        const size_t base = (size_t)(ksl * MT + mt) * 128;
        put2(red + base + g * 8 + 2 * t, acc_get(c[0], 0) + acc_get(c[1], 0), acc_get(c[0], 1) + acc_get(c[1], 1));
        put2(red + base + (g + 8) * 8 + 2 * t, acc_get(c[0], 2) + acc_get(c[1], 2), acc_get(c[0], 3) + acc_get(c[1], 3));
        if (WITH_X) {
            put2(redx + base + g * 8 + 2 * t, acc_get(e[0], 0) + acc_get(e[1], 0), acc_get(e[0], 1) + acc_get(e[1], 1));
            put2(redx + base + (g + 8) * 8 + 2 * t, acc_get(e[0], 2) + acc_get(e[1], 2), acc_get(e[0], 3) + acc_get(e[1], 3));
        }
    }
#endif
}

// Sum of the KSPLIT partials of (row, batch column n) left by dot_two_barrier.
__device__ __forceinline__ float red_sum(const float* red, int row, int n) {
    const int mt = row >> 4, rl = row & 15;
    float acc = 0.f;
#pragma unroll
    for (int k = 0; k < KSPLIT_M; ++k) acc += red[(size_t)(k * MT + mt) * 128 + rl * 8 + n];
    return acc;
}

#if WREG || WPART
// The A fragments this warp multiplies every step (row tile warp % MT, K slice warp / MT;
// MT_SHARE: every row tile, K slice warp, at a[mt * NIT / MT + it]), straight from the
// packed weights in device memory into registers, once per launch.
template <int KLEN, int NIT>
__device__ __forceinline__ void load_frags(const wt_t* block, uint4 (&a)[NIT]) {
    constexpr int KS = KLEN / MMA_K, PER = NIT / FRAG_TILES;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int mt0 = MT_SHARE ? 0 : warp % MT, ksl = MT_SHARE ? warp : warp / MT;
    const bool has = warp < (MT_SHARE ? NWARP : MT * KSPLIT_M) && block != nullptr;
#pragma unroll
    for (int f = 0; f < FRAG_TILES; ++f) {
        const int mt = mt0 + f;
#pragma unroll
        for (int it = 0; it < PER; ++it) {
            const int ks = ksl + it * KSPLIT_M;
            a[f * PER + it] = (has && mt < MT && ks < KS)
                                  ? *reinterpret_cast<const uint4*>(block + ((size_t)(mt * KS + ks) * 32 + lane) * FRAG_E)
                                  : make_uint4(0u, 0u, 0u, 0u);
        }
    }
}
#endif
#endif

#if NEWER_STEP
// The gates' recurrent and input parts of (unit gu, batch gb): the products' results
// (pr/px: split-K partial sums on tensor cores, plain sums on CUDA cores) or, where the
// layer's input was projected by the GEMM, that projection xg; plus the biases.
__device__ __forceinline__ void gate_parts(float* xv, float* rv, const float* pr, const float* px, bool fused,
                                           const float* xg, const float* rbr, const float* wbr, int gu, int gb) {
#pragma unroll
    for (int q = 0; q < NG; ++q) {
        const int row = q * UPC + gu;
#if USE_MMA
        rv[q] = red_sum(pr, row, gb) + rbr[q];
        xv[q] = (fused ? red_sum(px, row, gb) : xg[q]) + wbr[q];
#else
        rv[q] = pr[row * BATCH + gb] + rbr[q];
        xv[q] = (fused ? px[row * BATCH + gb] : xg[q]) + wbr[q];
#endif
    }
}

// 16-byte asynchronous global->shared copy: every copy of a CTA is in flight at once
// (a plain load/store loop through generic pointers serialises one L2 round trip per
// 16 bytes per thread).
__device__ __forceinline__ void cp_async16(void* sdst, const void* gsrc) {
    unsigned sa;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(sa) : "l"(sdst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gsrc) : "memory");
}
// Wait until at most n of this thread's cp.async groups are still in flight (an immediate
// in PTX; above 7 it waits for more than asked, which is safe).
__device__ __forceinline__ void cp_async_wait_pending(int n) {
    if (n <= 0) asm volatile("cp.async.wait_group 0;" ::: "memory");
    else if (n == 1) asm volatile("cp.async.wait_group 1;" ::: "memory");
    else if (n == 2) asm volatile("cp.async.wait_group 2;" ::: "memory");
    else if (n == 3) asm volatile("cp.async.wait_group 3;" ::: "memory");
    else if (n == 4) asm volatile("cp.async.wait_group 4;" ::: "memory");
    else if (n == 5) asm volatile("cp.async.wait_group 5;" ::: "memory");
    else if (n == 6) asm volatile("cp.async.wait_group 6;" ::: "memory");
    else asm volatile("cp.async.wait_group 7;" ::: "memory");
}
#endif

#if BULK
__device__ __forceinline__ u32 smem_addr(const void* p) {
    return (u32)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void mbar_init(const void* bar, u32 count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// This thread's arrival on `bar`, announcing `bytes` more to come by bulk copies this phase.
__device__ __forceinline__ void mbar_expect(const void* bar, u32 bytes) {
    asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }"
                 ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
// Wait until the phase of `bar` with this parity has completed (its bytes have landed).
__device__ __forceinline__ void mbar_wait(const void* bar, u32 parity) {
    const u32 a = smem_addr(bar);
    u32 done;
    do {
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
    } while (!done);
}
// `bytes` (a multiple of 16) from global memory into shared memory at `dst`, completing on
// `bar`; BULK > 1: into the same offsets of every CTA of the cluster, each CTA's own barrier.
__device__ __forceinline__ void bulk_row(void* dst, const void* src, u32 bytes, const void* bar) {
#if BULK > 1
    const unsigned short mask = (unsigned short)((1u << BULK) - 1u);
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1], %2, [%3], %4;"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)), "h"(mask) : "memory");
#else
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(smem_addr(dst)), "l"(src), "r"(bytes), "r"(smem_addr(bar)) : "memory");
#endif
}
// Orders this thread's generic writes to shared memory before later bulk copies into it.
__device__ __forceinline__ void proxy_fence_shared() {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ u32 cluster_rank() {
    u32 r = 0;
#if BULK > 1
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
#endif
    return r;
}
// Every thread of every CTA of the cluster (a plain CTA barrier without clusters).
__device__ __forceinline__ void cluster_sync() {
#if BULK > 1
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
    __syncthreads();
#endif
}
#endif

#if RESIDENT
// Resident (streaming) mode: one launch serves step after step of a stream until the host
// says stop. Ring slots (two per exchange) carry tags (epoch + step) & TAGMASK; a word
// whose tag also has STOPBIT set tells every consumer to finish. x comes from host-mapped
// memory as tagged words, y goes back the same way, so a step needs no launch and no copy.
#define TAGMASK 0x7fffffffu
#define STOPBIT 0x80000000u
#define EPTR ((BATCH * KX + NTHR - 1) / NTHR)
__device__ __forceinline__ u64 ld_sys(const u64* p) {
    u64 v;
    asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void st_sys(u64* p, u64 v) {
    asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ unsigned long long now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
// Rows [BATCH][n] of a tagged slot into staging rows of stride ld, polling every word until
// its tag is `tag`; returns whether any word also carries STOPBIT.
// HSLOT: an h exchange slot (EXW words, maybe packed); else n fp32 words per batch row.
template <bool HSLOT>
__device__ __forceinline__ bool gather_tagged(const u64* slot, int n, stage_t* dst, int ld, u32 tag) {
    const int tid = threadIdx.x, total = HSLOT ? EXW : BATCH * n;
    u64 v[EPTR];
    issue_words(slot, v, total);
    while (repoll(slot, v, total, tag, TAGMASK)) {
    }
    bool stop = false;
#pragma unroll
    for (int e = 0; e < EPTR; ++e) {
        const int idx = tid + e * NTHR;
        if (idx < total) {
            stop |= ((u32)(v[e] >> 32) & STOPBIT) != 0;
            if (HSLOT) {
                unpack_store(v[e], idx, dst, ld);
            } else {
                const int b = idx / n, k = idx - b * n;
                dst[b * ld + k] = to_stage(__uint_as_float((u32)v[e]));
            }
        }
    }
    return stop;
}
#endif

#if BULK > 1
#define CLUSTER_DIMS __cluster_dims__(BULK, 1, 1)
#else
#define CLUSTER_DIMS
#endif
extern "C" __global__ void __launch_bounds__(NTHR, 1) CLUSTER_DIMS
persistent_rnn(const long long* __restrict__ desc_all, int ngroups, int T, u32* sync, float clip,
               const x_t* __restrict__ xin, int xin_k) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ u32 s_epoch;
    __shared__ int s_len[BATCH];
#if BULK
    __shared__ __align__(8) u64 s_bar[2 * NGROUPS];  // an mbarrier per copy group: own rows, then input rows
#endif

    // Which group and which units this CTA owns.
    int g = 0;
    for (int i = 0; i < ngroups; ++i) {
        const long long* d = desc_all + i * NDESC;
        if ((int)blockIdx.x >= d[D_CTA_BEGIN] && (int)blockIdx.x < d[D_CTA_BEGIN] + d[D_NCTA]) g = i;
    }
    const long long* d = desc_all + g * NDESC;
    const int cta = blockIdx.x - (int)d[D_CTA_BEGIN];
    const int j0 = cta * UPC;
    const int nu = min(UPC, HID - j0);
    const wt_t* Rg = reinterpret_cast<const wt_t*>(d[D_R]);
    const wt_t* Wg = reinterpret_cast<const wt_t*>(d[D_W]);
    const float* rb = reinterpret_cast<const float*>(d[D_RB]);
    const float* wb = reinterpret_cast<const float*>(d[D_WB]);
    const float* P = reinterpret_cast<const float*>(d[D_P]);
    const xp_t* xp = reinterpret_cast<const xp_t*>(d[D_XP]);
    const long long xp_stride = d[D_XP_STRIDE];
    const io_t* h0 = reinterpret_cast<const io_t*>(d[D_H0]);
    const io_t* c0p = reinterpret_cast<const io_t*>(d[D_C0]);
    y_t* y = reinterpret_cast<y_t*>(d[D_Y]);
    const long long y_ts = d[D_Y_TSTRIDE];
    o_t* hn = reinterpret_cast<o_t*>(d[D_HN]);
    o_t* cn = reinterpret_cast<o_t*>(d[D_CN]);
    // Outputs may be written straight into the layout the engine's next op wants (e.g.
    // batch-major): a batch row of y and of hn/cn starts y_bs / s_bs values after the last.
    const unsigned long long ostr = (unsigned long long)d[D_OSTRIDE];
    const size_t y_bs = (ostr & 0xffffffffull) ? (size_t)(ostr & 0xffffffffull) : (size_t)HID;
    const size_t s_bs = (ostr >> 32) ? (size_t)(ostr >> 32) : (size_t)HID;
    u64* ex = reinterpret_cast<u64*>(d[D_EX]);
    const u64* in_ex = reinterpret_cast<const u64*>(d[D_IN_EX]);
    u64* ex2 = reinterpret_cast<u64*>(d[D_EX2]);
    const int reverse = (int)d[D_REVERSE];
    const int* seqlen = reinterpret_cast<const int*>(d[D_SEQLEN]);
    const bool fused = FUSED && Wg != nullptr;  // compile-time false where no group is fused
    // The first layer may take its input straight from x [T, B, xin_k] (short sequences:
    // saves the projection GEMM's launch); deeper wavefront layers read the exchange.
    const x_t* xin_g = (fused && in_ex == nullptr) ? xin : nullptr;

    // Shared memory carve-up (sizes mirror plan.smem_bytes()).
    unsigned char* sp = smem_raw;
    // (weights live in registers under WREG: no shared memory for them)
#if WPART
    wt_t* Rs = reinterpret_cast<wt_t*>(sp); sp += (size_t)RS_PLANE * WPLANES * sizeof(wt_t);
#else
    wt_t* Rs = reinterpret_cast<wt_t*>(sp); if (!WREG) sp += (size_t)ROWS_P * KP * WPLANES * sizeof(wt_t);
#endif
    wt_t* Ws = reinterpret_cast<wt_t*>(sp); if (fused && !WREG) sp += (size_t)ROWS_P * KX * WPLANES * sizeof(wt_t);
    stage_t* hs = reinterpret_cast<stage_t*>(sp); sp += (size_t)HS_PLANE * WPLANES * sizeof(stage_t);
    stage_t* xs = reinterpret_cast<stage_t*>(sp); if (fused) sp += (size_t)STG_ROWS * LDX * WPLANES * sizeof(stage_t);
    float* accR = reinterpret_cast<float*>(sp); if (!STEP_LARGE_BATCH) sp += (size_t)ROWS * BATCH * 4;
    float* accX = reinterpret_cast<float*>(sp); if (!STEP_LARGE_BATCH) sp += (size_t)ROWS * BATCH * 4;
    float* cst = reinterpret_cast<float*>(sp); if (!STATE_IN_RED) sp += (size_t)UPC * BATCH * 4;
    float* hown = reinterpret_cast<float*>(sp); if (!STATE_IN_RED) sp += (size_t)UPC * BATCH * 4;
    float* acc2 = reinterpret_cast<float*>(sp); if (!STEP_LARGE_BATCH) sp += (size_t)ROWS * BATCH * 4;
    // Biases and peepholes of the owned units, [gate][u] (read every step: keep on chip).
    float* rbs = reinterpret_cast<float*>(sp); sp += (size_t)ROWS * 4;
    float* wbs = reinterpret_cast<float*>(sp); sp += (size_t)ROWS * 4;
    float* ps = reinterpret_cast<float*>(sp); sp += (size_t)3 * UPC * 4;
#if USE_MMA
#define RSTRIDE (MT * KSPLIT_M * 128)  // partial sums of one n-tile
    float* red = reinterpret_cast<float*>(sp); sp += (size_t)RSTRIDE * NBT * 4;
#if NEWER_STEP
    float* redx = reinterpret_cast<float*>(sp); if (STEP_TWO_BARRIER || FUSED) sp += (size_t)RSTRIDE * NBT * 4;
#endif
#define PARTS red, redx  // where the gates find the products (gate_parts)
#if STATE_IN_RED
    cst = red;
    hown = red + UPC * BATCH;
#endif
#else
#define PARTS accR, accX
#endif

    // Weights on chip once: this CTA's packed block is contiguous [ROWS][KP] (BF16X3: a hi
    // plane, then a lo plane).
    {
        const uint4* src = reinterpret_cast<const uint4*>(Rg + (size_t)cta * ROWS_P * KP * WPLANES);
        uint4* dst = reinterpret_cast<uint4*>(Rs);
        const int n16 = ROWS_P * KP * WPLANES * (int)sizeof(wt_t) / 16;
#if WREG
        (void)src; (void)dst; (void)n16;  // fragments go to registers (load_frags)
#elif WPART
        // Only the K steps past the first WPART of every warp, compact (see dot_two_barrier).
        constexpr int KS = KP / MMA_K, NS = NIT_R - WPART, NC = MT * KSPLIT_M * NS * 32;
        (void)n16;
        for (int i = threadIdx.x; i < NC * WPLANES; i += NTHR) {
            const int pl = i / NC, e = i - pl * NC;  // plane, entry
            const int lane = e & 31, it = (e >> 5) % NS, tile = (e >> 5) / NS;
            const int mt = tile / KSPLIT_M, ksl = tile % KSPLIT_M, ks = ksl + (it + WPART) * KSPLIT_M;
            cp_async16(dst + i, src + (size_t)pl * (ROWS_P * KP / FRAG_E) + (size_t)(mt * KS + ks) * 32 + lane);
        }
#elif NEWER_STEP
        for (int i = threadIdx.x; i < n16; i += NTHR) cp_async16(dst + i, src + i);
#else
        for (int i = threadIdx.x; i < n16; i += NTHR) dst[i] = src[i];
#endif
        if (fused) {
            const uint4* wsrc = reinterpret_cast<const uint4*>(Wg + (size_t)cta * ROWS_P * KX * WPLANES);
            uint4* wdst = reinterpret_cast<uint4*>(Ws);
            const int nx16 = ROWS_P * KX * WPLANES * (int)sizeof(wt_t) / 16;
#if WREG
            (void)wsrc; (void)wdst; (void)nx16;
#elif NEWER_STEP
            for (int i = threadIdx.x; i < nx16; i += NTHR) cp_async16(wdst + i, wsrc + i);
#else
            for (int i = threadIdx.x; i < nx16; i += NTHR) wdst[i] = wsrc[i];
#endif
        }
        // Zero the row padding of the staging vectors once (never written by gather()).
        for (int i = threadIdx.x; i < HS_PLANE * WPLANES; i += NTHR) hs[i] = to_stage(0.0f);
        if (fused)
            for (int i = threadIdx.x; i < STG_ROWS * LDX * WPLANES; i += NTHR) xs[i] = to_stage(0.0f);
    }
    for (int r = threadIdx.x; r < ROWS; r += NTHR) {
        int gate = r / UPC, u = r - gate * UPC;
        bool ok = u < nu;
        rbs[r] = ok ? rb[gate * HID + j0 + u] : 0.0f;
        wbs[r] = (ok && fused) ? wb[gate * HID + j0 + u] : 0.0f;
        if (gate < 3) ps[r] = (ok && P) ? P[gate * HID + j0 + u] : 0.0f;
    }
    grid_dep_wait();  // (a dependent launch) everything the kernels ahead wrote is visible from here
    if (threadIdx.x == 0) s_epoch = *reinterpret_cast<volatile u32*>(sync);
    for (int b = threadIdx.x; b < BATCH; b += NTHR) s_len[b] = seqlen ? min(seqlen[b], T) : T;
    for (int i = threadIdx.x; i < UPC * BATCH; i += NTHR) {
        int u = i / BATCH, b = i - u * BATCH;
        int j = j0 + u;
        float h = 0.0f, c = 0.0f;
        if (u < nu) {
            if (h0) h = io_load(h0 + (size_t)b * HID + j);
            if (c0p) c = io_load(c0p + (size_t)b * HID + j);
        }
        hown[i] = h;
        cst[i] = c;
    }
#if NEWER_STEP
    asm volatile("cp.async.wait_all;" ::: "memory");  // this thread's weight copies landed
#endif
    __syncthreads();
    const u32 epoch = s_epoch;
    const size_t slot = (size_t)BATCH * HID;

#if STEP_TWO_BARRIER
    // Two barriers a step: (gather -> barrier -> products -> barrier -> gates). Thread i
    // owns (unit, batch) slot i for the whole sequence: its state, biases and the step's
    // input projection live in its registers, and it adds up the products' partial sums
    // itself, so nothing shared is rewritten between the gates and the next gather.
    {
        const int gi = threadIdx.x;
        const int gu = gi / BATCH, gb = gi - gu * BATCH;
        const bool gact = gi < UPC * BATCH && gu < nu;
        const int gj = j0 + gu;
        float hreg = gact ? hown[gi] : 0.0f;
        float creg = gact ? cst[gi] : 0.0f;
        const int glen = s_len[gact ? gb : 0];
        float rbr[NG], wbr[NG];
#pragma unroll
        for (int q = 0; q < NG; ++q) {
            rbr[q] = gact ? rbs[q * UPC + gu] : 0.0f;
            wbr[q] = gact ? wbs[q * UPC + gu] : 0.0f;
        }
#if CELL == 0
        const float pi = gact ? ps[gu] : 0.0f, po = gact ? ps[UPC + gu] : 0.0f, pf = gact ? ps[2 * UPC + gu] : 0.0f;
#define PEEP pi, po, pf
#else
#define PEEP 0.0f, 0.0f, 0.0f
#endif
#if USE_MMA && (WREG || WPART)
        // WREG: every fragment in registers; WPART: the first WPART K steps (the rest in Rs)
        constexpr int NRR = WREG ? NIT_R : WPART;
        uint4 fragR[NRR], fragX[NIT_XR];
        load_frags<KP, NRR>(Rg + (size_t)cta * ROWS_P * KP * WPLANES, fragR);
        load_frags<KX, NIT_XR>(fused ? Wg + (size_t)cta * ROWS_P * KX : nullptr, fragX);
#if BF16X3
        uint4 fragRl[NRR];  // lo plane
        load_frags<KP, NRR>(Rg + (size_t)cta * ROWS_P * KP * WPLANES + ROWS_P * KP, fragRl);
#define FRAGS fragR, fragX, fragRl
#else
#define FRAGS fragR, fragX
#endif
#define FRAGS_X fragX, fragX
#else
#define FRAGS nullptr, nullptr
#define FRAGS_X nullptr, nullptr
#endif
#if RESIDENT
        // Streaming: every layer gathers its own h_{s-1} and does the recurrent product;
        // layer-0 CTAs relay their share of x_s from host memory into the x exchange (so
        // each host word crosses PCIe once); every layer then gathers its input row (x or
        // the layer below's h_s), does the input product and the gates. A stop word travels
        // down the layers like data, so every CTA leaves at the same step.
        (void)glen;
        const bool feed = d[D_FEED] != 0;
        const int kin = feed ? xin_k : HID;
        const u64* host_x = reinterpret_cast<const u64*>(xin);
        u64* host_y = reinterpret_cast<u64*>(d[D_Y]);
        u64* xex = const_cast<u64*>(in_ex);
        const unsigned long long timeout = (unsigned long long)d[D_TIMEOUT_NS];
        const int ring = BATCH * KX;  // words per ring slot of the x exchange
        int s = 0;
        for (; s < T; ++s) {
            const u32 tag = (epoch + (u32)s) & TAGMASK;
            // Own h_{s-1} and the recurrent product first: every layer published h_{s-1}
            // before the host could post x_s (it waited for the last layer's y_{s-1}), so
            // this runs while the input is still on its way.
            if (s == 0) load_init(h0, 0, hs);
            else gather_tagged<true>(ex + (size_t)((s - 1) & 1) * slot, HID, hs, LDH, (epoch + (u32)s - 1u) & TAGMASK);
            __syncthreads();
#if USE_MMA
            dot_two_barrier<KP, LDH, KX, LDX, false>(Rs, hs, nullptr, xs, red, redx, FRAGS);
#else
            DOT_H(Rs, hs, accR, ROWS, 0);
#endif
            if (feed) {
                const int total = BATCH * xin_k, per = (total + (int)d[D_NCTA] - 1) / (int)d[D_NCTA];
                for (int i = threadIdx.x; i < per && cta * per + i < total; i += NTHR) {
                    const int idx = cta * per + i;
                    const unsigned long long t0 = now_ns();
                    u64 w = ld_sys(host_x + idx);
                    while ((((u32)(w >> 32)) & TAGMASK) != tag) {
                        if (now_ns() - t0 > timeout) {  // idle too long: stop as if asked to
                            w = ((u64)(tag | STOPBIT) << 32);
                            atomicExch(sync + 2, 1u);
                            break;
                        }
                        w = ld_sys(host_x + idx);
                    }
                    st_relaxed(xex + (size_t)(s & 1) * ring + idx, w);
                }
            }
            int stop = feed ? gather_tagged<false>(in_ex + (size_t)(s & 1) * ring, xin_k, xs, LDX, tag)
                            : gather_tagged<true>(in_ex + (size_t)(s & 1) * slot, HID, xs, LDX, tag);
            stop = __syncthreads_or(stop);
            if (stop) {  // pass the stop on to the next layer; keep the final state
                publish_h(ex + (size_t)(s & 1) * slot, 0.0f, gact, gu, gb, gj, tag | STOPBIT);
                if (gact) {
                    if (hn) o_store(hn + gb * s_bs + gj, hreg);
#if CELL == 0
                    if (cn) o_store(cn + gb * s_bs + gj, creg);
#endif
                }
                break;
            }
#if USE_MMA
            dot_two_barrier<KX, LDX, KX, LDX, false, WS_PLANE, XS_PLANE>(Ws, xs, nullptr, xs, redx, redx, FRAGS_X);
#else
            DOT_X(Ws, xs, accX, ROWS, 0);
#endif
            __syncthreads();
            if (gact) {
                float xv[NG], rv[NG];
                gate_parts(xv, rv, PARTS, true, nullptr, rbr, wbr, gu, gb);
                hreg = cell_update(xv, rv, hreg, creg, true, PEEP, clip);
            }
            publish_h(ex + (size_t)(s & 1) * slot, hreg, gact, gu, gb, gj, tag);
            if (gact && host_y) st_sys(host_y + (size_t)gb * HID + gj, ((u64)tag << 32) | (u64)__float_as_uint(hreg));
        }
        __syncthreads();
        // Tags used: epoch .. epoch + s. The next session starts past them.
        if (threadIdx.x == 0) {
            __threadfence();
            if (atomicAdd(sync + 1, 1u) == gridDim.x - 1) {
                sync[1] = 0;
                u32 e = (epoch + (u32)s + 1u) & TAGMASK;
                sync[0] = e ? e : 1u;
                __threadfence();
            }
        }
        return;
#endif
        for (int s = 0; s < T; ++s) {
            const bool active = s < glen;
            const int tt = active ? (reverse ? glen - 1 - s : s) : s;
            // Input projection of this step (GEMM output): loads issued before the wait.
            float xg[NG];
#pragma unroll
            for (int q = 0; q < NG; ++q) xg[q] = 0.0f;
            if (!fused && gact && active) {
                const xp_t* px = xp + ((size_t)tt * BATCH + gb) * xp_stride + gj;
#pragma unroll
                for (int q = 0; q < NG; ++q) xg[q] = xp_load(px + (size_t)q * HID);
            }
            // First layer with in-kernel input products: x_t loads issued before the wait
            // on the exchange, so their latency hides behind it.
            float xr[EPTX];
            if (xin_g) {
#pragma unroll
                for (int e = 0; e < EPTX; ++e) {
                    const int idx = threadIdx.x + e * NTHR;
                    xr[e] = 0.0f;
                    if (idx < BATCH * xin_k) {
                        const int b = idx / xin_k, k = idx - b * xin_k;
                        const int t = reverse ? max(s_len[b] - 1 - s, 0) : s;
                        xr[e] = x_load(xin_g + ((size_t)t * BATCH + b) * xin_k + k);
                    }
                }
            }
            // A deeper wavefront layer reads the layer below's h_t from the exchange.
            const bool deeper = s > 0 && fused && !xin_g;
            const bool split = SPLITX && deeper;
            if (split) {
                // SPLITX: the layer below published h_t about a step ago, so its input
                // product runs while this layer's own h_{t-1} is still on its way; only
                // the recurrent product stays between the exchange and the gates.
                gather(in_ex + (size_t)s * slot, 0, xs, LDX, epoch);
                __syncthreads();
#if USE_MMA
                dot_two_barrier<KX, LDX, KX, LDX, false, WS_PLANE, XS_PLANE>(Ws, xs, nullptr, xs, redx, redx, FRAGS_X);
#else
                DOT_X(Ws, xs, accX, ROWS, 0);
#endif
                gather(ex + (size_t)(s - 1) * slot, 0, hs, LDH, epoch);
            } else if (PAIR_GATHER && deeper) {
                gather_pair(ex + (size_t)(s - 1) * slot, hs, LDH, in_ex + (size_t)s * slot, xs, LDX, epoch);
            } else {
                if (s == 0) load_init(h0, 0, hs);
                else gather(ex + (size_t)(s - 1) * slot, 0, hs, LDH, epoch);
                if (!xin_g && fused) gather(in_ex + (size_t)s * slot, 0, xs, LDX, epoch);
            }
            if (xin_g) {
#pragma unroll
                for (int e = 0; e < EPTX; ++e) {
                    const int idx = threadIdx.x + e * NTHR;
                    if (idx < BATCH * xin_k) {
                        const int b = idx / xin_k, k = idx - b * xin_k;
                        xs[b * LDX + k] = to_stage(xr[e]);
                    }
                }
            }
            __syncthreads();
#if USE_MMA
            if (fused && !split) dot_two_barrier<KP, LDH, KX, LDX, true>(Rs, hs, Ws, xs, red, redx, FRAGS);
            else dot_two_barrier<KP, LDH, KX, LDX, false>(Rs, hs, nullptr, xs, red, redx, FRAGS);
#else
            DOT_H(Rs, hs, accR, ROWS, 0);
            if (fused && !split) DOT_X(Ws, xs, accX, ROWS, 0);
#endif
            __syncthreads();
            if (gact) {
                float xv[NG], rv[NG];
                gate_parts(xv, rv, PARTS, fused, xg, rbr, wbr, gu, gb);
                hreg = cell_update(xv, rv, hreg, creg, active, PEEP, clip);
            }
            // The exchange first (the next step waits on it), then the outputs.
            publish_h(ex + (size_t)s * slot, hreg, gact, gu, gb, gj, epoch);
            if (gact) {
                if (y) y_store(y + (size_t)tt * y_ts + gb * y_bs + gj, active ? hreg : 0.0f);
                if (s == T - 1) {
                    if (hn) o_store(hn + gb * s_bs + gj, hreg);
#if CELL == 0
                    if (cn) o_store(cn + gb * s_bs + gj, creg);
#endif
                }
            }
        }
#if PACKF
        // A launch shorter than the buffer stamps the slots it did not use, so that every
        // slot carries this epoch's parity (see PACKF).
        for (int s = T; s < (int)d[D_SLOTS]; ++s) publish_h(ex + (size_t)s * slot, hreg, gact, gu, gb, gj, epoch);
#endif
        __syncthreads();
#undef FRAGS
#undef FRAGS_X
#undef PEEP
    }
#elif STEP_LARGE_BATCH
    // Large batch (> 8 rows): the two-barrier step with all batch rows staged at once.
    // The exchange moves plain staged values instead of tagged words: a step slot holds
    // h as [BATCH][HID] in the staging type, then one flag per producer CTA. A producer
    // writes its values, meets its CTA at a barrier and then releases its flag; consumers
    // acquire the flags (one thread each), meet at a barrier and copy whole rows into
    // shared memory with cp.async. Per step a CTA polls NCTA flags instead of BATCH x HID
    // words. The products loop over the n-tiles, weight fragments in registers where they
    // fit (WREG), else in shared memory.
    {
        // Pair gi = (batch gi / UPC, unit gi % UPC): neighbouring threads own neighbouring
        // units of one batch row, so the projection loads and the h/y stores coalesce.
        constexpr int NPAIR = UPC * BATCH, PPT = (NPAIR + NTHR - 1) / NTHR;
        const int ncta = (int)d[D_NCTA];
        float hreg[PPT], creg[PPT], rbr[PPT][NG], wbr[PPT][NG];
#if CELL == 0
        float pir[PPT], por[PPT], pfr[PPT];
#endif
#pragma unroll
        for (int p = 0; p < PPT; ++p) {
            const int gi = threadIdx.x + p * NTHR, b = gi / UPC, u = gi - b * UPC;
            const bool act = gi < NPAIR && u < nu;
            hreg[p] = act ? hown[u * BATCH + b] : 0.0f;  // hown/cst are [unit][batch]
            creg[p] = act ? cst[u * BATCH + b] : 0.0f;
#pragma unroll
            for (int q = 0; q < NG; ++q) {
                rbr[p][q] = act ? rbs[q * UPC + u] : 0.0f;
                wbr[p][q] = act ? wbs[q * UPC + u] : 0.0f;
            }
#if CELL == 0
            pir[p] = act ? ps[u] : 0.0f;
            por[p] = act ? ps[UPC + u] : 0.0f;
            pfr[p] = act ? ps[2 * UPC + u] : 0.0f;
#endif
        }
        const wt_t* rblock = Rg + (size_t)cta * ROWS_P * KP * WPLANES;
#if WREG || WPART
        // WREG: every fragment in registers; WPART: the first WPART K steps (the rest in Rs)
        constexpr int NRR = WREG ? FRAG_TILES * NIT_R : WPART;
        uint4 fragR[NRR];
        load_frags<KP, NRR>(rblock, fragR);
#if BF16X3
        uint4 fragRl[NRR];  // lo plane
        load_frags<KP, NRR>(rblock + ROWS_P * KP, fragRl);
#else
        const uint4* fragRl = nullptr;
#endif
#else
        const uint4* fragR = nullptr;  // fragments in shared memory (Rs, Ws)
        const uint4* fragRl = nullptr;
#endif
#if WREG
        uint4 fragX[FRAG_TILES * NIT_XR];
        load_frags<KX, FRAG_TILES * NIT_XR>(fused ? Wg + (size_t)cta * ROWS_P * KX * WPLANES : nullptr, fragX);
#if BF16X3
        uint4 fragXl[FRAG_TILES * NIT_XR];  // lo plane
        load_frags<KX, FRAG_TILES * NIT_XR>(fused ? Wg + (size_t)cta * ROWS_P * KX * WPLANES + ROWS_P * KX : nullptr, fragXl);
#else
        const uint4* fragXl = nullptr;
#endif
#else
        const uint4* fragX = nullptr;
        const uint4* fragXl = nullptr;
#endif
        // A step slot: h of every (batch, unit) in the staging type (BF16X3: a hi plane,
        // then a lo plane), then one flag per producer CTA.
        const size_t data_bytes = (size_t)BATCH * HID * sizeof(stage_t) * WPLANES;
        auto flags = [&](const u64* sl) { return reinterpret_cast<const u32*>(reinterpret_cast<const char*>(sl) + data_bytes); };
#if BULK
        if (threadIdx.x == 0) {
            for (int i = 0; i < 2 * NGROUPS; ++i) mbar_init(&s_bar[i], 1);
            asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        }
        proxy_fence_shared();  // the staging rows were zeroed by generic stores
        cluster_sync();  // every CTA's barriers exist before any row is multicast into it
        const u32 rank = cluster_rank();
        u32 parity_h = 0, parity_x = 0;  // of the own-row and input-row barriers' current phase
#endif
        for (int s = 0; s < T; ++s) {
            const u64* own = ex + (size_t)(s > 0 ? s - 1 : 0) * slot;  // h_{s-1} of this group
            const u64* below = in_ex + (size_t)s * slot;      // h_s of the layer below
            const bool want_own = s > 0, want_below = fused && !xin_g;
            // Input projection of this step (GEMM output) for the owned pairs, issued early.
            float xg[PPT][NG];
#pragma unroll
            for (int p = 0; p < PPT; ++p) {
                const int gi = threadIdx.x + p * NTHR, b = gi / UPC, u = gi - b * UPC;
#pragma unroll
                for (int q = 0; q < NG; ++q) xg[p][q] = 0.0f;
                if (!fused && gi < NPAIR && u < nu && s < s_len[b]) {
                    const int tt = reverse ? s_len[b] - 1 - s : s;
                    const xp_t* px = xp + ((size_t)tt * BATCH + b) * xp_stride + j0 + u;
#pragma unroll
                    for (int q = 0; q < NG; ++q) xg[p][q] = xp_load(px + (size_t)q * HID);
                }
            }
            // One phase of a step: wait for the producers' flags of the wanted inputs, copy
            // their rows in groups of GROUP_TILES n-tiles (one cp.async group each, so the
            // products of the first tiles run while later tiles are still in flight), and
            // run the products: R (own h) and/or X (the layer below's h or x).
            auto phase = [&](bool own_in, bool below_in, bool do_r, bool do_x) {
                {  // threads [0, ncta) wait on this group's flags, [ncta, 2 ncta) on the layer below's
                    const int t = threadIdx.x;
                    const u32* f = nullptr;
                    if (own_in && t < ncta) f = flags(own) + t;
                    else if (below_in && t >= ncta && t < 2 * ncta) f = flags(below) + (t - ncta);
#if BULK > 1
                    // Input rows alone (a deeper layer's first phase): the cluster's CTAs multicast
                    // into each other's input rows, so each waits until its mates are done with
                    // the last step's (their flags of it).
                    else if (below_in && !own_in && s > 0 && t < BULK) f = flags(own) + (cta - cta % BULK + t);
#endif
                    if (f) {
                        u32 v;
                        do {
                            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(f) : "memory");
                        } while (v != epoch);
                    }
                }
                __syncthreads();
                constexpr int CH = HID * (int)sizeof(stage_t) / 16;  // 16-byte chunks per row
                constexpr int EPC = 16 / (int)sizeof(stage_t);       // staged values per chunk
                const bool cp_own = own_in, cp_below = below_in;
                // Copy group gq into its slot (gq itself unless the staging is a ring).
                auto fill = [&](int gq) {
                    const int r0 = gq * 8 * GROUP_TILES, rows = min(8 * GROUP_TILES, BATCH - r0), n = rows * CH;
                    stage_t* hslot = hs + (size_t)(gq % STAGE_SLOTS) * 8 * GROUP_TILES * LDH;
                    if (cp_own)
                        for (int i = threadIdx.x; i < n * WPLANES; i += NTHR) {
                            const int pl = WPLANES > 1 ? i / n : 0, e = i - pl * n, r = e / CH, c = e % CH;  // plane, row, chunk
                            cp_async16(hslot + pl * HS_PLANE + r * LDH + c * EPC,
                                       reinterpret_cast<const char*>(own) + pl * (size_t)BATCH * CH * 16 + ((size_t)(r0 + r) * CH + c) * 16);
                        }
                    else if (STAGE_RING && do_r)  // step 0 of a ring: the initial state, group by group
                        for (int i = threadIdx.x; i < rows * HID; i += NTHR) {
                            const int r = i / HID, k = i - r * HID;
                            stage_hl(hslot + r * LDH + k, h0 ? io_load(h0 + (size_t)(r0 + r) * HID + k) : 0.0f);
                        }
                    if (cp_below)
                        for (int i = threadIdx.x; i < n * WPLANES; i += NTHR) {
                            const int pl = WPLANES > 1 ? i / n : 0, e = i - pl * n, r = r0 + e / CH, c = e % CH;
                            cp_async16(xs + pl * XS_PLANE + r * LDX + c * EPC,
                                       reinterpret_cast<const char*>(below) + pl * (size_t)BATCH * CH * 16 + ((size_t)r * CH + c) * 16);
                        }
                    asm volatile("cp.async.commit_group;" ::: "memory");
                };
#if BULK
                (void)fill;
                // Rows r with r % BULK == rank, one bulk copy per row and plane; every CTA of the
                // cluster expects all rows of each group on its own barriers. The flags were
                // acquired in the generic proxy; the copies read in the async one.
                auto issue = [&](const u64* src, stage_t* dst, int plane, int ld, u64* bars) {
                    constexpr u32 ROW_BYTES = HID * (u32)sizeof(stage_t);
                    constexpr int MINE = (BATCH + BULK - 1) / BULK;
                    if (threadIdx.x == 0)
                        for (int gq = 0; gq < NGROUPS; ++gq)
                            mbar_expect(&bars[gq], (u32)min(8 * GROUP_TILES, BATCH - gq * 8 * GROUP_TILES) * WPLANES * ROW_BYTES);
                    for (int i = threadIdx.x; i < MINE * WPLANES; i += NTHR) {
                        const int pl = WPLANES > 1 ? i / MINE : 0, r = (int)rank + (i - pl * MINE) * BULK;
                        if (r < BATCH)
                            bulk_row(dst + pl * plane + r * ld,
                                     reinterpret_cast<const char*>(src) + ((size_t)pl * BATCH + r) * ROW_BYTES, ROW_BYTES,
                                     &bars[r / (8 * GROUP_TILES)]);
                    }
                };
                if (cp_own || cp_below) asm volatile("fence.proxy.async.global;" ::: "memory");
                if (cp_own) issue(own, hs, HS_PLANE, LDH, s_bar);
                if (cp_below) issue(below, xs, XS_PLANE, LDX, s_bar + NGROUPS);
#else
#pragma unroll
                for (int gq = 0; gq < STAGE_SLOTS; ++gq) fill(gq);
#endif
#pragma unroll
                for (int gq = 0; gq < NGROUPS; ++gq) {
#if BULK
                    if (cp_own) mbar_wait(&s_bar[gq], parity_h);  // this group's rows have landed
                    if (cp_below) mbar_wait(&s_bar[NGROUPS + gq], parity_x);
#else
                    // groups committed so far: the first STAGE_SLOTS plus one refill per earlier group
                    cp_async_wait_pending(min(NGROUPS, STAGE_SLOTS + gq) - 1 - gq);
                    __syncthreads();  // every thread's copies of this group have landed
#endif
                    const stage_t* hg = hs + (size_t)(gq % STAGE_SLOTS) * 8 * GROUP_TILES * LDH;
#pragma unroll NT_UNROLL
                    for (int nt = gq * GROUP_TILES; nt < min((gq + 1) * GROUP_TILES, NBT); ++nt) {
                        const stage_t* hv = hg + (nt - gq * GROUP_TILES) * 8 * LDH;
                        if (do_r && do_x)
                            dot_two_barrier<KP, LDH, KX, LDX, true>(Rs, hv, Ws, xs + nt * 8 * LDX,
                                                           red + nt * RSTRIDE, redx + nt * RSTRIDE, fragR, fragX, fragRl,
                                                           fragXl);
                        else if (do_r)
                            dot_two_barrier<KP, LDH, KX, LDX, false>(Rs, hv, nullptr, xs, red + nt * RSTRIDE,
                                                            redx + nt * RSTRIDE, fragR, fragX, fragRl);
                        else if (do_x)
                            dot_two_barrier<KX, LDX, KX, LDX, false, WS_PLANE, XS_PLANE>(Ws, xs + nt * 8 * LDX, nullptr, xs,
                                                                                redx + nt * RSTRIDE, redx + nt * RSTRIDE,
                                                                                fragX, fragX, fragXl);
                    }
                    if (STAGE_RING && gq + STAGE_SLOTS < NGROUPS) {
                        __syncthreads();  // every warp is done with this slot
                        fill(gq + STAGE_SLOTS);
                    }
                }
#if BULK
                if (cp_own) parity_h ^= 1u;
                if (cp_below) parity_x ^= 1u;
#endif
            };
            if (s == 0 && !STAGE_RING) {
                load_init(h0, 0, hs);
#if BULK
                proxy_fence_shared();  // generic writes to rows that later steps' bulk copies overwrite
#endif
            }
            if (xin_g) load_x(xin_g, xin_k, s, reverse, s_len, 0, xs);
#ifndef LARGE_BATCH_NOSPLIT
            if (want_below) {
                // Deeper wavefront layer: the layer below runs ahead (it has no input product
                // in the kernel), so its h_s is usually there first; its input product goes
                // before the wait on this layer's own h_{s-1}.
                phase(false, true, false, true);
                phase(want_own, false, true, false);
            } else
#endif
                phase(want_own, want_below, true, fused);
            __syncthreads();
            stage_t* out = reinterpret_cast<stage_t*>(ex + (size_t)s * slot);
#pragma unroll
            for (int p = 0; p < PPT; ++p) {
                const int gi = threadIdx.x + p * NTHR, b = gi / UPC, u = gi - b * UPC;
                if (gi < NPAIR && u < nu) {
                    const int len = s_len[b];
                    const bool active = s < len;
                    const int tt = active ? (reverse ? len - 1 - s : s) : s;
                    const int j = j0 + u;
                    float xv[NG], rv[NG];
                    gate_parts(xv, rv, red + (b >> 3) * RSTRIDE, redx + (b >> 3) * RSTRIDE, fused, xg[p], rbr[p],
                               wbr[p], u, b & 7);
#if CELL == 0
                    hreg[p] = cell_update(xv, rv, hreg[p], creg[p], active, pir[p], por[p], pfr[p], clip);
#else
                    hreg[p] = cell_update(xv, rv, hreg[p], creg[p], active, 0.0f, 0.0f, 0.0f, clip);
#endif
                    stage_hl(out + (size_t)b * HID + j, hreg[p], (size_t)BATCH * HID);
                    if (y) y_store(y + (size_t)tt * y_ts + b * y_bs + j, active ? hreg[p] : 0.0f);
                    if (s == T - 1) {
                        if (hn) o_store(hn + b * s_bs + j, hreg[p]);
#if CELL == 0
                        if (cn) o_store(cn + b * s_bs + j, creg[p]);
#endif
                    }
                }
            }
            __syncthreads();  // every value of this CTA written before its flag goes out
            if (threadIdx.x == 0) {
                u32* f = const_cast<u32*>(flags(ex + (size_t)s * slot)) + cta;
                asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(f), "r"(epoch) : "memory");
            }
        }
#if BULK
        cluster_sync();  // no CTA leaves while a peer's copies may still be on their way to it
#else
        __syncthreads();
#endif
    }
#else
    for (int s = 0; s < T; ++s) {
        // 1. Input part of the gates for this step (independent of the recurrence):
        //    precomputed projection, prefetched before waiting on the exchange.
        if (!fused) {
            for (int i = threadIdx.x; i < ROWS * BATCH; i += NTHR) {
                int r = i / BATCH, b = i - r * BATCH;
                int gate = r / UPC, u = r - gate * UPC;
                float v = 0.0f;
                int len = s_len[b];
                if (u < nu && s < len) {
                    int t = reverse ? len - 1 - s : s;
                    v = xp_load(xp + ((size_t)t * BATCH + b) * xp_stride + gate * HID + j0 + u);
                }
                accX[i] = v;
            }
        }
        // 2. Recurrent (and fused input) matrix-vector products, batch chunk by chunk.
        for (int c0 = 0; c0 < BATCH; c0 += BCH) {
            if (s == 0) load_init(h0, c0, hs);
            else gather(ex + (size_t)(s - 1) * slot, c0, hs, LDH, epoch);
            if (xin_g) load_x(xin_g, xin_k, s, reverse, s_len, c0, xs);
            else if (fused) gather(in_ex + (size_t)s * slot, c0, xs, LDX, epoch);
            __syncthreads();
#if CELL == 1 && LBR == 0
            DOT_H(Rs, hs, accR, ROWS, c0);  // the R_h rows are redone on r*h below
#else
            DOT_H(Rs, hs, accR, ROWS, c0);
#endif
            if (fused) DOT_X(Ws, xs, accX, ROWS, c0);
            __syncthreads();
        }
        // 3. Gates and state update, one thread per (unit, batch).
#if CELL == 1 && LBR == 0
        // Phase A: reset gate, then r*h is exchanged because R_h multiplies the full r*h.
        for (int i = threadIdx.x; i < UPC * BATCH; i += NTHR) {
            int u = i / BATCH, b = i - u * BATCH;
            if (u >= nu) continue;
            int j = j0 + u;
            float xr = accX[(GR * UPC + u) * BATCH + b] + wbs[GR * UPC + u];
            float r = sigm(clipf(xr + accR[(GR * UPC + u) * BATCH + b] + rbs[GR * UPC + u], clip));
            st_relaxed(ex2 + (size_t)s * slot + (size_t)b * HID + j, pack(r * hown[i], epoch));
        }
        for (int c0 = 0; c0 < BATCH; c0 += BCH) {
            gather(ex2 + (size_t)s * slot, c0, hs, LDH, epoch);
            __syncthreads();
            DOT_H(Rs, hs, acc2, ROWS, c0);  // every row on r*h; only the R_h rows are used
            __syncthreads();
        }
#endif
        for (int i = threadIdx.x; i < UPC * BATCH; i += NTHR) {
            int u = i / BATCH, b = i - u * BATCH;
            if (u >= nu) continue;
            int j = j0 + u;
            int len = s_len[b];
            bool active = s < len;
            float hprev = hown[i];
            float hnew = hprev;
#define XG(gate) (accX[((gate) * UPC + u) * BATCH + b] + wbs[(gate) * UPC + u])
#define RG(gate) (accR[((gate) * UPC + u) * BATCH + b] + rbs[(gate) * UPC + u])
#if CELL == 0
            // Gate block indices GI/GO/GF/GC come from the gate order (-D); P is [Pi, Po, Pf].
            float c = cst[i];
            float pi = ps[u], po = ps[UPC + u], pf = ps[2 * UPC + u];
            float ig = sigm(clipf(XG(GI) + RG(GI) + pi * c, clip));
            float fg = sigm(clipf(XG(GF) + RG(GF) + pf * c, clip));
            float gg = tanh_(clipf(XG(GC) + RG(GC), clip));
            float cnew = fg * c + ig * gg;
            float og = sigm(clipf(XG(GO) + RG(GO) + po * cnew, clip));
            if (active) {
                hnew = og * tanh_(cnew);
                cst[i] = cnew;
            }
#elif CELL == 1
            // Gate block indices GZ/GR/GH come from the gate order (-D).
            float z = sigm(clipf(XG(GZ) + RG(GZ), clip));
#if LBR
            float r = sigm(clipf(XG(GR) + RG(GR), clip));
            float hh = tanh_(clipf(XG(GH) + r * RG(GH), clip));
#else
            float hh = tanh_(clipf(XG(GH) + acc2[(GH * UPC + u) * BATCH + b] + rbs[GH * UPC + u], clip));
#endif
            if (active) hnew = (1.0f - z) * hh + z * hprev;
#elif CELL == 2
            if (active) hnew = tanh_(clipf(XG(0) + RG(0), clip));
#else
            if (active) hnew = fmaxf(clipf(XG(0) + RG(0), clip), 0.0f);
#endif
#undef XG
#undef RG
            hown[i] = hnew;
            st_relaxed(ex + (size_t)s * slot + (size_t)b * HID + j, pack(hnew, epoch));
            if (y) {
                // Padded steps of a sequence are zeros in Y (ONNX); the state carries.
                int t = active ? (reverse ? len - 1 - s : s) : s;
                y_store(y + (size_t)t * y_ts + b * y_bs + j, active ? hnew : 0.0f);
            }
            if (s == T - 1) {
                if (hn) o_store(hn + b * s_bs + j, hnew);
#if CELL == 0
                if (cn) o_store(cn + b * s_bs + j, cst[i]);
#endif
            }
        }
        // accX/accR/hown are rewritten next step; the gather's __syncthreads orders them.
        __syncthreads();
    }
#endif  // STEP_TWO_BARRIER

    // The last CTA to finish moves the epoch on for the next launch.
    if (threadIdx.x == 0) {
        __threadfence();
        u32 prev = atomicAdd(sync + 1, 1u);
        if (prev == gridDim.x - 1) {
            sync[1] = 0;
            __threadfence();
            u32 e = atomicAdd(sync, 1u) + 1u;
            if (e == 0u) atomicAdd(sync, 2u);  // epoch 0 is the "never written" tag; keep parity alternating
        }
    }
}
