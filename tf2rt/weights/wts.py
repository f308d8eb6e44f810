"""TensorRT weight files: `.wts` v1 (hex text) and v2 (`(shape)` + raw bytes).

Both versions are what TensorRT's `dumpTFWts.py` writes and its samples' `loadWeights`
read: a count line, then one record per tensor, sorted by source name, with `/` in names
mapped to `_`:

    v1: <name> <type> <count> <hex> <hex> ... \\n      (lowercase hex bit patterns, no padding)
    v2: <name> <type> (<shape>) <raw little-endian bytes>\\n

Type codes are TensorRT's `DataType`: 0 float32, 1 float16, 2 int8, 3 int32 (readers also
accept the later codes 4 bool, 5 uint8, 8 int64). dumpTFWts always wrote 0; tf2rt writes
the real code in v2 so non-float32 tensors are sized right, and forces float32 (code 0) in
v1 exactly as dumpTFWts did. Other dtypes in v2 are an error unless `convert=True`, which
stores floating tensors as float32 and integer/bool tensors as int32 (values checked).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..limits import check_elements
from ..outputs import atomic_output
from ..progress import Progress
from .base import TensorInfo, Weights
from .formats import TensorMap, combine, le_bytes
from .mapped import MappedSource

# TensorRT nvinfer1::DataType codes -> numpy dtype (little-endian on disk).
TRT_TYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),  # kFLOAT
    1: np.dtype("<f2"),  # kHALF
    2: np.dtype("i1"),  # kINT8
    3: np.dtype("<i4"),  # kINT32
    4: np.dtype("?"),  # kBOOL (TensorRT >= 5)
    5: np.dtype("u1"),  # kUINT8 (TensorRT >= 8.5)
    8: np.dtype("<i8"),  # kINT64 (TensorRT >= 10)
}
# The codes tf2rt writes: the four every TensorRT version's loadWeights understands.
_WRITE_CODES: dict[str, int] = {"float32": 0, "float16": 1, "int8": 2, "int32": 3}
# v1 text records can only express these (loadWeights parses uint32 or uint16 hex tokens).
_V1_TOKEN = {0: np.dtype("<u4"), 1: np.dtype("<u2")}

_SHAPE_MAX = 64  # dims in a v2 shape; far more than any real tensor
_MAX_NAME = 4096


def trt_name(name: str, keep_names: bool = False) -> str:
    """The record name dumpTFWts would write for a checkpoint key (`/` -> `_`)."""
    out = name if keep_names else name.replace("/", "_")
    if not out or re.search(r"\s", out):
        raise FormatError(
            f"tensor name {name!r} is empty or contains whitespace, which .wts cannot store "
            "(TensorRT reads names as whitespace-separated words). Leave it out with "
            "exclude=[...] (CLI: --exclude), or dump to npz/safetensors instead."
        )
    return out


def _plan_code(name: str, dtype: np.dtype | str, version: int, convert: bool) -> int:
    """The TensorRT type code a tensor will be written with; raises before anything is written."""
    numeric = not isinstance(dtype, str) and (dtype.kind in "fbiu" or dtype.name == "bfloat16")
    if version == 1:
        if not numeric:
            raise UnsupportedError(
                f"tensor {name!r} has dtype {dtype}; .wts v1 stores float32 values only. "
                "Leave it out with exclude=[...] (CLI: --exclude) or use wts2/npz/safetensors."
            )
        return 0  # like dumpTFWts: every value becomes a float32
    code = None if isinstance(dtype, str) else _WRITE_CODES.get(dtype.name)
    if code is not None:
        return code
    if not convert or not numeric:
        extra = "" if numeric else " (even with convert=True)"
        fix = ("Pass convert=True (CLI: --convert) to store floating tensors as float32 and "
               "integer/bool tensors as int32, or dump" if numeric else "Leave it out with exclude=[...] (CLI: --exclude) or dump")
        raise UnsupportedError(
            f"tensor {name!r} has dtype {dtype}, which TensorRT .wts files cannot hold{extra} "
            f"(float32, float16, int8, int32 only). {fix} to npz/safetensors, which keep every dtype."
        )
    return 0 if dtype.kind == "f" or dtype.name == "bfloat16" else 3


def _v2_data(name: str, array: np.ndarray, code: int) -> np.ndarray:
    dt = array.dtype
    if code == 3 and dt.kind in "iu" and dt.name != "int32" and array.size:
        lo, hi = int(array.min()), int(array.max())
        if lo < -(2**31) or hi >= 2**31:
            raise UnsupportedError(
                f"tensor {name!r} ({dt}) holds values in [{lo}, {hi}] that do not fit "
                "int32; leave it out with exclude=[...] (CLI: --exclude) or dump it to npz/safetensors"
            )
    return array.astype(TRT_TYPES[code], copy=False)


def _v1_words(array: np.ndarray) -> np.ndarray:
    """float32 bit patterns as uint32, like dumpTFWts' `float(weight)` -> pack('<f')."""
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf
        return np.asarray(array.astype("<f4"), order="C").view("<u4").reshape(-1)


def write_wts(
    weights: Mapping[str, np.ndarray] | Iterable[Weights] | TensorMap,
    path: str | Path,
    version: int = 2,
    keep_names: bool = False,
    convert: bool = False,
) -> Path:
    """Write tensors as a TensorRT `.wts` file (version 1 or 2), sorted by name."""
    if version not in (1, 2):
        raise FormatError(f".wts version must be 1 or 2, not {version!r}")
    tensors = weights if isinstance(weights, TensorMap) else TensorMap(weights)
    names = tensors.names()
    if not names:
        raise FormatError("no tensors to write; TensorRT's loadWeights rejects an empty .wts file")
    seen: dict[str, str] = {}
    plan: list[tuple[str, str, int, tuple[int, ...]]] = []
    problems: list[UnsupportedError] = []
    for name in names:
        out = trt_name(name, keep_names)
        if out in seen:
            raise FormatError(
                f"tensor names {seen[out]!r} and {name!r} both become {out!r} in .wts; "
                "pass keep_names=True (CLI: --keep-names) or leave one out with exclude=[...]"
            )
        seen[out] = name
        dtype, shape = tensors.spec(name)
        try:
            plan.append((name, out, _plan_code(name, dtype, version, convert), shape))
        except UnsupportedError as exc:
            problems.append(exc)
    if problems:
        raise combine(problems)
    path = Path(path)
    with atomic_output(path) as tmp:  # the old file stays until the new one is complete
        with open(tmp, "wb") as f, Progress(tensors.nbytes(), f"writing {path.name}", "B") as bar:
            f.write(b"%d\n" % len(plan))
            for name, out, code, shape in plan:
                array = np.asarray(tensors.array(name))
                if tuple(array.shape) != shape:
                    raise FormatError(f"tensor {name!r} read with shape {array.shape}, expected {shape}")
                if version == 1:
                    f.write(f"{out} 0 {array.size} ".encode())
                    _write_hex(f, _v1_words(array))
                else:
                    f.write(f"{out} {code} {tuple(int(d) for d in shape)} ".encode())
                    f.write(le_bytes(_v2_data(name, array, code)))
                f.write(b"\n")
                bar.update(array.nbytes)
    return path


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)


def _write_hex(f, words: np.ndarray) -> None:
    """Write each uint32 as lowercase hex without leading zeros, then a space (vectorised)."""
    step = 1 << 18  # bounded temporaries: ~13 MB per chunk
    for start in range(0, words.size, step):
        w = words[start : start + step]
        nibbles = (w[:, None] >> _SHIFTS[None, :]) & 0xF
        first = np.where(nibbles.any(axis=1), (nibbles != 0).argmax(axis=1), 7)
        chars = np.empty((w.size, 9), np.uint8)
        chars[:, :8] = _HEX[nibbles]
        chars[:, 8] = ord(" ")
        keep = np.arange(9)[None, :] >= first[:, None]
        f.write(chars[keep].tobytes())


# -- reading ---------------------------------------------------------------------------


class WtsFile(MappedSource):
    """A `.wts` v1 or v2 file (records may even mix versions). Lazy: data is read on demand."""

    format = "wts"

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._infos: list[TensorInfo] | None = None
        self.version = 0  # 1 or 2 once scanned (2 if any record is v2)

    def _err(self, msg: str) -> FormatError:
        return FormatError(f"{self.path}: not a valid TensorRT .wts file: {msg}")

    def infos(self) -> list[TensorInfo]:
        if self._infos is None:
            self._infos = sorted(self._scan(), key=lambda i: i.name)
        return self._infos

    def _token(self, pos: int, what: str, limit: int = 64) -> tuple[bytes, int]:
        """Skip whitespace, return the next word (as `>>` does) and the position after it."""
        buf, end = self._buf, len(self._buf)
        while pos < end and buf[pos : pos + 1] in b" \t\r\n\v\f":
            pos += 1
        start = pos
        while pos < end and buf[pos : pos + 1] not in b" \t\r\n\v\f":
            pos += 1
            if pos - start > limit:
                raise self._err(f"{what} at byte {start} is longer than {limit} characters")
        if pos == start:
            raise self._err(f"file ends where {what} was expected (truncated?)")
        return bytes(buf[start:pos]), pos

    def _int(self, pos: int, what: str) -> tuple[int, int]:
        tok, pos = self._token(pos, what, 24)
        if not tok.isdigit():
            raise self._err(f"{what} should be a decimal number, found {tok[:40]!r}")
        return int(tok), pos

    def _scan(self) -> list[TensorInfo]:
        buf, end = self._buf, len(self._buf)
        count, pos = self._int(0, "the tensor count on the first line")
        # Every record takes at least 7 bytes ("a 0 0 \n"), which bounds a bogus count.
        if count * 7 > end:
            raise self._err(f"it claims {count} tensors but is only {end} bytes long")
        infos: list[TensorInfo] = []
        names: set[str] = set()
        for index in range(count):
            raw, pos = self._token(pos, f"the name of tensor #{index}", _MAX_NAME)
            name = raw.decode("utf-8", "replace")
            code, pos = self._int(pos, f"the type of {name!r}")
            if code not in TRT_TYPES:
                raise UnsupportedError(
                    f"{self.path}: tensor {name!r} has TensorRT type code {code}; tf2rt reads "
                    f"codes {sorted(TRT_TYPES)} (float32, float16, int8, int32, bool, uint8, int64)"
                )
            while pos < end and buf[pos : pos + 1] in b" \t":
                pos += 1
            if buf[pos : pos + 1] == b"(":
                info, pos = self._scan_v2(name, code, pos)
            else:
                info, pos = self._scan_v1(name, code, pos)
            if name in names:
                raise self._err(f"tensor {name!r} appears twice")
            names.add(name)
            infos.append(info)
        rest = buf[pos : min(end, pos + 4096)]
        if rest.strip():
            raise self._err(
                f"unexpected data after the {count} tensors the first line announces "
                f"(at byte {pos}); the count line is wrong or the file is corrupted"
            )
        self.version = 2 if any(i.extra["version"] == 2 for i in infos) else 1
        return infos

    def _scan_v2(self, name: str, code: int, pos: int) -> tuple[TensorInfo, int]:
        buf, end = self._buf, len(self._buf)
        close = buf.find(b")", pos, min(end, pos + 32 * _SHAPE_MAX))
        if close < 0:
            raise self._err(f"tensor {name!r}: no ')' closing its shape")
        text = bytes(buf[pos + 1 : close]).decode("ascii", "replace")
        parts = [p.strip() for p in text.split(",")]
        if parts and parts[-1] == "":
            parts.pop()  # "(3,)" has a trailing comma
        if len(parts) > _SHAPE_MAX or not all(p.isdigit() for p in parts):
            raise self._err(f"tensor {name!r}: bad shape ({text[:80]})")
        shape = tuple(int(p) for p in parts)
        dtype = TRT_TYPES[code]
        n = check_elements(shape, dtype.itemsize, f"{self.path}: tensor {name!r}")
        nbytes = n * dtype.itemsize
        start = close + 2  # ')' then one separator byte
        if buf[close + 1 : close + 2] != b" ":
            raise self._err(f"tensor {name!r}: expected a space after its shape")
        if start + nbytes + 1 > end:
            raise self._err(
                f"tensor {name!r} needs {nbytes} bytes of data at byte {start} but the "
                f"file ends at {end} (truncated?)"
            )
        if buf[start + nbytes : start + nbytes + 1] != b"\n":
            raise self._err(
                f"tensor {name!r}: no newline after its {nbytes} data bytes (wrong type code "
                "or shape, or a corrupted file)"
            )
        info = TensorInfo(name, dtype.newbyteorder("="), shape,
                          extra={"version": 2, "type": code, "offset": start})
        return info, start + nbytes + 1

    def _scan_v1(self, name: str, code: int, pos: int) -> tuple[TensorInfo, int]:
        buf, end = self._buf, len(self._buf)
        n, pos = self._int(pos, f"the element count of {name!r}")
        if code not in _V1_TOKEN:
            raise UnsupportedError(
                f"{self.path}: tensor {name!r}: .wts v1 text records hold float32 (type 0) "
                f"or float16 (type 1) values, not type {code}"
            )
        # Hex tokens are separated by single spaces: at least 2 bytes per element.
        if pos + 2 * n > end:
            raise self._err(f"tensor {name!r} claims {n} values but the file ends first (truncated?)")
        nl = buf.find(b"\n", pos)
        if nl < 0:
            nl = end
        dtype = np.dtype("<f4") if code == 0 else np.dtype("<f2")
        info = TensorInfo(name, dtype.newbyteorder("="), (n,),
                          extra={"version": 1, "type": code, "offset": pos, "end": nl})
        return info, nl + 1

    def _read(self, info: TensorInfo) -> np.ndarray:
        ex = info.extra
        if ex["version"] == 2:
            dtype = TRT_TYPES[ex["type"]]
            data = np.frombuffer(self._buf, dtype, count=info.size, offset=ex["offset"])
            return data.astype(dtype.newbyteorder("="), copy=True).reshape(info.shape)
        text = bytes(self._buf[ex["offset"] : ex["end"]])
        tokens = text.split()
        if len(tokens) != info.size:
            raise self._err(f"tensor {info.name!r} announces {info.size} values but has {len(tokens)}")
        word = _V1_TOKEN[ex["type"]]
        limit = 1 << (8 * word.itemsize)
        try:
            values = [int(t, 16) for t in tokens]
        except ValueError:
            raise self._err(f"tensor {info.name!r} has a value that is not hexadecimal") from None
        if values and (max(values) >= limit or min(values) < 0):
            raise self._err(f"tensor {info.name!r} has a value wider than {8 * word.itemsize} bits")
        return np.array(values, dtype=word).view(info.dtype)


def read_wts(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a `.wts` file as name -> array."""
    with WtsFile(path) as src:
        return {i.name: src._read(i) for i in src.infos()}
