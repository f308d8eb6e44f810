"""Per-direction, per-state errors of bidirectional RNN engines on the cuda backend, for each
stack form (the planner's choice, persistent with and without a CUDA graph, cuDNN, the step
loop) against torch.nn on the same weights. Run on an NVIDIA GPU:

    python benchmarks/cuda_rnn_diagnose.py

Stacked bidirectional LSTM/RNN engines were once found wrong on the persistent kernel;
this script shows each form's errors on those engines (and GRU and one-layer ones), with
and without sequence lengths and initial states. H200, 2026-12-07: the kernel within 6e-7
of torch.nn everywhere, cuDNN within 2e-5.
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


for op, layers, seq in [("lstm", 2, False), ("tanh", 2, False), ("gru", 2, False), ("lstm", 1, False),
                        ("lstm", 2, True), ("tanh", 2, True)]:
    H, E, N, S = 6, 4, 3, 5
    seed = zlib.crc32(repr((op, layers, True, seq, seq)).encode()) % 1000  # as the conformance test
    engine, w = build_rnn(op, layers, True, H, E, N, S, seed, seq=seq, states=seq)
    feeds = rnn_feeds(op, layers, True, H, E, N, S, seed, seq, seq)
    want = torch_rnn(torch, op, layers, True, H, E, w, feeds)
    forms = [(None, True), ("persistent", True), ("persistent", False), ("torch", True)]
    forms += [] if seq else [("cudnn", True)]
    for prefer, graph in forms:
        tag = f"{op} {layers} lens+states={seq} {prefer} graph={graph}"
        try:
            r = engine.runner("cuda", prefer=prefer, graph=graph) if prefer else engine.runner("cuda", graph=graph)
            out = r.run(feeds)
            engines = [d.get("engine") + (f" {d['mode']}" if d.get("mode") else "") for d in r.describe()["recurrent"]]
            print(tag, engines, parts(out, want, H, layers), flush=True)
        except Exception as e:
            print(tag, "FAIL", type(e).__name__, str(e)[:200], flush=True)
