"""The allow-listed joblib unpickler builds at most a small multiple of the pickle's size:
memoised buffers reused by many array rebuilds cannot multiply what it allocates."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_python
from tf2rt.errors import FormatError
from tf2rt.apps.faces.safe_pickle import safe_load, safe_loads

MIB = 1 << 20
LOAD = "from tf2rt.apps.faces.safe_pickle import safe_load\nobj = safe_load(ARGS[0])\nprint(type(obj).__name__, len(obj))"


def _u(text: str) -> bytes:
    raw = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def _frombuffer_pickle(count: int, size: int = MIB, distinct: bool = False) -> bytes:
    """A list of `count` arrays rebuilt by numpy's _frombuffer; with distinct=False every one
    reuses the same memoised `size`-byte buffer (the amplification attack)."""
    out = bytearray(pickle.PROTO + b"\x04")
    out += pickle.GLOBAL + b"numpy.core.numeric\n_frombuffer\n" + pickle.BINPUT + b"\x00"
    out += pickle.GLOBAL + b"numpy\ndtype\n" + _u("u1") + pickle.TUPLE1 + pickle.REDUCE + pickle.BINPUT + b"\x01"
    shape = pickle.BININT + struct.pack("<i", size) + pickle.TUPLE1
    out += pickle.EMPTY_LIST + pickle.MARK
    for i in range(count):
        out += pickle.BINGET + b"\x00" + pickle.MARK
        if distinct or i == 0:
            out += pickle.BINBYTES + struct.pack("<I", size) + bytes([i % 251]) * size
            if not distinct:
                out += pickle.BINPUT + b"\x02"
        else:
            out += pickle.BINGET + b"\x02"
        out += pickle.BINGET + b"\x01" + shape + _u("C") + pickle.TUPLE + pickle.REDUCE
    out += pickle.APPENDS + pickle.STOP
    return bytes(out)


def test_memoised_buffer_reuse_is_bounded(tmp_path):
    data = _frombuffer_pickle(2440)  # 2.5 GB of arrays from a ~1 MB pickle
    assert len(data) < 1.2 * MIB
    p = tmp_path / "amplify.pkl"
    p.write_bytes(data)
    res = run_python(LOAD, [p])
    assert_refused(res, "more than the file can justify")
    with pytest.raises(FormatError, match="more than the file can justify"):
        safe_loads(_frombuffer_pickle(50, size=64 << 10))


def test_distinct_arrays_still_load(tmp_path):
    """The baseline: as many distinct arrays as their bytes in the file load fine."""
    p = tmp_path / "ok.pkl"
    p.write_bytes(_frombuffer_pickle(4, distinct=True))
    res = run_python(LOAD, [p])
    assert res.code == 0, res.stderr
    assert res.stdout.split() == ["list", "4"]
    arrays = safe_load(p)
    assert [int(a[0]) for a in arrays] == [0, 1, 2, 3] and all(a.nbytes == MIB for a in arrays)


def test_latin1_reuse_is_bounded():
    """Protocol-2 style bytes (_codecs.encode of a memoised str) count against the budget too."""
    out = bytearray(pickle.PROTO + b"\x02")
    out += pickle.GLOBAL + b"_codecs\nencode\n" + pickle.BINPUT + b"\x00"
    text = "x" * (64 << 10)
    out += pickle.BINUNICODE + struct.pack("<I", len(text)) + text.encode() + pickle.BINPUT + b"\x01"
    out += pickle.EMPTY_LIST + pickle.MARK
    for _ in range(100):
        out += pickle.BINGET + b"\x00" + pickle.BINGET + b"\x01" + _u("latin1") + pickle.TUPLE2 + pickle.REDUCE
    out += pickle.APPENDS + pickle.STOP
    with pytest.raises(FormatError, match="more than the file can justify"):
        safe_loads(bytes(out))


def test_fifo_refused(tmp_path):
    import os

    fifo = tmp_path / "weights.lz4"
    os.mkfifo(fifo)
    res = run_python(LOAD, [fifo], timeout=30)
    assert_refused(res, "not a regular file")
