"""The registry of weight formats and detection of a file's format from its contents.

Detection looks at bytes, not just suffixes: the SSTable magic at the end of a checkpoint
`.index`, the zip magic (and members) of `.npz` / `.keras`, the HDF5 signature, the
safetensors header, the count line of a `.wts` file.
"""

from __future__ import annotations

import importlib
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import FormatError, UnsupportedError


@dataclass(frozen=True)
class Format:
    """One weight format: how to open it and (when writable) how to write it."""

    name: str
    description: str
    opener: str  # "module:function" returning a WeightSource
    writer: str = ""  # "module:function(weights, path, **options)"; "" = read-only
    suffixes: tuple[str, ...] = ()

    def open(self, path: str | Path):
        return _resolve(self.opener)(path)

    def write(self, weights, path: str | Path, **options) -> Path:
        if not self.writer:
            raise UnsupportedError(f"tf2rt reads {self.name} files but does not write them; "
                                   f"choose one of {', '.join(WRITABLE)}")
        return _resolve(self.writer)(weights, path, **options)


def _resolve(spec: str) -> Callable:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


# What the zipfile module raises on damaged archives (it is not consistent about it).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError,
              NotImplementedError, RuntimeError, struct.error, zlib.error, UnicodeDecodeError,
              IndexError, TypeError, OverflowError)

_W = "tf2rt.weights."
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("tf-checkpoint", "TensorFlow checkpoint (V2 tensor bundle or V1 table)",
               _W + "tf_checkpoint:open_checkpoint", suffixes=(".index", ".ckpt")),
        Format("wts", "TensorRT .wts v1 (hex float32 text)", _W + "wts:WtsFile",
               _W + "api:_write_wts1", (".wts",)),
        Format("wts2", "TensorRT .wts v2 ((shape) + raw bytes)", _W + "wts:WtsFile",
               _W + "api:_write_wts2", (".wts2",)),
        Format("npz", "NumPy .npz archive", _W + "npz:NpzFile", _W + "npz:write_npz", (".npz",)),
        Format("safetensors", "safetensors", _W + "safetensors:SafetensorsFile",
               _W + "safetensors:write_safetensors", (".safetensors",)),
        Format("keras", "Keras model file (.keras zip or legacy .h5)", _W + "keras_file:open_keras",
               suffixes=(".keras", ".h5", ".hdf5")),
    )
}
WRITABLE = tuple(name for name, f in FORMATS.items() if f.writer)

_HDF5 = b"\x89HDF\r\n\x1a\n"
_SSTABLE_MAGIC = (0xDB4775248B80FB57).to_bytes(8, "little")
_WTS_HEAD = re.compile(rb"\A\s*\d+[ \t\r]*\n\s*\S+[ \t]+\d+[ \t]+[(\d]")


def get_format(name: str) -> Format:
    """The registered format called `name`."""
    try:
        return FORMATS[name]
    except KeyError:
        raise UnsupportedError(f"unknown weight format {name!r}; known: {', '.join(FORMATS)}") from None


def format_for_suffix(path: str | Path) -> str | None:
    """The writable format a file name's suffix implies, or None."""
    suffix = Path(path).suffix.lower()
    for name in WRITABLE:
        if suffix in FORMATS[name].suffixes:
            return name
    return None


def detect_format(path: str | Path) -> str:
    """The name of the format `path` holds, judged by its contents."""
    p = Path(path)
    if p.is_dir() or _is_checkpoint(p) or _has_index(p):
        # (a damaged .index still names a checkpoint: its reader says what is wrong with it)
        return "tf-checkpoint"
    if not p.exists():
        raise FormatError(f"{p}: no such file or directory (nor a checkpoint prefix: no {p}.index)")
    from ..limits import regular_file

    regular_file(p, "weight file")  # a FIFO would block detection forever
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
            size = f.seek(0, 2)
            hdf5 = any(_hdf5_at(f, off) for off in (512, 1024, 2048)) if head[:8] != _HDF5 else True
    except OSError as exc:
        raise FormatError(f"cannot read {p}: {exc.strerror}") from None
    if hdf5:
        return "keras"
    if head[:2] == b"PK":
        return _zip_kind(p)
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if _WTS_HEAD.match(head):
        return "wts2" if b"(" in head.split(b"\n", 2)[1][:4096] else "wts"
    if size >= 48:
        with open(p, "rb") as f:
            f.seek(size - 8)
            if f.read(8) == _SSTABLE_MAGIC:
                return "tf-checkpoint"  # a V1 checkpoint file (one SSTable)
    known = ", ".join(FORMATS)
    raise FormatError(
        f"{p}: not a weight file tf2rt recognises (looked for: {known}). For a TensorFlow "
        "checkpoint pass its prefix (model.ckpt-100), its .index file or its directory."
    )


def _hdf5_at(f, offset: int) -> bool:
    f.seek(offset)
    return f.read(8) == _HDF5


def _has_index(p: Path) -> bool:
    """True for a checkpoint's .index file or a prefix next to one, whatever the file holds."""
    try:
        return (p.suffix == ".index" and p.is_file()) or Path(str(p) + ".index").is_file()
    except (OSError, ValueError):
        return False


def _is_checkpoint(p: Path) -> bool:
    try:
        ckpt = importlib.import_module(_W + "tf_checkpoint")
    except ImportError:
        ckpt = None
    if ckpt is not None and hasattr(ckpt, "looks_like_checkpoint"):
        try:
            return bool(ckpt.looks_like_checkpoint(p))
        except Exception:  # a detector must not fail; the reader reports the real problem
            return False
    if p.suffix == ".index" and p.is_file():
        return True
    return Path(str(p) + ".index").is_file()


def _zip_kind(p: Path) -> str:
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except ZIP_ERRORS as exc:
        raise FormatError(f"{p}: starts like a zip archive but cannot be read: {exc}") from None
    if "config.json" in names and any(n.endswith(".weights.h5") or n == "model.weights.h5" for n in names):
        return "keras"
    if names and all(n.endswith(".npy") or n.endswith("/") for n in names):
        return "npz"
    raise FormatError(f"{p}: a zip archive that is neither .npz (only .npy members) nor a .keras model")


def combine(problems: list[UnsupportedError]) -> UnsupportedError:
    """One error listing every tensor a writer cannot store (so one run shows them all)."""
    if len(problems) == 1:
        return problems[0]
    heads, fixes = [], []
    for p in problems:
        head, _, fix = str(p).partition(". ")
        heads.append(f"  - {head}")
        if fix and fix not in fixes:
            fixes.append(fix)
    lines = [f"{len(problems)} tensors cannot be written in this format:", *heads, *fixes]
    return UnsupportedError("\n".join(lines))


# -- dtypes beyond numpy -----------------------------------------------------------------


def extended_dtype(name: str) -> np.dtype:
    """bfloat16 / float8 dtypes, from the ml_dtypes package (installed with TensorFlow/JAX)."""
    try:
        import ml_dtypes
    except ImportError:
        raise UnsupportedError(
            f"reading {name} tensors needs the ml_dtypes package (pip install ml_dtypes)"
        ) from None
    return np.dtype(getattr(ml_dtypes, name))


def le_bytes(array: np.ndarray) -> np.ndarray:
    """The array's elements as little-endian bytes (uint8, C order), copying only if needed."""
    a = np.asarray(array, order="C")
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a.reshape(-1).view(np.uint8)


# -- what writers consume ----------------------------------------------------------------


class TensorMap:
    """Tensors to write: a dict of arrays (or Weights) or a list of Weights, read one at a time.

    Writers ask for every tensor's dtype and shape first (to validate and lay out the file)
    and then for the arrays in order, so a lazy subclass keeps only one tensor in memory.
    """

    def __init__(self, weights=None):
        from .base import Weights

        if weights is None:
            weights = {}
        if isinstance(weights, TensorMap):
            weights = weights._arrays
        elif not hasattr(weights, "keys"):
            weights = {w.name: w for w in weights}
        self._arrays = {str(k): (v.array if isinstance(v, Weights) else np.asarray(v)) for k, v in weights.items()}

    def names(self) -> list[str]:
        """Tensor names, sorted."""
        return sorted(self._arrays)

    def spec(self, name: str) -> tuple[np.dtype | str, tuple[int, ...]]:
        """(dtype, shape) without reading; dtype "string" for byte-string tensors."""
        a = self._arrays[name]
        if a.dtype.hasobject and all(isinstance(x, bytes) for x in a.reshape(-1)):
            return "string", tuple(a.shape)
        return a.dtype, tuple(a.shape)

    def array(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def nbytes(self) -> int:
        total = 0
        for n in self.names():
            dtype, shape = self.spec(n)
            if not isinstance(dtype, str):
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return total
