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

A launch may also carry an L2 access-policy window (`L2Window`): a share of a buffer's
lines (the hit ratio) is kept in the part of L2 the context sets aside for persisting
lines (`l2_set_aside`), so weights read on every call stay on chip between calls even
where they are too large for L2 as a whole. Captured into a CUDA graph, the window becomes
the kernel node's attribute.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any, Sequence

import numpy as np

from ...errors import Tf2rtError

#: CUlaunchAttributeID of cuda.h: programmatic stream serialization, access-policy window,
#: cooperative launch.
ATTR_PROGRAMMATIC_STREAM_SERIALIZATION = 6
ATTR_ACCESS_POLICY_WINDOW = 1
ATTR_COOPERATIVE = 2
#: CUaccessProperty: normal, persisting; CUlimit: the persisting-L2 set-aside; CUdevice_attribute:
#: the largest set-aside and window.
ACCESS_NORMAL, ACCESS_PERSISTING = 0, 2
LIMIT_PERSISTING_L2 = 0x06
DEV_MAX_PERSISTING_L2, DEV_MAX_WINDOW = 108, 109


class LaunchAttribute(ctypes.Structure):
    """CUlaunchAttribute: the id, padding to 8 bytes, then a 64-byte value union."""

    _fields_ = [("id", ctypes.c_int), ("pad", ctypes.c_char * 4), ("value", ctypes.c_char * 64)]


class LaunchConfig(ctypes.Structure):
    """CUlaunchConfig."""

    _fields_ = [("gridDimX", ctypes.c_uint), ("gridDimY", ctypes.c_uint), ("gridDimZ", ctypes.c_uint),
                ("blockDimX", ctypes.c_uint), ("blockDimY", ctypes.c_uint), ("blockDimZ", ctypes.c_uint),
                ("sharedMemBytes", ctypes.c_uint), ("hStream", ctypes.c_void_p),
                ("attrs", ctypes.POINTER(LaunchAttribute)), ("numAttrs", ctypes.c_uint)]


class AccessPolicyWindow(ctypes.Structure):
    """CUaccessPolicyWindow."""

    _fields_ = [("base_ptr", ctypes.c_void_p), ("num_bytes", ctypes.c_size_t), ("hitRatio", ctypes.c_float),
                ("hitProp", ctypes.c_int), ("missProp", ctypes.c_int)]


class L2Window(tuple):
    """(address, bytes, hit ratio): keep that share of the buffer's lines in persisting L2."""

    __slots__ = ()

    def __new__(cls, address: int, nbytes: int, hit_ratio: float) -> "L2Window":
        return super().__new__(cls, (int(address), int(nbytes), float(hit_ratio)))


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


def _attribute(ident: int, value: ctypes.Structure | ctypes._SimpleCData) -> LaunchAttribute:
    attr = LaunchAttribute()
    attr.id = ident
    ctypes.memmove(ctypes.addressof(attr) + LaunchAttribute.value.offset, ctypes.byref(value), ctypes.sizeof(value))
    return attr


def programmatic_attribute() -> LaunchAttribute:
    return _attribute(ATTR_PROGRAMMATIC_STREAM_SERIALIZATION, ctypes.c_int(1))


def window_attribute(window: L2Window) -> LaunchAttribute:
    address, nbytes, ratio = window
    return _attribute(ATTR_ACCESS_POLICY_WINDOW, AccessPolicyWindow(address, nbytes, ratio, ACCESS_PERSISTING,
                                                                    ACCESS_NORMAL))


@functools.lru_cache(maxsize=1)
def _libcuda() -> Any:
    lib = ctypes.CDLL("libcuda.so.1")
    lib.cuLaunchKernelEx.argtypes = [ctypes.POINTER(LaunchConfig), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.cuLaunchKernelEx.restype = ctypes.c_int
    lib.cuCtxSetLimit.argtypes = [ctypes.c_int, ctypes.c_size_t]
    lib.cuCtxGetLimit.argtypes = [ctypes.POINTER(ctypes.c_size_t), ctypes.c_int]
    lib.cuDeviceGet.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    lib.cuDeviceGetAttribute.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]
    return lib


def launch_dependent(kernel: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], *,
                     stream: int, shared_mem: int = 0, dependent: bool = True,
                     window: L2Window | None = None, cooperative: bool = False) -> None:
    """Launch a CuPy RawKernel `kernel` on the CUDA stream handle `stream` through
    cuLaunchKernelEx: as a programmatic dependent of the work ahead of it (see the module
    docstring) and/or with an L2 access-policy `window`; `cooperative`: as a cooperative
    launch too (the driver refuses a grid that cannot be resident at once)."""
    grid, block = tuple(grid) + (1,) * (3 - len(grid)), tuple(block) + (1,) * (3 - len(block))
    attrs = ([programmatic_attribute()] if dependent else []) + ([window_attribute(window)] if window else []) + (
        [_attribute(ATTR_COOPERATIVE, ctypes.c_int(1))] if cooperative else [])
    array = (LaunchAttribute * max(len(attrs), 1))(*attrs)
    cfg = LaunchConfig(*grid, *block, shared_mem, ctypes.c_void_p(stream), array, len(attrs))
    params, keep = kernel_params(args)
    function = getattr(kernel, "kernel", kernel).ptr  # RawKernel -> cupy.cuda.function.Function -> CUfunction
    rc = _libcuda().cuLaunchKernelEx(ctypes.byref(cfg), ctypes.c_void_p(function), params, None)
    del keep
    if rc != 0:
        raise Tf2rtError(f"cuda: cuLaunchKernelEx failed with CUresult {rc}; set TF2RT_CUDA_PDL=0 and "
                         f"TF2RT_CUDA_L2_PERSIST=0 to launch the ordinary way")


def max_active_blocks(kernel: Any, block: int, shared_mem: int) -> int | None:
    """How many blocks of `kernel` an SM holds at once with `block` threads and `shared_mem`
    bytes of dynamic shared memory a block (cuOccupancyMaxActiveBlocksPerMultiprocessor);
    None where the driver does not say."""
    lib = _libcuda()
    fn = getattr(lib, "cuOccupancyMaxActiveBlocksPerMultiprocessor", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    count = ctypes.c_int()
    function = getattr(kernel, "kernel", kernel).ptr
    if fn(ctypes.byref(count), ctypes.c_void_p(function), int(block), int(shared_mem)) != 0:
        return None
    return int(count.value)


def max_active_clusters(kernel: Any, grid: int, block: int, shared_mem: int) -> int | None:
    """How many clusters of `kernel` (a build with compile-time cluster dimensions) can be
    resident at once with `block` threads and `shared_mem` bytes of dynamic shared memory a
    CTA (cuOccupancyMaxActiveClusters); None where the driver does not say."""
    lib = _libcuda()
    fn = getattr(lib, "cuOccupancyMaxActiveClusters", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.POINTER(LaunchConfig)]
    fn.restype = ctypes.c_int
    attrs = (LaunchAttribute * 1)()
    cfg = LaunchConfig(grid, 1, 1, block, 1, 1, shared_mem, None, attrs, 0)
    count = ctypes.c_int()
    function = getattr(kernel, "kernel", kernel).ptr
    if fn(ctypes.byref(count), ctypes.c_void_p(function), ctypes.byref(cfg)) != 0:
        return None
    return int(count.value)


def l2_set_aside(device_index: int, nbytes: int) -> tuple[int, int]:
    """Ask the current context (torch's, on `device_index`) to set at least `nbytes` of L2
    aside for persisting lines, up to the device's maximum; never lowers an earlier
    set-aside. Returns (bytes set aside, largest window a launch may name); (0, 0) where the
    device has no persisting L2."""
    lib = _libcuda()
    dev, value = ctypes.c_int(), ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(dev), device_index) != 0:
        return 0, 0
    most = lib.cuDeviceGetAttribute(ctypes.byref(value), DEV_MAX_PERSISTING_L2, dev) == 0 and value.value
    window = lib.cuDeviceGetAttribute(ctypes.byref(value), DEV_MAX_WINDOW, dev) == 0 and value.value
    if not most or not window:
        return 0, 0
    now = ctypes.c_size_t()
    if lib.cuCtxGetLimit(ctypes.byref(now), LIMIT_PERSISTING_L2) != 0:
        return 0, 0
    want = min(int(nbytes), int(most))
    if want > now.value and lib.cuCtxSetLimit(LIMIT_PERSISTING_L2, want) != 0:
        return 0, 0
    lib.cuCtxGetLimit(ctypes.byref(now), LIMIT_PERSISTING_L2)
    return int(now.value), int(window)


def l2_set_aside_now() -> int | None:
    """Bytes of L2 the current context sets aside for persisting lines (None: unknown)."""
    now = ctypes.c_size_t()
    return int(now.value) if _libcuda().cuCtxGetLimit(ctypes.byref(now), LIMIT_PERSISTING_L2) == 0 else None


def l2_release(set_aside: int) -> None:
    """Turn the context's persisting L2 lines back into normal ones and set its set-aside
    to `set_aside` bytes (what it was before a stack that is no longer used asked for more),
    so that stack's weights stop holding L2 from the others."""
    lib = _libcuda()
    lib.cuCtxResetPersistingL2Cache()
    lib.cuCtxSetLimit(LIMIT_PERSISTING_L2, ctypes.c_size_t(set_aside))


def pointer(t: Any) -> np.uint64:
    """A tensor's address as a kernel argument (null for None)."""
    return np.uint64(0 if t is None else t.data_ptr())


def launch(kernel: Any, grid: Sequence[int], block: Sequence[int], args: Sequence[Any], device: Any,
           shared_mem: int = 0, dependent: bool = False, window: L2Window | None = None) -> None:
    """One launch of CuPy kernel `kernel` on torch `device`'s current stream (as a
    programmatic dependent and with an L2 `window` where asked). On a CPU device `kernel`
    is a host build of the same source (the tests' emulation of the kernels) and is called
    directly."""
    if device.type != "cuda":
        kernel(grid, block, args, shared_mem=shared_mem)
        return
    import cupy
    import torch

    stream = torch.cuda.current_stream(device).cuda_stream
    if dependent or window:
        launch_dependent(kernel, grid, block, args, stream=stream, shared_mem=shared_mem, dependent=dependent,
                         window=window)
        return
    with cupy.cuda.ExternalStream(stream):
        kernel(grid, block, args, shared_mem=shared_mem)
