"""Programmatic dependent launches (tf2rt/backends/cuda/launch.py): the driver structures
built by ctypes have cuda.h's layout, and kernel arguments are packed as the driver reads
them. The launches themselves run in the GPU tests of the single-step stack (TF2RT_CUDA_PDL)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tf2rt.backends.cuda.launch import (ATTR_PROGRAMMATIC_STREAM_SERIALIZATION, AccessPolicyWindow, LaunchAttribute,
                                        LaunchConfig, kernel_params, programmatic_attribute)


def test_driver_structures_have_the_layout_of_cuda_h():
    # CUlaunchAttribute: id (4 bytes), padding to 8, a 64-byte union.
    assert ctypes.sizeof(LaunchAttribute) == 72 and LaunchAttribute.value.offset == 8
    # CUlaunchConfig: seven unsigned ints, the stream handle at 32, attrs at 40, numAttrs at 48.
    assert LaunchConfig.hStream.offset == 32 and LaunchConfig.attrs.offset == 40
    assert LaunchConfig.numAttrs.offset == 48 and ctypes.sizeof(LaunchConfig) == 56


def test_the_attribute_allows_programmatic_serialization():
    attr = programmatic_attribute()
    raw = ctypes.string_at(ctypes.addressof(attr), ctypes.sizeof(attr))
    assert int.from_bytes(raw[:4], "little") == ATTR_PROGRAMMATIC_STREAM_SERIALIZATION == 6
    assert int.from_bytes(raw[8:12], "little") == 1 and raw[12:] == bytes(60)


def test_kernel_arguments_are_packed_as_the_driver_reads_them():
    args = (np.uint64(0xDEADBEEF12345678), np.int32(-7), np.float32(1.5), np.int64(-(2 ** 40)))
    array, keep = kernel_params(args)
    assert len(array) == 4 and len(keep) == 4
    read = [ctypes.c_uint64.from_address(array[0]).value, ctypes.c_int32.from_address(array[1]).value,
            ctypes.c_float.from_address(array[2]).value, ctypes.c_int64.from_address(array[3]).value]
    assert read == [0xDEADBEEF12345678, -7, 1.5, -(2 ** 40)]


def test_a_python_scalar_is_refused_with_the_fix():
    with pytest.raises(TypeError, match="numpy"):
        kernel_params((3,))


def test_a_dependent_launch_hands_the_driver_its_grid_stream_attribute_and_arguments(monkeypatch):
    """launch_dependent against a stand-in for cuLaunchKernelEx that reads what it is given."""
    from types import SimpleNamespace

    from tf2rt.backends.cuda import launch
    from tf2rt.errors import Tf2rtError

    seen = {}
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(LaunchConfig), ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_void_p)

    def fake(cfg_p, function, params, extra):
        if "rc" in seen:  # the failing launch
            return seen["rc"]
        cfg = cfg_p.contents
        seen["dims"] = (cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ, cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ)
        seen["smem"], seen["stream"], seen["function"], seen["extra"] = cfg.sharedMemBytes, cfg.hStream, function, extra
        attr = cfg.attrs[0]  # (a char-array field reads as bytes cut at a NUL: read the memory)
        value = ctypes.c_int.from_address(ctypes.addressof(attr) + LaunchAttribute.value.offset).value
        seen["attr"] = (cfg.numAttrs, attr.id, value)
        if cfg.numAttrs > 1:  # an L2 window after the dependence
            w = AccessPolicyWindow.from_address(ctypes.addressof(cfg.attrs[1]) + LaunchAttribute.value.offset)
            seen["window"] = (cfg.attrs[1].id, w.base_ptr, w.num_bytes, w.hitRatio, w.hitProp, w.missProp)
        ptrs = ctypes.cast(params, ctypes.POINTER(ctypes.c_void_p))
        seen["args"] = (ctypes.c_uint64.from_address(ptrs[0]).value, ctypes.c_int32.from_address(ptrs[1]).value,
                        ctypes.c_float.from_address(ptrs[2]).value)
        return 0

    callback = proto(fake)
    monkeypatch.setattr(launch, "_libcuda", lambda: SimpleNamespace(cuLaunchKernelEx=callback))
    kernel = SimpleNamespace(kernel=SimpleNamespace(ptr=0x5000))  # a CuPy RawKernel's shape
    launch.launch_dependent(kernel, (96,), (256,), (np.uint64(77), np.int32(-3), np.float32(0.5)),
                            stream=0x1234, shared_mem=4096)
    assert seen["dims"] == (96, 1, 1, 256, 1, 1) and seen["smem"] == 4096 and seen["stream"] == 0x1234
    assert seen["function"] == 0x5000 and seen["extra"] is None
    assert seen["attr"] == (1, ATTR_PROGRAMMATIC_STREAM_SERIALIZATION, 1)
    assert seen["args"] == (77, -3, 0.5) and "window" not in seen
    launch.launch_dependent(kernel, (1,), (32,), (np.uint64(5), np.int32(6), np.float32(7.0)), stream=0,
                            window=launch.L2Window(0x9000, 1 << 20, 0.25))
    assert seen["attr"][:2] == (2, ATTR_PROGRAMMATIC_STREAM_SERIALIZATION)
    assert seen["window"] == (launch.ATTR_ACCESS_POLICY_WINDOW, 0x9000, 1 << 20, 0.25, launch.ACCESS_PERSISTING,
                              launch.ACCESS_NORMAL)
    seen["rc"] = 1  # CUDA_ERROR_INVALID_VALUE
    with pytest.raises(Tf2rtError, match="TF2RT_CUDA_PDL=0"):
        launch.launch_dependent(kernel, (1,), (32,), (np.uint64(0),), stream=0)
