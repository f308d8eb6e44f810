"""`.keras` archives: declared sizes and ratios are checked from the zip directory before a
byte is inflated, the weights member is read in memory (never extracted to a temp
directory), and inflation stops as soon as a member yields more than it declared."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli

h5py = pytest.importorskip("h5py")

CONFIG = '{"class_name": "Sequential", "config": {"layers": []}}'


def _weights_h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers").create_group("dense").create_group("vars").create_dataset(
            "0", data=np.arange(12, dtype=np.float32).reshape(3, 4))
    return buf.getvalue()


def _bomb_keras(path: Path, inflated: int) -> Path:
    """A .keras whose model.weights.h5 is an HDF5 signature followed by `inflated` zero bytes, deflated."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (16 << 20)
    body = bytearray(comp.compress(b"\x89HDF\r\n\x1a\n"))
    crc = zlib.crc32(b"\x89HDF\r\n\x1a\n")
    left = inflated
    while left:
        piece = chunk[: min(left, len(chunk))]
        body += comp.compress(piece)
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    body += comp.flush()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", CONFIG)
        zi = zipfile.ZipInfo("model.weights.h5")
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, b"")  # placeholder, replaced below with the prepared stream
    return _replace_member(path, "model.weights.h5", bytes(body), 8 + inflated, crc)


def _replace_member(path: Path, name: str, body: bytes, size: int, crc: int) -> Path:
    """Rewrite an archive with one member's compressed bytes and declared sizes forced."""
    src = zipfile.ZipFile(path)
    out = io.BytesIO()
    central = []
    for zi in src.infolist():
        raw = _raw_member(path, zi)
        c_size, u_size, c_crc = zi.compress_size, zi.file_size, zi.CRC
        if zi.filename == name:
            raw, c_size, u_size, c_crc = body, len(body), size, crc
        offset = out.tell()
        fname = zi.filename.encode()
        method = zi.compress_type
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, c_crc, c_size & 0xFFFFFFFF,
                              u_size & 0xFFFFFFFF, len(fname), 0) + fname + raw)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, c_crc,
                                   c_size & 0xFFFFFFFF, u_size & 0xFFFFFFFF, len(fname), 0, 0, 0, 0, 0, offset)
                       + fname)
    src.close()
    cd_start = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_start
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), cd_size, cd_start, 0))
    path.write_bytes(out.getvalue())
    return path


def _raw_member(path: Path, zi: zipfile.ZipInfo) -> bytes:
    with open(path, "rb") as f:
        f.seek(zi.header_offset)
        head = f.read(30)
        n, m = struct.unpack("<HH", head[26:30])
        f.seek(zi.header_offset + 30 + n + m)
        return f.read(zi.compress_size)


def test_bomb_refused_from_the_directory(tmp_path):
    """~200 KB that inflates to 200 MB: refused before inflating, nothing written anywhere."""
    src = _bomb_keras(tmp_path / "bomb.keras", 200 << 20)
    assert src.stat().st_size < 400_000
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    res = run_cli(["inspect", src], env={"TMPDIR": str(tmp)})
    assert_refused(res, "zip bomb")
    assert list(tmp.iterdir()) == []
    assert res.peak < 400 << 20, res.peak


def test_forged_sizes_3mb_claiming_3gb(tmp_path):
    """The directory claims 3.2 GB from 3 MB: over the ratio a deflate stream can reach."""
    src = _bomb_keras(tmp_path / "forged.keras", 1 << 20)
    zi = zipfile.ZipFile(src).getinfo("model.weights.h5")
    body = _raw_member(src, zi) + b"\0" * (3 << 20)
    _replace_member(src, "model.weights.h5", body, 3_200_000_000, zi.CRC)
    res = run_cli(["dump", src, "-o", tmp_path / "out.npz"])
    assert_refused(res)
    assert not (tmp_path / "out.npz").exists()


def test_member_yielding_more_than_declared_stops(tmp_path):
    """The directory declares 4 KB but the stream inflates to 64 MB: reading stops at the
    declared size (and reports the damage) instead of inflating the rest."""
    src = _bomb_keras(tmp_path / "liar.keras", 64 << 20)
    zi = zipfile.ZipFile(src).getinfo("model.weights.h5")
    _replace_member(src, "model.weights.h5", _raw_member(src, zi), 4096, zi.CRC)
    res = run_cli(["inspect", src])
    assert_refused(res)
    assert res.peak < 400 << 20, res.peak


def test_not_hdf5_member_stops_after_first_chunk(tmp_path):
    with zipfile.ZipFile(tmp_path / "junk.keras", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", CONFIG)
        zf.writestr("model.weights.h5", np.random.default_rng(0).bytes(8 << 20))
    res = run_cli(["inspect", tmp_path / "junk.keras"])
    assert_refused(res, "not an hdf5 file")


def test_baseline_keras_reads_without_temp_files(tmp_path):
    src = tmp_path / "ok.keras"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", CONFIG)
        zf.writestr("model.weights.h5", _weights_h5())
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    res = run_cli(["dump", src, "-o", tmp_path / "ok.npz"], env={"TMPDIR": str(tmp)})
    assert res.code == 0, res.stderr
    assert list(tmp.iterdir()) == []
    with np.load(tmp_path / "ok.npz") as z:
        np.testing.assert_array_equal(z["dense/vars/0"], np.arange(12, dtype=np.float32).reshape(3, 4))
