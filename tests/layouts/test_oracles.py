"""Converted weights reproduce real implementations.

TensorFlow TF1 cells and Keras layers produce the reference; their weights (distinct random
values everywhere) are converted and run in torch.nn modules or in a single ONNX
LSTM/GRU/RNN node in onnxruntime (built here with onnx.helper, independent of tf2rt.engine).
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles
from oracle_runners import ort_run, tf1_run, torch_run
from tf2rt.layouts import (
    from_keras_gru,
    from_keras_layer,
    from_keras_lstm,
    from_keras_simple_rnn,
    from_tf_cudnn_gru,
    from_torch,
    tf_stack,
    to_tf_cudnn_gru,
)

B, S, E, H = 2, 5, 4, 3
TOL = 1e-5


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(42).standard_normal((B, S, E)).astype(np.float32)


def close(a, b, tol=TOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol, f"max abs error {err:.3g} > {tol}"


def rnn_cells(tf):
    return tf.compat.v1.nn.rnn_cell


# --- TF1 cells vs torch -----------------------------------------------------------------
@pytest.mark.parametrize("forget_bias", [1.0, 0.0])
def test_tf_basic_lstm_vs_torch(tf, x, forget_bias):
    def build(xp):
        cell = rnn_cells(tf).BasicLSTMCell(H, forget_bias=forget_bias)
        return tf.compat.v1.nn.dynamic_rnn(cell, xp, dtype=tf.float32)

    values, (y, state) = tf1_run(tf, build, x, seed=1)
    stack = tf_stack(values, "rnn", forget_bias=forget_bias)
    ty, th, tc = torch_run(stack, x, "LSTM")
    close(ty, y)
    close(th[0], state.h)
    close(tc[0], state.c)


def test_tf_multi_rnn_cell_three_layers_vs_torch(tf, x):
    def build(xp):
        cell = rnn_cells(tf).MultiRNNCell([rnn_cells(tf).BasicLSTMCell(H) for _ in range(3)])
        return tf.compat.v1.nn.dynamic_rnn(cell, xp, dtype=tf.float32)

    values, (y, states) = tf1_run(tf, build, x, seed=2)
    stack = tf_stack(values, "rnn")
    assert len(stack) == 3 and stack[1][0].input_size == H
    ty, th, tc = torch_run(stack, x, "LSTM")
    close(ty, y)
    for l in range(3):
        close(th[l], states[l].h)
        close(tc[l], states[l].c)


def test_tf_bidirectional_lstm_vs_torch(tf, x):
    def build(xp):
        c = rnn_cells(tf)
        return tf.compat.v1.nn.bidirectional_dynamic_rnn(c.BasicLSTMCell(H), c.BasicLSTMCell(H), xp, dtype=tf.float32)

    values, ((yf, yb), (sf, sb)) = tf1_run(tf, build, x, seed=3)
    stack = tf_stack(values, "bidirectional_rnn")
    assert len(stack) == 1 and len(stack[0]) == 2
    ty, th, tc = torch_run(stack, x, "LSTM")
    close(ty, np.concatenate([yf, yb], axis=-1))
    close(th[0], sf.h)
    close(th[1], sb.h)
    close(tc[1], sb.c)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_tf_basic_rnn_vs_torch(tf, x, activation):
    def build(xp):
        cell = rnn_cells(tf).BasicRNNCell(H, activation=getattr(tf.nn, activation))
        return tf.compat.v1.nn.dynamic_rnn(cell, xp, dtype=tf.float32)

    values, (y, state) = tf1_run(tf, build, x, seed=4)
    stack = tf_stack(values, "rnn", activation=activation)
    ty, th = torch_run(stack, x, "RNN")
    close(ty, y)
    close(th[0], state)


def test_tf_lstm_projection_vs_torch(tf, x):
    P = 2

    def build(xp):
        cell = rnn_cells(tf).LSTMCell(H, num_proj=P, forget_bias=1.0)
        return tf.compat.v1.nn.dynamic_rnn(cell, xp, dtype=tf.float32)

    values, (y, state) = tf1_run(tf, build, x, seed=5)
    stack = tf_stack(values, "rnn")
    assert stack[0][0].projection.shape == (P, H)
    ty, th, tc = torch_run(stack, x, "LSTM")
    close(ty, y)
    close(th[0], state.h)
    close(tc[0], state.c)


# --- TF1 cells vs onnxruntime -----------------------------------------------------------
def test_tf_gru_cell_reset_before_vs_onnx_gru(tf, x):
    def build(xp):
        return tf.compat.v1.nn.dynamic_rnn(rnn_cells(tf).GRUCell(H), xp, dtype=tf.float32)

    values, (y, state) = tf1_run(tf, build, x, seed=6)
    (cell,) = tf_stack(values, "rnn")[0]
    assert cell.linear_before_reset is False
    oy, oh = ort_run((cell,), x)
    close(oy[:, :, 0], y)
    close(oh[0], state)
    # the same weights in a reset-after GRU compute something else: the test can tell them apart
    oy2, _ = ort_run((cell.replace(linear_before_reset=True),), x)
    assert np.max(np.abs(oy2[:, :, 0] - y)) > 1e-3


def test_tf_lstm_cell_peepholes_vs_onnx_lstm(tf, x):
    def build(xp):
        cell = rnn_cells(tf).LSTMCell(H, use_peepholes=True, forget_bias=1.0)
        return tf.compat.v1.nn.dynamic_rnn(cell, xp, dtype=tf.float32)

    values, (y, state) = tf1_run(tf, build, x, seed=7)
    (cell,) = tf_stack(values, "rnn")[0]
    assert cell.peepholes is not None
    oy, oh, oc = ort_run((cell,), x)
    close(oy[:, :, 0], y)
    close(oh[0], state.h)
    close(oc[0], state.c)


def test_tf_sequence_lengths_vs_onnx(tf, x):
    lengths = np.array([5, 2], np.int32)

    def build(xp):
        c = rnn_cells(tf)
        return tf.compat.v1.nn.bidirectional_dynamic_rnn(
            c.BasicLSTMCell(H, forget_bias=1.0), c.BasicLSTMCell(H, forget_bias=1.0), xp,
            sequence_length=tf.constant(lengths), dtype=tf.float32)

    values, ((yf, yb), (sf, sb)) = tf1_run(tf, build, x, seed=8)
    layer = tf_stack(values, "bidirectional_rnn")[0]
    oy, oh, oc = ort_run(layer, x, seq_lens=lengths)
    close(oy[:, :, 0], yf)
    close(oy[:, :, 1], yb)
    close(oh[0], sf.h)
    close(oh[1], sb.h)
    close(oc[1], sb.c)


# --- Keras 3 and tf_keras layers --------------------------------------------------------
def _keras_layer(keras, layer, x, seed):
    out = layer(x)  # build
    rng = np.random.default_rng(seed)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.get_weights()])
    out = layer(x)
    return [np.asarray(o) for o in out], [np.asarray(w) for w in layer.get_weights()]


def test_keras_lstm_vs_torch(x):
    keras = oracles.keras()
    (y, h, c), ws = _keras_layer(keras, keras.layers.LSTM(H, return_sequences=True, return_state=True), x, 10)
    cell = from_keras_lstm(*ws)
    ty, th, tc = torch_run([(cell,)], x, "LSTM")
    close(ty, y)
    close(th[0], h)
    close(tc[0], c)


def test_keras_gru_reset_after_vs_torch_and_cudnn_compatible_form(x):
    keras = oracles.keras()
    (y, h), ws = _keras_layer(keras, keras.layers.GRU(H, return_sequences=True, return_state=True), x, 11)
    cell = from_keras_gru(*ws, reset_after=True)
    ty, th = torch_run([(cell,)], x, "GRU")
    close(ty, y)
    close(th[0], h)
    # through TF's CudnnCompatibleGRUCell variables (r/u biases summed) and back
    d = to_tf_cudnn_gru(cell)
    cell2 = from_tf_cudnn_gru(d["gates/kernel"], d["gates/bias"], d["candidate/input_projection/kernel"],
                              d["candidate/input_projection/bias"], d["candidate/hidden_projection/kernel"],
                              d["candidate/hidden_projection/bias"])
    ty2, _ = torch_run([(cell2,)], x, "GRU")
    close(ty2, y)


def test_keras_gru_reset_before_vs_onnx(x):
    keras = oracles.keras()
    layer = keras.layers.GRU(H, reset_after=False, return_sequences=True, return_state=True)
    (y, h), ws = _keras_layer(keras, layer, x, 12)
    cell = from_keras_gru(*ws, reset_after=False)
    oy, oh = ort_run((cell,), x)
    close(oy[:, :, 0], y)
    close(oh[0], h)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_keras_simple_rnn_vs_torch(x, activation):
    keras = oracles.keras()
    layer = keras.layers.SimpleRNN(H, activation=activation, return_sequences=True, return_state=True)
    (y, h), ws = _keras_layer(keras, layer, x, 13)
    cell = from_keras_simple_rnn(*ws, activation=activation)
    ty, th = torch_run([(cell,)], x, "RNN")
    close(ty, y)
    close(th[0], h)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_keras_hard_sigmoid_lstm_vs_onnx(x, flavour):
    keras = oracles.keras() if flavour == "keras3" else oracles.tf_keras()
    layer = keras.layers.LSTM(H, recurrent_activation="hard_sigmoid", return_sequences=True, return_state=True)
    (y, h, c), ws = _keras_layer(keras, layer, x * 3, 14)  # larger inputs reach the clipped region
    cell = from_keras_lstm(*ws, recurrent_activation="hard_sigmoid", keras_version=3 if flavour == "keras3" else 2)
    oy, oh, oc = ort_run((cell,), x * 3)
    close(oy[:, :, 0], y)
    close(oc[0], c)
    # the other version's hard_sigmoid differs: the test distinguishes them
    other = from_keras_lstm(*ws, recurrent_activation="hard_sigmoid", keras_version=2 if flavour == "keras3" else 3)
    assert np.max(np.abs(ort_run((other,), x * 3)[0][:, :, 0] - y)) > 1e-3


def test_keras_bidirectional_layer_vs_torch(x):
    keras = oracles.keras()
    layer = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))
    layer(x)  # build
    rng = np.random.default_rng(15)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.get_weights()])
    y = np.asarray(layer(x))
    cfg = keras.saving.serialize_keras_object(layer)["config"]
    cells = from_keras_layer("Bidirectional", cfg, layer.get_weights(), name="bi")
    assert len(cells) == 2
    ty, _, _ = torch_run([cells], x, "LSTM")
    close(ty, y)


# --- torch <-> ONNX directions ----------------------------------------------------------
def test_torch_bidirectional_gru_vs_onnx():
    torch = oracles.torch()
    torch.manual_seed(0)
    m = torch.nn.GRU(E, H, num_layers=1, bidirectional=True, batch_first=True)
    x = np.random.default_rng(16).standard_normal((B, S, E)).astype(np.float32)
    with torch.no_grad():
        y, h = m(torch.from_numpy(x))
    (layer,) = from_torch(m.state_dict(), "GRU")
    oy, oh = ort_run(layer, x)
    close(oy.reshape(B, S, 2 * H), y.numpy())
    close(oh, h.numpy())


def test_onnx_bidirectional_hard_sigmoid_alphas_per_direction():
    """onnxruntime reads activation_alpha/beta only for activations that take them, in order:
    a bidirectional node with different hard_sigmoid slopes per direction must equal the two
    directions run separately (forward, and reverse on its own)."""
    from layout_cells import random_cell
    from oracle_runners import onnx_rnn_model
    from tf2rt.layouts import to_onnx

    ort = oracles.onnxruntime()
    fw = random_cell("lstm", E, H, seed=1, recurrent_activation="hard_sigmoid", recurrent_alpha=0.2, recurrent_beta=0.5)
    bw = random_cell("lstm", E, H, seed=2, recurrent_activation="hard_sigmoid", recurrent_alpha=1 / 6, recurrent_beta=0.5)
    xs = np.random.default_rng(3).standard_normal((S, B, E)).astype(np.float32) * 3

    def run(w):
        m = onnx_rnn_model(w, S, B, E)
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": xs})[0]

    both = run(to_onnx((fw, bw)))
    rev = to_onnx(bw)
    rev.attributes["direction"] = "reverse"
    close(both[:, 0], run(to_onnx(fw))[:, 0])
    close(both[:, 1], run(rev)[:, 0])
