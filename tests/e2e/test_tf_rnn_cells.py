"""TensorFlow RNN cells -> convert weights -> Network -> engine -> both backends == TensorFlow.

For every cell kind TF1 (or Keras 3) computes the reference with distinct random weights;
tf2rt.layouts converts the weights, the Network is built with add_rnn_v2 + set_cell (or the
per-gate setters), the engine is built in fp32 and fp16 and run on onnxruntime and the
numpy reference backend; outputs y and the final states h (and c) must match TensorFlow
(max abs error <= 1e-5 fp32, <= 2e-2 fp16), also with variable sequence lengths.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from tf_models import B, E, S, TFResult, build_network, run_keras, run_tf1
from tf2rt.engine import build_engine
from tf2rt.layouts import from_keras_layer, tf_stack

H = 4
TOL = {"fp32": 1e-5, "fp16": 2e-2}
BACKENDS = ["onnxruntime", "reference"]
LENGTHS = np.array([6, 3, 1], np.int32)


def _cells(tf: Any) -> Any:
    return tf.compat.v1.nn.rnn_cell


# name -> (make_cell, tf_stack options, layers, bidirectional, set weights per gate)
TF_CASES: dict[str, tuple] = {
    "basic_lstm_fb1": (lambda tf: _cells(tf).BasicLSTMCell(H, forget_bias=1.0), {"forget_bias": 1.0}, 1, False, True),
    "basic_lstm_fb0": (lambda tf: _cells(tf).BasicLSTMCell(H, forget_bias=0.0), {"forget_bias": 0.0}, 1, False, False),
    "lstm_cell_peepholes": (lambda tf: _cells(tf).LSTMCell(H, use_peepholes=True), {"forget_bias": 1.0}, 1, False, False),
    "gru_cell": (lambda tf: _cells(tf).GRUCell(H), {}, 1, False, False),
    "basic_rnn_tanh": (lambda tf: _cells(tf).BasicRNNCell(H), {}, 1, False, True),
    "basic_rnn_relu": (lambda tf: _cells(tf).BasicRNNCell(H, activation=tf.nn.relu), {"activation": "relu"}, 1, False, False),
    "multi_lstm_2": (lambda tf: _cells(tf).BasicLSTMCell(H), {"forget_bias": 1.0}, 2, False, True),
    "multi_gru_3": (lambda tf: _cells(tf).GRUCell(H), {}, 3, False, False),
    "bidirectional_lstm": (lambda tf: _cells(tf).BasicLSTMCell(H), {"forget_bias": 1.0}, 1, True, False),
    "bidirectional_gru_2": (lambda tf: _cells(tf).GRUCell(H), {}, 2, True, False),
    "bidirectional_rnn_relu_2": (lambda tf: _cells(tf).BasicRNNCell(H, activation=tf.nn.relu), {"activation": "relu"}, 2, True, True),
}
SEQ_LEN_CASES = ["basic_lstm_fb1", "lstm_cell_peepholes", "gru_cell", "basic_rnn_relu", "multi_lstm_2", "bidirectional_lstm"]


@functools.lru_cache(maxsize=None)
def _x(seed: int = 123) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((B, S, E)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def tf_case(name: str, with_lengths: bool) -> tuple[TFResult, list, bool]:
    make_cell, options, layers, bi, per_gate = TF_CASES[name]
    seed = sorted(TF_CASES).index(name) + 1
    res = run_tf1(make_cell, _x(), layers=layers, bidirectional=bi,
                  seq_lengths=LENGTHS if with_lengths else None, seed=seed)
    if bi:
        stack = [tf_stack(res.values, f"bi_{l}", **options)[0] for l in range(layers)]
    else:
        stack = tf_stack(res.values, "rnn", **options)
    assert len(stack) == layers
    return res, stack, per_gate


KERAS_CASES: dict[str, Any] = {
    "keras_lstm": lambda k: k.layers.LSTM(H, return_sequences=True, return_state=True),
    "keras_gru_reset_after": lambda k: k.layers.GRU(H, reset_after=True, return_sequences=True, return_state=True),
    "keras_gru_reset_before": lambda k: k.layers.GRU(H, reset_after=False, return_sequences=True, return_state=True),
    "keras_simple_rnn": lambda k: k.layers.SimpleRNN(H, return_sequences=True, return_state=True),
    "keras_lstm_hard_sigmoid": lambda k: k.layers.LSTM(H, recurrent_activation="hard_sigmoid",
                                                       return_sequences=True, return_state=True),
}


@functools.lru_cache(maxsize=None)
def keras_case(name: str) -> tuple[TFResult, list]:
    import oracles

    keras = oracles.keras()
    layer, res = run_keras(KERAS_CASES[name], _x() * 2, seed=sorted(KERAS_CASES).index(name) + 50)
    cfg = keras.saving.serialize_keras_object(layer)["config"]
    cells = from_keras_layer(type(layer).__name__, cfg, layer.get_weights(), name=name)
    return res, [cells]


@functools.lru_cache(maxsize=None)
def engine_for(kind: str, name: str, precision: str, with_lengths: bool):
    if kind == "tf":
        _, stack, per_gate = tf_case(name, with_lengths)
    else:
        _, stack = keras_case(name)
        per_gate = False
    net = build_network(stack, batch=B, seq=S, input_size=E, seq_lengths=with_lengths, per_gate=per_gate, name=name)
    return build_engine(net, precision=precision)


def _check(out: dict, res: TFResult, tol: float) -> None:
    errs = {"y": np.max(np.abs(out["y"] - res.y)), "h_n": np.max(np.abs(out["h_n"] - res.h))}
    if res.c is not None:
        errs["c_n"] = np.max(np.abs(out["c_n"] - res.c))
    bad = {k: float(v) for k, v in errs.items() if not v <= tol}
    assert not bad, f"max abs errors {bad} exceed {tol}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(TF_CASES))
def test_tf1_cell_matches_tensorflow(tf, name, precision, backend):
    res, _, _ = tf_case(name, False)
    engine = engine_for("tf", name, precision, False)
    _check(engine.run({"x": _x()}, backend=backend), res, TOL[precision])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SEQ_LEN_CASES)
def test_tf1_cell_with_sequence_lengths(tf, name, backend):
    res, _, _ = tf_case(name, True)
    engine = engine_for("tf", name, "fp32", True)
    out = engine.run({"x": _x(), "seq_lengths": LENGTHS}, backend=backend)
    _check(out, res, TOL["fp32"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_keras_layer_matches_keras(name, precision, backend):
    res, _ = keras_case(name)
    engine = engine_for("keras", name, precision, False)
    _check(engine.run({"x": _x() * 2}, backend=backend), res, TOL[precision])


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_bidirectional_hard_sigmoid(backend):
    """Both directions use hard_sigmoid: the ONNX node lists alpha/beta for each of them."""
    import oracles

    keras = oracles.keras()
    x = _x() * 2
    layer = keras.layers.Bidirectional(keras.layers.LSTM(H, recurrent_activation="hard_sigmoid", return_sequences=True))
    layer(x)
    rng = np.random.default_rng(77)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.get_weights()])
    y = np.asarray(layer(x))
    cfg = keras.saving.serialize_keras_object(layer)["config"]
    cells = from_keras_layer("Bidirectional", cfg, layer.get_weights(), name="bi")
    engine = build_engine(build_network([cells], batch=B, seq=S, input_size=E, name="bi"))
    out = engine.run({"x": x}, backend=backend)
    assert float(np.max(np.abs(out["y"] - y))) <= TOL["fp32"]


def test_streaming_step_by_step_matches_whole_sequence(tf):
    """One step at a time with h/c carried between engine calls == the whole sequence in TF."""
    res, stack, _ = tf_case("multi_lstm_2", False)
    net = build_network(stack, batch=B, seq=1, input_size=E, initial_state=True, name="step")
    engine = build_engine(net)
    for backend in BACKENDS:
        h = np.zeros((B, 2, H), np.float32)
        c = np.zeros((B, 2, H), np.float32)
        ys = []
        for t in range(S):
            out = engine.run({"x": _x()[:, t:t + 1], "h0": h, "c0": c}, backend=backend)
            h, c = out["h_n"], out["c_n"]
            ys.append(out["y"])
        assert float(np.max(np.abs(np.concatenate(ys, axis=1) - res.y))) <= TOL["fp32"]
        assert float(np.max(np.abs(h - res.h))) <= TOL["fp32"]


def _network_from_keras_file(path, x_shape):
    """Read a Keras file without Keras (tf2rt.weights.keras_file) and chain its recurrent
    layers as RNNv2 layers in one Network."""
    from tf2rt import Network
    from tf2rt.layouts import layer_index
    from tf2rt.weights.keras_file import open_keras

    kf = open_keras(path)
    major = int(kf.keras_version().split(".")[0])
    cfg = kf.model_config()
    net = Network("keras")
    t = net.add_input("x", "float32", x_shape)
    for layer_cfg in cfg["config"]["layers"]:
        cls, lc = layer_cfg["class_name"], layer_cfg["config"]
        if cls == "InputLayer":
            continue
        cells = from_keras_layer(cls, lc, kf.layer_weights(lc["name"]), keras_version=major, name=lc["name"])
        first = cells[0]
        op = first.activation if first.kind == "rnn" else first.kind
        rnn = net.add_rnn_v2(t, 1, first.hidden_size, x_shape[1], op,
                             direction="bidirection" if len(cells) == 2 else "unidirection", name=lc["name"])
        for d, cell in enumerate(cells):
            rnn.set_cell(layer_index(0, d, len(cells) == 2), cell)
        t = rnn.get_output(0)
    net.mark_output(t, "y")
    kf.close()
    return net


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_keras_file_read_without_keras_matches_keras(tmp_path, flavour):
    """A saved Keras model (.keras for Keras 3, .h5 for tf_keras) with a Bidirectional LSTM and a
    GRU (reset_after=False + hard_sigmoid under tf_keras: Keras 2's 0.2x+0.5) -> engine == Keras."""
    import oracles

    keras = oracles.keras() if flavour == "keras3" else oracles.tf_keras()
    gru_kw = {} if flavour == "keras3" else {"reset_after": False, "recurrent_activation": "hard_sigmoid"}
    model = keras.Sequential([
        keras.Input((S, E)),
        keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True), name="bi_lstm"),
        keras.layers.GRU(H, return_sequences=True, name="gru", **gru_kw),
    ])
    rng = np.random.default_rng(91)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in model.get_weights()])
    x = _x() * 2
    y = np.asarray(model(x))
    path = tmp_path / ("model.keras" if flavour == "keras3" else "model.h5")
    model.save(path)
    engine = build_engine(_network_from_keras_file(path, (B, S, E)))
    for backend in BACKENDS:
        err = float(np.max(np.abs(engine.run({"x": x}, backend=backend)["y"] - y)))
        assert err <= TOL["fp32"], (backend, err)
