"""Keras recurrent models (.keras, .h5, TF2 checkpoint, SavedModel) converted and compared with Keras.

Every weight gets distinct random values. The char-RNN check: our engine generates 500
characters greedily, one per call with carried state; Keras then runs the whole sequence
once (teacher forcing) and must give the same logits (1e-5) and pick the same character
at every step - so Keras' own greedy generation would write exactly the same text.
"""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt import convert
from tf2rt.apps.charrnn import CharRNN, Vocab
from tf2rt.errors import UnsupportedError

V = 13
LENGTH = 500


def _fill(model, seed: int, scale: float = 2.0) -> None:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        fan = w.shape[0] if len(w.shape) > 1 else 1
        s = scale / np.sqrt(fan) if len(w.shape) > 1 else 0.5
        w.assign(rng.uniform(-s, s, tuple(w.shape)).astype(np.float32))


def _charrnn(keras, seed: int = 0):
    L = keras.layers
    m = keras.Sequential([
        keras.Input((None,), dtype="int32", name="chars"),
        L.Embedding(V, 8, name="embed"),
        L.LSTM(16, return_sequences=True, name="lstm_a"),
        L.Dropout(0.3),
        L.GRU(12, return_sequences=True, name="gru_b"),
        L.SimpleRNN(10, return_sequences=True, name="rnn_c"),
        L.Dense(V, name="logits"),
    ])
    _fill(m, seed)
    return m


@pytest.fixture(scope="module")
def keras3():
    import oracles

    return oracles.keras()


@pytest.fixture(scope="module")
def tfkeras():
    import oracles

    return oracles.tf_keras()


@pytest.fixture(scope="module")
def saved(tf, keras3, tfkeras, tmp_path_factory):
    """format -> (path, Keras model that is the oracle)."""
    root = tmp_path_factory.mktemp("keras_models")
    # seed 2 at scale 2.0 gives a non-trivial greedy text (5 distinct characters) while staying
    # out of the chaotic regime where float rounding alone changes the greedy path.
    k3 = _charrnn(keras3, seed=2)
    k3.save(root / "charrnn.keras")
    k2 = _charrnn(tfkeras, seed=2)
    k2.save(root / "charrnn.h5")
    k2b = _charrnn(tfkeras, seed=2)
    tf.train.Checkpoint(model=k2b).write(str(root / "tf2ckpt" / "ckpt"))
    k3b = _charrnn(keras3, seed=2)
    tf.train.Checkpoint(model=k3b).write(str(root / "tf2ckpt3" / "ckpt"))
    return {"keras": (root / "charrnn.keras", k3), "h5": (root / "charrnn.h5", k2),
            "tf2-checkpoint": (root / "tf2ckpt" / "ckpt", k2b),
            "tf2-checkpoint-keras3": (root / "tf2ckpt3" / "ckpt", k3b)}


@pytest.mark.parametrize("fmt", ["keras", "h5", "tf2-checkpoint", "tf2-checkpoint-keras3"])
def test_charrnn_streaming_matches_keras(fmt, saved):
    path, model = saved[fmt]
    vocab = Vocab([chr(ord("A") + i) for i in range(V)])
    gen = CharRNN(str(path), vocab)
    assert len(gen.state_pairs) == 4  # h of the LSTM, GRU and SimpleRNN, c of the LSTM
    start = "ABC"
    text = gen.generate(start, LENGTH, greedy=True)
    assert len(set(text)) >= 3, "degenerate oracle text"
    ours = gen.logits(start + text[:-1])
    ids = vocab.encode(start + text[:-1])[None, :]
    ref = np.asarray(model(ids))[0]
    err = float(np.abs(ours - ref).max())
    assert err <= 1e-5, f"max |logits - Keras| = {err:.3g}"
    # Keras picks the same next character at every generation step.
    assert vocab.decode(ref[len(start) - 1:].argmax(-1)) == text


def test_bidirectional_tagger_matches_keras(keras3, tmp_path):
    L = keras3.layers
    m = keras3.Sequential([
        keras3.Input((None,), dtype="int32", name="tokens"),
        L.Embedding(20, 6),
        L.Bidirectional(L.LSTM(7, return_sequences=True)),
        L.Bidirectional(L.GRU(5, return_sequences=True)),
        L.Dense(6, name="hidden"),
        L.Activation("relu"),
        L.TimeDistributed(L.Dense(4, activation="softmax"), name="tags"),
    ])
    _fill(m, 7)
    m.save(tmp_path / "tagger.keras")
    engine = convert(tmp_path / "tagger.keras")
    assert engine.input_names == ["tokens"] and engine.output_names == ["tags"] and engine.states == []
    x = np.random.default_rng(1).integers(0, 20, (3, 11)).astype(np.int32)
    err = float(np.abs(engine.run({"tokens": x})["tags"] - np.asarray(m(x))).max())
    assert err <= 1e-5, err


def test_functional_return_state_and_last_output(tfkeras, tmp_path):
    K = tfkeras
    inp = K.Input((None, 6), name="features")
    seq, h, c = K.layers.LSTM(9, return_sequences=True, return_state=True, name="enc")(inp)
    last = K.layers.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid", name="summary")(seq)
    out = K.layers.Dense(3, activation="tanh", name="score")(last)
    m = K.Model(inp, [out, h, c])
    _fill(m, 11)
    m.save(tmp_path / "f.h5")
    engine = convert(tmp_path / "f.h5", states=False)
    x = np.random.default_rng(2).normal(size=(2, 8, 6)).astype(np.float32)
    got = engine.run({"features": x})
    ref = [np.asarray(t) for t in m(x)]
    assert engine.output_names == ["score", "enc/state_1", "enc/state_2"]
    for name, r in zip(engine.output_names, ref):
        assert np.abs(got[name] - r).max() <= 1e-5, name


def test_saved_model_directory(tf, tfkeras, tmp_path):
    m = _charrnn(tfkeras, seed=5)
    m.save(tmp_path / "sm", save_format="tf")
    engine = convert(tmp_path / "sm", states=False)
    x = np.random.default_rng(3).integers(0, V, (2, 9)).astype(np.int32)
    err = float(np.abs(engine.run({engine.input_names[0]: x})["logits"] - np.asarray(m(x))).max())
    assert err <= 1e-5 and engine.metadata["model"]["assumptions"] == []


def test_unsupported_parts_are_all_listed(keras3, tmp_path):
    L = keras3.layers
    m = keras3.Sequential([
        keras3.Input((None,), dtype="int32"),
        L.Embedding(10, 4, mask_zero=True, name="masked"),
        L.LSTM(5, recurrent_activation="relu", return_sequences=True, name="relu_gates"),
        L.SimpleRNN(4, activation="sigmoid", return_sequences=True, name="sigmoid_rnn"),
        L.Cropping1D(1, name="crop"),
        L.Dense(3, activation="mish", name="head"),
    ])
    m.save(tmp_path / "bad.keras")
    with pytest.raises(UnsupportedError) as e:
        convert(tmp_path / "bad.keras")
    msg = str(e.value)
    assert "'relu_gates'" in msg and "'sigmoid_rnn'" in msg and "Cropping1D x1" in msg
    assert "'head'" in msg and "mish" in msg and "'masked'" not in msg


def test_sequence_classifier_last_outputs(keras3, tmp_path):
    """return_sequences=False: the last output of an LSTM and of a Bidirectional GRU."""
    L = keras3.layers
    inp = keras3.Input((None, 4), name="signal")
    x = L.LSTM(6, return_sequences=True, use_bias=False, name="lstm")(inp)
    x = L.Bidirectional(L.GRU(5, reset_after=False, name="gru"), name="bi")(x)
    out = L.Dense(3, activation="sigmoid", name="score")(x)
    m = keras3.Model(inp, out)
    _fill(m, 13)
    m.save(tmp_path / "clf.keras")
    engine = convert(tmp_path / "clf.keras", states=False)
    x = np.random.default_rng(4).normal(size=(3, 10, 4)).astype(np.float32)
    err = float(np.abs(engine.run({"signal": x})["score"] - np.asarray(m(x))).max())
    assert engine.outputs[0].shape == (None, 3) and err <= 1e-5, err
