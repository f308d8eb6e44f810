"""What the planner needs to know about the GPU (DeviceLimits)."""

from __future__ import annotations

from dataclasses import dataclass


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
