"""RNN cell detection on checkpoints and Keras files made by TensorFlow / Keras; the expected
cells, sizes and storage formats are those the models were built with."""

from __future__ import annotations

import numpy as np
import pytest

import oracles
from fmt_fixtures import cached, keras_model
from tf2rt.weights.api import open_weights
from tf2rt.weights.base import TensorInfo
from tf2rt.weights.detect import CUDNN_COMPATIBLE, CUDNN_OPAQUE, PLATFORM_INDEPENDENT, detect_cells


def cells_of(path):
    with open_weights(path) as src:
        return {c.scope: c for c in detect_cells(src)}


def summary(cell):
    return (cell.kind, cell.cell, cell.storage, cell.input_size, cell.hidden_size, cell.layer, cell.direction)


def test_tf1_multi_rnn_cell(tf, tmp_path_factory):
    cells = cells_of(cached("tf1_multi_rnn", tmp_path_factory, tf))
    assert {s: summary(c) for s, c in cells.items()} == {
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell": ("lstm", "BasicLSTMCell", PLATFORM_INDEPENDENT, 3, 5, 0, None),
        "rnn/multi_rnn_cell/cell_1/gru_cell": ("gru", "GRUCell", PLATFORM_INDEPENDENT, 5, 4, 1, None),
    }
    gru = cells["rnn/multi_rnn_cell/cell_1/gru_cell"]
    assert gru.tensors["candidate/kernel"] == "rnn/multi_rnn_cell/cell_1/gru_cell/candidate/kernel"


def test_tf1_cell_zoo(tf, tmp_path_factory):
    cells = cells_of(cached("tf1_cell_zoo", tmp_path_factory, tf))
    got = {s: summary(c) for s, c in cells.items()}
    assert got == {
        "plain/rnn/basic_rnn_cell": ("rnn", "BasicRNNCell", PLATFORM_INDEPENDENT, 3, 6, None, None),
        "peep/rnn/lstm_cell": ("lstm", "LSTMCell/LSTMBlockCell", PLATFORM_INDEPENDENT, 3, 5, None, None),
        "bi/bidirectional_rnn/fw/basic_lstm_cell": ("lstm", "BasicLSTMCell", PLATFORM_INDEPENDENT, 3, 3, None, "forward"),
        "bi/bidirectional_rnn/bw/basic_lstm_cell": ("lstm", "BasicLSTMCell", PLATFORM_INDEPENDENT, 3, 3, None, "backward"),
        "cudnn/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell":
            ("lstm", "CudnnCompatibleLSTMCell", CUDNN_COMPATIBLE, 3, 7, 0, None),
        "cudnn/rnn/multi_rnn_cell/cell_1/cudnn_compatible_gru_cell":
            ("gru", "CudnnCompatibleGRUCell", CUDNN_COMPATIBLE, 7, 4, 1, None),
        "multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell":
            ("lstm", "CudnnCompatibleLSTMCell", CUDNN_COMPATIBLE, 2, 3, 0, None),
        "block/gru_cell": ("gru", "GRUBlockCell", PLATFORM_INDEPENDENT, 3, 2, None, None),
        "opaque/cudnn_lstm": ("lstm", cells["opaque/cudnn_lstm"].cell, CUDNN_OPAQUE, 0, 0, None, None),
    }
    peep = cells["peep/rnn/lstm_cell"]
    assert {"w_f_diag", "w_i_diag", "w_o_diag", "projection"} <= set(peep.tensors)
    early = cells["multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"]
    assert {"bias_cudnn_0", "bias_cudnn_1"} <= set(early.tensors)


@pytest.mark.parametrize("which", ["keras_lstm_tf2", "keras3_lstm_tf2"])
def test_keras_in_tf2_checkpoint(tf, tmp_path_factory, which):
    cells = cells_of(cached(which, tmp_path_factory, tf))
    # tf.keras keys name layers layer_with_weights-<i>; Keras 3 keys carry no index
    first, second = (0, 1) if which == "keras_lstm_tf2" else (None, None)
    assert {s: summary(c) for s, c in cells.items()} == {
        "lstm/lstm_cell": ("lstm", "Keras LSTM", PLATFORM_INDEPENDENT, 3, 5, first, None),
        "gru/gru_cell": ("gru", "Keras GRU", PLATFORM_INDEPENDENT, 5, 2, second, None),
    }
    assert any("reset_after=True" in n for n in cells["gru/gru_cell"].notes)


@pytest.mark.parametrize("which,name", [("keras3", "m.keras"), ("tf_keras", "m.h5")])
def test_keras_files(tf, tmp_path, which, name):
    keras = oracles.keras() if which == "keras3" else oracles.tf_keras()
    path, _ = keras_model(keras, tmp_path, name)
    cells = cells_of(path)
    got = sorted((c.kind, c.cell, c.input_size, c.hidden_size, c.direction) for c in cells.values())
    assert got == sorted([
        ("lstm", "Keras LSTM", 3, 3, "forward"), ("lstm", "Keras LSTM", 3, 3, "backward"),
        ("gru", "Keras GRU", 6, 4, None), ("rnn", "Keras SimpleRNN", 4, 2, None),
    ])
    gru = next(c for c in cells.values() if c.kind == "gru")
    assert any("reset_after=False" in n for n in gru.notes)
    assert all(s.startswith(("bi/", "gru_old/", "simple/")) for s in cells)


F32 = np.dtype("float32")


def info(name, shape):
    return TensorInfo(name, F32, shape)


def test_shapes_must_agree():
    # right names, inconsistent shapes: not reported as cells
    assert detect_cells([info("a/basic_lstm_cell/kernel", (7, 10)), info("a/basic_lstm_cell/bias", (10,))]) == []
    assert detect_cells([info("g/gru_cell/gates/kernel", (8, 6)), info("g/gru_cell/gates/bias", (6,)),
                         info("g/gru_cell/candidate/kernel", (8, 4)), info("g/gru_cell/candidate/bias", (3,))]) == []
    assert detect_cells([info("d/dense/kernel", (4, 8)), info("d/dense/bias", (8,))]) == []
    # the same shapes as variables are a cell, as optimizer slots they are not
    assert len(detect_cells([info("l/lstm_cell/kernel", (6, 8)), info("l/lstm_cell/bias", (8,))])) == 1
    slot = TensorInfo("l/lstm_cell/kernel", F32, (6, 8), kind="optimizer_slot")
    assert detect_cells([slot, TensorInfo("l/lstm_cell/bias", F32, (8,), kind="optimizer_slot")]) == []
    # CuDNNLSTM (Keras 2): separate input and recurrent biases, 8 * units
    cells = detect_cells([info("c/kernel", (3, 8)), info("c/recurrent_kernel", (2, 8)), info("c/bias", (16,))])
    assert [(c.cell, c.storage) for c in cells] == [("Keras CuDNNLSTM", CUDNN_COMPATIBLE)]
