"""Partitioned variables in V2 checkpoints: slices must tile the full shape exactly once and
their stored bytes must be distinct, so a small checkpoint cannot build a huge tensor by
repeating or overlapping slices; the full shape is checked against the cap before allocating."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "weights"))
import ckpt_fixtures as F  # noqa: E402

from sec_bounded import assert_refused, run_cli  # noqa: E402
from tf2rt.errors import FormatError  # noqa: E402
from tf2rt.weights import crc32c  # noqa: E402
from tf2rt.weights.tf_checkpoint import open_checkpoint  # noqa: E402
from tf2rt.weights.tf_dtypes import encode_slice_key  # noqa: E402

DT_FLOAT = 1


def _field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return F._varint(num << 3) + F._varint(payload)
    return F._varint(num << 3 | 2) + F._varint(len(payload)) + payload


def _shape(dims) -> bytes:
    return b"".join(_field(2, _field(1, d)) for d in dims)


def _slice(extents) -> bytes:
    # a length of -1 (the whole dimension) is written as an absent length field
    return b"".join(_field(1, _field(1, s) + (_field(2, n) if n >= 0 else b"")) for s, n in extents)


def _entry(dims, offset=0, size=0, crc=0, slices=()) -> bytes:
    out = _field(1, DT_FLOAT) + _field(2, _shape(dims))
    if not slices:
        out += _field(3, 0) + _field(4, offset) + _field(5, size)
        out += F._varint(6 << 3 | 5) + crc.to_bytes(4, "little")
    for ext in slices:
        out += _field(7, _slice(ext))
    return out


def write_partitioned(prefix: Path, full: tuple[int, ...], parts: list[tuple[list[tuple[int, int]], int, np.ndarray]]) -> Path:
    """A bundle with one partitioned float32 tensor "w"; each part is (extents, data offset, values).
    Values are written at their offsets (parts may share offsets: that is the attack)."""
    data = bytearray()
    for _ext, off, values in parts:
        raw = values.astype("<f4").tobytes()
        if len(data) < off + len(raw):
            data.extend(b"\0" * (off + len(raw) - len(data)))
        data[off : off + len(raw)] = raw
    items = {b"": _field(1, 1) + _field(3, _field(1, 1))}
    for ext, off, values in parts:
        raw = values.astype("<f4").tobytes()
        items[encode_slice_key("w", ext)] = _entry(values.shape, off, len(raw), crc32c.mask(crc32c.value(raw)))
    items[b"w"] = _entry(full, slices=[ext for ext, _o, _v in parts])
    F.write_table(Path(f"{prefix}.index"), sorted(items.items()))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))
    return prefix


MIB = 1 << 18  # float32 elements in 1 MiB


def test_baseline_partitioned_reads(tmp_path):
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), -np.arange(9, dtype=np.float32).reshape(3, 3)
    p = write_partitioned(tmp_path / "ok", (5, 3), [([(0, 2), (0, -1)], 0, a), ([(2, 3), (0, -1)], 24, b)])
    with open_checkpoint(p) as src:
        np.testing.assert_array_equal(src.read("w"), np.concatenate([a, b]))


def test_baseline_2d_blocks_read(tmp_path):
    full = np.arange(16, dtype=np.float32).reshape(4, 4)
    parts, off = [], 0
    for r in (0, 2):
        for c in (0, 2):
            parts.append(([(r, 2), (c, 2)], off, full[r : r + 2, c : c + 2]))
            off += 16
    p = write_partitioned(tmp_path / "blocks", (4, 4), parts)
    with open_checkpoint(p) as src:
        np.testing.assert_array_equal(src.read("w"), full)


def test_many_slices_over_the_same_bytes(tmp_path):
    """2,000 distinct slices whose entries all point at the same 1 MiB: a 2 GiB tensor from ~1 MB."""
    values = np.ones(MIB, np.float32)
    parts = [([(i * MIB, MIB)], 0, values) for i in range(2000)]
    prefix = write_partitioned(tmp_path / "rep", (2000 * MIB,), parts)
    size = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert size < 2 << 20
    out = tmp_path / "rep.npz"
    res = run_cli(["dump", prefix, "-o", out])
    assert_refused(res, "same stored bytes")
    assert not out.exists()


def test_repeated_slice_overlaps(tmp_path):
    """One slice listed twice covers as many elements as the tensor has but leaves a gap."""
    half = np.ones(4, np.float32)
    p = write_partitioned(tmp_path / "dup", (8,), [([(0, 4)], 0, half), ([(0, 4)], 0, half)])
    with open_checkpoint(p) as src:
        with pytest.raises(FormatError, match="overlap"):
            src.read("w")
    res = run_cli(["dump", p, "-o", tmp_path / "dup.npz"])
    assert_refused(res, "overlap")


def test_overlap_2d(tmp_path):
    blk = np.ones((2, 2), np.float32)
    # four 2x2 blocks on a 4x4 tensor, one shifted so it overlaps another (and leaves a gap)
    parts = [([(0, 2), (0, 2)], 0, blk), ([(0, 2), (1, 2)], 16, blk), ([(2, 2), (0, 2)], 32, blk),
             ([(2, 2), (2, 2)], 48, blk)]
    p = write_partitioned(tmp_path / "ov", (4, 4), parts)
    with open_checkpoint(p) as src:
        with pytest.raises(FormatError, match="overlap"):
            src.read("w")


def test_gap(tmp_path):
    p = write_partitioned(tmp_path / "gap", (8,), [([(0, 4)], 0, np.ones(4, np.float32))])
    with open_checkpoint(p) as src:
        with pytest.raises(FormatError, match="slices hold 4 of its 8"):
            src.read("w")


def test_full_shape_checked_against_cap(tmp_path):
    """The cap (TF2RT_MAX_BYTES) is checked before the full tensor is allocated."""
    values = np.ones(MIB, np.float32)
    parts = [([(i * MIB, MIB)], i * 4 * MIB, values) for i in range(3)]
    prefix = write_partitioned(tmp_path / "cap", (3 * MIB,), parts)
    res = run_cli(["dump", prefix, "-o", tmp_path / "cap.npz"], env={"TF2RT_MAX_BYTES": "2M"})
    assert_refused(res, "TF2RT_MAX_BYTES")
    res = run_cli(["dump", prefix, "-o", tmp_path / "cap.npz"])
    assert res.code == 0, res.stderr
    with np.load(tmp_path / "cap.npz") as z:
        assert z["w"].shape == (3 * MIB,) and float(z["w"].sum()) == 3 * MIB


def test_zero_element_overflowing_shape(tmp_path):
    """[2^32, 2^32, 0] has no elements but no array can have that shape: a clear error."""
    items = {b"": _field(1, 1) + _field(3, _field(1, 1)),
             b"z": _entry((1 << 32, 1 << 32, 0), 0, 0, crc32c.mask(crc32c.value(b"")))}
    F.write_table(tmp_path / "z.index", sorted(items.items()))
    (tmp_path / "z.data-00000-of-00001").write_bytes(b"")
    res = run_cli(["dump", tmp_path / "z", "-o", tmp_path / "z.npz", "--names", "z"])
    assert_refused(res, "overflows")


def test_tensors_sharing_bytes(tmp_path):
    """Many plain tensors whose entries point at the same bytes: each read is refused, so
    loading everything cannot make N copies of one stored tensor."""
    raw = np.ones(1024, np.float32).tobytes()
    entry = _entry((1024,), 0, len(raw), crc32c.mask(crc32c.value(raw)))
    items = {b"": _field(1, 1) + _field(3, _field(1, 1))}
    items.update({f"t{i:04d}".encode(): entry for i in range(500)})
    F.write_table(tmp_path / "m.index", sorted(items.items()))
    (tmp_path / "m.data-00000-of-00001").write_bytes(raw)
    res = run_cli(["dump", tmp_path / "m", "-o", tmp_path / "o.npz"])
    assert_refused(res, "shared with another tensor")
    with open_checkpoint(tmp_path / "m") as src:  # listing still works; reading says what is wrong
        assert len(src.infos()) == 500
        with pytest.raises(FormatError, match="shared"):
            src.read("t0007")


def _raw_table(path: Path, block: bytes, last_key: bytes) -> None:
    """A table with one hand-made data block (no restarts but the first)."""
    def trailer(b: bytes) -> bytes:
        return b + b"\0" + crc32c.mask(crc32c.value(b + b"\0")).to_bytes(4, "little")

    out = bytearray(trailer(block))
    meta_handle = F._varint(len(out)) + F._varint(8)
    out += trailer(b"\0\0\0\0" + (1).to_bytes(4, "little"))  # an empty block: one restart at 0
    index = F._block([(last_key, F._varint(0) + F._varint(len(block)))], 1)
    index_handle = F._varint(len(out)) + F._varint(len(index))
    out += trailer(index)
    out += (meta_handle + index_handle).ljust(40, b"\0") + (0xDB4775248B80FB57).to_bytes(8, "little")
    path.write_bytes(bytes(out))


def test_index_keys_that_expand_quadratically(tmp_path):
    """Each key shares all of the previous key and adds one byte: ~1 MB of block would rebuild
    ~20 GB of keys. Refused while parsing, in bounded memory."""
    n = 200_000
    block = bytearray()
    for i in range(n):
        block += F._varint(i) + F._varint(1) + F._varint(0) + b"a"
    block += (0).to_bytes(4, "little") + (1).to_bytes(4, "little")
    _raw_table(tmp_path / "q.index", bytes(block), b"a" * n)
    (tmp_path / "q.data-00000-of-00001").write_bytes(b"")
    res = run_cli(["inspect", tmp_path / "q"], timeout=60)
    assert_refused(res, "prefix-shared keys")
