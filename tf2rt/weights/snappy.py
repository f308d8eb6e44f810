"""A Snappy (raw format) decompressor for table blocks.

Current TensorFlow writes checkpoint tables uncompressed, but the table format allows
Snappy blocks (TF < 1.2 wrote them), so a reader has to accept them. Blocks are small
(~256 KiB), so plain Python is fast enough, and no compiled dependency is needed.
Every length and offset is checked; the output never grows past the declared size.
"""

from __future__ import annotations

from ..errors import FormatError
from ..proto import read_varint

# A 3-byte copy element emits at most 64 bytes and nothing else emits more bytes than it
# consumes, so a valid stream never expands more than this; larger claims are corrupt.
_MAX_EXPANSION = 22


def uncompressed_length(data: bytes | memoryview, what: str = "snappy block") -> tuple[int, int]:
    """The declared output length (a varint32) and the position after it."""
    return read_varint(data, 0, f"{what}: Snappy length", max_bytes=5)


def decompress(data: bytes | memoryview, what: str = "snappy block") -> bytes:
    """Decompress a raw Snappy stream; FormatError on any inconsistency."""
    src = bytes(data)
    n, pos = uncompressed_length(src, what)
    if n > _MAX_EXPANSION * len(src) + 64:
        raise FormatError(f"{what}: Snappy claims {n} bytes from {len(src)} (corrupt)")
    out = bytearray()
    end = len(src)
    while pos < end:
        tag = src[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                nb = length - 59
                if pos + nb > end:
                    raise FormatError(f"{what}: truncated Snappy literal length")
                length = int.from_bytes(src[pos : pos + nb], "little")
                pos += nb
            length += 1
            if pos + length > end:
                raise FormatError(f"{what}: Snappy literal runs past the input")
            if len(out) + length > n:
                raise FormatError(f"{what}: Snappy output exceeds its declared {n} bytes")
            out += src[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            if pos + 1 > end:
                raise FormatError(f"{what}: truncated Snappy copy")
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | src[pos]
            pos += 1
        else:
            nb = 2 if kind == 2 else 4
            if pos + nb > end:
                raise FormatError(f"{what}: truncated Snappy copy")
            length = (tag >> 2) + 1
            offset = int.from_bytes(src[pos : pos + nb], "little")
            pos += nb
        if offset == 0 or offset > len(out):
            raise FormatError(f"{what}: Snappy copy offset {offset} outside the output")
        if len(out) + length > n:
            raise FormatError(f"{what}: Snappy output exceeds its declared {n} bytes")
        start = len(out) - offset
        if length <= offset:
            out += out[start : start + length]
        else:  # overlapping copy repeats the last `offset` bytes
            pattern = bytes(out[start:])
            reps = -(-length // offset)
            out += (pattern * reps)[:length]
    if len(out) != n:
        raise FormatError(f"{what}: Snappy produced {len(out)} bytes, header says {n}")
    return bytes(out)
