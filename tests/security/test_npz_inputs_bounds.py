"""`.npz` inputs and weights: each member's declared shape is checked against the cap and the
deflate ratio before anything is allocated; random inputs are sized before allocating."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli
from test_zip_bomb import _raw_member, _replace_member
from tf2rt.engine import build_engine
from tf2rt.network import Network


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    net = Network("tiny")
    x = net.add_input("x", "float32", (None, 4))
    net.mark_output(net.add_activation(x, "relu", name="y").output)
    p = tmp_path_factory.mktemp("eng") / "tiny.onnx"
    build_engine(net).save(p)
    return p


@pytest.fixture(scope="module")
def huge_engine(tmp_path_factory) -> Path:
    """An engine whose input declares 100000 x 100000 x 8 float32 (298 GiB)."""
    net = Network("huge")
    x = net.add_input("x", "float32", (100000, 100000, 8))
    net.mark_output(net.add_activation(x, "relu", name="y").output)
    p = tmp_path_factory.mktemp("eng") / "huge.onnx"
    build_engine(net).save(p)
    return p


def _npy_header(shape, dtype="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _deflated_npz(path: Path, name: str, shape, data_bytes: int) -> Path:
    """An npz with one deflated member: the header of `shape` and `data_bytes` zeros."""
    head = _npy_header(shape)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body, crc, left, chunk = bytearray(comp.compress(head)), zlib.crc32(head), data_bytes, b"\0" * (16 << 20)
    while left:
        piece = chunk[: min(left, len(chunk))]
        body += comp.compress(piece)
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    body += comp.flush()
    with zipfile.ZipFile(path, "w") as zf:
        zi = zipfile.ZipInfo(name + ".npy")
        zi.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(zi, b"")
    return _replace_member(path, name + ".npy", bytes(body), len(head) + data_bytes, crc)


def test_baseline_run(engine, tmp_path):
    inp = tmp_path / "in.npz"
    np.savez_compressed(inp, x=np.array([[-1, 2, -3, 4]], np.float32))
    res = run_cli(["run", engine, "--inputs", inp, "--outputs", tmp_path / "out.npz"])
    assert res.code == 0, res.stderr
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["y"], [[0, 2, 0, 4]])


def test_4gb_declared_by_1mb(engine, tmp_path):
    """A deflated member claiming 4 GB from ~1 KB is refused from the zip directory."""
    inp = _deflated_npz(tmp_path / "bomb.npz", "x", (1000 << 20,), 1 << 20)
    zi = zipfile.ZipFile(inp).getinfo("x.npy")
    _replace_member(inp, "x.npy", _raw_member(inp, zi), zi.file_size - (1 << 20) + (4000 << 20), zi.CRC)
    res = run_cli(["run", engine, "--inputs", inp])
    assert_refused(res, "ratio")


def test_declared_shape_checked_against_cap(engine, tmp_path):
    """An honest 96 MB member (ratio within deflate's reach) is over a 64 MiB cap: refused before reading."""
    inp = _deflated_npz(tmp_path / "big.npz", "x", (24 << 20, 1), 96 << 20)
    assert inp.stat().st_size < 1 << 20
    for args in (["run", engine, "--inputs", inp], ["bench", engine, "--inputs", inp, "--iterations", "1"],
                 ["dump", inp, "-o", tmp_path / "o.npz"]):
        res = run_cli(args, env={"TF2RT_MAX_BYTES": "64M"})
        assert_refused(res, "TF2RT_MAX_BYTES")
        assert res.peak < 400 << 20, res.peak


def test_zero_element_overflowing_shape(engine, tmp_path):
    inp = tmp_path / "z.npz"
    with zipfile.ZipFile(inp, "w") as zf:
        zf.writestr("x.npy", _npy_header((1 << 32, 1 << 32, 0)))
    res = run_cli(["run", engine, "--inputs", inp])
    assert_refused(res, "overflows")
    res = run_cli(["dump", inp, "-o", tmp_path / "o.npz"])
    assert_refused(res, "overflows")


def test_unknown_compression_method(engine, tmp_path):
    inp = tmp_path / "m.npz"
    np.savez(inp, x=np.zeros((1, 4), np.float32))
    data = bytearray(inp.read_bytes())
    for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # method field of local and central headers
        pos = data.find(sig)
        data[pos + at : pos + at + 2] = (99).to_bytes(2, "little")
    inp.write_bytes(bytes(data))
    for args in (["run", engine, "--inputs", inp], ["dump", inp, "-o", tmp_path / "o.npz"], ["inspect", inp]):
        res = run_cli(args)
        assert_refused(res)


def test_random_inputs_sized_before_allocating(huge_engine):
    for cmd in (["bench", huge_engine, "--iterations", "1", "--warmup", "0"], ["compare", huge_engine]):
        res = run_cli(cmd)
        assert_refused(res, "TF2RT_MAX_BYTES")


def test_random_inputs_checks_declared_shapes():
    """random_inputs itself checks every declared shape before the first allocation (engines
    built in memory never pass through the file loader's checks)."""
    from types import SimpleNamespace

    from tf2rt.engine.inputs import random_inputs
    from tf2rt.limits import ResourceLimitError

    spec = SimpleNamespace(name="x", shape=(100000, 100000, 8), dtype="float32")
    small = SimpleNamespace(name="s", shape=(None, 3), dtype="int32")
    fake = SimpleNamespace(metadata={}, inputs=[small, spec])
    with pytest.raises(ResourceLimitError, match="random input 'x'.*TF2RT_MAX_BYTES"):
        random_inputs(fake)
    fake.inputs = [small]
    assert random_inputs(fake, batch=2)["s"].shape == (2, 3)
    with pytest.raises(ResourceLimitError, match="random input 's'"):
        random_inputs(fake, batch=1 << 40)


def test_huge_batch_refused(engine):
    res = run_cli(["bench", engine, "--batch", str(1 << 40), "--iterations", "1", "--warmup", "0"])
    assert_refused(res, "random input")


def _duplicated_entries(path: Path, copies: int) -> Path:
    """An npz whose central directory lists one deflated 4 MB member `copies` times."""
    import struct

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        arr = io.BytesIO()
        np.save(arr, np.zeros((1 << 20, 1), np.float32))
        zf.writestr("x.npy", arr.getvalue())
    data = bytearray(buf.getvalue())
    cd, eocd = data.find(b"PK\x01\x02"), data.find(b"PK\x05\x06")
    entry = bytes(data[cd:eocd])
    tail = bytearray(data[eocd:])
    struct.pack_into("<HHII", tail, 8, copies, copies, len(entry) * copies, cd)
    path.write_bytes(bytes(data[:cd]) + entry * copies + bytes(tail))
    return path


def test_member_listed_many_times(engine, tmp_path):
    """One compressed member listed 2,000 times would inflate 8 GB from ~100 KB."""
    inp = _duplicated_entries(tmp_path / "dup.npz", 2000)
    assert inp.stat().st_size < 200_000
    for args in (["run", engine, "--inputs", inp], ["inspect", inp]):
        res = run_cli(args)
        assert_refused(res, "listed twice")
