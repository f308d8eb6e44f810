"""Per-direction, per-state errors of bidirectional RNN engines on the cuda backend, for each
stack form (the planner's choice, persistent with and without a CUDA graph, cuDNN, the step
loop) against torch.nn on the same weights. Run on an NVIDIA GPU:

    python benchmarks/cuda_rnn_diagnose.py
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

from helpers.rnn_networks import build_rnn, rnn_feeds, torch_rnn  # noqa: E402


def parts(out, want, H, layers):
    r = {}
    r["y_fw"] = float(np.abs(out["y"][..., :H] - want["y"][..., :H]).max())
    r["y_bw"] = float(np.abs(out["y"][..., H:] - want["y"][..., H:]).max())
    for k in ("h_n", "c_n"):
        if k in want:
            for j in range(want[k].shape[1]):
                r[f"{k}{j}"] = float(np.abs(out[k][:, j] - want[k][:, j]).max())
    return {k: f"{v:.0e}" for k, v in r.items()}


for op, layers in [("lstm", 2), ("tanh", 2), ("gru", 2), ("lstm", 1)]:
    H, E, N, S = 6, 4, 3, 5
    seed = zlib.crc32(repr((op, layers, True, False, False)).encode()) % 1000
    engine, w = build_rnn(op, layers, True, H, E, N, S, seed, seq=False, states=False)
    feeds = rnn_feeds(op, layers, True, H, E, N, S, seed, False, False)
    want = torch_rnn(torch, op, layers, True, H, E, w, feeds)
    for prefer, graph in ((None, True), ("persistent", True), ("persistent", False), ("cudnn", True), ("torch", True)):
        try:
            r = engine.runner("cuda", prefer=prefer, graph=graph) if prefer else engine.runner("cuda", graph=graph)
            out = r.run(feeds)
            print(op, layers, prefer, graph, parts(out, want, H, layers), flush=True)
        except Exception as e:
            print(op, layers, prefer, graph, "FAIL", type(e).__name__, str(e)[:200], flush=True)
