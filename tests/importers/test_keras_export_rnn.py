"""Recurrent Keras 3 models saved with `model.export()`: no Keras config travels with them,
so the TF graph front end reads their `While` loops and recognises the Keras cells (LSTM,
GRU with the reset gate after or before the recurrent product, SimpleRNN, Bidirectional's reversed
half, last-output-only loops) from their ops. Distinct random values in every weight; compared with Keras within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

import oracles
import tf2rt


def _model(kind: str):
    K = oracles.keras()
    L = K.layers
    inp = K.Input((7,), dtype="int32", name="ids")
    x = L.Embedding(20, 6, name="embed")(inp)
    if kind == "lstm":
        x = L.LSTM(5, return_sequences=True, name="lstm")(x)
    elif kind == "gru":
        x = L.GRU(5, return_sequences=True, name="gru")(x)
    elif kind == "gru_stack":
        x = L.GRU(4, return_sequences=True, name="gru_1")(x)
        x = L.LSTM(5, return_sequences=True, name="lstm_2")(x)
    elif kind == "gru_reset_before":
        x = L.GRU(5, return_sequences=True, reset_after=False, name="gru")(x)
    elif kind == "simple_rnn":
        x = L.SimpleRNN(5, return_sequences=True, name="simple")(x)
    elif kind == "lstm_last_output":  # return_sequences=False: the loop keeps only the last step
        x = L.LSTM(5, name="lstm")(x)
    elif kind == "bidirectional":
        x = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bi")(x)
    out = L.Dense(3, activation="softmax", name="probs")(x)
    model = K.Model(inp, out)
    rng = np.random.default_rng(len(kind))
    for w in model.weights:
        w.assign(rng.uniform(-0.8, 0.8, tuple(w.shape)).astype("float32"))
    return model


@pytest.mark.parametrize("kind", ["lstm", "gru", "gru_reset_before", "gru_stack", "simple_rnn", "lstm_last_output", "bidirectional"])
def test_exported_recurrent_model_matches_keras(tmp_path, kind):
    model = _model(kind)
    model.export(str(tmp_path / "exported"), verbose=False)
    ids = np.random.default_rng(7).integers(0, 20, (3, 7)).astype(np.int32)
    want = model.predict(ids, verbose=0)
    engine = tf2rt.convert(tmp_path / "exported", tmp_path / "e.onnx")
    got = engine.run({engine.input_names[0]: ids})[engine.output_names[-1]]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-5
    ops = {n.op_type for n in engine.onnx.graph.node}
    assert ops & {"LSTM", "GRU", "RNN"} and "Loop" not in ops


@pytest.mark.parametrize("last_only", [False, True], ids=["sequences", "last_output"])
def test_exported_bidirectional_stack_of_any_length(tmp_path, last_only):
    """Sequences of a length known only at run time: Bidirectional reverses them in time with a
    run-time range; a GRU with the reset gate before, two bidirectional LSTMs, one engine for
    lengths 7 and 3."""
    K = oracles.keras()
    L = K.layers
    inp = K.Input((None, 5), name="x")
    x = L.GRU(6, reset_after=False, return_sequences=True, name="gru")(inp)
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), name="bi_1")(x)
    x = L.Bidirectional(L.LSTM(3, return_sequences=not last_only), name="bi_2")(x)
    model = K.Model(inp, L.Dense(2, name="head")(x))
    rng = np.random.default_rng(11)
    for w in model.weights:
        w.assign(rng.uniform(-0.8, 0.8, tuple(w.shape)).astype("float32"))
    model.export(str(tmp_path / "exported"), verbose=False)
    engine = tf2rt.convert(tmp_path / "exported", tmp_path / "e.onnx")
    for t in (7, 3):
        x = rng.standard_normal((2, t, 5)).astype(np.float32)
        want = model.predict(x, verbose=0)
        for backend in ("onnxruntime", "reference"):
            got = engine.run({engine.input_names[0]: x}, backend=backend)[engine.output_names[-1]]
            assert float(np.abs(got - want).max()) <= 1e-5, (t, backend)
