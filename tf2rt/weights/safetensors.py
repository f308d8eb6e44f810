"""The safetensors format, implemented here (no dependency on the `safetensors` package).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON
`{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}`
(padded with spaces), then the data region; offsets are relative to the data region, and
the tensors tile it exactly. Every offset and size is validated before anything is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..limits import check_elements
from ..outputs import atomic_output
from ..progress import Progress
from .base import TensorInfo, Weights
from .formats import TensorMap, combine, extended_dtype, le_bytes
from .mapped import MappedSource

# safetensors dtype tag -> numpy dtype name (little-endian on disk)
_TAGS: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64",
}
_NAMES = {v: k for k, v in _TAGS.items()}
_MAX_HEADER = 100_000_000  # the limit the reference implementation enforces


def _dtype(tag: str) -> np.dtype:
    name = _TAGS[tag]
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return extended_dtype(name)
    return np.dtype(name).newbyteorder("<")


class SafetensorsFile(MappedSource):
    """A `.safetensors` file, memory-mapped; tensors are copied out on read."""

    format = "safetensors"

    def __init__(self, path: str | Path):
        super().__init__(path)
        try:
            self._infos, self.metadata = self._parse()
        except BaseException:
            self.close()
            raise

    def _err(self, msg: str) -> FormatError:
        return FormatError(f"{self.path}: not a valid safetensors file: {msg}")

    def _parse(self) -> tuple[list[TensorInfo], dict[str, str]]:
        buf, size = self._buf, len(self._buf)
        if size < 8:
            raise self._err(f"only {size} bytes; the 8-byte header length is missing")
        n = int.from_bytes(buf[:8], "little")
        if n > _MAX_HEADER or 8 + n > size:
            raise self._err(f"header length {n} does not fit the file ({size} bytes)")
        try:
            header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise self._err(f"header is not UTF-8 JSON ({exc})") from None
        if not isinstance(header, dict):
            raise self._err("header is not a JSON object")
        for key in header:  # JSON escapes can spell lone surrogates, which no output can print
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise self._err(f"tensor name {key.encode('utf-8', 'backslashreplace')!r} is not valid "
                                "Unicode (a lone surrogate)") from None
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise self._err("__metadata__ must map strings to strings")
        try:
            for k, v in metadata.items():
                k.encode("utf-8"), v.encode("utf-8")
        except UnicodeEncodeError:
            raise self._err("__metadata__ holds text that is not valid Unicode (a lone surrogate)") from None
        data_start, data_len = 8 + n, size - 8 - n
        infos = []
        for name, entry in header.items():
            infos.append(self._entry(name, entry, data_start))
        # Tensors must tile the data region exactly (no gaps, overlaps or slack).
        spans = sorted((i.extra["begin"], i.extra["end"], i.name) for i in infos)
        pos = 0
        for begin, end, name in spans:
            if begin != pos:
                raise self._err(f"tensor {name!r} starts at {begin}, expected {pos} (overlap or gap)")
            pos = end
        if pos != data_len:
            raise self._err(f"tensors cover {pos} data bytes but the file holds {data_len} (truncated?)")
        return sorted(infos, key=lambda i: i.name), metadata

    def _entry(self, name: str, entry: object, data_start: int) -> TensorInfo:
        if not isinstance(entry, dict):
            raise self._err(f"entry {name!r} is not an object")
        tag, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(tag, str) or tag not in _TAGS:
            raise UnsupportedError(f"{self.path}: tensor {name!r} has unknown dtype {tag!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise self._err(f"tensor {name!r} has a bad shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise self._err(f"tensor {name!r} has bad data_offsets {offsets!r}")
        itemsize = {"F64": 8, "I64": 8, "U64": 8, "C64": 8, "F32": 4, "I32": 4, "U32": 4,
                    "F16": 2, "BF16": 2, "I16": 2, "U16": 2}.get(tag, 1)
        count = check_elements(shape, itemsize, f"{self.path}: tensor {name!r}")
        if count * itemsize != offsets[1] - offsets[0]:
            raise self._err(
                f"tensor {name!r}: shape {shape} of {tag} needs {count * itemsize} bytes, "
                f"data_offsets span {offsets[1] - offsets[0]}"
            )
        return TensorInfo(name, tag_dtype_name(tag), tuple(shape),
                          extra={"tag": tag, "begin": offsets[0], "end": offsets[1], "base": data_start})

    def infos(self) -> list[TensorInfo]:
        return self._infos

    def _read(self, info: TensorInfo) -> np.ndarray:
        dtype = _dtype(info.extra["tag"])
        data = np.frombuffer(self._buf, dtype, count=info.size, offset=info.extra["base"] + info.extra["begin"])
        return data.astype(dtype.newbyteorder("="), copy=True).reshape(info.shape)


def tag_dtype_name(tag: str) -> np.dtype | str:
    """The dtype a tensor reads as (a string name for the ml_dtypes extension types)."""
    name = _TAGS[tag]
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        try:
            return extended_dtype(name)
        except UnsupportedError:
            return name
    return np.dtype(name)


def write_safetensors(
    weights: Mapping[str, np.ndarray] | Iterable[Weights] | TensorMap,
    path: str | Path,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write tensors as a `.safetensors` file (sorted by name, readable by the reference package)."""
    tensors = weights if isinstance(weights, TensorMap) else TensorMap(weights)
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    pos = 0
    plan = []
    problems: list[UnsupportedError] = []
    for name in tensors.names():
        dtype, shape = tensors.spec(name)
        tag = None if isinstance(dtype, str) else _NAMES.get(dtype.name)
        if tag is None:
            problems.append(UnsupportedError(
                f"tensor {name!r} has dtype {dtype}, which safetensors cannot store; "
                "leave it out with exclude=[...] (CLI: --exclude) or dump to npz"
            ))
            continue
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": tag, "shape": [int(d) for d in shape], "data_offsets": [pos, pos + nbytes]}
        plan.append((name, dtype, shape))
        pos += nbytes
    if problems:
        raise combine(problems)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(len(text)) % 8)  # keep the data region 8-byte aligned
    path = Path(path)
    with atomic_output(path) as tmp:  # the old file stays until the new one is complete
        with open(tmp, "wb") as f, Progress(pos, f"writing {path.name}", "B") as bar:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for name, dtype, shape in plan:
                array = np.asarray(tensors.array(name))
                if array.dtype != dtype or tuple(array.shape) != shape:
                    raise FormatError(f"tensor {name!r} read as {array.dtype}{array.shape}, expected {dtype}{shape}")
                f.write(le_bytes(array))
                bar.update(array.nbytes)
    return path
