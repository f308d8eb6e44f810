"""Execution plans for recurrent layers on the GPU (pure Python, CPU-testable).

For one stack of recurrent layers the planner decides:

- which engine runs it: the persistent kernel ("persistent"), cuDNN through
  torch.nn.LSTM/GRU/RNN ("cudnn"), the single-step stack for one-step calls ("step",
  single_step.py), or a step loop of torch ops ("torch", for forms none of them
  supports, e.g. non-default activations);
- for the persistent kernel, the tiling (hidden units per CTA, threads, batch chunk), the
  shared memory it needs, and whether layers run as one wavefront launch or one launch per
  layer;
- an estimate of the hardware floor for the shape (docs/cuda.md derives it).

The choice comes from small tables of measured crossovers (benchmarks/results/cuda_rnn_*.md:
CROSSOVER, STEP_MIN_BATCH); a runner may refine it with a first-run measurement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from .packing import GATES_PER_CELL, cta_count, round_up

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DTYPE_CODE = {"float32": 0, "float16": 1, "bfloat16": 2}
CELL_CODE = {"lstm": 0, "gru": 1, "rnn-tanh": 2, "rnn-relu": 3}

#: Threads per CTA of the persistent kernel.
THREADS = 256
#: Words of the exchange buffer each thread may hold in registers while gathering a step.
MAX_GATHER_WORDS = 32
#: Static shared memory and the per-block reserve the kernel uses besides the dynamic part.
STATIC_SMEM_RESERVE = 1024
#: Up to this many steps the first layer's input projection runs inside the kernel: for a
#: short sequence the projection GEMM's own launch costs more than the in-kernel products.
FUSE_INPUT_MAX_T = 4
#: Environment switch for the step loop: "1" keeps the original step (a barrier around
#: every phase) everywhere; "2" turns the large-batch step off only; otherwise the
#: large-batch step where it is preferred (step_v3_preferred) and applies, else the
#: two-barrier step where it applies (step_v2_default).
STEP_ENV = "TF2RT_CUDA_STEP"
#: Registers per thread the two-barrier step may spend on weight fragments (WREG); beyond
#: this, or at batches whose step state already needs many registers, the fragments stay
#: in shared memory (ptxas reports no spills for the shapes inside these bounds).
WREG_MAX_REGS = 64
WREG_MAX_BATCH = 4
#: Environment switch: "0" keeps the weight fragments in shared memory everywhere.
WREG_ENV = "TF2RT_CUDA_WREG"
#: fp32 large-batch builds without in-kernel input products run their products as three
#: bf16 passes (BF16X3) instead of three TF32 passes; BF16X3_ENV "1"/"0" overrides. H200,
#: 2-layer, T=100 (cuda_rnn_kbf16x3_h200.md): LSTM H=1024 batch 64 4847 -> 3558 us, batch
#: 16 1737 -> 1615 us, H=512 batch 64 1828 -> 1677 us; outputs within 9e-6 of cuDNN.
BF16X3_DEFAULT = True
BF16X3_ENV = "TF2RT_CUDA_BF16X3"
#: Three bf16 passes carry each operand to about 16 significant bits, three TF32 passes to
#: about 21: where a recurrence amplifies rounding (large weights) the difference shows.
#: Emulated 20-step GRUs, H=96 and 512, largest error against exact products
#: (benchmarks/results/precision_fp32_forms.md): weight rows of L2 norm 2 -> bf16x3 1.1e-5,
#: tf32x3 9e-7; norm 4 -> 4e-5..1.8e-4 / 3e-6..1.2e-5; norm 4.9 (the GPU engine tests'
#: weights, where bf16x3 builds measured 5e-4..2.5e-3 off) 3e-4..6e-4 / 4e-5. So fp32 stacks
#: use the bf16 forms (BF16X3, the bf16x3 projection, the single-step stack's split
#: operands) only where no weight row (W or R, any layer) has an L2 norm above this; larger
#: weights keep three TF32 passes or plain fp32. BF16X3_ENV="1" forces BF16X3 regardless.
BF16X3_MAX_ROW_NORM = 2.0
#: n-tiles (8 batch rows each) per copy group of the large-batch step (the kernel's V3_GT).
V3_GROUP_TILES = 2
#: Environment switch for split fragments (WPART): "0" leaves them out (large-batch builds
#: whose weights fit neither registers nor, next to all staged rows, shared memory alone
#: then take the original step or cuDNN; fp32 two-barrier builds keep all fragments in
#: shared memory); "1" also uses them in large-batch builds where shared-memory weights
#: would fit.
WPART_ENV = "TF2RT_CUDA_WPART"
#: fp32 products run on tensor cores as three TF32 passes (TF32X3) from this batch on. An
#: m16n8k8 step costs the same for 1 to 8 batch columns, CUDA-core products grow with the
#: batch. On an H200 (2-layer LSTM, T=100) the CUDA cores win at batch 1 (H=512: 306 vs
#: 329 us), the tensor cores at batch 4 (418 vs 488 us) and 8 (450 vs 790 us).
TF32_MIN_BATCH = 4
#: Environment switch: "0" keeps fp32 products on CUDA cores, "1" uses TF32X3 at every batch.
TF32_ENV = "TF2RT_CUDA_TF32X3"
#: TF32X3 builds pack two fp32 h per exchange word (PACKF) where a CTA gathers at least
#: this many h values a step. Measured on an H200 (2-layer, T=100, packed vs not): LSTM
#: H=512 batch 8 (8192 values: own h + the layer below's) 450 vs 556 us, H=1024 batch 8
#: (8192, one launch a layer) 1339 vs 1880 us; with an earlier TF32X3 build, at 4096 values
#: mixed (LSTM H=256 batch 8 245 vs 275 us, GRU 270 vs 250 us) and at 2048 slower (LSTM
#: H=256 batch 4 232 vs 209 us).
PACKF_MIN_VALUES = 8192
#: One-step calls (T=1) of at least this batch run in the single-step stack (one GEMM over
#: [x | h0] and one gate kernel a layer, single_step.py) when the planner chooses without
#: measuring. H200, 2-layer stacks (benchmarks/results/cuda_rnn_h200.md): fp32 it was the
#: fastest engine at batch 8 and 64 for every H but GRU H=256 batch 8 (0.1 us behind), e.g.
#: GRU H=1024 batch 64 34.8 us (persistent kernel 87.3, cuDNN 105.2); fp16 from batch 64
#: (batch 8: GRU H=1024 22.2 us against cuDNN's 17.1).
STEP_MIN_BATCH = {"float32": 8, "float16": 64, "bfloat16": 64}


@dataclass(frozen=True)
class DeviceLimits:
    """What the planner needs to know about the GPU."""

    name: str = "NVIDIA H100 80GB HBM3"
    sm_count: int = 132
    smem_per_block: int = 227 * 1024  # opt-in maximum of dynamic shared memory per block
    compute_capability: tuple[int, int] = (9, 0)
    clock_ghz: float = 1.755
    #: Step-exchange latency (a tagged 512-word all-gather through L2 across 132 CTAs),
    #: microseconds: measured 0.93 on an H100 SXM (benchmarks/results/cuda_rnn_h100.md).
    exchange_us: float = 0.93
    smem_bytes_per_clock: int = 128
    #: Aggregate rate at which L2 delivers data that every CTA reads (each SM copying the
    #: same buffer into shared memory), bytes/s: 8.0-8.4 TB/s measured on an H200
    #: (benchmarks/results/cuda_rnn_h200.md, `l2_broadcast_tb_s`). Bounds the B x K operand
    #: every CTA receives.
    l2_bytes_per_s: float = 8.0e12
    #: Replaying a CUDA graph of one empty kernel, CUDA-event timed, microseconds: what any
    #: per-call launch costs before the first instruction runs. The fastest of 300 replays
    #: moved between 5.6 and 10.1 from run to run on H200 machines (medians 9.3-14.6), once
    #: above a whole 2-step stack's median in the same run; the floor takes the lowest.
    launch_us: float = 5.6
    #: Device-memory (HBM) bandwidth, bytes/s (H100 SXM: 3.35 TB/s), and the L2 size:
    #: weights of a call come from L2 when they fit there, else from HBM.
    hbm_bytes_per_s: float = 3.35e12
    l2_size: int = 50 * 1024 * 1024

    @property
    def flops_per_clock(self) -> dict[str, int]:
        """Dense multiply-add throughput per SM and clock (2 FLOP per FMA). fp16/bf16: the
        tensor cores. fp32: the faster of CUDA-core FMA and three TF32 tensor-core passes
        (the cheapest way to keep fp32 accuracy), so the floor stays a lower bound."""
        major = self.compute_capability[0]
        half = 4096 if major >= 9 else 2048 if major == 8 else 1024
        ffma = 128 if major < 8 or self.compute_capability == (8, 0) else 256  # FP32 lanes x 2
        return {"half": half, "float32": max(ffma, half // 2 // 3)}


@dataclass(frozen=True)
class RnnProblem:
    """One stack of recurrent layers as the engine's ONNX graph describes it."""

    cell: str  # "lstm" | "gru" | "rnn"
    hidden: int
    input_size: int
    batch: int
    seq_len: int
    layers: int = 1
    directions: int = 1
    dtype: str = "float32"
    linear_before_reset: bool = True
    rnn_activation: str = "tanh"
    default_activations: bool = True
    peepholes: bool = False
    clip: float | None = None
    reverse: bool = False  # a single "reverse" direction
    row_norm: float = 0.0  # largest L2 norm of a weight row (W or R) of any layer; 0: not known (taken as small)

    @property
    def bf16_ok(self) -> bool:
        """Whether fp32 products may run as bf16 hi/lo parts (BF16X3_MAX_ROW_NORM)."""
        return self.row_norm <= BF16X3_MAX_ROW_NORM

    @property
    def gates(self) -> int:
        return GATES_PER_CELL[self.cell]

    @property
    def cell_code(self) -> int:
        return CELL_CODE[self.cell if self.cell != "rnn" else f"rnn-{self.rnn_activation}"]

    @property
    def weight_bytes(self) -> int:
        """Input and recurrent weights of every layer and direction, in the stack's dtype."""
        rows = self.gates * self.hidden
        inputs = self.input_size + (self.layers - 1) * self.hidden * self.directions
        return rows * (inputs + self.layers * self.hidden) * self.directions * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class KernelConfig:
    """Compile-time configuration of one persistent kernel build (one launch shape)."""

    cell_code: int
    linear_before_reset: bool
    hidden: int
    upc: int  # hidden units per CTA
    batch: int
    bch: int  # batch rows gathered and multiplied at once
    threads: int
    wtype: int
    iotype: int
    groups: int
    fused: bool  # some group computes its input projection in-kernel
    kx: int = 0  # padded row length of in-kernel input weights (0: none)
    fuse_input: bool = False  # the first layer projects x inside the kernel
    step_v2: bool = False  # two-barrier step (kernels/persistent_rnn.cu, STEP_V2)
    wreg: bool = False  # weight fragments in registers (WREG; two-barrier step, fp16/bf16)
    split_x: bool = False  # deeper wavefront layers: input product before the own-h wait (SPLITX)
    resident: bool = False  # streaming: one launch serves step after step (RESIDENT; resident.py)
    step_v3: bool = False  # large batch: all rows staged, flag exchange (STEP_V3)
    tf32: bool = False  # fp32 products on tensor cores as three TF32 passes (TF32X3; two-barrier step)
    packf: bool = False  # tf32 builds: two fp32 h per exchange word (PACKF; not in streaming builds)
    wpart: int = 0  # large-batch step: K steps per warp with fragments in registers, the rest in smem (WPART)
    v3_slots: int = 0  # large-batch step: staging ring of this many copy groups (V3_SLOTS; 0: all rows)
    v3_gt: int = V3_GROUP_TILES  # large-batch step: n-tiles (8 batch rows) per copy group (V3_GT)
    bf16x3: bool = False  # fp32: products as three bf16 passes over pre-split operands (BF16X3)

    @property
    def gates(self) -> int:
        return {0: 4, 1: 3}.get(self.cell_code, 1)

    @property
    def mma(self) -> bool:
        """Products on tensor cores: fp16/bf16 weights (K padded to 16), or fp32 under tf32
        (K padded to 8) or bf16x3 (K padded to 16)."""
        return self.wtype != 0 or self.tf32 or self.bf16x3

    @property
    def products(self) -> str:
        """How the build multiplies, in words (runner.describe())."""
        if self.bf16x3:
            return "fp32 as three bf16 tensor-core passes"
        if self.tf32:
            return "fp32 as three TF32 tensor-core passes"
        return {0: "fp32 CUDA cores", 1: "fp16 tensor cores", 2: "bf16 tensor cores"}[self.wtype]

    @property
    def kstep(self) -> int:
        """K of one tensor-core step: m16n8k16 for fp16/bf16, m16n8k8 for TF32."""
        return 8 if self.tf32 else 16

    @property
    def kalign(self) -> int:
        return self.kstep if self.mma else 8

    @property
    def kp(self) -> int:
        return round_up(self.hidden, self.kalign)

    @property
    def rows_padded(self) -> int:
        rows = self.gates * self.upc
        return round_up(rows, 16) if self.mma else rows

    @property
    def ctas_per_group(self) -> int:
        return cta_count(self.hidden, self.upc)

    @property
    def grid(self) -> int:
        return self.groups * self.ctas_per_group

    @property
    def ksplit(self) -> int:
        """Warps sharing one 16-row tile, each a slice of K (tensor-core builds)."""
        return max(self.threads // 32 // (self.rows_padded // 16), 1)

    @property
    def nit_r(self) -> int:
        """K steps of the recurrent product per warp (tensor-core builds)."""
        return -(-(self.kp // self.kstep) // self.ksplit)

    @property
    def frag_regs(self) -> int:
        """Registers per thread that hold weight fragments under WREG (4 per 16-row tile
        K step, 8 under bf16x3: hi and lo; one row tile per warp, K split over the warps of
        a tile), or the first `wpart` K steps of them."""
        if not self.mma:
            return 0
        per = 8 if self.bf16x3 else 4
        if self.wpart:
            return per * self.wpart
        nit = lambda k: -(-(k // self.kstep) // self.ksplit)  # noqa: E731
        return per * (nit(self.kp) + (nit(self.kx_eff) if self.fused else 0))

    @property
    def kx_eff(self) -> int:
        return round_up(self.kx, self.kalign) if self.kx else self.kp

    @property
    def weight_bytes(self) -> int:
        """Weights one CTA keeps in shared memory."""
        wsize = 4 if self.wtype == 0 else 2
        rows = self.rows_padded
        return rows * self.kp * wsize + (rows * self.kx_eff * wsize if self.fused else 0)

    @property
    def smem_weight_bytes(self) -> int:
        """Weights read from shared memory every step (none under WREG; under WPART the
        K steps past the first `wpart` of every warp)."""
        if self.wreg:
            return 0
        if self.wpart:
            return self.weight_bytes // self.nit_r * (self.nit_r - self.wpart)
        return self.weight_bytes

    @property
    def staged_rows(self) -> int:
        """Batch rows staged in shared memory at once (STG_ROWS)."""
        if not self.step_v3:
            return 8
        nbt = -(-self.batch // 8)
        if 0 < self.v3_slots < -(-nbt // self.v3_gt):
            return 8 * self.v3_gt * self.v3_slots
        return 8 * nbt

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory per CTA (mirrors the carve-up in persistent_rnn.cu)."""
        rows = self.gates * self.upc
        if self.mma:  # staging [8 per n-tile][K + pad] (fp16/bf16, or fp32 under tf32) and split-K partial sums
            nwarp = self.threads // 32
            mt = self.rows_padded // 16
            nbt = -(-self.batch // 8) if self.step_v3 else 1
            pad, esize = (4, 4) if self.tf32 else (8, 4) if self.bf16x3 else (8, 2)  # bf16x3: hi + lo planes
            stage = self.staged_rows * ((self.kp + pad) + ((self.kx_eff + pad) if self.fused else 0)) * esize
            # second set (input products) in two-barrier builds; large-batch ones only when fused
            sets = 2 if (self.step_v2 or (self.step_v3 and self.fused)) else 1
            red = mt * max(nwarp // mt, 1) * 128 * 4 * sets * nbt
            # large-batch step: the initial h/c borrow the partial sums' space (STATE_IN_RED)
            state_in_red = self.step_v3 and 2 * self.upc * self.batch <= mt * max(nwarp // mt, 1) * 128 * nbt
        else:
            stage = self.bch * (self.kp + (self.kx_eff if self.fused else 0)) * 4
            red = 0
            state_in_red = False
        return (
            self.smem_weight_bytes
            + stage
            + (0 if self.step_v3 else rows * self.batch * 4 * 3)
            + (0 if state_in_red else self.upc * self.batch * 4 * 2)
            + rows * 4 * 2
            + 3 * self.upc * 4
            + red
        )

    def defines(self) -> dict[str, int]:
        return {
            "CELL": self.cell_code,
            "LBR": int(self.linear_before_reset),
            "HID": self.hidden,
            "UPC": self.upc,
            "BATCH": self.batch,
            "BCH": self.bch,
            "NTHR": self.threads,
            "WTYPE": self.wtype,
            "IOTYPE": self.iotype,
            "KP": self.kp,
            "KX": self.kx_eff,
            # FUSED=0 compiles the in-kernel input product out (and the registers of its
            # fragments). Two-barrier and large-batch builds gain (H200, one launch a
            # layer: fp16 H=1024 batch 1 329 -> 295 us, fp32 H=1024 batch 8 1350 -> 1271
            # us); the original step keeps the general code (6-9% slower without it at fp32
            # H=1024 batch 64).
            "FUSED": int(self.fused or not (self.step_v2 or self.step_v3)),
            "STEP_V2": int(self.step_v2),
            "WREG": int(self.wreg),
            "SPLITX": int(self.split_x),
            "RESIDENT": int(self.resident),
            "STEP_V3": int(self.step_v3),
            "TF32X3": int(self.tf32),
            "BF16X3": int(self.bf16x3),
            "PACKF_REQ": int(self.packf),
            "WPART": self.wpart,
            "V3_SLOTS": self.v3_slots,
            **({"V3_GT": self.v3_gt} if self.v3_gt != V3_GROUP_TILES else {}),
        }


@dataclass
class Plan:
    """How one recurrent stack runs, and why."""

    engine: str  # "persistent" | "cudnn" | "torch"
    reason: str
    mode: str = ""  # persistent: "wavefront" (one launch) or "layerwise" (one launch a layer)
    kernel: KernelConfig | None = None
    floor_us: float = 0.0
    steps: int = 0
    full_floor_us: float = 0.0
    measured: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict:
        out = {"engine": self.engine, "reason": self.reason, "floor_us": round(self.floor_us, 2),
               "full_floor_us": round(self.full_floor_us, 2)}
        if self.kernel is not None:
            k = self.kernel
            out.update(
                mode=self.mode,
                step="large-batch" if k.step_v3 else "two-barrier" if k.step_v2 else "original",
                products=k.products,
                weights=("registers" if k.wreg else "registers + shared memory" if k.wpart else "shared memory"),
                grid=k.grid,
                units_per_cta=k.upc,
                smem_bytes=k.smem_bytes,
                weight_bytes_per_cta=k.weight_bytes,
            )
        if self.measured:
            out["measured_us"] = {k: round(v, 2) for k, v in self.measured.items()}
        return out


# Largest batch at which the persistent kernel beat cuDNN-in-a-CUDA-graph in the committed
# benchmarks (benchmarks/results/cuda_rnn_h200.md: 2 layers, batch 1/8/64;
# cuda_rnn_large_batch_h200.md: batch 16/64 at T=100; cuda_rnn_wpart_h200.md: fp32 H=1024 at
# batch 16/32/64, where the split-fragment build wins from batch 32 on; on an H200), by
# (cell, dtype) -> {hidden: (short sequences (T <= FUSE_INPUT_MAX_T), long sequences)};
# 0 = never. Shapes between entries use the next larger hidden size; plain RNN was not
# measured and uses the GRU row. A runner with autotune on re-measures at load time anyway.
CROSSOVER: dict[tuple[str, str], dict[int, tuple[int, int]]] = {
    ("lstm", "float16"): {256: (8, 64), 512: (1, 64), 1024: (0, 16)},
    ("lstm", "float32"): {256: (8, 64), 512: (1, 64), 1024: (0, 64)},
    ("gru", "float16"): {256: (8, 64), 512: (1, 64), 1024: (0, 16)},
    ("gru", "float32"): {256: (8, 64), 512: (1, 64), 1024: (0, 64)},
}


def crossover_batch(cell: str, dtype: str, hidden: int, seq_len: int = 100) -> int:
    """Largest batch at which the persistent kernel is expected to win (table lookup)."""
    key = ("gru" if cell == "rnn" else cell, "float16" if dtype == "bfloat16" else dtype)
    table = CROSSOVER.get(key, {})
    for h in sorted(table):
        if hidden <= h:
            return table[h][0 if seq_len <= FUSE_INPUT_MAX_T else 1]
    return 0  # larger than anything measured: trust cuDNN


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


def step_v3_applies(cfg: KernelConfig, problem: RnnProblem) -> bool:
    """Whether the large-batch step can run this shape (tensor cores, one batch chunk; the
    caller checks that it fits shared memory)."""
    lbr0 = problem.cell == "gru" and not problem.linear_before_reset
    return v3_config(cfg, problem).mma and problem.batch > 1 and not lbr0 and problem.hidden % 8 == 0


def v3_config(cfg: KernelConfig, problem: RnnProblem, smem_limit: int | None = None) -> KernelConfig:
    """`cfg` as a large-batch step build: all rows in one chunk, fp32 products as three TF32
    passes (the step has no CUDA-core form), weight fragments in registers where they fit
    (one row tile per warp, at most WREG_MAX_REGS registers), else in shared memory.

    Where shared memory (`smem_limit` bytes) cannot hold those weights next to every staged
    row (fp32 H=1024 above batch 16) and the build has no in-kernel input product, the
    first K steps of every warp keep their fragments in registers (WPART) and, if still
    needed, the rows go through a ring of copy groups (V3_SLOTS)."""
    c3 = replace(cfg, step_v3=True, wreg=True, bch=problem.batch, tf32=cfg.wtype == 0 and tf32_applies(problem))
    if c3.tf32 and bf16x3_applies(c3, problem):
        c3 = replace(c3, tf32=False, bf16x3=True)
    fits = c3.rows_padded // 16 <= c3.threads // 32 and c3.frag_regs <= WREG_MAX_REGS
    if fits:
        return c3
    c3 = replace(c3, wreg=False)
    env = os.environ.get(WPART_ENV, "")
    fit = lambda c: smem_limit is None or c.smem_bytes + STATIC_SMEM_RESERVE <= smem_limit  # noqa: E731
    one_tile = c3.rows_padded // 16 <= c3.threads // 32
    if env == "0" or c3.fused or not c3.mma or not one_tile or (c3.kp // c3.kstep) % c3.ksplit or (fit(c3) and env != "1"):
        return c3
    cp = replace(c3, wpart=min(WREG_MAX_REGS // (8 if c3.bf16x3 else 4), c3.nit_r - 1))
    nbt = -(-problem.batch // 8)
    # all rows staged; else the deepest ring of two-tile groups, then of one-tile groups
    options = [(V3_GROUP_TILES, 0)] + [(gt, n) for gt in (V3_GROUP_TILES, 1) for n in range(-(-nbt // gt) - 1, 1, -1)]
    for gt, slots in options:
        if fit(replace(cp, v3_gt=gt, v3_slots=slots)):
            return replace(cp, v3_gt=gt, v3_slots=slots)
    return cp


def bf16x3_applies(cfg: KernelConfig, problem: RnnProblem) -> bool:
    """Whether an fp32 large-batch or two-barrier build runs its products as three bf16
    passes (BF16X3) instead of three TF32 passes: large-batch builds, two-barrier builds
    without in-kernel input products, whose weights are small enough (BF16X3_MAX_ROW_NORM),
    where the environment switch allows it."""
    env = os.environ.get(BF16X3_ENV, "")
    return (cfg.wtype == 0 and (cfg.step_v3 or not cfg.fused)
            and (env == "1" or (BF16X3_DEFAULT and env != "0" and problem.bf16_ok)))


def step_v3_preferred(problem: RnnProblem) -> bool:
    """Where the large-batch step beats the two-barrier step: above batch 8 (the two-barrier
    step cannot run there), and at batch 8 with H >= 1024 for fp16/bf16, where moving h as
    plain rows pays (LSTM 812 -> 769 us on an H200). fp32 at batch 8 keeps the two-barrier
    step with packed words (LSTM H=1024: 1343 vs 1465 us; cuda_rnn_v3_choices_h200.md)."""
    wide = problem.batch == 8 and problem.hidden >= 1024 and problem.dtype != "float32"
    return problem.batch > 8 or wide


def step_v2_applies(problem: RnnProblem, upc: int, bch: int, threads: int = THREADS) -> bool:
    """Whether the two-barrier step can run this shape: one batch chunk of at most 8 rows,
    one (unit, batch) pair per thread, one exchange per step (not GRU reset-before)."""
    lbr0 = problem.cell == "gru" and not problem.linear_before_reset
    return problem.batch <= 8 and bch == problem.batch and upc * problem.batch <= threads and not lbr0


def step_v2_default(problem: RnnProblem, upc: int, bch: int) -> bool:
    """Whether kernel_config picks the two-barrier step: every shape it applies to (fp32
    keeps IEEE division in the gates, fp16/bf16 use the approximate one)."""
    if os.environ.get(STEP_ENV, "") == "1":
        return False
    return step_v2_applies(problem, upc, bch)


def tf32_applies(problem: RnnProblem) -> bool:
    """Whether fp32 products of the two-barrier step run as three TF32 passes (TF32X3)."""
    env = os.environ.get(TF32_ENV, "")
    return problem.dtype == "float32" and env != "0" and (env == "1" or problem.batch >= TF32_MIN_BATCH)


def wreg_applies(cfg: KernelConfig) -> bool:
    """Whether the weight fragments can live in registers: two-barrier step on tensor
    cores, one row tile per warp, small batch, and a bounded register cost."""
    # H=1024 at batch 2-4 spilled while every build also kept registers for input-weight
    # fragments; a build without in-kernel input products (not fused) no longer does.
    small = cfg.batch <= WREG_MAX_BATCH and (cfg.hidden <= 512 or cfg.batch == 1 or not cfg.fused)
    return (cfg.step_v2 and cfg.mma and cfg.rows_padded // 16 <= cfg.threads // 32 and small
            and cfg.frag_regs <= WREG_MAX_REGS)


def kernel_config(problem: RnnProblem, groups: int, wavefront: bool, device: DeviceLimits,
                  allow_fuse_input: bool = True) -> KernelConfig:
    """Tiling for `groups` layer-directions of `problem` sharing one launch."""
    upc = choose_upc(problem.hidden, groups, device.sm_count)
    bch = batch_chunk(problem)
    v2 = step_v2_default(problem, upc, bch)
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
    v3 = (os.environ.get(STEP_ENV, "") not in ("1", "2") and step_v3_preferred(problem)
          and step_v3_applies(cfg, problem))
    if v3:
        c3 = v3_config(cfg, problem, device.smem_per_block)
        if c3.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
            return c3
    if v2:
        c2 = replace(cfg, step_v2=True, split_x=wavefront and groups > 1)
        wreg_ok = lambda c: os.environ.get(WREG_ENV, "") != "0" and wreg_applies(c)  # noqa: E731
        if tf32_applies(problem):
            gathered = problem.batch * problem.hidden * (2 if wavefront and groups > 1 else 1)
            c2 = replace(c2, tf32=True, packf=gathered >= PACKF_MIN_VALUES)
            # fp32 products as three bf16 passes where the fragments would stay in shared
            # memory (no in-kernel input products, no WREG), the first K steps of every
            # warp's fragments in registers (WPART). H200, 2-layer, T=100, one launch a layer
            # (benchmarks/results/cuda_rnn_v2_bf16x3_h200.md): H=1024 batch 8 LSTM 998 us
            # (TF32X3) -> 961 (BF16X3) -> 910 (+WPART), GRU 989 -> 968 -> 928; batch 4 LSTM
            # 891 -> 939 -> 870, GRU 838 -> 883 -> 830.
            cb = replace(c2, tf32=False, bf16x3=True)
            if os.environ.get(WPART_ENV, "") != "0" and cb.nit_r > 1 and (cb.kp // cb.kstep) % cb.ksplit == 0:
                cb = replace(cb, wpart=min(WREG_MAX_REGS // 8, cb.nit_r - 1))
            if bf16x3_applies(c2, problem) and not wreg_ok(c2) and cb.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
                return cb
        if c2.smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block:
            if wreg_ok(c2):
                c2 = replace(c2, wreg=True)
            return c2
    return cfg


def floor_parts(problem: RnnProblem, cfg: KernelConfig, device: DeviceLimits) -> dict[str, float]:
    """Per-step costs no persistent schedule of this shape can avoid, microseconds
    (docs/cuda.md, "Hardware floor"):

    - exchange: moving h_t to every CTA (one L2 round trip, measured), once per exchange;
    - weights: streaming one CTA's weight slice out of shared memory (none where the weight
      fragments live in registers: nothing is streamed, the math term covers their use);
    - operand: the B x K values every CTA multiplies (h, and the layer below's h in a
      wavefront) crossing L2 into every CTA, at the measured broadcast rate;
    - math: one CTA's multiply-adds at the SM's peak rate (bf16x3 builds: a third of the
      bf16 rate).
    """
    exchanges = 2 if (problem.cell == "gru" and not problem.linear_before_reset) else 1
    clock = device.clock_ghz * 1e9
    rows = cfg.rows_padded
    k_cta = cfg.kp + (cfg.kx_eff if cfg.fused else 0)  # the widest CTA's K (a deeper layer's)
    stage_bytes = 4 if cfg.wtype == 0 else 2
    # Every CTA of a group receives its group's operand; only deeper wavefront layers (and
    # an in-kernel first-layer projection) also receive an input row.
    deeper = cfg.groups - 1 if (cfg.fused and not cfg.fuse_input) else cfg.groups if cfg.fused else 0
    k_total = cfg.groups * cfg.kp + deeper * cfg.kx_eff
    operand = cfg.ctas_per_group * k_total * problem.batch * stage_bytes / device.l2_bytes_per_s
    flops = 2.0 * rows * k_cta * problem.batch
    # fp32: the form the build runs (three bf16 passes run at a third of the bf16 rate)
    rate = device.flops_per_clock["half"] / 3 if cfg.bf16x3 else device.flops_per_clock["half" if cfg.wtype != 0 else "float32"]
    return {
        "exchange": exchanges * device.exchange_us,
        "weights": cfg.smem_weight_bytes / (device.smem_bytes_per_clock * clock) * 1e6,
        "operand": operand * 1e6,
        "math": flops / (rate * clock) * 1e6,
    }


def floor_us(problem: RnnProblem, cfg: KernelConfig, steps: int, device: DeviceLimits) -> float:
    """Hardware floor of the persistent schedule as first derived: per step, one h exchange
    through L2 plus streaming this CTA's weights out of shared memory (docs/cuda.md)."""
    f = floor_parts(problem, cfg, device)
    return steps * (f["exchange"] + f["weights"])


def weight_read_us(problem: RnnProblem, device: DeviceLimits) -> float:
    """Bringing all weights of a call into the SMs once, microseconds: from L2 at the
    measured L2 rate where they fit there, else from device memory (HBM)."""
    rate = device.l2_bytes_per_s if problem.weight_bytes <= device.l2_size else device.hbm_bytes_per_s
    return problem.weight_bytes / rate * 1e6


def projection_us(problem: RnnProblem, cfg: KernelConfig, device: DeviceLimits) -> float:
    """The input projections the kernel does not do itself (one GEMM per layer: the first
    layer unless it projects in the kernel, deeper layers unless they run in a wavefront),
    their math at the tensor cores' peak rate, microseconds. fp32 at a third of the
    fp16/bf16 rate: the GEMM's three bf16 passes (projection.py)."""
    p = problem
    wavefront = cfg.groups > p.directions
    gemm_inputs = ([] if cfg.fuse_input else [p.input_size]) + ([] if wavefront else [p.directions * p.hidden] * (p.layers - 1))
    flops = sum(2.0 * p.seq_len * p.batch * k * p.directions * p.gates * p.hidden for k in gemm_inputs)
    half = device.flops_per_clock["half"]
    rate = (half / 3 if p.dtype == "float32" else half) * device.sm_count * device.clock_ghz * 1e9
    return flops / rate * 1e6


def full_floor_us(problem: RnnProblem, cfg: KernelConfig, steps: int, device: DeviceLimits) -> float:
    """floor_us with what it leaves out: per call the graph launch, reading every weight
    once (before a layer's first step can finish) and the input-projection GEMMs' math,
    and per step the largest of the weight stream, the operand traffic and the math (they
    overlap, so only the largest counts; the exchange latency sits in front of all of
    them)."""
    f = floor_parts(problem, cfg, device)
    per_call = device.launch_us + weight_read_us(problem, device) + projection_us(problem, cfg, device)
    return per_call + steps * (f["exchange"] + max(f["weights"], f["operand"], f["math"]))


def step_applies(problem: RnnProblem) -> str | None:
    """Why the single-step stack (single_step.py) cannot run `problem`, or None if it can."""
    p = problem
    if p.seq_len != 1:
        return "the single-step stack runs one time step"
    if p.cell not in GATES_PER_CELL:
        return f"unknown cell {p.cell!r}"
    if not p.default_activations:
        return "non-default activations"
    if p.cell == "rnn" and p.rnn_activation not in ("tanh", "relu"):
        return f"activation {p.rnn_activation}"
    if p.cell == "gru" and not p.linear_before_reset:
        return "GRU with linear_before_reset=0 needs r before the recurrent product"
    return None


def make_plan(problem: RnnProblem, device: DeviceLimits | None = None, prefer: str | None = None) -> Plan:
    """Choose how to run `problem`; `prefer` ("persistent" | "cudnn" | "step") overrides
    the table ("step" only where the single-step stack applies)."""
    device = device or DeviceLimits()
    p = problem
    if prefer in ("step", None) and step_applies(p) is None and device.compute_capability >= (7, 0):
        base = make_plan(p, device, prefer="persistent")  # the shape's floor
        floors = dict(floor_us=base.floor_us, full_floor_us=base.full_floor_us, steps=1)
        if prefer == "step":
            return Plan("step", "requested", **floors)
        if p.batch >= STEP_MIN_BATCH.get(p.dtype, 1 << 30):
            return Plan("step", f"one step at batch {p.batch} >= {STEP_MIN_BATCH[p.dtype]}: the single-step stack "
                        "measured fastest", **floors)
    if prefer == "step":
        prefer = None
    if p.cell not in GATES_PER_CELL:
        return Plan("torch", f"unknown cell {p.cell!r}")
    exotic = []
    if not p.default_activations:
        exotic.append("non-default activations")
    if p.cell == "rnn" and p.rnn_activation not in ("tanh", "relu"):
        exotic.append(f"activation {p.rnn_activation}")
    if exotic:
        return Plan("torch", "persistent kernel and cuDNN do not support " + ", ".join(exotic))
    cudnn_ok = not (p.peepholes or p.clip or p.reverse or (p.cell == "gru" and not p.linear_before_reset))
    if device.compute_capability < (7, 0):
        return Plan("cudnn" if cudnn_ok else "torch", "persistent kernel needs compute capability 7.0+")

    candidates = []
    for fuse in (True, False):  # in-kernel first-layer projection when short; else a GEMM
        if p.directions == 1 and p.layers > 1 and not p.reverse:
            cfg = kernel_config(p, p.layers, True, device, fuse)
            candidates.append(("wavefront", cfg, p.seq_len + p.layers - 1))
        cfg = kernel_config(p, p.directions, False, device, fuse)
        candidates.append(("layerwise", cfg, p.layers * p.seq_len))
    fitting = [c for c in candidates if c[1].smem_bytes + STATIC_SMEM_RESERVE <= device.smem_per_block]
    if not fitting:
        need = min(c[1].smem_bytes for c in candidates)
        why = f"recurrent weights do not fit on chip ({need} B of shared memory per CTA > {device.smem_per_block})"
        return Plan("cudnn" if cudnn_ok else "torch", why)
    # A two-barrier or large-batch build beats the original step wherever one fits, even as
    # one launch a layer against a wavefront (fp32 LSTM H=512 batch 64 T=100 on an H200:
    # wavefront original step 5906 us, large-batch step a layer at a time 2512 us), so it
    # goes first; otherwise the wavefront does.
    fitting.sort(key=lambda c: not (c[1].step_v2 or c[1].step_v3))
    mode, cfg, steps = fitting[0]
    plan = Plan("persistent", "", mode, cfg, floor_us(p, cfg, steps, device), steps,
                full_floor_us=full_floor_us(p, cfg, steps, device))
    limit = crossover_batch(p.cell, p.dtype, p.hidden, p.seq_len)
    if prefer == "cudnn" and cudnn_ok:
        return replace(plan, engine="cudnn", reason="requested", kernel=None, mode="")
    if prefer == "persistent" or not cudnn_ok:
        plan.reason = "requested" if prefer == "persistent" else "only the persistent kernel supports this form"
        return plan
    if p.batch > limit:
        return Plan("cudnn", f"batch {p.batch} > {limit}: cuDNN measured faster at this shape", floor_us=plan.floor_us,
                    full_floor_us=plan.full_floor_us)
    plan.reason = f"batch {p.batch} <= {limit}: persistent kernel measured faster"
    return plan
