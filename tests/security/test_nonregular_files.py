"""FIFOs, devices and directories given where a file is read are refused at once (a FIFO
would block forever, /dev/zero never end); text files such as the checkpoint state file are
read no further than a small cap, and state files that name themselves or each other end
in a clear error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from sec_bounded import assert_refused, run_cli, run_python

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ckpt_slices import write_partitioned  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("name", ["w.h5", "w.keras", "w.safetensors", "w.npz", "w.wts", "model.ckpt-1", "w.index"])
def test_fifo_weight_file(tmp_path, name):
    fifo = _fifo(tmp_path / name)
    for args in (["inspect", fifo], ["dump", fifo, "-o", tmp_path / "out.npz"]):
        res = run_cli(args, timeout=30)
        assert_refused(res)
        assert "fifo" in res.stderr.lower() or "not a regular file" in res.stderr.lower() or \
            "no checkpoint" in res.stderr.lower(), res.stderr


@pytest.mark.parametrize("fmt", ["keras", "npz", "safetensors", "wts", "tf-checkpoint"])
def test_fifo_with_explicit_format(tmp_path, fmt):
    fifo = _fifo(tmp_path / "w.bin")
    res = run_python("from tf2rt.weights.api import open_weights\nopen_weights(ARGS[0], format=ARGS[1])",
                     [fifo, fmt], timeout=30)
    assert_refused(res)


def test_device_refused(tmp_path):
    res = run_cli(["inspect", "/dev/zero"], timeout=30)
    assert_refused(res, "not a regular file")


def test_fifo_inputs(tmp_path):
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    net = Network("tiny")
    x = net.add_input("x", "float32", (None, 4))
    net.mark_output(net.add_activation(x, "relu", name="y").output)
    eng = tmp_path / "tiny.onnx"
    build_engine(net).save(eng)
    fifo = _fifo(tmp_path / "in.npz")
    res = run_cli(["run", eng, "--inputs", fifo], timeout=30)
    assert_refused(res, "not a regular file")


def _checkpoint(tmp_path: Path) -> Path:
    d = tmp_path / "ckpt"
    d.mkdir()
    return write_partitioned(d / "model.ckpt-1", (4,), [([(0, 4)], 0, np.arange(4, dtype=np.float32))])


def test_fifo_state_file(tmp_path):
    prefix = _checkpoint(tmp_path)
    state = _fifo(prefix.parent / "checkpoint")
    # never read: the directory's one checkpoint is used without blocking on the FIFO
    res = run_cli(["inspect", prefix.parent], timeout=30)
    assert res.code == 0, res.stderr
    assert "model.ckpt-1" in res.stdout
    res = run_cli(["inspect", state], timeout=30)
    assert_refused(res)


def test_fifo_data_file(tmp_path):
    prefix = _checkpoint(tmp_path)
    data = Path(f"{prefix}.data-00000-of-00001")
    data.unlink()
    _fifo(data)
    res = run_cli(["dump", prefix, "-o", tmp_path / "o.npz"], timeout=30)
    assert_refused(res, "data file")


def test_large_state_file_read_capped(tmp_path):
    """A 15 MB `checkpoint` state file is refused after reading at most the cap."""
    prefix = _checkpoint(tmp_path)
    state = prefix.parent / "checkpoint"
    with open(state, "w") as f:
        f.write('model_checkpoint_path: "model.ckpt-1"\n')
        line = 'all_model_checkpoint_paths: "' + "x" * 1000 + '"\n'
        for _ in range(15_000):
            f.write(line)
    assert state.stat().st_size > 15_000_000
    for args in (["inspect", prefix.parent], ["convert", prefix.parent, "-o", tmp_path / "m.onnx"]):
        res = run_cli(args)
        assert_refused(res, "state file", "larger than")
        assert res.peak < 400 << 20, res.peak
    from tf2rt.importers.tf1_rnn import checkpoint_prefix
    from tf2rt.limits import ResourceLimitError

    with pytest.raises(ResourceLimitError, match="state file"):
        checkpoint_prefix(prefix.parent)


def test_baseline_state_file(tmp_path):
    prefix = _checkpoint(tmp_path)
    (prefix.parent / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1"\n')
    res = run_cli(["dump", prefix.parent, "-o", tmp_path / "o.npz"])
    assert res.code == 0, res.stderr
    with np.load(tmp_path / "o.npz") as z:
        np.testing.assert_array_equal(z["w"], np.arange(4, dtype=np.float32))


def test_state_file_naming_itself(tmp_path):
    d = tmp_path / "self"
    d.mkdir()
    (d / "checkpoint").write_text('model_checkpoint_path: "checkpoint"\n')
    res = run_cli(["inspect", d], timeout=30)
    assert_refused(res, "cycle")


def test_state_files_naming_each_other(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "checkpoint").write_text(f'model_checkpoint_path: "{b / "checkpoint"}"\n')
    (b / "checkpoint").write_text(f'model_checkpoint_path: "{a / "checkpoint"}"\n')
    res = run_cli(["inspect", a], timeout=30)
    assert_refused(res, "cycle")
    assert "RecursionError" not in res.stderr


def test_fifo_text_files(tmp_path):
    """Vocabulary and FDDB annotation files: FIFOs refused."""
    fifo = _fifo(tmp_path / "vocab.json")
    res = run_python("from tf2rt.apps.charrnn.vocab import Vocab\nVocab.load(ARGS[0])", [fifo], timeout=30)
    assert_refused(res, "not a regular file")
    fifo2 = _fifo(tmp_path / "ellipses.txt")
    res = run_python("from tf2rt.apps.faces.datasets import _lines\nlist(_lines(__import__('pathlib').Path(ARGS[0])))",
                     [fifo2], timeout=30)
    assert_refused(res, "not a regular file")
