"""TensorFlow `DataType` codes, `TensorShapeProto`, `TensorSliceProto` and slice keys."""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..proto import Message, read_varint

DT_STRING = 7
DT_BFLOAT16 = 14
DT_RESOURCE = 20
DT_VARIANT = 21

# Element types stored as raw bytes. Quantized types are stored like their integer base.
_NUMPY = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    8: "complex64",
    9: "int64",
    10: "bool",
    11: "int8",  # qint8
    12: "uint8",  # quint8
    13: "int32",  # qint32
    15: "int16",  # qint16
    16: "uint16",  # quint16
    17: "uint16",
    18: "complex128",
    19: "float16",
    22: "uint32",
    23: "uint64",
}

# One-byte float types only ml_dtypes defines (ml_dtypes ships with TensorFlow and JAX).
_ML_DTYPES = {
    14: "bfloat16",
    24: "float8_e5m2",
    25: "float8_e4m3fn",
    26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz",
}

NAMES = {
    **_NUMPY,
    **_ML_DTYPES,
    7: "string",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    15: "qint16",
    16: "quint16",
    20: "resource",
    21: "variant",
    29: "int4",
    30: "uint4",
}


def dtype_name(code: int) -> str:
    """A readable name for a DataType code (e.g. 'float32', 'bfloat16', 'string')."""
    return NAMES.get(code, f"DataType({code})")


def numpy_dtype(code: int, what: str = "tensor") -> np.dtype:
    """The numpy dtype for a memcpy-able DataType code; UnsupportedError otherwise."""
    if code in _NUMPY:
        return np.dtype(_NUMPY[code])
    if code in _ML_DTYPES:
        try:
            import ml_dtypes
        except ImportError:
            raise UnsupportedError(
                f"{what} has dtype {_ML_DTYPES[code]}, which numpy alone cannot hold; "
                "`pip install ml_dtypes` to read it"
            ) from None
        return np.dtype(getattr(ml_dtypes, _ML_DTYPES[code]))
    raise UnsupportedError(f"{what} has dtype {dtype_name(code)}, which tf2rt cannot read as an array")


def info_dtype(code: int) -> np.dtype | str:
    """The dtype to report in a listing: a numpy dtype when one exists, else a name."""
    if code == DT_STRING:
        return "string"
    try:
        return numpy_dtype(code)
    except UnsupportedError:
        return dtype_name(code)


# Hostile files may claim any shape; no real tensor has more dimensions than this.
MAX_RANK = 64


# -- protobuf pieces decoded by hand: listing a large index parses many thousands of them
def uvarint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A varint (wrapped to 64 bits) at `pos`."""
    value, pos = read_varint(buf, pos, what, end)
    return value & 0xFFFFFFFFFFFFFFFF, pos


def int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def fields(buf: bytes, what: str) -> Iterator[tuple[int, int, int | bytes]]:
    """(field, wire type, value) of a message: ints for scalars, bytes for LEN fields."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = uvarint(buf, pos, end, what)
        field, wtype = key >> 3, key & 7
        if wtype == 0:
            value, pos = uvarint(buf, pos, end, what)
        elif wtype == 2:
            n, pos = uvarint(buf, pos, end, what)
            if n > end - pos:
                raise FormatError(f"{what}: field {field} claims {n} bytes, only {end - pos} left")
            value = buf[pos : pos + n]
            pos += n
        elif wtype in (1, 5):
            width = 8 if wtype == 1 else 4
            if pos + width > end:
                raise FormatError(f"{what}: truncated fixed-width field {field}")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        else:
            raise FormatError(f"{what}: unsupported wire type {wtype} (field {field})")
        if field == 0:
            raise FormatError(f"{what}: invalid field number 0")
        yield field, wtype, value


def parse_shape(buf: bytes, what: str) -> tuple[int, ...]:
    """TensorShapeProto: dim = 2 {size = 1}, unknown_rank = 3."""
    if buf in _SHAPES:
        return _SHAPES[buf]
    shape = _parse_shape(buf, what)
    if len(_SHAPES) < 4096:  # most checkpoints repeat a few shapes many times
        _SHAPES[buf] = shape
    return shape


_SHAPES: dict[bytes, tuple[int, ...]] = {}


def _parse_shape(buf: bytes, what: str) -> tuple[int, ...]:
    dims = []
    for field, wtype, value in fields(buf, what):
        if field == 2 and wtype == 2:
            size = 0
            for f2, w2, v2 in fields(value, what):
                if f2 == 1 and w2 == 0:
                    size = int64(v2)
            if size < 0:
                raise FormatError(f"{what}: shape has a negative dimension ({size})")
            dims.append(size)
            if len(dims) > MAX_RANK:
                raise FormatError(f"{what}: shape has more than {MAX_RANK} dimensions")
        elif field == 3 and wtype == 0 and value:
            raise FormatError(f"{what}: shape has unknown rank")
    return tuple(dims)


def parse_slice(msg: Message, what: str) -> list[tuple[int, int]]:
    """Extents of a TensorSliceProto as (start, length); length -1 = the whole dimension."""
    extents = []
    for ext in msg.messages(1):
        start = ext.int(1)
        length = ext.int(2) if ext.has(2) else -1
        if start < 0 or length < -1:
            raise FormatError(f"{what}: bad slice extent ({start}, {length})")
        extents.append((start, length))
    if len(extents) > MAX_RANK:
        raise FormatError(f"{what}: slice has {len(extents)} dimensions")
    return extents


def slice_bounds(
    extents: list[tuple[int, int]], shape: tuple[int, ...], what: str
) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """Index and shape of a slice inside a tensor of `shape`; FormatError if it does not fit."""
    if len(extents) != len(shape):
        raise FormatError(f"{what}: slice rank {len(extents)} does not match tensor rank {len(shape)}")
    index, sub = [], []
    for (start, length), dim in zip(extents, shape):
        if length == -1:
            start, length = 0, dim
        if start + length > dim:
            raise FormatError(f"{what}: slice [{start}, {start + length}) exceeds dimension {dim}")
        index.append(slice(start, start + length))
        sub.append(length)
    return tuple(index), tuple(sub)


# Slice keys are TensorFlow's OrderedCode encoding of (0, name, rank, start_0, length_0, ...).
def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_num_increasing(value: int) -> bytes:
    x = ~value if value < 0 else value
    if x < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = x.bit_length() // 7 + 1  # `length` bytes hold 7 * length - 1 value bits
    body = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[10 - length :])
    # The length is marked in unary: the top `length` bits of the sign-extended value flipped.
    if length <= 8:
        body[0] ^= (0xFF << (8 - length)) & 0xFF
    else:
        body[0] ^= 0xFF
        body[1] ^= (0xFF << (16 - length)) & 0xFF
    return bytes(body)


def encode_slice_key(name: str, extents: list[tuple[int, int]]) -> bytes:
    """The table key under which TensorFlow stores one slice of tensor `name`."""
    raw = name.encode("utf-8")
    escaped = re.sub(rb"[\x00\xff]", lambda m: b"\x00\xff" if m.group() == b"\x00" else b"\xff\x00", raw)
    out = [_num_increasing(0), escaped, b"\x00\x01", _num_increasing(len(extents))]
    for start, length in extents:
        out.append(_signed_num_increasing(start))
        out.append(_signed_num_increasing(length))
    return b"".join(out)
