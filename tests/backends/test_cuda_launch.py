"""Programmatic dependent launches (tf2rt/backends/cuda/launch.py): the driver structures
built by ctypes have cuda.h's layout, and kernel arguments are packed as the driver reads
them. The launches themselves run in the GPU tests of the single-step stack (TF2RT_CUDA_PDL)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tf2rt.backends.cuda.launch import (ATTR_PROGRAMMATIC_STREAM_SERIALIZATION, LaunchAttribute, LaunchConfig,
                                        kernel_params, programmatic_attribute)


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
