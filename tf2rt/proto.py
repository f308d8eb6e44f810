"""A minimal protocol-buffers wire-format decoder (no generated code, no protobuf package).

Enough to read the TensorFlow messages tf2rt needs (BundleEntryProto, TrackableObjectGraph,
GraphDef, MetaGraphDef, SavedModel, ...). Messages decode to `Message` objects: a mapping
from field number to the list of raw values seen for that field, with typed accessors.
Every read is bounds-checked; malformed input raises `FormatError` naming `what`.
"""

from __future__ import annotations

import struct
from typing import Iterator

from .errors import FormatError

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


def read_varint(
    buf: bytes | memoryview, pos: int, what: str = "protobuf", end: int | None = None, max_bytes: int = 10
) -> tuple[int, int]:
    """Decode a base-128 varint at `pos` (reading no further than `end`, at most `max_bytes`
    bytes: 10 for 64-bit values, 5 for 32-bit ones); return (value, new_pos)."""
    if end is None:
        end = len(buf)
    if pos < end and buf[pos] < 0x80:  # the common one-byte case
        return buf[pos], pos + 1
    result = shift = 0
    limit = 7 * max_bytes
    while True:
        if pos >= end:
            raise FormatError(f"{what}: truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= limit:
            raise FormatError(f"{what}: varint longer than {max_bytes} bytes")


def iter_fields(buf: bytes | memoryview, what: str = "protobuf") -> Iterator[tuple[int, int, object]]:
    """Yield (field_number, wire_type, value) for each field of a serialized message.

    value is an int for VARINT, I32 and I64 (raw little-endian unsigned), a memoryview
    for LEN fields.
    """
    mv = memoryview(buf)
    pos, end = 0, len(mv)
    while pos < end:
        key, pos = read_varint(mv, pos, what)
        field, wtype = key >> 3, key & 7
        if field == 0:
            raise FormatError(f"{what}: invalid field number 0")
        if wtype == VARINT:
            value, pos = read_varint(mv, pos, what)
        elif wtype == I64:
            if pos + 8 > end:
                raise FormatError(f"{what}: truncated fixed64 field {field}")
            value = int.from_bytes(mv[pos : pos + 8], "little")
            pos += 8
        elif wtype == I32:
            if pos + 4 > end:
                raise FormatError(f"{what}: truncated fixed32 field {field}")
            value = int.from_bytes(mv[pos : pos + 4], "little")
            pos += 4
        elif wtype == LEN:
            n, pos = read_varint(mv, pos, what)
            if n > end - pos:
                raise FormatError(f"{what}: field {field} claims {n} bytes, only {end - pos} left")
            value = mv[pos : pos + n]
            pos += n
        else:
            raise FormatError(f"{what}: unsupported wire type {wtype} (field {field})")
        yield field, wtype, value


class Message:
    """A decoded message: field number -> list of raw values, with typed getters."""

    __slots__ = ("fields", "what")

    def __init__(self, buf: bytes | memoryview, what: str = "protobuf"):
        self.what = what
        self.fields: dict[int, list] = {}
        for field, _wtype, value in iter_fields(buf, what):
            self.fields.setdefault(field, []).append(value)

    def has(self, field: int) -> bool:
        return field in self.fields

    def _last(self, field: int, default):
        vals = self.fields.get(field)
        return vals[-1] if vals else default

    def int(self, field: int, default: int = 0) -> int:
        """Varint field as int64 (two's complement for negatives)."""
        v = self._last(field, None)
        if v is None:
            return default
        if not isinstance(v, int):
            raise FormatError(f"{self.what}: field {field} is not an integer")
        return v - (1 << 64) if v >= 1 << 63 else v

    def uint(self, field: int, default: int = 0) -> int:
        v = self._last(field, None)
        if v is None:
            return default
        if not isinstance(v, int):
            raise FormatError(f"{self.what}: field {field} is not an integer")
        return v

    def bool(self, field: int, default: bool = False) -> bool:
        return bool(self.uint(field, int(default)))

    def float(self, field: int, default: float = 0.0) -> float:
        v = self._last(field, None)
        return default if v is None else struct.unpack("<f", v.to_bytes(4, "little"))[0]

    def double(self, field: int, default: float = 0.0) -> float:
        v = self._last(field, None)
        return default if v is None else struct.unpack("<d", v.to_bytes(8, "little"))[0]

    def bytes(self, field: int, default: bytes = b"") -> bytes:
        v = self._last(field, None)
        if v is None:
            return default
        if not isinstance(v, memoryview):
            raise FormatError(f"{self.what}: field {field} is not length-delimited")
        return bytes(v)

    def str(self, field: int, default: str = "") -> str:
        raw = self.bytes(field, None)  # type: ignore[arg-type]
        if raw is None:
            return default
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{self.what}: field {field} is not valid UTF-8") from None

    def message(self, field: int, what: str | None = None) -> "Message":
        """Sub-message (empty if absent)."""
        return Message(self.bytes(field), what or self.what)

    def messages(self, field: int, what: str | None = None) -> list["Message"]:
        out = []
        for v in self.fields.get(field, []):
            if not isinstance(v, memoryview):
                raise FormatError(f"{self.what}: field {field} is not a message")
            out.append(Message(v, what or self.what))
        return out

    def strs(self, field: int) -> list[str]:
        return [bytes(v).decode("utf-8", "replace") for v in self.fields.get(field, [])]

    def raw_list(self, field: int) -> list:
        return list(self.fields.get(field, []))

    def packed_varints(self, field: int) -> list[int]:
        """Repeated varint field, packed or not (negative int64 values wrapped back)."""
        out: list[int] = []
        for v in self.fields.get(field, []):
            if isinstance(v, int):
                out.append(v)
            else:
                pos = 0
                while pos < len(v):
                    x, pos = read_varint(v, pos, self.what)
                    out.append(x)
        return [x - (1 << 64) if x >= 1 << 63 else x for x in out]
