"""Bounded fuzzing of the .wts, npz, safetensors and Keras readers: mutated valid files must
either read or fail with a tf2rt error - never another exception, a hang or a crash.

HDF5 bytes are parsed by libhdf5 (through h5py), which can hang or crash on some corrupted
files (fuzzing found such cases; see docs/weights.md). So Keras files are fuzzed by
truncation (handled) and by mutating every byte of the .keras zip *except* the embedded
HDF5 data; everything tf2rt parses itself gets arbitrary mutations."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf2rt.errors import Tf2rtError
from tf2rt.weights.api import dump_weights, open_weights

EXAMPLES = int(os.environ.get("TF2RT_FUZZ_EXAMPLES", "150"))


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "rnn/cell_0/kernel": rng.standard_normal((4, 8)).astype(np.float32),
        "rnn/cell_0/bias": rng.standard_normal(8).astype(np.float16),
        "ids": np.arange(-3, 3, dtype=np.int32),
        "q": np.array([-5, 7], np.int8),
        "s": np.float32(1.5),
    }


def _keras_h5(path: Path) -> Path:
    """A legacy Keras weights layout written with h5py (model_config, weight_names)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.21.0"
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": []}}'
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([b"lstm"])
        layer = g.create_group("lstm")
        layer.attrs["weight_names"] = np.array([b"lstm/lstm_cell/kernel:0", b"lstm/lstm_cell/bias:0"])
        layer.create_dataset("lstm/lstm_cell/kernel:0", data=np.arange(24, dtype=np.float32).reshape(3, 8))
        layer.create_dataset("lstm/lstm_cell/bias:0", data=np.arange(8, dtype=np.float32))
    return path


def _keras_zip(path: Path, h5: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", '{"keras_version": "3.15.1"}')
        zf.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
        zf.write(h5, "model.weights.h5")
    return path


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("seeds")
    files = {
        "wts": dump_weights(_tensors(), out / "a.wts"),
        "wts2": dump_weights(_tensors(), out / "a.wts2"),
        "npz": dump_weights(_tensors(), out / "a.npz"),
        "safetensors": dump_weights(_tensors(), out / "a.safetensors"),
    }
    h5 = _keras_h5(out / "a.h5")
    files["keras"] = h5
    files["keras-zip"] = _keras_zip(out / "a.keras", h5)
    return {k: Path(v).read_bytes() for k, v in files.items()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("overwrite"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in ops:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= arg
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = arg
        else:
            buf[pos : pos + len(arg)] = arg
    return bytes(buf)


def h5_span(data: bytes) -> tuple[int, int]:
    """Byte range of the model.weights.h5 data inside a .keras zip."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zi = zf.getinfo("model.weights.h5")
    name_len = int.from_bytes(data[zi.header_offset + 26 : zi.header_offset + 28], "little")
    extra_len = int.from_bytes(data[zi.header_offset + 28 : zi.header_offset + 30], "little")
    start = zi.header_offset + 30 + name_len + extra_len
    return start, start + zi.compress_size


def outside(ops, size: int, span: tuple[int, int]):
    """The same mutations, moved off the HDF5 bytes and applied from the end backwards."""
    lo, hi = span
    room = lo - 16 + size - hi
    moved = []
    for kind, pos, arg in ops:
        pos %= room
        pos = pos if pos < lo - 16 else hi + (pos - (lo - 16))
        moved.append((kind, pos, arg))
    return sorted(moved, key=lambda op: -op[1])


def read_everything(path: Path, fmt: str | None) -> None:
    with open_weights(path, fmt) as src:
        for info in src.infos():
            src.read(info.name)


@pytest.mark.parametrize("kind", ["wts", "wts2", "npz", "safetensors", "keras", "keras-zip"])
def test_mutated_files_fail_cleanly(seeds, workdir, kind):
    seed = seeds[kind]
    fmt = "keras" if kind.startswith("keras") else kind
    path = workdir / f"m-{kind}"

    span = h5_span(seed) if kind == "keras-zip" else None
    assert span is None or seed[span[0] : span[0] + 8] == b"\x89HDF\r\n\x1a\n"

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=st.lists(mutation, min_size=1, max_size=4), detect=st.booleans())
    def check(ops, detect):
        if kind == "keras":
            ops = [("truncate", pos, 0) for _, pos, _ in ops]
        elif span is not None:
            ops = outside(ops, len(seed), span)
        path.write_bytes(mutate(seed, ops))
        try:
            read_everything(path, None if detect else fmt)
        except Tf2rtError:
            pass

    check()
