"""Measured crossovers between engines (benchmarks/results/cuda_rnn_*.md)."""

from __future__ import annotations

from .builds import FUSE_INPUT_MAX_T

#: One-step calls (T=1) of at least this batch run in the single-step stack (one GEMM over
#: [x | h0] and one gate kernel a layer, single_step.py) when the planner chooses without
#: measuring. H200, 2-layer stacks (benchmarks/results/cuda_rnn_h200.md): fp32 it was the
#: fastest engine at batch 8 and 64 for every H but GRU H=256 batch 8 (0.1 us behind), e.g.
#: GRU H=1024 batch 64 34.8 us (persistent kernel 87.3, cuDNN 105.2); fp16 from batch 64
#: (batch 8: GRU H=1024 22.2 us against cuDNN's 17.1).
STEP_MIN_BATCH = {"float32": 8, "float16": 64, "bfloat16": 64}


# Largest batch at which the persistent kernel beat cuDNN-in-a-CUDA-graph in the committed
# benchmarks (benchmarks/results/cuda_rnn_h200.md: 2 layers, batch 1/8/64;
# cuda_rnn_large_batch_h200.md: batch 16/64 at T=100; cuda_rnn_wpart_h200.md: fp32 H=1024 at
# batch 16/32/64, where the split-fragment build wins from batch 32 on; on an H200), by
# (cell, dtype) -> {hidden: (short sequences (T <= FUSE_INPUT_MAX_T), long sequences)};
# 0 = never. Shapes between entries use the next larger hidden size; plain RNN was not
# measured and uses the GRU row. A runner with autotune on re-measures at load time anyway.
# GRU fp32 H=128 (the Keras GRU classifier, one layer, T=50; H100,
# benchmarks/results/cuda_engine_b1_h100.md): batch 1 a tie (77.6 vs 77.1 us), batch 64
# cuDNN 3.1x faster (75.8 vs 235.8 us): the grid-wide exchange of a 128-unit layer costs
# more than its products. Batches 2-32 were not measured there; the bound stays at 8, the
# H=256 row's bound for short sequences.
CROSSOVER: dict[tuple[str, str], dict[int, tuple[int, int]]] = {
    ("lstm", "float16"): {256: (8, 64), 512: (1, 64), 1024: (0, 16)},
    ("lstm", "float32"): {256: (8, 64), 512: (1, 64), 1024: (0, 64)},
    ("gru", "float16"): {256: (8, 64), 512: (1, 64), 1024: (0, 16)},
    ("gru", "float32"): {128: (8, 8), 256: (8, 64), 512: (1, 64), 1024: (0, 64)},
}


def crossover_batch(cell: str, dtype: str, hidden: int, seq_len: int = 100) -> int:
    """Largest batch at which the persistent kernel is expected to win (table lookup)."""
    key = ("gru" if cell == "rnn" else cell, "float16" if dtype == "bfloat16" else dtype)
    table = CROSSOVER.get(key, {})
    for h in sorted(table):
        if hidden <= h:
            return table[h][0 if seq_len <= FUSE_INPUT_MAX_T else 1]
    return 0  # larger than anything measured: trust cuDNN
