"""Kernel launches as programmatic dependents (Hopper and later).

A chain of dependent kernels, such as the layers of a single-step stack, pays at each link
the drain of the kernel ahead, the next kernel's launch and its first memory reads, all
in series. Launched with CUDA's programmatic-stream-serialization attribute, a kernel may
start while the one ahead of it still runs: it fetches what nothing writes (its weights)
at once and waits in `grid_dep_wait()` (kernels/pdl.cuh) for the rest. CuPy launches
without launch attributes, so such launches go through the driver's cuLaunchKernelEx by
ctypes. Inside CUDA-graph capture the attribute becomes a programmatic edge of the graph.

Only kernels written for it may be launched this way: they must read nothing that an
earlier kernel writes, and write nothing, before `grid_dep_wait()`.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Sequence

import numpy as np

from ...errors import Tf2rtError

#: CUlaunchAttributeID of cuda.h: programmatic stream serialization.
ATTR_PROGRAMMATIC_STREAM_SERIALIZATION = 6


class LaunchAttribute(ctypes.Structure):
    """CUlaunchAttribute: the id, padding to 8 bytes, then a 64-byte value union."""

    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_char * 64)]


class LaunchConfig(ctypes.Structure):
    """CUlaunchConfig."""

    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint), ("gridDimZ", ctypes.c_uint),
                ("blockDimX", ctypes.c_uint), ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(LaunchAttribute)), ("numAttrs", ctypes.c_uint)]


_CTYPES = {np.uint64: ctypes.c_uint64, np.int64: ctypes.c_int64, np.int32: ctypes.c_int32,
           np.uint32: ctypes.c_uint32, np.float32: ctypes.c_float}


def kernel_params(args: Sequence[Any]) -> tuple[Any, list[Any]]:
    """The kernelParams array of cuLaunchKernelEx for `args` (numpy scalars, as CuPy takes
    them), and the ctypes values it points at (keep them alive until the launch)."""
    values = []
    for a in args:
        conv = _CTYPES.get(type(a))
        if conv is None:
            raise TypeError(f"programmatic launch: argument of type {type(a).__name__}; "
                            f"pass numpy {', '.join(t.__name__ for t in _CTYPES)} scalars")
        values.append(conv(a.item()))
    array = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
    return array, values


def programmatic_attribute() -> LaunchAttribute:
    attr = LaunchAttribute()
    attr.id = ATTR_PROGRAMMATIC_STREAM_SERIALIZATION
    ctypes.memmove(ctypes.addressof(attr) + LaunchAttribute.value.offset, ctypes.byref(ctypes.c_int(1)), 4)
    return attr


@functools.lru_cache(maxsize=1)
def _driver() -> Any:
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuLaunchKernelEx
    fn.argtypes = [ctypes.POINTER(LaunchConfig), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


def launch_dependent(kernel: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], *,
                     stream: int, shared_mem: int = 0) -> None:
    """Launch a CuPy RawKernel `kernel` on the CUDA stream handle `stream` as a programmatic
    dependent of the work ahead of it (see the module docstring)."""
    grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
    attr = programmatic_attribute()
    cfg = LaunchConfig(*grid, *block, shared_mem, ctypes.c_void_p(stream), ctypes.pointer(attr), 1)
    params, keep = kernel_params(args)
    function = getattr(kernel, "kernel", kernel).ptr  # RawKernel -> cupy.cuda.function.Function -> CUfunction
    rc = _driver()(ctypes.byref(cfg), ctypes.c_void_p(function), params, None)
    del keep
    if rc != 0:
        raise Tf2rtError(f"cuda: cuLaunchKernelEx failed with CUresult {rc}; set TF2RT_CUDA_PDL=0 to launch "
                           f"the ordinary way")


def pointer(t: Any) -> np.uint64:
    """A tensor's address as a kernel argument (null for None)."""
    return np.uint64(0 if t is None else t.data_ptr())


def launch(kernel: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], device: Any,
           shared_mem: int = 0, dependent: bool = False) -> None:
    """One launch of CuPy kernel `kernel` on torch `device`'s current stream (as a
    programmatic dependent where asked). On a CPU device `kernel` is a host build of the
    same source (the tests' emulation of the kernels) and is called directly."""
    if device.type != "cuda":
        kernel(grid, block, args, shared_mem=shared_mem)
        return
    import cupy
    import torch

    stream = torch.cuda.current_stream(device).cuda_stream
    if dependent:
        launch_dependent(kernel, grid, block, args, stream=stream, shared_mem=shared_mem)
        return
    with cupy.cuda.ExternalStream(stream):
        kernel(grid, block, args, shared_mem=shared_mem)
