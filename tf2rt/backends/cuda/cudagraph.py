"""Capture a call in a CUDA graph and launch it with the driver's cuGraphLaunch.

`torch.cuda.CUDAGraph.replay()` does bookkeeping before every launch (it refreshes the
random-number generators' seed/offset tensors with small fill kernels), which costs several
microseconds per call even when the graph holds no random op. tf2rt's engines have none,
so the backend launches the instantiated graph itself: one driver call through ctypes.
Where the driver library or `raw_cuda_graph_exec` (PyTorch >= 2.8) is missing, it falls
back to `replay()`; `CapturedCall.launch_mode` says which one runs.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable


@functools.lru_cache(maxsize=1)
def _cu_graph_launch() -> Any:
    """The driver's cuGraphLaunch(CUgraphExec, CUstream), or None where unavailable."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        fn = lib.cuGraphLaunch
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


class CapturedCall:
    """`fn` captured once in a CUDA graph; calling the object launches the graph on the
    current stream. `fn` is run twice on a side stream first (warm-up: allocations, cuBLAS
    handles, kernel compilation), then captured; its return value is `self.outputs`."""

    def __init__(self, fn: Callable[[], Any], raw: bool = True) -> None:
        import torch

        self.torch = torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
            fn()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn()
        self._exec = None
        self._launch = _cu_graph_launch() if raw else None
        if self._launch is not None and hasattr(self.graph, "raw_cuda_graph_exec"):
            self._exec = ctypes.c_void_p(self.graph.raw_cuda_graph_exec())
        self.launch_mode = "cuGraphLaunch" if self._exec is not None else "CUDAGraph.replay"

    def __call__(self) -> Any:
        if self._exec is None:
            self.graph.replay()
            return self.outputs
        rc = self._launch(self._exec, ctypes.c_void_p(self.torch.cuda.current_stream().cuda_stream))
        if rc != 0:
            raise RuntimeError(f"cuGraphLaunch failed with CUDA driver error {rc}")
        return self.outputs
