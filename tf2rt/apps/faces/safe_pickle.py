"""An allow-listed unpickler for joblib files that hold only numpy arrays.

Pretrained weights are often shipped as joblib pickles. A pickle can name any Python
callable and call it while loading, so `pickle.load` on a downloaded file runs whatever
its author wanted. This reader only lets through the handful of globals needed to
rebuild plain numeric arrays, lists, tuples and dicts; anything else is refused before
it is looked up, so no code from the file runs.

joblib writes each array as a `NumpyArrayWrapper` object (shape, dtype, order) followed
by the array's raw bytes outside the pickle opcodes; we read those bytes ourselves and
never import joblib.
"""

from __future__ import annotations

import functools
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import FormatError
from ...limits import Budget, max_bytes, read_capped

# joblib's compressed files start with the compressor's own magic number.
_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_ZLIB_MAGIC = b"\x78"
_PICKLE_PROTO = b"\x80"
# protocol 0/1 pickles have no header; they start with MARK, EMPTY_LIST, EMPTY_DICT or GLOBAL
_OLD_PICKLE_STARTS = b"(]}c"

# Cap on decompressed size: the input justifies at most this many bytes per input byte.
_MAX_EXPANSION = 64
_MAX_BYTES = 1 << 31
# Arrays built from a pickle: each array's bytes appear once in it, so what is built is
# bounded by its size; memoised buffers reused over and over would otherwise multiply it.
_BUILD_FACTOR = 2
_BUILD_SLACK = 1 << 20


class _ArrayWrapper:
    """Stands in for joblib's NumpyArrayWrapper: holds its state, runs nothing."""

    def __init__(self) -> None:
        self.state: dict[str, Any] | None = None


class _NdarrayType:
    """Stands in for `numpy.ndarray` so the pickle can name it but never call it with a shape."""


def _ndarray_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ndarray pickling entry point, restricted to plain ndarrays."""
    if subtype is not _NdarrayType:
        raise FormatError(f"refusing to rebuild an array of type {subtype!r}; only numpy.ndarray is allowed")
    return np.ndarray.__new__(np.ndarray, (0,), np.uint8)


def _make_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise FormatError(f"refusing dtype spec {spec!r}; only simple dtype strings are allowed")
    dt = np.dtype(spec)
    if dt.hasobject or dt.kind not in "biufc":
        raise FormatError(f"refusing dtype {dt}; only numeric arrays can be loaded")
    return dt


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any, budget: Budget | None = None) -> np.ndarray:
    """numpy's protocol-5 array rebuild, restricted to numeric dtypes and byte buffers."""
    if not isinstance(buf, (bytes, bytearray, memoryview)) or not isinstance(dtype, np.dtype):
        raise FormatError("refusing an array rebuilt from something other than raw bytes")
    if dtype.hasobject or dtype.kind not in "biufc":
        raise FormatError(f"refusing dtype {dtype}; only numeric arrays can be loaded")
    if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise FormatError(f"malformed array shape {shape!r}")
    arr = np.frombuffer(buf, dtype=dtype)
    if arr.size != math.prod(shape):
        raise FormatError(f"array data does not fill shape {shape}")
    if budget is not None:
        budget.take(arr.nbytes)
    return arr.reshape(shape, order="F" if order == "F" else "C").copy()


def _latin1_bytes(text: Any, encoding: Any = "latin1", budget: Budget | None = None) -> bytes:
    """Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise FormatError("refusing _codecs.encode other than str -> latin1 bytes")
    if budget is not None:
        budget.take(len(text))
    return text.encode("latin1")


# module -> name -> what the pickle gets instead. numpy moved `core` to `_core` in 2.0;
# both spellings occur in files in the wild.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _make_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_bytes,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapper,
    ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"): _ArrayWrapper,
}


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Unpickler that rebuilds numeric numpy arrays and builtin containers, nothing else.

    The pure-Python unpickler is used because joblib's array bytes sit between opcodes,
    and only its BUILD step can be intercepted to read them.
    """

    def __init__(self, file: io.BufferedIOBase, source: str = "<pickle>") -> None:
        super().__init__(file)
        self._file = file
        self._source = source
        size = len(file.getbuffer()) if isinstance(file, io.BytesIO) else _MAX_BYTES
        self._budget = Budget(min(max_bytes(), _BUILD_FACTOR * size + _BUILD_SLACK), source)
        self.dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]
        self.dispatch[pickle.BUILD[0]] = SafeUnpickler._load_build
        for op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):  # the extension registry bypasses find_class
            self.dispatch[op[0]] = SafeUnpickler._refuse_extension
        # Opcodes that could reach code or objects outside the allow-list go through
        # find_class (GLOBAL, STACK_GLOBAL, INST) or persistent_load, both refused.

    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise FormatError(
                f"refusing to load {self._source}: it references the global {module}.{name}, "
                "which is not needed to rebuild numpy arrays; the file may run code when "
                "unpickled - do not load it with pickle or joblib either"
            )
        if target is _frombuffer or target is _latin1_bytes:  # the two that copy bytes
            return functools.partial(target, budget=self._budget)
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise FormatError(f"refusing to load {self._source}: it uses persistent ids ({pid!r})")

    def _refuse_extension(self) -> None:
        raise FormatError(f"refusing to load {self._source}: it uses the copyreg extension registry")

    def _load_build(self) -> None:
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if isinstance(inst, _ArrayWrapper):
            if not isinstance(state, dict):
                raise FormatError(f"{self._source}: malformed array header {state!r}")
            stack[-1] = self._read_wrapped_array(state)
        elif isinstance(inst, np.ndarray) and type(inst) is np.ndarray:
            _check_ndarray_state(state, self._source)
            self._budget.take(len(state[4]))
            inst.__setstate__(state)
        elif isinstance(inst, np.dtype):
            inst.__setstate__(state)
            if inst.hasobject or inst.kind not in "biufc":
                raise FormatError(f"refusing dtype {inst}; only numeric arrays can be loaded")
        else:
            raise FormatError(f"refusing to load {self._source}: cannot set state on {type(inst).__name__}")

    def _read_wrapped_array(self, state: dict[str, Any]) -> np.ndarray:
        shape, dtype, order = state.get("shape"), state.get("dtype"), state.get("order", "C")
        if state.get("subclass", _NdarrayType) is not _NdarrayType:
            raise FormatError(f"{self._source}: only plain numpy arrays are allowed")
        if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biufc":
            raise FormatError(f"{self._source}: refusing array dtype {dtype!r}; only numeric arrays can be loaded")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise FormatError(f"{self._source}: malformed array shape {shape!r}")
        if order not in ("C", "F"):
            raise FormatError(f"{self._source}: malformed array order {order!r}")
        align = state.get("numpy_array_alignment_bytes")
        if align is not None:
            # one byte with the padding length, then that many filler bytes
            pad = self._file.read(1)
            if len(pad) != 1 or pad[0] > int(align):
                raise FormatError(f"{self._source}: truncated or corrupted array padding")
            if len(self._file.read(pad[0])) != pad[0]:
                raise FormatError(f"{self._source}: truncated array padding")
        count = math.prod(shape)  # Python ints: a hostile shape cannot overflow
        nbytes = count * dtype.itemsize
        left = len(self._file.getbuffer()) - self._file.tell() if isinstance(self._file, io.BytesIO) else nbytes
        if nbytes > left:  # checked before reading, so a huge claimed shape allocates nothing
            raise FormatError(
                f"{self._source}: truncated array data (shape {shape}, {dtype}: needs {nbytes} bytes, "
                f"{left} left in the file)"
            )
        self._budget.take(nbytes)
        data = self._file.read(nbytes)
        if len(data) != nbytes:
            raise FormatError(
                f"{self._source}: truncated array data (shape {shape}, {dtype}: needs {nbytes} bytes, "
                f"found {len(data)})"
            )
        arr = np.frombuffer(data, dtype=dtype, count=count)
        if order == "F":
            return arr.reshape(shape[::-1]).transpose().copy()
        return arr.reshape(shape).copy()


def _check_ndarray_state(state: Any, source: str) -> None:
    # (version, shape, dtype, is_fortran, raw bytes) - raw must be bytes, never a list of objects
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], (bytes, bytearray))):
        raise FormatError(f"{source}: refusing array state that is not raw bytes")
    if not isinstance(state[2], np.dtype) or state[2].hasobject:
        raise FormatError(f"{source}: refusing array dtype {state[2]!r}")


def decompress(data: bytes, source: str = "<bytes>") -> bytes:
    """Undo joblib's file compression (lz4 or zlib) or return raw pickle bytes unchanged."""
    limit = min(max(len(data), 1) * _MAX_EXPANSION, _MAX_BYTES)
    if data.startswith(_LZ4_MAGIC):
        from ..._optional import require

        lz4_frame = require("lz4.frame", "faces", f"reading the lz4-compressed {source}")
        dec = lz4_frame.LZ4FrameDecompressor()
        try:
            out = dec.decompress(data, max_length=limit)
        except RuntimeError as exc:
            raise FormatError(f"{source}: corrupted lz4 data ({exc})") from exc
        if not dec.eof:
            if len(out) >= limit:
                raise FormatError(f"{source}: lz4 data expands beyond {limit} bytes; refusing to decompress")
            raise FormatError(f"{source}: truncated lz4 data")
        return out
    if data.startswith(_ZLIB_MAGIC):
        import zlib

        dec = zlib.decompressobj()
        try:
            out = dec.decompress(data, limit)
        except zlib.error as exc:
            raise FormatError(f"{source}: corrupted zlib data ({exc})") from exc
        if dec.unconsumed_tail:
            raise FormatError(f"{source}: zlib data expands beyond {limit} bytes; refusing to decompress")
        return out
    if data.startswith(_PICKLE_PROTO) or (data and data[0] in _OLD_PICKLE_STARTS):
        return data
    raise FormatError(
        f"{source} is not a joblib/pickle file (starts with {data[:4]!r}); expected lz4, zlib or pickle data"
    )


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Load a (possibly compressed) joblib pickle that holds only numeric arrays and containers."""
    raw = decompress(data, source)
    try:
        return SafeUnpickler(io.BytesIO(raw), source).load()
    except FormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError, MemoryError, struct.error, RecursionError) as exc:
        raise FormatError(f"{source}: corrupted pickle data ({type(exc).__name__}: {exc})") from exc


def safe_load(path: str | Path) -> Any:
    """Load a joblib pickle file without running code from it; see `safe_loads`."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"cannot read {path}: no such file")
    # regular files only (a FIFO would block), no larger than the cap
    data = read_capped(path, max_bytes(), "joblib file")
    return safe_loads(data, str(path))
