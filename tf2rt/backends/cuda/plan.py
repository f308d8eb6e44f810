"""Execution plans for recurrent layers on the GPU (pure Python, CPU-testable).

For one stack of recurrent layers the planner decides:

- which engine runs it: the persistent kernel ("persistent"), cuDNN through
  torch.nn.LSTM/GRU/RNN ("cudnn"), the single-step stack for one-step calls ("step",
  single_step.py), the row kernel for small layers where asked ("row", row.py), or a step
  loop of torch ops ("torch", for forms none of them supports, e.g. non-default
  activations);
- for the persistent kernel, the tiling (hidden units per CTA, threads, batch chunk), the
  shared memory it needs, and whether layers run as one wavefront launch or one launch per
  layer;
- an estimate of the hardware floor for the shape (docs/cuda.md derives it).

The choice comes from small tables of measured crossovers (benchmarks/results/cuda_rnn_*.md:
CROSSOVER, STEP_MIN_BATCH); a runner may refine it with a first-run measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# The planner's public names live in small modules; importers take them from here.
from .builds import (BF16X3_DEFAULT, FUSE_INPUT_MAX_T, PACKF_MIN_VALUES, TF32_MIN_BATCH, WREG_MAX_BATCH,  # noqa: F401
                     WREG_MAX_REGS, batch_chunk, bf16x3_applies, choose_upc, kernel_config, large_batch_applies,
                     large_batch_config, large_batch_preferred, tf32_applies, two_barrier_applies,
                     two_barrier_default, wreg_applies)
from .cost_model import floor_parts, floor_us, full_floor_us, projection_us, weight_read_us  # noqa: F401
from .crossover import CROSSOVER, STEP_MIN_BATCH, crossover_batch  # noqa: F401
from .device_limits import DeviceLimits  # noqa: F401
from .kernel_config import GROUP_TILES, MAX_GATHER_WORDS, STATIC_SMEM_RESERVE, THREADS, KernelConfig  # noqa: F401
from .options import BF16X3_ENV, STEP_ENV, TF32_ENV, WPART_ENV, WREG_ENV, CudaOptions, resolve  # noqa: F401
from .packing import GATES_PER_CELL
from .problem import BF16X3_MAX_ROW_NORM, CELL_CODE, DTYPE_BYTES, DTYPE_CODE, RnnProblem  # noqa: F401
from .row import RowConfig, row_config


@dataclass
class Plan:
    """How one recurrent stack runs, and why."""

    engine: str  # "persistent" | "cudnn" | "step" | "row" | "torch"
    reason: str
    mode: str = ""  # persistent: "wavefront" (one launch) or "layerwise" (one launch a layer)
    kernel: KernelConfig | None = None
    floor_us: float = 0.0
    steps: int = 0
    full_floor_us: float = 0.0
    measured: dict[str, float] = field(default_factory=dict)
    row: RowConfig | None = None  # the row kernel's build

    def describe(self) -> dict:
        out = {"engine": self.engine, "reason": self.reason, "floor_us": round(self.floor_us, 2),
               "full_floor_us": round(self.full_floor_us, 2)}
        if self.kernel is not None:
            k = self.kernel
            out.update(
                mode=self.mode,
                step="large-batch" if k.large_batch else "two-barrier" if k.two_barrier else "original",
                products=k.products,
                weights=("registers" if k.wreg else "registers + shared memory" if k.wpart else "shared memory"),
                grid=k.grid,
                units_per_cta=k.upc,
                smem_bytes=k.smem_bytes,
                weight_bytes_per_cta=k.weight_bytes,
            )
            if k.large_batch:
                out["row_copies"] = (f"bulk, multicast across clusters of {k.bulk} CTAs" if k.bulk > 1
                                     else "bulk" if k.bulk else "16-byte cp.async")
        if self.row is not None:
            r = self.row
            out.update(mode="row", threads=r.threads, batch_rows_per_cta=r.bpc, register_columns=r.kreg,
                       smem_bytes=r.smem_bytes, cluster_ctas=r.cluster)
        if self.measured:
            out["measured_us"] = {k: round(v, 2) for k, v in self.measured.items()}
        return out


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


def make_plan(problem: RnnProblem, device: DeviceLimits | None = None, prefer: str | None = None,
              options: CudaOptions | None = None) -> Plan:
    """Choose how to run `problem`; `prefer` ("persistent" | "cudnn" | "step" | "row")
    overrides the table ("step" and "row" only where that stack applies); `options`: the
    runner's build options (None: from the environment now)."""
    device = device or DeviceLimits()
    options = resolve(options)
    p = problem
    if prefer == "row":
        cfg, why = row_config(p, device) if device.compute_capability >= (7, 0) else (None, "needs compute "
                                                                                          "capability 7.0+")
        if cfg is not None:
            return Plan("row", "requested", mode="row", row=cfg, steps=p.layers * p.seq_len)
        plan = make_plan(p, device, options=options)
        return replace(plan, reason=f"row kernel: {why}; {plan.reason}")
    if prefer in ("step", None) and step_applies(p) is None and device.compute_capability >= (7, 0):
        base = make_plan(p, device, prefer="persistent", options=options)  # the shape's floor
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
            cfg = kernel_config(p, p.layers, True, device, fuse, options)
            candidates.append(("wavefront", cfg, p.seq_len + p.layers - 1))
        cfg = kernel_config(p, p.directions, False, device, fuse, options)
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
    fitting.sort(key=lambda c: not (c[1].two_barrier or c[1].large_batch))
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
