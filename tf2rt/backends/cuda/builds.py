"""Which persistent-kernel build a shape gets: step form, tiling, product form, where the
weight fragments live (kernel_config and the rules it applies)."""

from __future__ import annotations

from dataclasses import replace

from .device_limits import DeviceLimits
from .kernel_config import GROUP_TILES, MAX_GATHER_WORDS, STATIC_SMEM_RESERVE, THREADS, KernelConfig
from .options import CudaOptions, resolve
from .packing import cta_count, round_up
from .problem import DTYPE_CODE, RnnProblem

#: Up to this many steps the first layer's input projection runs inside the kernel: for a
#: short sequence the projection GEMM's own launch costs more than the in-kernel products.
FUSE_INPUT_MAX_T = 4
#: Registers per thread the two-barrier step may spend on weight fragments (WREG); beyond
#: this, or at batches whose step state already needs many registers, the fragments stay
#: in shared memory (ptxas reports no spills for the shapes inside these bounds).
WREG_MAX_REGS = 64
WREG_MAX_BATCH = 4
#: fp32 large-batch builds without in-kernel input products run their products as three
#: bf16 passes (BF16X3) instead of three TF32 passes; options.bf16x3 "1"/"0" overrides. H200,
#: 2-layer, T=100 (cuda_rnn_kbf16x3_h200.md): LSTM H=1024 batch 64 4847 -> 3558 us, batch
#: 16 1737 -> 1615 us, H=512 batch 64 1828 -> 1677 us; outputs within 9e-6 of cuDNN.
BF16X3_DEFAULT = True
#: fp32 products run on tensor cores as three TF32 passes (TF32X3) from this batch on. An
#: m16n8k8 step costs the same for 1 to 8 batch columns, CUDA-core products grow with the
#: batch. On an H200 (2-layer LSTM, T=100) the CUDA cores win at batch 1 (H=512: 306 vs
#: 329 us), the tensor cores at batch 4 (418 vs 488 us) and 8 (450 vs 790 us).
TF32_MIN_BATCH = 4
#: TF32X3 builds pack two fp32 h per exchange word (PACKF) where a CTA gathers at least
#: this many h values a step. Measured on an H200 (2-layer, T=100, packed vs not): LSTM
#: H=512 batch 8 (8192 values: own h + the layer below's) 450 vs 556 us, H=1024 batch 8
#: (8192, one launch a layer) 1339 vs 1880 us; with an earlier TF32X3 build, at 4096 values
#: mixed (LSTM H=256 batch 8 245 vs 275 us, GRU 270 vs 250 us) and at 2048 slower (LSTM
#: H=256 batch 4 232 vs 209 us).
PACKF_MIN_VALUES = 8192
#: Large-batch builds without in-kernel input products move each step's rows by bulk copies
#: multicast across clusters of this many CTAs (BULK): every row leaves L2 once per cluster
#: instead of once per CTA. H100, 2-layer fp16 H=1024 batch 64 T=100 (cuda_rnn_bulk_h100.md):
#: LSTM 1638 -> 1326 us, GRU 1542 -> 1256 us; bulk copies alone were slower (1715 / 1635).
#: Clusters of four cannot all be co-resident with 128 CTAs (the cooperative launch is refused).
BULK_CLUSTER = 2


def bulk_for(cfg: KernelConfig, device: DeviceLimits, options: CudaOptions | None = None) -> int:
    """The BULK value of a large-batch build: 0 (16-byte cp.async), 1 (bulk copies) or the
    cluster size of multicast bulk copies. Needs the large-batch step with every row staged
    (no ring), compute capability 9.0, and groups that split into whole clusters. By
    default only builds without in-kernel input products (one launch a layer) take it;
    options.bulk names a form for the wavefront builds too."""
    env = resolve(options).bulk.strip()
    want = int(env) if env.isdigit() else 0 if cfg.fused else BULK_CLUSTER
    if (not want or not cfg.large_batch or cfg.ring_slots or device.compute_capability < (9, 0)
            or cfg.ctas_per_group % want):
        return 0
    return want


def batch_chunk(problem: RnnProblem) -> int:
    """Batch rows the original step gathers and multiplies at once (at most 8, and few
    enough exchange words per thread to keep in registers)."""
    bch = min(problem.batch, 8)
    while bch > 1 and -(-bch * problem.hidden // THREADS) > MAX_GATHER_WORDS:
        bch //= 2
    return bch


def choose_upc(hidden: int, groups: int, sm_count: int) -> int:
    """Fewest hidden units per CTA such that all groups' CTAs fit one per SM."""
    upc = 1
    while groups * cta_count(hidden, upc) > sm_count:
        upc += 1
    return upc


def large_batch_applies(cfg: KernelConfig, problem: RnnProblem, options: CudaOptions | None = None) -> bool:
    """Whether the large-batch step can run this shape (tensor cores, one batch chunk; the
    caller checks that it fits shared memory)."""
    lbr0 = problem.cell == "gru" and not problem.linear_before_reset
    return large_batch_config(cfg, problem, options=options).mma and problem.batch > 1 and not lbr0 and problem.hidden % 8 == 0


def large_batch_config(cfg: KernelConfig, problem: RnnProblem, smem_limit: int | None = None,
                       options: CudaOptions | None = None) -> KernelConfig:
    """`cfg` as a large-batch step build: all rows in one chunk, fp32 products as three TF32
    passes (the step has no CUDA-core form), weight fragments in registers where they fit
    (one row tile per warp, at most WREG_MAX_REGS registers), else in shared memory.

    Where shared memory (`smem_limit` bytes) cannot hold those weights next to every staged
    row (fp32 H=1024 above batch 16) and the build has no in-kernel input product, the
    first K steps of every warp keep their fragments in registers (WPART) and, if still
    needed, the rows go through a ring of copy groups (RING_SLOTS)."""
    options = resolve(options)
    tf32 = cfg.wtype == 0 and tf32_applies(problem, options)
    c3 = replace(cfg, large_batch=True, wreg=True, bch=problem.batch, tf32=tf32)
    if c3.tf32 and bf16x3_applies(c3, problem, options):
        c3 = replace(c3, tf32=False, bf16x3=True)
    fits = c3.rows_padded // 16 <= c3.threads // 32 and c3.frag_regs <= WREG_MAX_REGS
    if fits:
        return c3
    c3 = replace(c3, wreg=False)
    env = options.wpart
    fit = lambda c: smem_limit is None or c.smem_bytes + STATIC_SMEM_RESERVE <= smem_limit  # noqa: E731
    one_tile = c3.rows_padded // 16 <= c3.threads // 32
    if env == "0" or c3.fused or not c3.mma or not one_tile or (c3.kp // c3.kstep) % c3.ksplit or (fit(c3) and env != "1"):
        return c3
    cp = replace(c3, wpart=min(WREG_MAX_REGS // (8 if c3.bf16x3 else 4), c3.nit_r - 1))
    nbt = -(-problem.batch // 8)
    # all rows staged; else the deepest ring of two-tile groups, then of one-tile groups
    options = [(GROUP_TILES, 0)] + [(gt, n) for gt in (GROUP_TILES, 1) for n in range(-(-nbt // gt) - 1, 1, -1)]
    for gt, slots in options:
        if fit(replace(cp, group_tiles=gt, ring_slots=slots)):
            return replace(cp, group_tiles=gt, ring_slots=slots)
    return cp


def bf16x3_applies(cfg: KernelConfig, problem: RnnProblem, options: CudaOptions | None = None) -> bool:
    """Whether an fp32 large-batch or two-barrier build runs its products as three bf16
    passes (BF16X3) instead of three TF32 passes: large-batch builds, two-barrier builds
    without in-kernel input products, whose weights are small enough (BF16X3_MAX_ROW_NORM),
    where options.bf16x3 allows it."""
    env = resolve(options).bf16x3
    return (cfg.wtype == 0 and (cfg.large_batch or not cfg.fused)
            and (env == "1" or (BF16X3_DEFAULT and env != "0" and problem.bf16_ok)))


def large_batch_preferred(problem: RnnProblem) -> bool:
    """Where the large-batch step beats the two-barrier step: above batch 8 (the two-barrier
    step cannot run there), and at batch 8 with H >= 1024 for fp16/bf16, where moving h as
    plain rows pays (LSTM 812 -> 769 us on an H200). fp32 at batch 8 keeps the two-barrier
    step with packed words (LSTM H=1024: 1343 vs 1465 us; cuda_rnn_v3_choices_h200.md)."""
    wide = problem.batch == 8 and problem.hidden >= 1024 and problem.dtype != "float32"
    return problem.batch > 8 or wide


def two_barrier_applies(problem: RnnProblem, upc: int, bch: int, threads: int = THREADS) -> bool:
    """Whether the two-barrier step can run this shape: one batch chunk of at most 8 rows,
    one (unit, batch) pair per thread, one exchange per step (not GRU reset-before)."""
    lbr0 = problem.cell == "gru" and not problem.linear_before_reset
    return problem.batch <= 8 and bch == problem.batch and upc * problem.batch <= threads and not lbr0


def two_barrier_default(problem: RnnProblem, upc: int, bch: int, options: CudaOptions | None = None) -> bool:
    """Whether kernel_config picks the two-barrier step: every shape it applies to (fp32
    keeps IEEE division in the gates, fp16/bf16 use the approximate one)."""
    if resolve(options).step == "1":
        return False
    return two_barrier_applies(problem, upc, bch)


def tf32_applies(problem: RnnProblem, options: CudaOptions | None = None) -> bool:
    """Whether fp32 products of the two-barrier step run as three TF32 passes (TF32X3)."""
    env = resolve(options).tf32x3
    return problem.dtype == "float32" and env != "0" and (env == "1" or problem.batch >= TF32_MIN_BATCH)


def wreg_applies(cfg: KernelConfig) -> bool:
    """Whether the weight fragments can live in registers: two-barrier step on tensor
    cores, one row tile per warp, small batch, and a bounded register cost."""
    # H=1024 at batch 2-4 spilled while every build also kept registers for input-weight
    # fragments; a build without in-kernel input products (not fused) no longer does.
    small = cfg.batch <= WREG_MAX_BATCH and (cfg.hidden <= 512 or cfg.batch == 1 or not cfg.fused)
    return (cfg.two_barrier and cfg.mma and cfg.rows_padded // 16 <= cfg.threads // 32 and small
            and cfg.frag_regs <= WREG_MAX_REGS)


def kernel_config(problem: RnnProblem, groups: int, wavefront: bool, device: DeviceLimits,
                  allow_fuse_input: bool = True, options: CudaOptions | None = None) -> KernelConfig:
    """Tiling for `groups` layer-directions of `problem` sharing one launch."""
    options = resolve(options)
    upc = max(choose_upc(problem.hidden, groups, device.sm_count), min(options.upc, problem.hidden))
    bch = batch_chunk(problem)
    use_two_barrier = two_barrier_default(problem, upc, bch, options)
    # The first layer projects x inside the kernel only for short sequences (saves the
    # GEMM's launch). For long ones the GEMM wins even in a wavefront: a first layer with
    # in-kernel input products is as slow per step as the deeper ones, so it no longer
    # runs ahead of them (LSTM H=512 fp16 B=1 T=100 on an H200: 210 us vs 172 us).
    fuse_input = allow_fuse_input and problem.seq_len <= FUSE_INPUT_MAX_T
    kx = max(problem.input_size if fuse_input else 0, problem.hidden if wavefront else 0)
    cfg = KernelConfig(
        cell_code=problem.cell_code,
        linear_before_reset=problem.linear_before_reset,
        hidden=problem.hidden,
        upc=upc,
        batch=problem.batch,
        bch=bch,
        threads=THREADS,
        wtype=DTYPE_CODE[problem.dtype],
        iotype=DTYPE_CODE[problem.dtype],
        groups=groups,
        fused=wavefront or fuse_input,
        kx=round_up(kx, 8) if kx else 0,
        fuse_input=fuse_input,
    )
    use_large_batch = (options.step not in ("1", "2") and large_batch_preferred(problem)
                       and large_batch_applies(cfg, problem, options))
    if use_large_batch:
        c3 = large_batch_config(cfg, problem, device.smem_per_block, options)
        if c3.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
            return replace(c3, bulk=bulk_for(c3, device, options))
    if use_two_barrier:
        c2 = replace(cfg, two_barrier=True, split_x=wavefront and groups > 1)
        wreg_ok = lambda c: options.wreg and wreg_applies(c)  # noqa: E731
        if tf32_applies(problem, options):
            gathered = problem.batch * problem.hidden * (2 if wavefront and groups > 1 else 1)
            c2 = replace(c2, tf32=True, packf=gathered >= PACKF_MIN_VALUES)
            # fp32 products as three bf16 passes where the fragments would stay in shared
            # memory (no in-kernel input products, no WREG), the first K steps of every
            # warp's fragments in registers (WPART). H200, 2-layer, T=100, one launch a layer
            # (benchmarks/results/cuda_rnn_v2_bf16x3_h200.md): H=1024 batch 8 LSTM 998 us
            # (TF32X3) -> 961 (BF16X3) -> 910 (+WPART), GRU 989 -> 968 -> 928; batch 4 LSTM
            # 891 -> 939 -> 870, GRU 838 -> 883 -> 830.
            cb = replace(c2, tf32=False, bf16x3=True)
            if options.wpart != "0" and cb.nit_r > 1 and (cb.kp // cb.kstep) % cb.ksplit == 0:
                cb = replace(cb, wpart=min(WREG_MAX_REGS // 8, cb.nit_r - 1))
            if bf16x3_applies(c2, problem, options) and not wreg_ok(c2) and cb.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
                return cb
        if c2.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
            if wreg_ok(c2):
                c2 = replace(c2, wreg=True)
            return c2
    return cfg
