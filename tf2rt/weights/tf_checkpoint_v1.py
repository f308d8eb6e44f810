"""Old V1 TensorFlow checkpoints: one table per shard holding `SavedTensorSlices` records.

The record under key "" lists every tensor (name, shape, dtype, saved slices); each slice
is stored under its OrderedCode slice key as a `SavedSlice` whose `TensorProto` keeps the
values in typed repeated fields. Listing reads only that first record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..limits import check_elements
from ..proto import Message
from .base import TensorInfo, WeightSource
from .object_graph import classify
from .sstable import Table
from .tf_checkpoint import _check_tiling
from .tf_dtypes import DT_STRING, encode_slice_key, info_dtype, numpy_dtype, parse_shape, parse_slice, slice_bounds

# TensorProto fields holding values, by DataType code: (field, wire layout).
_FIELDS = {
    1: (5, "f4"),
    2: (6, "f8"),
    3: (7, "varint"),
    4: (7, "varint"),
    5: (7, "varint"),
    6: (7, "varint"),
    8: (9, "f4"),
    9: (10, "varint"),
    10: (11, "varint"),
    11: (7, "varint"),
    12: (7, "varint"),
    13: (7, "varint"),
    14: (13, "varint"),
    15: (7, "varint"),
    16: (7, "varint"),
    17: (7, "varint"),
    18: (12, "f8"),
    19: (13, "varint"),
    22: (16, "varint"),
    23: (17, "varint"),
}
_TENSOR_CONTENT = 4
_STRING_VAL = 8


class V1Source(WeightSource):
    """A V1 checkpoint: a single table file, or `<prefix>-NNNNN-of-NNNNN` shard tables."""

    format = "tf-checkpoint"

    def __init__(self, files: list[Path], verify: bool = True):
        super().__init__(files[0])
        self.files = list(files)
        self.verify = verify
        self._tables: list[Table] = []
        # name -> (dtype code, shape, [(table index, extents)])
        self._tensors: dict[str, tuple[int, tuple[int, ...], list[tuple[int, list[tuple[int, int]]]]]] = {}
        try:
            for i, path in enumerate(self.files):
                table = Table(path, verify, "V1 checkpoint")
                self._tables.append(table)
                self._load_meta(i, table)
        except BaseException:
            self.close()
            raise

    def _load_meta(self, index: int, table: Table) -> None:
        what = f"V1 checkpoint {table.path}"
        raw = table.get(b"")
        if raw is None:
            raise FormatError(f"{what}: no SavedTensorSlices header (not a V1 checkpoint)")
        meta = Message(raw, what).message(1)
        for tensor in meta.messages(1):
            name = tensor.str(1)
            shape = parse_shape(tensor.bytes(2), f"{what} tensor {name!r}")
            dtype = tensor.int(3)
            slices = [parse_slice(s, f"{what} tensor {name!r}") for s in tensor.messages(4)]
            known = self._tensors.setdefault(name, (dtype, shape, []))
            if known[:2] != (dtype, shape):
                raise FormatError(f"{what}: tensor {name!r} has a different dtype/shape in another shard")
            known[2].extend((index, ext) for ext in slices)

    def infos(self) -> list[TensorInfo]:
        return sorted(
            (
                TensorInfo(name, info_dtype(dtype), shape, classify(name), name, {"dtype_code": dtype, "slices": len(sl)})
                for name, (dtype, shape, sl) in self._tensors.items()
            ),
            key=lambda i: i.name,
        )

    def _read(self, info: TensorInfo) -> np.ndarray:
        name = info.key or info.name
        code, shape, slices = self._tensors[name]
        what = f"tensor {name!r} in V1 checkpoint {self.path}"
        dtype = np.dtype(object) if code == DT_STRING else numpy_dtype(code, f"tensor {name!r}")
        bounds = [slice_bounds(ext, shape, what) for _t, ext in slices]
        covered = sum(int(np.prod(sub, dtype=np.int64)) for _i, sub in bounds)
        total = int(np.prod(shape, dtype=np.int64))
        if covered != total:
            raise FormatError(f"{what}: saved slices hold {covered} of its {total} elements")
        # Every saved value takes at least one byte, so the files bound the tensor's size.
        if total > sum(t.size for t in self._tables):
            raise FormatError(f"{what}: shape {shape} is larger than the checkpoint files could hold")
        check_elements(shape, dtype.itemsize, what)
        _check_tiling(shape, [index for index, _sub in bounds], what)  # no slice twice, no gap
        # Each slice record must exist before the full tensor is allocated.
        records = []
        for (table_index, ext), (index, sub) in zip(slices, bounds):
            table = self._tables[table_index]
            raw = table.get(encode_slice_key(name, ext))
            if raw is None:
                raise FormatError(f"{what}: slice {ext} has no record in {table.path}")
            records.append((index, sub, raw))
        out = np.empty(shape, dtype=dtype)
        for index, sub, raw in records:
            data = Message(raw, what).message(2).message(3)
            out[index] = _tensor_values(data, code, sub, what)
        return out

    def close(self) -> None:
        for t in self._tables:
            t.close()
        self._tables = []


def _fixed(msg: Message, field: int, fmt: str) -> np.ndarray:
    """A repeated float/double field, packed (one blob) or not (one value per tag)."""
    parts = []
    for v in msg.raw_list(field):
        if isinstance(v, int):
            parts.append(np.array([v], dtype=np.uint32 if fmt == "f4" else np.uint64).view("<" + fmt))
        else:
            if len(v) % int(fmt[1]):
                raise FormatError(f"{msg.what}: packed field {field} has a partial value")
            parts.append(np.frombuffer(v, dtype="<" + fmt))
    return np.concatenate(parts) if parts else np.zeros(0, dtype="<" + fmt)


def _tensor_values(msg: Message, code: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The values of a TensorProto as an array of `shape` (DataType `code`)."""
    n = int(np.prod(shape, dtype=np.int64))
    if code == DT_STRING:
        values = [bytes(v) for v in msg.raw_list(_STRING_VAL) if not isinstance(v, int)]
        flat = np.empty(len(values), dtype=object)
        flat[:] = values
    else:
        dtype = numpy_dtype(code, what)
        if msg.has(_TENSOR_CONTENT):
            content = msg.bytes(_TENSOR_CONTENT)
            if len(content) != n * dtype.itemsize:
                raise FormatError(f"{what}: tensor_content has {len(content)} bytes for {n} values")
            return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
        field, layout = _FIELDS[code]
        if layout == "varint":
            # Two's complement in 64 bits; casts below wrap like TF's int32/uint16 fields do.
            ints = np.array([x & 0xFFFFFFFFFFFFFFFF for x in msg.packed_varints(field)], dtype=np.uint64)
            if code in (14, 19):  # half_val holds the 16-bit patterns
                flat = ints.astype(np.uint16).view(dtype)
            elif code == 10:
                flat = ints != 0
            else:
                flat = ints.astype(dtype)
        else:
            flat = _fixed(msg, field, layout)
            if dtype.kind == "c":
                if len(flat) % 2:
                    raise FormatError(f"{what}: complex values come in pairs")
                flat = flat.view("<c8" if layout == "f4" else "<c16")
            flat = flat.astype(dtype)
    if len(flat) > n:
        raise FormatError(f"{what}: {len(flat)} values stored for a slice of {n}")
    if len(flat) < n:
        # TensorProto may store fewer values: the last one repeats (none stored: zeros).
        fill = flat[-1] if len(flat) else (b"" if code == DT_STRING else 0)
        full = np.empty(n, dtype=flat.dtype)
        full[: len(flat)] = flat
        full[len(flat) :] = fill
        flat = full
    return flat.reshape(shape)
