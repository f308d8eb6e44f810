"""`tf2rt inspect` and `tf2rt dump` end to end on TensorFlow-made checkpoints and Keras files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fmt_fixtures import cached
from tf2rt.cli import main
from tf2rt.weights.api import dump_weights, load_weights


@pytest.fixture(scope="module")
def tf1_ckpt(tmp_path_factory, tf):
    return cached("tf1_multi_rnn", tmp_path_factory, tf)


@pytest.fixture(scope="module")
def tf2_ckpt(tmp_path_factory, tf):
    return cached("keras_lstm_tf2", tmp_path_factory, tf)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_tf1_multi_rnn_cell(capsys, tf, tf1_ckpt):
    code, out, _ = run(capsys, "inspect", tf1_ckpt)
    assert code == 0
    reader = tf.train.load_checkpoint(str(tf1_ckpt))
    shapes = reader.get_variable_to_shape_map()
    kernel = "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel"
    line = next(ln for ln in out.splitlines() if ln.startswith(kernel + " "))
    assert line.split()[1:4] == ["float32", f"({shapes[kernel][0]},", f"{shapes[kernel][1]})"]
    assert "rnn/multi_rnn_cell/cell_0/basic_lstm_cell: BasicLSTMCell (LSTM, platform-independent; input 3, hidden 5; layer 0)" in out
    assert "rnn/multi_rnn_cell/cell_1/gru_cell: GRUCell (GRU, platform-independent; input 5, hidden 4; layer 1)" in out
    slots = [k for k in shapes if "Adam" in k or "power" in k]
    assert f"{len(slots)} optimizer slots" in out and f"Optimizer slots: {len(slots)} (not listed; use --all)" in out
    assert "/Adam" not in out
    code, out_all, _ = run(capsys, "inspect", tf1_ckpt, "--all")
    assert all(s in out_all for s in slots) and "global_step" in out_all


def test_inspect_json_keras_tf2_checkpoint(capsys, tf2_ckpt):
    code, out, _ = run(capsys, "inspect", tf2_ckpt, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["format"] == "tf-checkpoint" and report["storage"] == "platform-independent"
    cells = {c["scope"]: c for c in report["rnn_cells"]}
    assert cells["lstm/lstm_cell"]["cell"] == "Keras LSTM"
    assert (cells["lstm/lstm_cell"]["input_size"], cells["lstm/lstm_cell"]["hidden_size"]) == (3, 5)
    assert cells["gru/gru_cell"]["kind"] == "gru"
    names = {t["name"]: t for t in report["tensors"]}
    assert names["lstm/lstm_cell/recurrent_kernel"]["shape"] == [5, 20]
    assert names["lstm/lstm_cell/recurrent_kernel"]["key"].endswith("/.ATTRIBUTES/VARIABLE_VALUE")
    assert report["counts"]["optimizer_slots"] > 0


@pytest.mark.parametrize("fmt,suffix", [("wts", ".wts"), ("wts2", ".wts2"), ("npz", ".npz"), ("safetensors", ".safetensors")])
def test_dump_matches_api(capsys, tf1_ckpt, tmp_path, fmt, suffix):
    out = tmp_path / ("cli" + suffix)
    code, _, err = run(capsys, "dump", tf1_ckpt, "-o", out)
    assert code == 0 and "wrote" in err
    assert out.read_bytes() == dump_weights(tf1_ckpt, tmp_path / ("api" + suffix)).read_bytes()
    # --format overrides the suffix
    other = tmp_path / "other.bin"
    assert run(capsys, "dump", tf1_ckpt, "-o", other, "--format", fmt)[0] == 0
    assert other.read_bytes() == out.read_bytes()


def test_dump_options(capsys, tf, tf1_ckpt, tmp_path):
    out = tmp_path / "sel.wts2"
    names = ["softmax/softmax_w", "softmax/softmax_b"]
    assert run(capsys, "dump", tf1_ckpt, "-o", out, "--names", *names, "--keep-names")[0] == 0
    back = load_weights(out)
    reader = tf.train.load_checkpoint(str(tf1_ckpt))
    assert sorted(back) == sorted(names)
    for n in names:
        assert np.array_equal(back[n].array, reader.get_tensor(n))
    out3 = tmp_path / "ex.safetensors"
    assert run(capsys, "dump", tf1_ckpt, "-o", out3, "--exclude", *names)[0] == 0
    assert not set(names) & set(load_weights(out3))
    out2 = tmp_path / "all.npz"
    assert run(capsys, "dump", tf1_ckpt, "-o", out2, "--include-optimizer")[0] == 0
    assert any(k.endswith("/Adam_1") for k in load_weights(out2))


def test_errors_exit_2_with_one_line(capsys, tf1_ckpt, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage" * 10)
    code, out, err = run(capsys, "inspect", junk)
    assert code == 2 and err.startswith("tf2rt inspect: error:") and "not a weight file" in err
    code, _, err = run(capsys, "dump", tf1_ckpt, "-o", tmp_path / "x.wts2", "--names", "softmax/softmax_ww")
    assert code == 2 and "did you mean 'softmax/softmax_w'" in err
    code, _, err = run(capsys, "dump", tf1_ckpt, "-o", tmp_path / "x.wts2", "--include-optimizer", "--names", "global_step")
    assert code == 2 and "--convert" in err
    assert run(capsys, "dump", tf1_ckpt, "-o", tmp_path / "x.wts2", "--names", "global_step", "--convert")[0] == 0
    assert "Traceback" not in err


def test_inspect_engine_and_plain_onnx(capsys, tmp_path):
    import onnx
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    net = Network()
    x = net.add_input("x", "float32", (1, 3))
    net.mark_output(net.add_activation(x, "relu").output, "y")
    path = tmp_path / "tiny.onnx"
    build_engine(net, metadata={"model": {"name": "tiny-relu"}}).save(path)
    code, out, _ = run(capsys, "inspect", path)
    assert code == 0 and "tf2rt engine" in out and "tiny-relu" in out
    code, out, _ = run(capsys, "inspect", path, "--json")
    assert json.loads(out)["model"]["name"] == "tiny-relu"
    model = onnx.load(str(path))
    del model.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    code, out, _ = run(capsys, "inspect", plain)
    assert code == 0 and "foreign ONNX model" in out


def test_inspect_stays_light(tmp_path):
    """Inspecting an npz imports neither TensorFlow, onnx nor h5py (import tf2rt stays cheap)."""
    path = dump_weights({"a/b": np.ones((2, 2), np.float32)}, tmp_path / "w.npz")
    code = (
        "import sys; from tf2rt.cli import main; rc = main(['inspect', sys.argv[1]]); "
        "heavy = [m for m in ('tensorflow', 'onnx', 'onnxruntime', 'h5py', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "a/b" in res.stdout
