"""Build options of the cuda backend: which kernel forms the planner and the stacks may use.

Each option has an environment variable (TF2RT_CUDA_*) that gives its default; the runner
reads them once, when it is created (`CudaOptions.from_env()`), and hands the options down
to planning and compilation. Functions called without options read the environment then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

#: "1": the original step (a barrier around every phase) everywhere; "2": no large-batch
#: step; otherwise the large-batch step where it is preferred and applies, else the
#: two-barrier step where it applies.
STEP_ENV = "TF2RT_CUDA_STEP"
#: "0": weight fragments stay in shared memory everywhere (no WREG).
WREG_ENV = "TF2RT_CUDA_WREG"
#: Split fragments (WPART): "0" never; "1" also in large-batch builds where shared-memory
#: weights would fit; otherwise where the weights fit nowhere else.
WPART_ENV = "TF2RT_CUDA_WPART"
#: fp32 products as three bf16 passes (BF16X3): "1" forces them, "0" keeps three TF32 passes.
BF16X3_ENV = "TF2RT_CUDA_BF16X3"
#: fp32 products of the two-barrier step: "0" on CUDA cores, "1" as TF32X3 at every batch.
TF32_ENV = "TF2RT_CUDA_TF32X3"
#: "0": the single-step stack's small batches keep the GEMM form (no one-launch GEMV layer).
GEMV_ENV = "TF2RT_CUDA_GEMV"
#: A number n >= 1: the one-launch layer issues n weight loads a lane before it waits for its
#: inputs (default: the whole row up to single_step.GEMV_PREFETCH).
GEMV_PF_ENV = "TF2RT_CUDA_GEMV_PF"
#: A bit mask: the L2 prefetches of a one-launch layer (kernels/single_step.cu, GV_L2PF): 1 the
#: next layer's rows, 2 the rest of its own row before it waits for the layer below, 4 its own
#: loads streaming (evict first), 8 with 1: the last layer prefetches the first layer's rows
#: for the next call; "0" none; unset: the planner's choice (single_step.py).
GEMV_L2PF_ENV = "TF2RT_CUDA_GEMV_L2PF"
#: "1": a single-step stack of one-launch layers runs all its layers in ONE launch
#: (kernels/single_step.cu step_gemv_layers: the layers meet at a grid-wide count, and each
#: block reads the next layer's h0 columns before it waits) where every block fits on the GPU
#: at once; "0" a launch a layer; unset: a launch a layer (the runner's first-run measurement
#: times both once backends.cuda.FUSE_CANDIDATE is on).
GEMV_FUSE_ENV = "TF2RT_CUDA_GEMV_FUSE"
#: "1": the single-step stack's one-launch layers take the loads they hold in registers from each
#: row's tail every other call (kernels/single_step.cu GV_ALT), so a call starts with the lines
#: the call before read last, which L2 may still hold; the same values every call. Not where
#: GEMV_L2PF has bit 2. Unset or "0": from the row's head every call.
GEMV_ALT_ENV = "TF2RT_CUDA_GEMV_ALT"
#: fp32 input-projection GEMMs: "plain", "tf32x3" or "bf16x3" forces that form; "tf32": an
#: fp16/bf16 persistent stack's first-layer projection is one TF32 GEMM reading fp32 x as given
#: (no cast ahead of it) and writing fp32 projections (projection.HALF_TF32).
XPROJ_ENV = "TF2RT_CUDA_XPROJ"
#: "1": launch the single-step stack's one-launch layers as programmatic dependents (launch.py),
#: so each layer fetches its weights while the layer below still runs, and the persistent
#: kernel as a dependent of the input-projection GEMM ahead of it; "0" the ordinary way;
#: unset: the one-launch layers dependent (measured faster in the decoder and in most one-step
#: engines), the persistent kernel not.
PDL_ENV = "TF2RT_CUDA_PDL"
#: "1": decoders run many tokens in one launch (resident_decode.py) where the stack and head
#: fit; "0": a launch a layer (decode.py's fused loop); unset: the decoder's default.
RESIDENT_ENV = "TF2RT_CUDA_RESIDENT"
#: One-step layers whose weights L2 would not keep between calls: "1" marks a share of them
#: persisting in L2 (an access-policy window on each launch, with an L2 set-aside of the
#: context; launch.py), "0" never; unset: the runner's first-run measurement tries both where
#: the weights take more than half of L2 (single_step.py), a stack built alone does not.
L2_ENV = "TF2RT_CUDA_L2_PERSIST"
#: Which weights a one-step stack keeps persisting in L2 (with L2_ENV's form): "front" every line
#: of the first layers up to the set-aside (fixed lines); otherwise the same share of every
#: layer's lines (single_step.persisting_windows).
L2_WINDOWS_ENV = "TF2RT_CUDA_L2_WINDOWS"
#: "0": the runner's first-run measurement leaves out the row kernel (row.py: one CTA, or a
#: cluster of CTAs, per direction and batch rows with a layer's weights on chip); by default
#: it times it too where it applies and keeps it where it is fastest.
ROW_ENV = "TF2RT_CUDA_ROW"
#: Large-batch builds: "0" copies each step's rows with 16-byte cp.async from every thread;
#: "1" with bulk copies; a number n > 1 with bulk copies multicast across clusters of n CTAs;
#: unset: clusters of two for builds of one launch a layer where the GPU has clusters
#: (compute capability 9.0 and later), and the first-run measurement times plain copies too.
BULK_ENV = "TF2RT_CUDA_BULK"
#: A number n >= 1: persistent-kernel builds give each CTA at least n hidden units (fewer CTAs
#: meet at each step's exchange, each multiplies more rows); unset: the fewest units such that
#: every CTA of the launch has an SM of its own (builds.choose_upc).
UPC_ENV = "TF2RT_CUDA_UPC"


@dataclass(frozen=True)
class CudaOptions:
    """Kernel-form switches; the defaults are the planner's own choices. String options
    take the values of their environment variables ("" = not set)."""

    step: str = ""  # STEP_ENV: "1" original step only, "2" no large-batch step
    wreg: bool = True  # WREG_ENV="0" -> False
    wpart: str = ""  # WPART_ENV: "0" never, "1" also where shared memory alone would do
    bf16x3: str = ""  # BF16X3_ENV: "1" always (fp32 builds that allow it), "0" never
    tf32x3: str = ""  # TF32_ENV: "1" at every batch, "0" never
    gemv: bool = True  # GEMV_ENV="0" -> False
    gemv_prefetch: int = 0  # GEMV_PF_ENV: loads a lane issues early (0: the planner's choice)
    gemv_l2pf: str = ""  # GEMV_L2PF_ENV: L2 prefetch mask "0"-"15" ("": the planner's choice)
    gemv_fuse: bool | None = None  # GEMV_FUSE_ENV "1"/"0"; None: a layer a launch (or the runner's measurement)
    gemv_alt: bool = False  # GEMV_ALT_ENV="1" -> True: held loads from the row's tail every other call
    xproj: str = ""  # XPROJ_ENV: "plain" | "tf32x3" | "bf16x3" | "tf32" (checked where used)
    pdl: bool | None = None  # PDL_ENV "1"/"0" -> True/False; None: dependent where the GPU allows
    resident: bool | None = None  # RESIDENT_ENV "1"/"0"; None: the decoder's default
    l2_persist: bool | None = None  # L2_ENV "1"/"0"; None: measured by the runner (not in a bare stack)
    l2_windows: str = ""  # L2_WINDOWS_ENV: "front" the first layers' lines, else a share of every layer's
    row: bool = True  # ROW_ENV="0" -> False: the first-run measurement leaves out the row kernel
    bulk: str = ""  # BULK_ENV: "0" cp.async, "1" bulk copies, "n" multicast across n CTAs
    upc: int = 0  # UPC_ENV: least hidden units per CTA of persistent builds (0: the planner's choice)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CudaOptions:
        """The options the TF2RT_CUDA_* variables of `environ` (default: os.environ) give."""
        env = os.environ if environ is None else environ
        return cls(step=env.get(STEP_ENV, ""), wreg=env.get(WREG_ENV, "") != "0", wpart=env.get(WPART_ENV, ""),
                   bf16x3=env.get(BF16X3_ENV, ""), tf32x3=env.get(TF32_ENV, ""),
                   gemv=env.get(GEMV_ENV, "1") != "0", gemv_prefetch=_positive(env.get(GEMV_PF_ENV, "")),
                   gemv_l2pf=env.get(GEMV_L2PF_ENV, ""),
                   gemv_fuse={"1": True, "0": False}.get(env.get(GEMV_FUSE_ENV, "")),
                   gemv_alt=env.get(GEMV_ALT_ENV, "") == "1", xproj=env.get(XPROJ_ENV, ""),
                   pdl={"1": True, "0": False}.get(env.get(PDL_ENV, "")),
                   resident={"1": True, "0": False}.get(env.get(RESIDENT_ENV, "")),
                   l2_persist={"1": True, "0": False}.get(env.get(L2_ENV, "")),
                   l2_windows=env.get(L2_WINDOWS_ENV, ""),
                   row=env.get(ROW_ENV, "") != "0", bulk=env.get(BULK_ENV, ""),
                   upc=_positive(env.get(UPC_ENV, "")))


def _positive(text: str) -> int:
    """A count from an environment variable: 0 where unset or not a positive number."""
    return int(text) if text.strip().isdigit() and int(text) > 0 else 0


def resolve(options: CudaOptions | None) -> CudaOptions:
    """`options`, or those the environment gives now where there are none."""
    return CudaOptions.from_env() if options is None else options
