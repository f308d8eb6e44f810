"""Property-based fuzzing of the checkpoint readers on mutated real checkpoints.

Whatever the bytes, opening, listing and reading either works or raises a Tf2rtError
subclass; nothing hangs (hypothesis deadline) and no allocation grows far beyond the
files' size (tracemalloc peak).
"""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckpt_fixtures as F
from tf2rt.errors import Tf2rtError
from tf2rt.weights.tf_checkpoint import open_checkpoint

PEAK_LIMIT = 32 << 20  # bytes; the checkpoints are a few KiB


@pytest.fixture(scope="module")
def originals(tf, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_src")
    tf1_prefix = F.tf1_misc(tf, out)
    ckpt = tf.train.Checkpoint(
        dense=tf.Module(),
        step=tf.Variable(3, dtype=tf.int64),
    )
    ckpt.dense.kernel = tf.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1)
    ckpt.dense.bias = tf.Variable(np.array([0.25, -0.5, 1.5, 2.0], np.float32))
    tf2_prefix = Path(ckpt.write(str(out / "tf2")))
    v1_dir = out / "v1"
    v1_dir.mkdir()
    v1_path = F.tf1_misc(tf, v1_dir, "V1")
    return {
        "tf1": (tf1_prefix, [Path(f"{tf1_prefix}.index"), Path(f"{tf1_prefix}.data-00000-of-00001")]),
        "tf2": (tf2_prefix, [Path(f"{tf2_prefix}.index"), Path(f"{tf2_prefix}.data-00000-of-00001")]),
        "v1": (v1_path, [v1_path]),
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_work")


mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("set"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
    # Land in the last 64 bytes, where the footer and index block live.
    st.tuples(st.just("tail"), st.integers(1, 64), st.integers(1, 255)),
)


def _mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, where, value in ops:
        if not buf:
            break
        if op == "tail":
            pos = max(len(buf) - where, 0)
            buf[pos] ^= value
            continue
        pos = int(where * len(buf))
        if op == "flip":
            buf[pos] ^= value
        elif op == "set":
            buf[pos] = value
        elif op == "truncate":
            del buf[pos:]
        else:
            buf.insert(pos, value)
    return bytes(buf)


def _exercise(path: Path, verify: bool) -> None:
    with open_checkpoint(path, verify=verify) as src:
        for info in src.infos():
            try:
                src.read(info.key or info.name)
            except Tf2rtError:
                pass  # one bad tensor must not stop the others from being tried


@settings(
    max_examples=200,
    deadline=3000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(
    which=st.sampled_from(["tf1", "tf2", "v1"]),
    file_choice=st.integers(0, 1),
    ops=st.lists(mutation, min_size=1, max_size=4),
    verify=st.booleans(),
)
def test_mutated_checkpoints_raise_only_tf2rt_errors(originals, workdir, which, file_choice, ops, verify):
    prefix, files = originals[which]
    target = files[file_choice % len(files)]
    dst = workdir / which
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    for f in files:
        shutil.copy(f, dst / f.name)
    victim = dst / target.name
    victim.write_bytes(_mutate(target.read_bytes(), ops))

    tracemalloc.start()
    try:
        _exercise(dst / prefix.name, verify)
    except Tf2rtError:
        pass
    finally:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"reading a mutated {which} checkpoint allocated {peak} bytes"


def test_unmutated_originals_read_cleanly(originals):
    for prefix, _files in originals.values():
        _exercise(prefix, verify=True)
