"""One build of the persistent kernel (KernelConfig): its tiling, shared memory and -D switches."""

from __future__ import annotations

from dataclasses import dataclass

from .packing import cta_count, round_up

#: Threads per CTA of the persistent kernel.
THREADS = 256
#: Words of the exchange buffer each thread may hold in registers while gathering a step.
MAX_GATHER_WORDS = 32
#: Static shared memory and the per-block reserve the kernel uses besides the dynamic part.
STATIC_SMEM_RESERVE = 1024
#: n-tiles (8 batch rows each) per copy group of the large-batch step (the kernel's GROUP_TILES).
GROUP_TILES = 2


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
    two_barrier: bool = False  # two-barrier step (kernels/persistent_rnn.cu, STEP_TWO_BARRIER)
    wreg: bool = False  # weight fragments in registers (WREG; two-barrier step, fp16/bf16)
    split_x: bool = False  # deeper wavefront layers: input product before the own-h wait (SPLITX)
    resident: bool = False  # streaming: one launch serves step after step (RESIDENT; resident.py)
    large_batch: bool = False  # large batch: all rows staged, flag exchange (STEP_LARGE_BATCH)
    tf32: bool = False  # fp32 products on tensor cores as three TF32 passes (TF32X3; two-barrier step)
    packf: bool = False  # tf32 builds: two fp32 h per exchange word (PACKF; not in streaming builds)
    wpart: int = 0  # large-batch step: K steps per warp with fragments in registers, the rest in smem (WPART)
    ring_slots: int = 0  # large-batch step: staging ring of this many copy groups (RING_SLOTS; 0: all rows)
    group_tiles: int = GROUP_TILES  # large-batch step: n-tiles (8 batch rows) per copy group (GROUP_TILES)
    bf16x3: bool = False  # fp32: products as three bf16 passes over pre-split operands (BF16X3)
    mt_share: bool = False  # large-batch step, fragments in registers: every warp all row tiles of one K slice (MT_SHARE)
    bulk: int = 0  # large-batch step: rows by bulk copies, multicast across clusters of this many CTAs (BULK; 0: cp.async)

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
        """Slices of K the warps split a 16-row tile's product into (tensor-core builds): the
        warps of one tile, or under mt_share every warp (each multiplies all tiles)."""
        if self.mt_share:
            return self.threads // 32
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
        tiles = self.rows_padded // 16 if self.mt_share else 1
        return per * tiles * (nit(self.kp) + (nit(self.kx_eff) if self.fused else 0))

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
        if not self.large_batch:
            return 8
        nbt = -(-self.batch // 8)
        if 0 < self.ring_slots < -(-nbt // self.group_tiles):
            return 8 * self.group_tiles * self.ring_slots
        return 8 * nbt

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory per CTA (mirrors the carve-up in persistent_rnn.cu)."""
        rows = self.gates * self.upc
        if self.mma:  # staging [8 per n-tile][K + pad] (fp16/bf16, or fp32 under tf32) and split-K partial sums
            mt = self.rows_padded // 16
            nbt = -(-self.batch // 8) if self.large_batch else 1
            pad, esize = (4, 4) if self.tf32 else (8, 4) if self.bf16x3 else (8, 2)  # bf16x3: hi + lo planes
            stage = self.staged_rows * ((self.kp + pad) + ((self.kx_eff + pad) if self.fused else 0)) * esize
            # second set (input products) in two-barrier builds; large-batch ones only when fused
            sets = 2 if (self.two_barrier or (self.large_batch and self.fused)) else 1
            red = mt * self.ksplit * 128 * 4 * sets * nbt
            # large-batch step: the initial h/c borrow the partial sums' space (STATE_IN_RED)
            state_in_red = self.large_batch and 2 * self.upc * self.batch <= mt * self.ksplit * 128 * nbt
        else:
            stage = self.bch * (self.kp + (self.kx_eff if self.fused else 0)) * 4
            red = 0
            state_in_red = False
        return (
            self.smem_weight_bytes
            + stage
            + (0 if self.large_batch else rows * self.batch * 4 * 3)
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
            "FUSED": int(self.fused or not (self.two_barrier or self.large_batch)),
            "STEP_TWO_BARRIER": int(self.two_barrier),
            "WREG": int(self.wreg),
            "SPLITX": int(self.split_x),
            "RESIDENT": int(self.resident),
            "STEP_LARGE_BATCH": int(self.large_batch),
            "TF32X3": int(self.tf32),
            "BF16X3": int(self.bf16x3),
            "PACKF_REQ": int(self.packf),
            "WPART": self.wpart,
            "RING_SLOTS": self.ring_slots,
            **({"GROUP_TILES": self.group_tiles} if self.group_tiles != GROUP_TILES else {}),
            **({"BULK": self.bulk} if self.bulk else {}),
            **({"MT_SHARE": 1} if self.mt_share else {}),
        }
