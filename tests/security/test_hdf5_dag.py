"""An HDF5 file whose groups hard-link to the same groups many times (a DAG with 2^24 paths)
or nest absurdly deep is walked once per object: listing it is quick or a clear error."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli

h5py = pytest.importorskip("h5py")


def _dag(path: Path, levels: int = 24, layout: str = "keras3") -> Path:
    with h5py.File(path, "w") as f:
        if layout == "keras3":
            top = f.create_group("layers").create_group("dense")
        else:
            f.attrs["keras_version"] = "2.21.0"
            top = f.create_group("model_weights")
        groups = [top] + [f.create_group(f"g{i}") for i in range(1, levels)]
        for a, b in zip(groups, groups[1:]):
            a["left"] = b  # two hard links to the same group
            a["right"] = b
        groups[-1].create_group("vars").create_dataset("0", data=np.arange(4, dtype=np.float32))
    return path


def test_dag_lists_once(tmp_path):
    src = _dag(tmp_path / "dag.weights.h5")
    assert src.stat().st_size < 200_000
    t0 = time.monotonic()
    res = run_cli(["inspect", src], timeout=60)
    assert res.code == 0, res.stderr
    assert time.monotonic() - t0 < 30
    # the one tensor is listed once, not once per path
    assert res.stdout.count("vars/0") == 1, res.stdout


def test_dag_reads_the_tensor(tmp_path):
    from tf2rt.weights.api import load_weights

    w = load_weights(_dag(tmp_path / "dag.weights.h5", levels=6))
    assert len(w) == 1
    np.testing.assert_array_equal(next(iter(w.values())).array, np.arange(4, dtype=np.float32))


def test_too_deep(tmp_path):
    path = tmp_path / "deep.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("layers").create_group("dense")
        for i in range(100):
            g = g.create_group(f"n{i}")
        g.create_group("vars").create_dataset("0", data=np.zeros(2, np.float32))
    res = run_cli(["inspect", path])
    assert_refused(res, "nested deeper")


def test_cycle_through_hard_links(tmp_path):
    """A group that contains itself (a cycle of hard links) ends the walk, it does not loop."""
    path = tmp_path / "cycle.weights.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("layers").create_group("dense")
        g["again"] = g
        g.create_group("vars").create_dataset("0", data=np.ones(3, np.float32))
    res = run_cli(["inspect", path], timeout=60)
    assert res.code == 0, res.stderr
    assert res.stdout.count("vars/0") == 1, res.stdout


def test_soft_link_loop(tmp_path):
    path = tmp_path / "loop.weights.h5"
    with h5py.File(path, "w") as f:
        v = f.create_group("layers").create_group("dense").create_group("vars")
        f["a"] = h5py.SoftLink("/b")
        f["b"] = h5py.SoftLink("/a")
        v["0"] = h5py.SoftLink("/a")
    res = run_cli(["inspect", path])
    assert_refused(res, "soft link")
