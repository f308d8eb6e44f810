"""Hardware floors of a persistent schedule (docs/cuda.md, "Hardware floor")."""

from __future__ import annotations

from .device_limits import DeviceLimits
from .kernel_config import KernelConfig
from .problem import RnnProblem


def floor_parts(problem: RnnProblem, cfg: KernelConfig, device: DeviceLimits) -> dict[str, float]:
    """Per-step costs no persistent schedule of this shape can avoid, microseconds
    (docs/cuda.md, "Hardware floor"):

    - exchange: moving h_t to every CTA (one L2 round trip, measured), once per exchange;
    - weights: streaming one CTA's weight slice out of shared memory (none where the weight
      fragments live in registers: nothing is streamed, the math term covers their use);
    - operand: the B x K values every CTA multiplies (h, and the layer below's h in a
      wavefront) crossing L2 into every CTA, at the measured broadcast rate (once per
      cluster where the build multicasts them: BULK);
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
    operand = cfg.ctas_per_group * k_total * problem.batch * stage_bytes / device.l2_bytes_per_s / max(cfg.bulk, 1)
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
