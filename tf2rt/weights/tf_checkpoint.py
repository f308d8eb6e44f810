"""TensorFlow checkpoints without TensorFlow: V2 tensor bundles (and V1 tables).

`open_checkpoint(path)` accepts a checkpoint prefix, its `.index` / `.data-*` / `.meta`
file, a directory with a `checkpoint` state file (the latest checkpoint is used), a
SavedModel directory or its `variables/` directory, or a V1 checkpoint file. Opening reads
only the `.index` table; each tensor is read when asked for, with bounded reads, and its
CRC32C is checked unless `verify=False`.
"""

from __future__ import annotations

import bisect
import mmap
import os
import re
from glob import escape as glob_escape
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ChecksumError, FormatError, Tf2rtError, UnsupportedError
from ..limits import MAX_LINK_HOPS, MAX_TEXT_BYTES, ResourceLimitError, check_elements, read_capped, regular_file
from ..proto import Message, read_varint
from . import crc32c
from .base import TensorInfo, WeightSource
from .object_graph import OBJECT_GRAPH_KEY, classify, is_object_based_key, names_from_object_graph
from .sstable import Table, is_table
from .tf_dtypes import (
    DT_STRING,
    encode_slice_key,
    info_dtype,
    int64,
    numpy_dtype,
    parse_shape,
    parse_slice,
    slice_bounds,
    uvarint,
)

FORMAT = "tf-checkpoint"
BUNDLE_VERSION = 1  # kTensorBundleVersion: the newest bundle layout this reader knows
_STATE_FILE = "checkpoint"
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
_V1_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
_CHUNK = 1 << 20  # bytes read (and checksummed) at a time
_MAX_TILE_CELLS = 1 << 22  # cells of the grid a partitioned variable's slice boundaries make


@dataclass(frozen=True)
class Entry:
    """A decoded BundleEntryProto."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc: int
    slices: tuple[tuple[tuple[int, int], ...], ...]

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _parse_entry(value: bytes, what: str) -> Entry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7.

    One flat loop rather than `proto.Message`: an index can hold many thousands of entries,
    and this is the hot loop of listing a checkpoint.
    """
    ints = [0, 0, 0, 0, 0, 0]  # by field number - 1, for fields 1..6
    shape: tuple[int, ...] = ()
    slices = []
    pos, end = 0, len(value)
    while pos < end:
        key = value[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = uvarint(value, pos, end, what)
        field, wtype = key >> 3, key & 7
        if wtype == 0:
            v = value[pos] if pos < end else 0x80
            if v < 0x80:
                pos += 1
            else:
                v, pos = uvarint(value, pos, end, what)
            if 1 <= field <= 6:
                ints[field - 1] = v
        elif wtype == 2:
            n, pos = uvarint(value, pos, end, what)
            if n > end - pos:
                raise FormatError(f"{what}: field {field} claims {n} bytes, only {end - pos} left")
            if field == 2:
                shape = parse_shape(value[pos : pos + n], what)
            elif field == 7:
                slices.append(tuple(parse_slice(Message(value[pos : pos + n], what), what)))
            pos += n
        elif wtype == 5 or wtype == 1:
            width = 4 if wtype == 5 else 8
            if pos + width > end:
                raise FormatError(f"{what}: truncated fixed-width field {field}")
            if field == 6:
                ints[5] = int.from_bytes(value[pos : pos + width], "little")
            pos += width
        else:
            raise FormatError(f"{what}: unsupported wire type {wtype} (field {field})")
        if field == 0:
            raise FormatError(f"{what}: invalid field number 0")
    dtype, _shape, shard, offset, size, crc = ints
    shard, offset, size = int64(shard), int64(offset), int64(size)
    if offset < 0 or size < 0:
        raise FormatError(f"{what}: negative offset or size")
    if shard < 0:
        raise FormatError(f"{what}: negative shard id")
    return Entry(dtype, shape, shard, offset, size, crc & 0xFFFFFFFF, tuple(slices))


class BundleSource(WeightSource):
    """A V2 checkpoint (`<prefix>.index` + `<prefix>.data-NNNNN-of-NNNNN`)."""

    format = FORMAT

    def __init__(self, prefix: str | Path, verify: bool = True):
        super().__init__(prefix)
        self.prefix = Path(prefix)
        self.verify = verify
        self.index_path = Path(f"{prefix}.index")
        self._maps: dict[int, np.ndarray] = {}
        self._infos: list[TensorInfo] | None = None
        self._entries: dict[str, Entry] = {}
        self._slice_entries: dict[bytes, Entry] = {}
        self._spans: list[tuple[int, int, int]] | None = None
        self._span_ends: list[int] = []
        with Table(self.index_path, verify, "checkpoint index") as table:
            self._load_index(table)
        missing = [self.data_path(s).name for s in sorted(self._used_shards()) if not self.data_path(s).is_file()]
        if missing:
            raise FormatError(
                f"checkpoint {self.prefix} is missing {len(missing)} data file(s): {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}; copy every {self.prefix.name}.data-* file next to its .index"
            )

    # -- index ---------------------------------------------------------------------------
    def _load_index(self, table: Table) -> None:
        what = str(self.index_path)
        items = table.items()
        first = next(items, None)
        if first is None or first[0] != b"":
            raise FormatError(f"{what}: no bundle header (not a V2 checkpoint index)")
        header = Message(first[1], f"{what} header")
        self.num_shards = header.int(1)
        self.big_endian = header.int(2) == 1
        if header.int(2) not in (0, 1):
            raise FormatError(f"{what}: unknown endianness {header.int(2)}")
        version = header.message(3)
        if version.int(2) > BUNDLE_VERSION or BUNDLE_VERSION in version.packed_varints(3):
            raise UnsupportedError(
                f"{what}: bundle version needs a reader of version >= {version.int(2)}; "
                "this checkpoint was written by a newer TensorFlow than tf2rt supports"
            )
        if not 1 <= self.num_shards <= 1_000_000:
            raise FormatError(f"{what}: header claims {self.num_shards} shards")
        for key, value in items:
            if key[:1] == b"\x00":
                self._slice_entries[key] = _parse_entry(value, f"{what} slice entry")
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"{what}: tensor name is not UTF-8 ({key[:40]!r})") from None
            entry = _parse_entry(value, f"{what} entry {name!r}")
            if entry.shard >= self.num_shards:
                raise FormatError(f"{what}: tensor {name!r} is in shard {entry.shard} of {self.num_shards}")
            self._entries[name] = entry
        for entry in self._slice_entries.values():
            if entry.shard >= self.num_shards:
                raise FormatError(f"{what}: a slice is in shard {entry.shard} of {self.num_shards}")

    def _used_shards(self) -> set[int]:
        shards = {e.shard for e in self._entries.values() if not e.slices}
        return shards | {e.shard for e in self._slice_entries.values()}

    def data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def infos(self) -> list[TensorInfo]:
        if self._infos is None:
            self._infos = self._build_infos()
        return self._infos

    def _build_infos(self) -> list[TensorInfo]:
        keys = set(self._entries)
        names: dict[str, tuple[str, str]] = {}
        if OBJECT_GRAPH_KEY in keys and any(is_object_based_key(k) for k in keys):
            graph = self._read_entry(OBJECT_GRAPH_KEY, self._entries[OBJECT_GRAPH_KEY])
            if graph.shape != () or not isinstance(graph.item(), bytes):
                raise FormatError(f"{self.index_path}: {OBJECT_GRAPH_KEY} is not a scalar string")
            names = names_from_object_graph(graph.item(), keys, str(self.index_path))
        taken = set(keys)
        infos = []
        dtypes: dict[int, np.dtype | str] = {}
        for key, entry in self._entries.items():
            dtype = dtypes.get(entry.dtype)
            if dtype is None:
                dtype = dtypes[entry.dtype] = info_dtype(entry.dtype)
            name, kind = names.get(key) or (key, classify(key))
            if name != key and name in taken:
                name = key  # never let a readable name shadow another stored key
            taken.add(name)
            extra = {"dtype_code": entry.dtype, "shard": entry.shard, "offset": entry.offset, "size": entry.size}
            if entry.slices:
                extra = {"dtype_code": entry.dtype, "slices": len(entry.slices)}
            infos.append(TensorInfo(name, dtype, entry.shape, kind, key, extra))
        infos.sort(key=lambda i: i.name)
        return infos

    # -- data ----------------------------------------------------------------------------
    def _read(self, info: TensorInfo) -> np.ndarray:
        key = info.key or info.name
        entry = self._entries[key]
        if entry.slices:
            return self._assemble(key, entry)
        return self._read_entry(key, entry)

    def _shard(self, shard: int) -> np.ndarray:
        """The bytes of data file `shard`, memory-mapped read-only (mapped on first use)."""
        data = self._maps.get(shard)
        if data is None:
            path = regular_file(self.data_path(shard), "checkpoint data file")
            try:
                with open(path, "rb") as f:
                    if os.fstat(f.fileno()).st_size == 0:
                        data = np.zeros(0, dtype=np.uint8)
                    else:
                        data = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), dtype=np.uint8)
            except (OSError, ValueError) as exc:
                raise FormatError(f"cannot read checkpoint data file {path}: {exc}") from None
            self._maps[shard] = data
        return data

    def _check_bounds(self, name: str, entry: Entry) -> None:
        size = len(self._shard(entry.shard))
        if entry.offset + entry.size > size:
            raise FormatError(
                f"tensor {name!r}: bytes [{entry.offset}, {entry.offset + entry.size}) lie outside "
                f"{self.data_path(entry.shard)} ({size} bytes); the data file is truncated or does not "
                "belong to this index"
            )

    def _check_distinct(self, name: str, entry: Entry) -> None:
        """TensorFlow writes every tensor's bytes once: entries sharing bytes would let a small
        checkpoint load as many copies of them as its index has entries. Checked per read
        against all entries sorted once (with a running maximum of their ends)."""
        if not entry.size:
            return
        if self._spans is None:
            spans = sorted((e.shard, e.offset, e.offset + e.size) for e in
                           list(self._entries.values()) + list(self._slice_entries.values()) if e.size and not e.slices)
            ends, shard, top = [], -1, 0
            for sh, _b, e in spans:
                top = e if sh != shard else max(top, e)
                shard = sh
                ends.append(top)
            self._spans, self._span_ends = spans, ends
        spans, ends = self._spans, self._span_ends
        key = (entry.shard, entry.offset, entry.offset + entry.size)
        i = bisect.bisect_left(spans, key)
        before = i > 0 and spans[i - 1][0] == entry.shard and ends[i - 1] > entry.offset
        after = i + 1 < len(spans) and spans[i + 1][0] == entry.shard and spans[i + 1][1] < key[2]
        if before or after:
            raise FormatError(f"tensor {name!r} in {self.index_path}: its stored bytes are shared with another "
                              "tensor; the index is hostile or corrupted")

    def _read_bytes(self, name: str, entry: Entry, crc: bool = False) -> tuple[np.ndarray, int]:
        """A copy of the entry's bytes (and their CRC32C if `crc`), in bounded chunks.

        Checksumming each chunk right after copying it, while it is still in cache,
        saves a second pass over memory for large tensors.
        """
        self._check_bounds(name, entry)
        src = self._shard(entry.shard)[entry.offset : entry.offset + entry.size]
        buf = np.empty(entry.size, dtype=np.uint8)
        value = 0
        per_chunk = crc and crc32c.FAST  # the numpy CRC is quicker over one large buffer
        for start in range(0, entry.size, _CHUNK):
            chunk = buf[start : start + _CHUNK]
            chunk[...] = src[start : start + _CHUNK]
            if per_chunk:
                value = crc32c.value(chunk, value)
        if crc and not per_chunk:
            value = crc32c.value(buf)
        return buf, value

    def _checksum_error(self, name: str, entry: Entry, detail: str = "") -> ChecksumError:
        return ChecksumError(
            f"tensor {name!r} in {self.data_path(entry.shard)}: CRC32C mismatch{detail}; the checkpoint "
            "is corrupted (pass verify=False to read it anyway)"
        )

    def _read_entry(self, name: str, entry: Entry) -> np.ndarray:
        if entry.dtype == DT_STRING:
            return self._read_strings(name, entry)
        dtype = numpy_dtype(entry.dtype, f"tensor {name!r}")
        if entry.size != entry.count * dtype.itemsize:
            raise FormatError(
                f"tensor {name!r}: {entry.size} bytes stored for shape {entry.shape} of {dtype.name} "
                f"({entry.count * dtype.itemsize} expected); the index is corrupted"
            )
        self._check_bounds(name, entry)  # a size the data file cannot hold is a truncation, said so
        check_elements(entry.shape, dtype.itemsize, f"tensor {name!r}")
        self._check_distinct(name, entry)
        buf, value = self._read_bytes(name, entry, crc=self.verify)
        if self.verify and value != crc32c.unmask(entry.crc):
            raise self._checksum_error(name, entry)
        if self.big_endian:
            unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
            if unit > 1:
                buf.view(f"u{unit}").byteswap(inplace=True)
        return buf.view(dtype).reshape(entry.shape)

    def _read_strings(self, name: str, entry: Entry) -> np.ndarray:
        n = check_elements(entry.shape, 1, f"tensor {name!r}")
        if n > entry.size:  # each element needs at least one length byte
            raise FormatError(f"tensor {name!r}: {n} strings cannot fit in {entry.size} bytes")
        self._check_distinct(name, entry)
        raw = self._read_bytes(name, entry)[0].tobytes()
        what = f"tensor {name!r} in {self.data_path(entry.shard)}"
        lengths, pos = [], 0
        for _ in range(n):
            length, pos = read_varint(raw, pos, what)
            lengths.append(length)
        if pos + 4 + sum(lengths) != len(raw):
            raise FormatError(f"{what}: string lengths do not add up to the stored {entry.size} bytes")
        stored = raw[pos : pos + 4]
        if self.verify:
            # TF checksums each length as a fixed-width integer in the bundle's byte order,
            # not as its varint bytes; the stored length checksum is in that order too.
            order = "big" if self.big_endian else "little"
            packed = b"".join(x.to_bytes(4 if x <= 0xFFFFFFFF else 8, order) for x in lengths)
            length_crc = crc32c.value(packed)
            if crc32c.unmask(int.from_bytes(stored, order)) != length_crc:
                raise self._checksum_error(name, entry, " in the string lengths")
            total = crc32c.value(raw[pos + 4 :], crc32c.value(stored, length_crc))
            if total != crc32c.unmask(entry.crc):
                raise self._checksum_error(name, entry)
        out = np.empty(n, dtype=object)
        pos += 4
        for i, length in enumerate(lengths):
            out[i] = raw[pos : pos + length]
            pos += length
        return out.reshape(entry.shape)

    def _assemble(self, name: str, entry: Entry) -> np.ndarray:
        """Reassemble a partitioned variable from its slice entries.

        Everything is checked before the full tensor is allocated: its size against the
        cap, the slices tiling it exactly once, and their bytes being distinct in the data
        files (so N slices over the same bytes cannot make an N-times larger tensor).
        """
        what = f"partitioned tensor {name!r} in {self.index_path}"
        is_string = entry.dtype == DT_STRING
        dtype = np.dtype(object) if is_string else numpy_dtype(entry.dtype, f"tensor {name!r}")
        check_elements(entry.shape, dtype.itemsize, what)
        parts = []
        covered = 0
        for extents in entry.slices:
            index, sub_shape = slice_bounds(list(extents), entry.shape, what)
            part = self._slice_entries.get(encode_slice_key(name, list(extents)))
            if part is None:
                raise FormatError(f"{what}: slice {list(extents)} has no entry (index corrupted)")
            if part.dtype != entry.dtype or part.shape != sub_shape:
                raise FormatError(f"{what}: slice {list(extents)} has dtype/shape {part.dtype}/{part.shape}")
            parts.append((index, part))
            covered += part.count
        if covered != entry.count:
            raise FormatError(f"{what}: slices hold {covered} of its {entry.count} elements "
                              "(slices overlap or leave gaps)")
        _check_tiling(entry.shape, [index for index, _ in parts], what)
        # Check every slice against its file before allocating the whole tensor.
        spans = []
        for _index, part in parts:
            self._check_bounds(name, part)
            if part.size < part.count if is_string else part.size != part.count * dtype.itemsize:
                raise FormatError(f"{what}: a slice stores {part.size} bytes for {part.count} elements")
            if part.size:
                spans.append((part.shard, part.offset, part.offset + part.size))
        spans.sort()
        for (s0, _b0, e0), (s1, b1, _e1) in zip(spans, spans[1:]):
            if s0 == s1 and b1 < e0:
                raise FormatError(f"{what}: two slices share the same stored bytes; the index is hostile or "
                                  "corrupted")
        out = np.empty(entry.shape, dtype=dtype)
        for index, part in parts:
            out[index] = self._read_entry(name, part)
        return out

    def close(self) -> None:
        # Dropping the views unmaps the files (the arrays handed out are copies).
        self._maps.clear()


def _check_tiling(shape: tuple[int, ...], boxes: list[tuple[slice, ...]], what: str) -> None:
    """Raise FormatError unless the boxes cover `shape` without overlap (with the element
    count already equal, no overlap means an exact tiling). Works on the grid the boxes'
    boundaries make, so its cost is bounded by the slices, never by the tensor's size."""
    if any(d == 0 for d in shape):
        return
    bounds = []
    for axis, dim in enumerate(shape):
        cuts = {0, dim}
        for box in boxes:
            cuts.update((box[axis].start, box[axis].stop))
        bounds.append(sorted(cuts))
    cells = 1
    for b in bounds:
        cells *= len(b) - 1
    if cells > _MAX_TILE_CELLS:
        raise ResourceLimitError(f"{what}: {len(boxes)} slices cut it into more than {_MAX_TILE_CELLS} pieces; "
                                 "the index is hostile or corrupted")
    where = [{v: i for i, v in enumerate(b)} for b in bounds]
    seen = np.zeros([len(b) - 1 for b in bounds], dtype=bool)
    for box in boxes:
        region = tuple(slice(w[s.start], w[s.stop]) for w, s in zip(where, box))
        if seen[region].any():
            raise FormatError(f"{what}: slices overlap; the index is hostile or corrupted")
        seen[region] = True


# -- path resolution -----------------------------------------------------------------------
def _unescape_text_proto(s: str) -> str:
    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)",
        lambda m: _ESCAPES.get(m.group(1))
        or (chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x" else chr(int(m.group(1), 8)) if m.group(1).isdigit() else m.group(1)),
        s,
    )


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def latest_checkpoint(directory: str | Path) -> Path:
    """The prefix named by `model_checkpoint_path` in `directory/checkpoint`."""
    directory = Path(directory)
    state = directory / _STATE_FILE
    # a state file is a few lines; a large one is not a state file (and is not read whole)
    text = read_capped(state, MAX_TEXT_BYTES, "checkpoint state file").decode("utf-8", errors="replace")
    m = re.search(r'^[ \t]*model_checkpoint_path[ \t]*:[ \t]*"((?:[^"\\\n]|\\.)*)"', text, re.M)
    if m is None:
        raise FormatError(f"{state} has no model_checkpoint_path line; pass the checkpoint prefix instead")
    prefix = Path(_unescape_text_proto(m.group(1)))
    if not prefix.is_absolute():
        prefix = directory / prefix
    if not _exists(prefix) and _exists(directory / prefix.name):
        prefix = directory / prefix.name  # the directory was moved after saving
    if not _exists(prefix):
        raise FormatError(f"{state} names {prefix}, which does not exist")
    return prefix


def _exists(prefix: Path) -> bool:
    if any(ch in prefix.name for ch in "?*["):
        return any(prefix.parent.glob(prefix.name))
    return Path(f"{prefix}.index").is_file() or prefix.is_file()


def resolve(path: str | Path, _hops: int = 0) -> tuple[str, Path | list[Path]]:
    """("v2", prefix) or ("v1", files) for anything `open_checkpoint` accepts."""
    p = Path(path).expanduser()
    if _hops > MAX_LINK_HOPS:
        raise FormatError(f"checkpoint state files name each other in a cycle (at {p}); "
                          "pass the checkpoint prefix instead")
    if p.is_dir() and not Path(f"{p}.index").is_file():  # a prefix may share a directory's name
        if (p / _STATE_FILE).is_file():
            return resolve(latest_checkpoint(p), _hops + 1)
        for prefix in (p / "variables" / "variables", p / "variables"):
            if Path(f"{prefix}.index").is_file():
                return "v2", prefix
        indexes = sorted(p.glob("*.index"))
        if len(indexes) == 1:
            return "v2", indexes[0].with_suffix("")
        raise FormatError(
            f"{p} is a directory without a checkpoint: no '{_STATE_FILE}' file, no SavedModel "
            f"variables/, and {len(indexes)} .index files; pass a checkpoint prefix such as {p}/model.ckpt"
        )
    name = p.name
    if name.endswith(".index") and p.is_file():
        return "v2", p.with_name(name[: -len(".index")])
    if _DATA_SUFFIX.search(name):
        prefix = p.with_name(_DATA_SUFFIX.sub("", name))
        if Path(f"{prefix}.index").is_file():
            return "v2", prefix
        raise FormatError(f"{p} is a checkpoint data file but {prefix}.index is missing; copy it alongside")
    if name.endswith(".meta") and not Path(f"{p}.index").is_file():
        p = p.with_name(name[: -len(".meta")])
    if Path(f"{p}.index").is_file():
        return "v2", p
    if any(ch in name for ch in "?*["):  # a V1 sharded save is named by a pattern
        return "v1", _v1_shards(sorted(p.parent.glob(name)), p)
    if p.is_file():
        if is_table(p):
            return "v1", [p]
        if name == _STATE_FILE:  # the state file itself: use the checkpoint it names
            return resolve(latest_checkpoint(p.parent), _hops + 1)
        raise FormatError(
            f"{p} is not a TensorFlow checkpoint (no table magic number); pass a checkpoint prefix, "
            "its .index file, or a directory holding a 'checkpoint' file"
        )
    shards = sorted(q for q in p.parent.glob(f"{glob_escape(name)}-*-of-*") if q.name[len(name) :].count("-") == 2)
    if shards:
        return "v1", _v1_shards(shards, p)
    near = sorted(q.name[: -len(".index")] for q in p.parent.glob(f"{glob_escape(name)}*.index"))
    hint = f" (found {', '.join(near[-3:])} there)" if near else ""
    raise FormatError(
        f"no checkpoint at {p}: neither {p}.index nor {p} exists{hint}; pass the checkpoint prefix "
        "(e.g. model.ckpt-1000), its .index file, or its directory"
    )


def _v1_shards(files: list[Path], pattern: Path) -> list[Path]:
    """Check a V1 sharded save is complete (`-NNNNN-of-TOTAL` for every NNNNN)."""
    files = [f for f in files if _V1_SHARD.search(f.name) and not _DATA_SUFFIX.search(f.name)]
    if not files:
        raise FormatError(f"no checkpoint shards match {pattern}")
    total = int(files[0].name[-5:])
    stem = files[0].name[: -len("-00000-of-00000")]
    expected = [files[0].with_name(f"{stem}-{i:05d}-of-{total:05d}") for i in range(total)]
    missing = [f.name for f in expected if not f.is_file()]
    if missing:
        raise FormatError(f"V1 checkpoint {pattern} is missing shard file(s): {', '.join(missing[:5])}")
    for f in expected:
        if not is_table(f):
            raise FormatError(f"{f} is not a TensorFlow table (truncated or corrupted)")
    return expected


def open_checkpoint(path: str | Path, verify: bool = True) -> WeightSource:
    """Open a TensorFlow checkpoint (V2 bundle or V1 table) for lazy reading."""
    kind, where = resolve(path)
    if kind == "v2":
        return BundleSource(where, verify)  # type: ignore[arg-type]
    from .tf_checkpoint_v1 import V1Source

    return V1Source(where, verify)  # type: ignore[arg-type]


def looks_like_checkpoint(path: str | Path) -> bool:
    """True when `path` resolves to a checkpoint whose table has the right magic number."""
    try:
        kind, where = resolve(path)
    except (Tf2rtError, OSError, ValueError):
        return False
    if kind == "v2":
        return is_table(f"{where}.index")
    return True
