"""NumPy `.npz` archives: a zip of `.npy` members, one per tensor (name = member minus `.npy`).

Reading never unpickles: object arrays are refused. Headers are parsed without reading
data, so listing is cheap; declared sizes are checked against the zip directory so a
hostile archive cannot make us allocate more than it could hold.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..limits import MAX_RATIO, check_elements, regular_file
from ..outputs import atomic_output
from ..progress import Progress
from .base import TensorInfo, WeightSource, Weights
from .formats import ZIP_ERRORS, TensorMap, combine

# Deflate expands at most ~1032:1; anything claiming more is a zip bomb or corrupted.
_MAX_RATIO = MAX_RATIO


class NpzFile(WeightSource):
    """An `.npz` archive read lazily."""

    format = "npz"

    def __init__(self, path: str | Path):
        super().__init__(path)
        regular_file(self.path, ".npz file")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except ZIP_ERRORS as exc:
            raise FormatError(f"{self.path}: not a readable .npz (zip) archive: {exc}") from None
        self._infos: list[TensorInfo] | None = None

    def close(self) -> None:
        self._zip.close()

    def _err(self, msg: str) -> FormatError:
        return FormatError(f"{self.path}: {msg}")

    def infos(self) -> list[TensorInfo]:
        if self._infos is None:
            out = []
            _check_distinct_members(self._zip.infolist(), self.path)
            for zi in self._zip.infolist():
                try:
                    if zi.is_dir():
                        continue
                except ZIP_ERRORS:
                    raise self._err("corrupted zip directory entry") from None
                if not zi.filename.endswith(".npy"):
                    raise self._err(f"member {zi.filename!r} is not a .npy array; not an .npz file")
                out.append(self._header(zi))
            self._infos = sorted(out, key=lambda i: i.name)
        return self._infos

    def _header(self, zi: zipfile.ZipInfo) -> TensorInfo:
        name = zi.filename[: -len(".npy")]
        if (zi.file_size > _MAX_RATIO * zi.compress_size + (1 << 16) if zi.compress_type != zipfile.ZIP_STORED
                else zi.file_size != zi.compress_size):
            raise self._err(f"member {zi.filename!r} claims {zi.file_size} bytes from {zi.compress_size} "
                            "compressed, an impossible ratio (a zip bomb or a damaged file)")
        try:
            with self._zip.open(zi) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=1 << 16)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=1 << 16)
                else:
                    raise ValueError(f"unknown .npy version {version}")
                header_len = f.tell()
        except NotImplementedError as exc:  # an unknown compression method
            raise self._err(f"member {zi.filename!r} cannot be read: {exc}") from None
        except ZIP_ERRORS + (SyntaxError, TypeError) as exc:
            raise self._err(f"member {zi.filename!r} is not a valid .npy array: {exc}") from None
        if dtype.hasobject:
            raise UnsupportedError(
                f"{self.path}: array {name!r} holds Python objects (pickled); tf2rt never "
                "unpickles data. Re-save it with a numeric dtype."
            )
        # the declared shape, against the cap and what the member can hold, before any allocation
        n = check_elements(shape, dtype.itemsize, f"{self.path}: array {name!r}")
        if header_len + n * dtype.itemsize != zi.file_size:
            raise self._err(
                f"array {name!r}: header says {shape} {dtype} ({n * dtype.itemsize} bytes) but "
                f"the member holds {zi.file_size - header_len} bytes (truncated or corrupted)"
            )
        return TensorInfo(name, dtype, tuple(int(d) for d in shape),
                          extra={"member": zi.filename, "fortran": fortran})

    def _read(self, info: TensorInfo) -> np.ndarray:
        if self._infos is None:
            self.infos()  # headers are checked before any data is read
        try:
            with self._zip.open(info.extra["member"]) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False, max_header_size=1 << 16)
        except ZIP_ERRORS as exc:
            raise self._err(f"array {info.name!r} cannot be read: {exc}") from None
        if arr.shape != info.shape:
            raise self._err(f"array {info.name!r} changed shape while reading (corrupted)")
        return np.asarray(arr, order="C")


def _check_distinct_members(infos: list[zipfile.ZipInfo], path: Path) -> None:
    """Each member's bytes belong to it alone: directory entries listed twice, or pointing
    into each other's data, would inflate the same compressed bytes once per entry."""
    names = set()
    spans = []
    for zi in infos:
        if zi.filename in names:
            raise FormatError(f"{path}: member {zi.filename!r} is listed twice; the archive is hostile or damaged")
        names.add(zi.filename)
        spans.append((zi.header_offset, zi.header_offset + 30 + zi.compress_size, zi.filename))
    spans.sort()
    for (_b0, e0, n0), (b1, _e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise FormatError(f"{path}: members {n0!r} and {n1!r} overlap in the archive; it is hostile or damaged")


def write_npz(weights: Mapping[str, np.ndarray] | Iterable[Weights] | TensorMap, path: str | Path) -> Path:
    """Write tensors as an uncompressed `.npz` (readable by `numpy.load`), one at a time."""
    tensors = weights if isinstance(weights, TensorMap) else TensorMap(weights)
    names = tensors.names()
    problems = []
    for name in names:  # refuse before writing anything
        dtype, _ = tensors.spec(name)
        if not isinstance(dtype, str) and dtype.kind == "V":
            problems.append(UnsupportedError(
                f"tensor {name!r} has dtype {dtype}, which .npy files cannot record "
                "(it would read back as raw bytes); dump to safetensors, which keeps it"
            ))
        elif not isinstance(dtype, str) and dtype.hasobject:
            problems.append(UnsupportedError(
                f"tensor {name!r} holds Python objects; .npz output stores numeric arrays only"))
    if problems:
        raise combine(problems)
    path = Path(path)
    # Our own writer: numpy.savez takes names as keyword arguments, so a tensor called
    # "file" or "allow_pickle" would collide with its parameters.
    with atomic_output(path) as tmp:  # the old file stays until the new one is complete
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf, \
                Progress(tensors.nbytes(), f"writing {path.name}", "B") as bar:
            for name in names:
                array = np.asarray(tensors.array(name))
                if array.dtype.hasobject:  # DT_STRING tensors: fixed-width bytes, no pickle
                    array = array.astype(bytes)
                with zf.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(array, order="C"), allow_pickle=False)
                bar.update(array.nbytes)
    return path
