"""Capture a call in a CUDA graph once and replay it.

Launching the instantiated graph with the driver's cuGraphLaunch through ctypes (skipping
`CUDAGraph.replay()`'s bookkeeping) was measured and is slower from Python: 19.0 us vs
11.7 us for a 2-layer LSTM step (H=512, fp16, batch 1) on an H200, and no faster at T=100.
So graphs are replayed with `replay()`.
"""

from __future__ import annotations

from typing import Any, Callable


class CapturedCall:
    """`fn` captured once in a CUDA graph; calling the object replays it on the current
    stream and returns what `fn` returned during capture (static output tensors). `fn` is
    run twice on a side stream first (warm-up: allocations, cuBLAS workspaces, kernel
    compilation), as CUDA-graph capture requires.

    The object keeps `fn` (and so whatever its closure holds: inputs, stacks, buffers) for
    as long as the graph lives: the graph reads and writes those addresses on every replay,
    and a tensor freed behind its back may be handed to someone else or returned to the
    driver (the next capture empties the allocator's cache), which turns a later replay
    into reads of another tensor or an illegal address."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        import torch

        self.fn = fn
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
            fn()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn()

    def __call__(self) -> Any:
        self.graph.replay()
        return self.outputs
