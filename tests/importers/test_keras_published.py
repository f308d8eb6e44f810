"""Keras models written the way public projects write theirs, converted with `tf2rt.convert`
(file -> engine -> onnxruntime) and compared with Keras itself (1e-5, fp32).

Patterns: a textgenrnn-style generator (Embedding, two LSTMs, Concatenate, an attention
layer converted through the custom-layer extension point), a chars2vec-style model saved
with `save_weights` and converted with its `to_json()` architecture (Python and CLI),
Bidirectional layers over a `mask_zero` embedding on right-padded sequences (every merge
mode), a Conv1D + pooling + LSTM classifier, a Keras 2.0/2.1-style Sequential `.h5`
(bare-list config, batch_input_shape), hand-made CuDNNLSTM/CuDNNGRU weights, GRU with
reset_after True and False, SimpleRNN with go_backwards, TimeDistributed(Dense).
Every weight gets distinct random values, so a wrong gate order cannot pass.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import oracles
import tf2rt
from tf2rt.engine import load_engine
from tf2rt.errors import FormatError, UnsupportedError
from tf2rt.importers.keras import register_layer

TOL = 1e-5


def fill(model, seed: int, scale: float = 1.5) -> None:
    """Distinct random values in every weight (every gate, every bias)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        s = scale / np.sqrt(shape[0]) if len(shape) > 1 else 0.5
        w.assign(rng.uniform(-s, s, shape).astype(np.float32))


def engine_outputs(path, feeds: dict, out_path, **options) -> dict:
    engine = tf2rt.convert(path, out_path, states=False, **options)
    return engine.run(feeds)


def max_err(got: np.ndarray, ref) -> float:
    ref = np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    return float(np.abs(got.astype(np.float64) - ref).max())


def right_padded(rng, n: int, length: int, vocab: int, lengths: list[int]) -> np.ndarray:
    ids = rng.integers(1, vocab, (n, length)).astype(np.int32)
    for i, k in enumerate(lengths):
        ids[i, k:] = 0
    return ids


# --- textgenrnn-style generator -------------------------------------------------------------
def _attention_layer(K):
    class AttentionWeightedAverage(K.layers.Layer):
        """Softmax-over-time attention pooling with one weight vector (as text generators use)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.supports_masking = True

        def build(self, input_shape):
            self.W = self.add_weight(name="W", shape=(int(input_shape[2]), 1), initializer="uniform")
            super().build(input_shape)

        def call(self, x, mask=None):
            tf = oracles.tf()
            scores = tf.squeeze(tf.tensordot(x, self.W, axes=1), -1)
            ai = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
            if mask is not None:
                ai = ai * tf.cast(mask, ai.dtype)
            weights = ai / (tf.reduce_sum(ai, axis=1, keepdims=True) + 1e-7)
            return tf.reduce_sum(x * weights[:, :, None], axis=1)

        def compute_mask(self, inputs, mask=None):
            return None

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[2])

    return AttentionWeightedAverage


def attention_to_network(net, config, inputs, weights):
    """The same attention pooling with the Network API (the user's part of the conversion)."""
    name, x, W = config["name"], inputs[0], weights[0]
    scores = net.add_fully_connected(x, 1, W, name=f"{name}/scores").output  # [N, T, 1]
    top = net.add_reduce(scores, "max", [1], keep_dims=True, name=f"{name}/max").output
    ai = net.add_unary(net.add_elementwise(scores, top, "sub", name=f"{name}/shift").output, "exp",
                       name=f"{name}/exp").output
    total = net.add_reduce(ai, "sum", [1], keep_dims=True, name=f"{name}/total").output
    total = net.add_scale(total, "uniform", shift=np.float32(1e-7), name=f"{name}/eps").output
    weights_t = net.add_elementwise(ai, total, "div", name=f"{name}/weights").output
    weighted = net.add_elementwise(x, weights_t, "prod", name=f"{name}/weighted").output
    return net.add_reduce(weighted, "sum", [1], keep_dims=False, name=name).output


@pytest.fixture(scope="module")
def textgen(tmp_path_factory):
    K = oracles.tf_keras()
    L = K.layers
    V, T = 31, 12
    inp = K.Input(shape=(T,), name="input")
    emb = L.Embedding(V, 10, name="embedding")(inp)
    r1 = L.LSTM(8, return_sequences=True, name="rnn_1")(emb)
    r2 = L.LSTM(8, return_sequences=True, name="rnn_2")(r1)
    cat = L.concatenate([emb, r1, r2], name="rnn_concat")
    att = _attention_layer(K)(name="attention")(cat)
    out = L.Dense(V, activation="softmax", name="output")(att)
    model = K.Model(inp, out)
    fill(model, 1)
    path = tmp_path_factory.mktemp("textgen") / "textgenrnn_weights.hdf5"
    model.save(path)
    ids = np.random.default_rng(2).integers(0, V, (4, T)).astype(np.int32)
    return path, ids, model(ids).numpy()


def test_textgenrnn_with_registered_attention(textgen, tmp_path):
    path, ids, ref = textgen
    with pytest.raises(UnsupportedError, match="AttentionWeightedAverage"):
        tf2rt.convert(path, states=False)
    got = engine_outputs(path, {"input": ids}, tmp_path / "t.onnx",
                         custom_layers={"AttentionWeightedAverage": attention_to_network})
    assert ref.std() > 1e-3
    assert max_err(got["output"], ref) <= TOL


def test_register_layer_decorator(textgen, tmp_path):
    from tf2rt.importers.keras_graph import CUSTOM

    path, ids, ref = textgen
    try:
        register_layer("AttentionWeightedAverage")(attention_to_network)
        got = engine_outputs(path, {"input": ids}, tmp_path / "t.onnx")
    finally:
        CUSTOM.pop("AttentionWeightedAverage", None)
    assert max_err(got["output"], ref) <= TOL


# --- chars2vec-style: save_weights + to_json ----------------------------------------------
def _chars2vec(K, seed: int):
    """A siamese char-sequence model: shared LSTMs embed two words, the distance is scored."""
    L = K.layers
    n_chars, dim = 9, 6
    a = K.Input(shape=(None, n_chars), name="word_a")
    b = K.Input(shape=(None, n_chars), name="word_b")
    lstm_1 = L.LSTM(dim, return_sequences=True, name="lstm_chars")
    lstm_2 = L.LSTM(dim, name="lstm_word")
    ea, eb = lstm_2(lstm_1(a)), lstm_2(lstm_1(b))
    diff = L.Subtract(name="diff")([ea, eb])
    dist = L.Dot(axes=1, name="dist")([diff, diff])
    score = L.Dense(1, activation="sigmoid", name="score")(dist)
    model = K.Model([a, b], [score, ea])
    fill(model, seed)
    rng = np.random.default_rng(seed)
    xa = np.eye(n_chars, dtype=np.float32)[rng.integers(0, n_chars, (3, 7))]
    xb = np.eye(n_chars, dtype=np.float32)[rng.integers(0, n_chars, (3, 7))]
    return model, {"word_a": xa, "word_b": xb}


@pytest.fixture(scope="module")
def chars2vec(tmp_path_factory):
    d = tmp_path_factory.mktemp("chars2vec")
    out = {}
    for gen, K, weights_name in (("keras2", oracles.tf_keras(), "weights.h5"),
                                 ("keras3", oracles.keras(), "model.weights.h5")):
        model, feeds = _chars2vec(K, 3)
        (d / gen).mkdir()
        model.save_weights(d / gen / weights_name)
        (d / gen / "model.json").write_text(model.to_json())
        ref = [np.asarray(t) for t in model([feeds["word_a"], feeds["word_b"]])]
        out[gen] = (d / gen / weights_name, d / gen / "model.json", feeds, ref)
    return out


@pytest.mark.parametrize("gen", ["keras2", "keras3"])
def test_chars2vec_weights_with_architecture(chars2vec, gen, tmp_path):
    weights, arch, feeds, (score, emb) = chars2vec[gen]
    with pytest.raises(FormatError, match="weights only|architecture"):
        tf2rt.convert(weights, states=False)
    got = engine_outputs(weights, feeds, tmp_path / "c.onnx", architecture=arch.read_text())
    assert max_err(got["score"], score) <= TOL
    assert max_err(got["lstm_word"], emb) <= TOL
    got = engine_outputs(weights, feeds, tmp_path / "c2.onnx", architecture=json.loads(arch.read_text()))
    assert max_err(got["score"], score) <= TOL


def test_chars2vec_cli(chars2vec, tmp_path):
    weights, arch, feeds, (score, emb) = chars2vec["keras2"]
    out = tmp_path / "cli.onnx"
    r = subprocess.run([sys.executable, "-m", "tf2rt", "convert", str(weights), "--architecture", str(arch),
                        "--no-states", "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = load_engine(out).run(feeds)
    assert max_err(got["score"], score) <= TOL and max_err(got["lstm_word"], emb) <= TOL


# --- masks: Bidirectional merge modes and a plain LSTM over padded sequences -----------------
V_MASK, T_MASK = 17, 9


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """The same masked model with a fixed and with a variable sequence length."""
    K = oracles.keras()
    L = K.layers
    out = {}
    for kind, length in (("fixed", T_MASK), ("variable", None)):
        inp = K.Input((length,), dtype="int32", name="tokens")
        e = L.Embedding(V_MASK, 6, mask_zero=True, name="embed")(inp)
        outs = [L.Bidirectional(L.LSTM(5, return_sequences=True), merge_mode=m, name=f"bi_{m}")(e)
                for m in ("concat", "sum", "mul", "ave")]
        fw, bw = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode=None, name="bi_none")(e)
        last = L.Bidirectional(L.LSTM(3), merge_mode="concat", name="bi_last")(e)
        seq = L.LSTM(4, return_sequences=True, name="uni_seq")(e)
        uni_last, h, c = L.LSTM(4, return_state=True, name="uni_state")(e)
        pooled = L.GlobalAveragePooling1D(name="pooled")(seq)
        tagged = L.TimeDistributed(L.Dense(3, activation="softmax"), name="tags")(outs[0])
        model = K.Model(inp, outs + [fw, bw, last, seq, uni_last, h, c, pooled, tagged])
        fill(model, 5)
        path = tmp_path_factory.mktemp("masked") / f"masked_{kind}.keras"
        model.save(path)
        out[kind] = (path, model)
    return out


def _padded(pattern: str) -> np.ndarray:
    ids = right_padded(np.random.default_rng(6), 5, T_MASK, V_MASK, [9, 4, 1, 7, 6])
    if pattern == "left":
        ids = ids[:, ::-1].copy()
    elif pattern == "holes":
        ids[0, [2, 5]] = 0
        ids[3, 0] = 0
        ids[4, [1, 2, 3]] = 0
    return ids


@pytest.mark.parametrize("kind,pattern", [("fixed", "right"), ("fixed", "left"), ("fixed", "holes"),
                                          ("variable", "right")])
def test_mask_zero_padded(masked, kind, pattern, tmp_path):
    """Fixed length: masked steps anywhere are skipped as Keras skips them. Variable length:
    right padding (sequence lengths)."""
    path, model = masked[kind]
    ids = _padded(pattern)
    engine = tf2rt.convert(path, tmp_path / "m.onnx", states=False)
    got = engine.run({"tokens": ids})
    refs = [np.asarray(t) for t in model(ids)]
    names = ["bi_concat", "bi_sum", "bi_mul", "bi_ave", "bi_none", "bi_none/state_1", "bi_last", "uni_seq",
             "uni_state", "uni_state/state_1", "uni_state/state_2", "pooled", "tags"]
    assert engine.output_names == names
    errs = {n: max_err(got[n], r) for n, r in zip(names, refs)}
    assert max(errs.values()) <= TOL, errs
    if pattern == "right":  # padded steps: 0 inside Bidirectional, the last real output for a plain layer
        assert np.all(got["bi_concat"][1, 4:] == 0)
        assert np.allclose(got["uni_seq"][1, 4:], got["uni_seq"][1, 3])


def test_variable_length_left_padding_differs(masked, tmp_path):
    """The documented limit: with a variable length, a left-padded sequence is not skipped the
    Keras way (the engine runs the first `length` steps)."""
    path, model = masked["variable"]
    ids = _padded("left")
    got = tf2rt.convert(path, states=False).run({"tokens": ids})
    assert max_err(got["uni_state"], np.asarray(model(ids)[8])) > 1e-3


# --- Conv1D + pooling + LSTM classifier ------------------------------------------------------
def test_conv1d_pooling_lstm_classifier(tmp_path):
    K = oracles.keras()
    L = K.layers
    inp = K.Input((40, 6), name="signal")
    x = L.Conv1D(8, 5, padding="same", activation="relu", name="conv_a")(inp)
    x = L.MaxPooling1D(2, name="pool_a")(x)
    x = L.Conv1D(8, 3, padding="causal", dilation_rate=2, name="conv_b")(x)
    x = L.AveragePooling1D(3, strides=2, padding="same", name="pool_b")(x)
    x = L.SpatialDropout1D(0.2, name="drop")(x)
    seq = L.LSTM(10, return_sequences=True, name="lstm")(x)
    last = L.GRU(7, reset_after=False, name="gru_before")(seq)
    peak = L.GlobalMaxPooling1D(name="peak")(x)
    mean = L.GlobalAveragePooling1D(name="mean")(seq)
    both = L.Concatenate(name="features")([last, peak, mean])
    out = L.Dense(3, activation="softmax", name="probs")(L.Dropout(0.3)(both))
    model = K.Model(inp, out)
    fill(model, 7)
    model.save(tmp_path / "clf.keras")
    x = np.random.default_rng(8).normal(size=(4, 40, 6)).astype(np.float32)
    got = engine_outputs(tmp_path / "clf.keras", {"signal": x}, tmp_path / "clf.onnx")
    ref = model(x).numpy()
    assert ref.std() > 1e-3 and max_err(got["probs"], ref) <= TOL


# --- Keras 2.0/2.1-style Sequential .h5 ------------------------------------------------------
def _to_bare_list(path, version: str = "2.1.2") -> None:
    """Rewrite an .h5 model_config the way Keras 2.0/2.1 wrote it: Sequential config = a bare
    list of layers, the input shape as batch_input_shape on the first layer."""
    import h5py

    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        layers = cfg["config"]["layers"]
        if layers[0]["class_name"] == "InputLayer":
            shape = layers[0]["config"]["batch_input_shape"]
            layers = layers[1:]
            layers[0]["config"]["batch_input_shape"] = shape
        cfg["config"] = [{"class_name": lc["class_name"], "config": lc["config"]} for lc in layers]
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["keras_version"] = version.encode()


def test_keras2_sequential_bare_list_h5(tmp_path):
    K = oracles.tf_keras()
    L = K.layers
    V, T = 23, 11
    model = K.Sequential([
        L.Embedding(V, 7, input_length=T, batch_input_shape=(None, T), name="embedding_1"),
        L.LSTM(9, return_sequences=True, recurrent_activation="hard_sigmoid", name="lstm_1"),
        L.Dropout(0.5, name="dropout_1"),
        L.GRU(6, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid", name="gru_1"),
        L.TimeDistributed(L.Dense(5, activation="tanh"), name="time_distributed_1"),
        L.SimpleRNN(4, unroll=True, name="simple_rnn_1"),
        L.Dense(V, activation="softmax", name="dense_1"),
    ])
    fill(model, 9)
    path = tmp_path / "old.h5"
    model.save(path)
    ids = np.random.default_rng(10).integers(0, V, (3, T)).astype(np.int32)
    ref = model(ids).numpy()
    assert ref.std() > 1e-3
    got = engine_outputs(path, {"embedding_1_input": ids}, tmp_path / "tf_keras.onnx")  # as tf_keras wrote it
    assert max_err(got["dense_1"], ref) <= TOL
    _to_bare_list(path)  # as Keras 2.0/2.1 wrote it
    got = engine_outputs(path, {"embedding_1_input": ids}, tmp_path / "old.onnx")
    assert max_err(got["dense_1"], ref) <= TOL


# --- CuDNNLSTM / CuDNNGRU weights (Keras 2, written by hand) ---------------------------------
def _cudnn_h5(path, F: int, u1: int, u2: int, V: int, rng) -> dict:
    """A Keras 2.1-style .h5 of Sequential[CuDNNLSTM, CuDNNGRU, Dense]: cuDNN biases are
    [input biases, recurrent biases] (8u for the LSTM, 6u for the GRU)."""
    import h5py

    w = {
        "cu_dnnlstm_1": [rng.uniform(-0.5, 0.5, (F, 4 * u1)), rng.uniform(-0.5, 0.5, (u1, 4 * u1)),
                         rng.uniform(-0.5, 0.5, (8 * u1,))],
        "cu_dnngru_1": [rng.uniform(-0.5, 0.5, (u1, 3 * u2)), rng.uniform(-0.5, 0.5, (u2, 3 * u2)),
                        rng.uniform(-0.5, 0.5, (6 * u2,))],
        "dense_1": [rng.uniform(-0.5, 0.5, (u2, V)), rng.uniform(-0.5, 0.5, (V,))],
    }
    w = {k: [a.astype(np.float32) for a in v] for k, v in w.items()}
    rnn = ["kernel", "recurrent_kernel", "bias"]
    names = {"cu_dnnlstm_1": rnn, "cu_dnngru_1": rnn, "dense_1": ["kernel", "bias"]}
    config = {"class_name": "Sequential", "config": [
        {"class_name": "CuDNNLSTM", "config": {"name": "cu_dnnlstm_1", "trainable": True, "units": u1,
                                               "batch_input_shape": [None, None, F], "dtype": "float32",
                                               "return_sequences": True, "return_state": False,
                                               "go_backwards": False, "stateful": False}},
        {"class_name": "CuDNNGRU", "config": {"name": "cu_dnngru_1", "trainable": True, "units": u2,
                                              "return_sequences": False, "return_state": False,
                                              "go_backwards": False, "stateful": False}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": V, "activation": "linear", "use_bias": True}},
    ]}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.1.6"
        f.attrs["backend"] = b"tensorflow"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in w]
        for layer, arrays in w.items():
            g = mw.create_group(layer)
            wn = [f"{layer}/{n}:0" for n in names[layer]]
            g.attrs["weight_names"] = [n.encode() for n in wn]
            for n, a in zip(wn, arrays):
                g.create_dataset(n, data=a)
    return w


def test_cudnn_weights_h5(tmp_path):
    K = oracles.tf_keras()
    L = K.layers
    F, u1, u2, V = 5, 6, 4, 7
    w = _cudnn_h5(tmp_path / "cudnn.h5", F, u1, u2, V, np.random.default_rng(11))
    # the oracle: plain Keras layers with the cuDNN biases combined the way cuDNN applies them
    lk, lr, lb = w["cu_dnnlstm_1"]
    gk, gr, gb = w["cu_dnngru_1"]
    model = K.Sequential([
        L.InputLayer(input_shape=(None, F)),
        L.LSTM(u1, return_sequences=True, recurrent_activation="sigmoid"),
        L.GRU(u2, reset_after=True, recurrent_activation="sigmoid"),
        L.Dense(V),
    ])
    model.layers[0].set_weights([lk, lr, lb[:4 * u1] + lb[4 * u1:]])  # LSTM: both biases add up
    model.layers[1].set_weights([gk, gr, np.stack([gb[:3 * u2], gb[3 * u2:]])])  # GRU: [input; recurrent]
    model.layers[2].set_weights(w["dense_1"])
    x = np.random.default_rng(12).normal(size=(3, 8, F)).astype(np.float32)
    got = engine_outputs(tmp_path / "cudnn.h5", {"cu_dnnlstm_1_input": x}, tmp_path / "cudnn.onnx")
    ref = model(x).numpy()
    assert ref.std() > 1e-3 and max_err(got["dense_1"], ref) <= TOL


# --- GRU reset_after both ways, SimpleRNN go_backwards ---------------------------------------
def test_gru_reset_after_and_simple_rnn_go_backwards(tmp_path):
    K = oracles.keras()
    L = K.layers
    fixed = K.Input((10, 4), name="fixed")
    a = L.GRU(6, reset_after=True, return_sequences=True, name="gru_after")(fixed)
    b = L.GRU(5, reset_after=False, return_sequences=True, name="gru_before")(a)
    back_seq = L.SimpleRNN(4, go_backwards=True, return_sequences=True, name="rnn_back_seq")(b)
    back_state, back_h = L.SimpleRNN(3, go_backwards=True, return_state=True, activation="relu",
                                     name="rnn_back_state")(b)
    any_len = K.Input((None, 4), name="any_length")
    back_last = L.SimpleRNN(5, go_backwards=True, name="rnn_back_last")(any_len)
    lstm_back = L.LSTM(3, go_backwards=True, name="lstm_back_last")(any_len)
    model = K.Model([fixed, any_len], [back_seq, back_state, back_h, back_last, lstm_back])
    fill(model, 13)
    model.save(tmp_path / "rnn.keras")
    rng = np.random.default_rng(14)
    feeds = {"fixed": rng.normal(size=(3, 10, 4)).astype(np.float32),
             "any_length": rng.normal(size=(3, 13, 4)).astype(np.float32)}
    got = engine_outputs(tmp_path / "rnn.keras", feeds, tmp_path / "rnn.onnx")
    refs = [np.asarray(t) for t in model([feeds["fixed"], feeds["any_length"]])]
    names = ["rnn_back_seq", "rnn_back_state", "rnn_back_state/state_1", "rnn_back_last", "lstm_back_last"]
    errs = {n: max_err(got[n], r) for n, r in zip(names, refs)}
    assert max(errs.values()) <= TOL, errs


# --- Masking layer (Keras 2 implicit masks, Keras 3 explicit mask tensors) ---------------------
@pytest.mark.parametrize("gen", ["keras2", "keras3"])
def test_masking_layer_right_padded(gen, tmp_path):
    K = oracles.tf_keras() if gen == "keras2" else oracles.keras()
    L = K.layers
    inp = K.Input((8, 3), name="frames")
    x = L.Masking(mask_value=0.0, name="mask")(inp)
    x = L.LSTM(5, return_sequences=True, name="lstm")(x)
    x = L.Bidirectional(L.GRU(4, return_sequences=True), merge_mode="ave", name="bigru")(x)
    y = L.Bidirectional(L.SimpleRNN(3), name="birnn")(x)
    model = K.Model(inp, [L.Dense(2, name="out")(y), x])
    fill(model, 17)
    path = tmp_path / ("m.h5" if gen == "keras2" else "m.keras")
    model.save(path)
    frames = np.random.default_rng(18).normal(size=(4, 8, 3)).astype(np.float32)
    for i, k in enumerate([8, 5, 2, 6]):
        frames[i, k:] = 0.0
    got = engine_outputs(path, {"frames": frames}, tmp_path / "m.onnx")
    ref = [np.asarray(t) for t in model(frames)]
    assert max_err(got["out"], ref[0]) <= TOL and max_err(got["bigru"], ref[1]) <= TOL


# --- models used as layers (a shared encoder called twice, a Sequential inside a Sequential) ---
@pytest.mark.parametrize("gen", ["keras2", "keras3"])
def test_nested_models(gen, tmp_path):
    K = oracles.tf_keras() if gen == "keras2" else oracles.keras()
    L = K.layers
    n_chars, dim = 8, 5
    word = K.Input(shape=(None, n_chars), name="chars")
    encoder = K.Model(word, L.LSTM(dim, name="enc_lstm_2")(L.LSTM(dim, return_sequences=True,
                                                                   name="enc_lstm_1")(word)), name="encoder")
    a = K.Input(shape=(None, n_chars), name="word_a")
    b = K.Input(shape=(None, n_chars), name="word_b")
    ea, eb = encoder(a), encoder(b)
    head = K.Sequential([K.Input((dim,)), L.Dense(4, activation="tanh", name="head_1"),
                         L.Dense(1, activation="sigmoid", name="head_2")], name="head")
    score = head(L.Subtract(name="diff")([ea, eb]))
    model = K.Model([a, b], [score, ea])
    fill(model, 19)
    path = tmp_path / ("siamese.h5" if gen == "keras2" else "siamese.keras")
    model.save(path)
    rng = np.random.default_rng(20)
    feeds = {n: np.eye(n_chars, dtype=np.float32)[rng.integers(0, n_chars, (3, 6))] for n in ("word_a", "word_b")}
    engine = tf2rt.convert(path, states=False)
    got = engine.run(feeds)
    ref = [np.asarray(t) for t in model([feeds["word_a"], feeds["word_b"]])]
    out_score, out_emb = engine.output_names
    assert max_err(got[out_score], ref[0]) <= TOL and max_err(got[out_emb], ref[1]) <= TOL
    # the same from save_weights + to_json
    weights = tmp_path / ("w.h5" if gen == "keras2" else "w.weights.h5")
    model.save_weights(weights)
    got = tf2rt.convert(weights, states=False, architecture=model.to_json()).run(feeds)
    assert max_err(got[out_score], ref[0]) <= TOL and max_err(got[out_emb], ref[1]) <= TOL


# --- an LSTM autoencoder (RepeatVector) and sequence utility layers ---------------------------
def test_lstm_autoencoder_and_sequence_layers(tmp_path):
    K = oracles.tf_keras()
    L = K.layers
    T, F = 10, 3
    inp = K.Input((T, F), name="series")
    code = L.LSTM(8, name="encoder")(inp)
    x = L.RepeatVector(T, name="repeat")(code)
    x = L.LSTM(8, return_sequences=True, name="decoder")(x)
    x = L.LayerNormalization(name="norm")(x)
    recon = L.TimeDistributed(L.Dense(F), name="reconstruction")(x)
    y = L.ZeroPadding1D((2, 1), name="pad")(inp)
    y = L.Conv1D(4, 3, strides=2, name="conv")(y)
    y = L.UpSampling1D(3, name="up")(y)
    y = L.Permute((2, 1), name="channels_first")(y)
    model = K.Model(inp, [recon, y])
    fill(model, 21)
    model.save(tmp_path / "ae.h5")
    x = np.random.default_rng(22).normal(size=(3, T, F)).astype(np.float32)
    got = engine_outputs(tmp_path / "ae.h5", {"series": x}, tmp_path / "ae.onnx")
    ref = [np.asarray(t) for t in model(x)]
    assert max_err(got["reconstruction"], ref[0]) <= TOL and max_err(got["channels_first"], ref[1]) <= TOL


# --- what cannot be converted is named ----------------------------------------------------------
def test_unconvertible_layers_are_named(tmp_path):
    K = oracles.tf_keras()
    L = K.layers
    inp = K.Input(batch_shape=(2, 5, 3), name="x")
    x = L.LSTM(4, stateful=True, return_sequences=True, name="stateful_lstm")(inp)
    x = L.Lambda(lambda t: t * 2.0, name="double")(x)
    x = L.GRU(3, name="gru")(x)
    model = K.Model(inp, x)
    model.save(tmp_path / "bad.h5")
    with pytest.raises(UnsupportedError) as exc:
        tf2rt.convert(tmp_path / "bad.h5", states=False)
    msg = str(exc.value)
    assert "Lambda x1" in msg and "'stateful_lstm'" in msg and "stateful=True" in msg and "custom_layers" in msg


# --- Keras 3 model.export() SavedModel (feed-forward; read by the TF graph front end) ----------
def test_keras3_export_saved_model_feed_forward(tmp_path):
    K = oracles.keras()
    L = K.layers
    inp = K.Input((16, 4), name="signal")
    x = L.Conv1D(6, 3, padding="same", activation="relu", name="conv")(inp)
    x = L.MaxPooling1D(2, name="pool")(x)
    out = L.Dense(3, activation="softmax", name="probs")(L.GlobalAveragePooling1D(name="gap")(x))
    model = K.Model(inp, out)
    fill(model, 23)
    model.export(str(tmp_path / "exported"))
    x = np.random.default_rng(24).normal(size=(2, 16, 4)).astype(np.float32)
    engine = tf2rt.convert(tmp_path / "exported", tmp_path / "e.onnx")
    got = engine.run({engine.input_names[0]: x})[engine.output_names[0]]
    assert max_err(got, model(x).numpy()) <= TOL


# --- merge layers ------------------------------------------------------------------------------
def test_merge_layers(tmp_path):
    K = oracles.keras()
    L = K.layers
    a = K.Input((6, 4), name="a")
    b = K.Input((6, 4), name="b")
    pa, pb = L.Dense(5, name="pa")(a), L.Dense(5, name="pb")(b)
    outs = [L.Add(name="add")([pa, pb, pa]), L.Subtract(name="sub")([pa, pb]), L.Multiply(name="mul")([pa, pb]),
            L.Average(name="avg")([pa, pb]), L.Maximum(name="max")([pa, pb]), L.Minimum(name="min")([pa, pb]),
            L.Concatenate(axis=1, name="cat_time")([pa, pb]),
            L.Dot(axes=(2, 2), name="scores")([pa, pb]), L.Dot(axes=(1, 1), name="gram")([pa, pb]),
            L.Dot(axes=1, normalize=True, name="cosine")([L.Flatten(name="fa")(pa), L.Flatten(name="fb")(pb)])]
    model = K.Model([a, b], outs)
    fill(model, 25)
    model.save(tmp_path / "merge.keras")
    rng = np.random.default_rng(26)
    feeds = {"a": rng.normal(size=(3, 6, 4)).astype(np.float32), "b": rng.normal(size=(3, 6, 4)).astype(np.float32)}
    got = engine_outputs(tmp_path / "merge.keras", feeds, tmp_path / "merge.onnx")
    refs = [np.asarray(t) for t in model([feeds["a"], feeds["b"]])]
    names = ["add", "sub", "mul", "avg", "max", "min", "cat_time", "scores", "gram", "cosine"]
    errs = {n: max_err(got[n], r) for n, r in zip(names, refs)}
    assert max(errs.values()) <= TOL, errs


def test_cudnn_bidirectional_h5(tmp_path):
    """Bidirectional(CuDNNLSTM) as Keras 2.1 wrote it: forward weights, then backward."""
    import h5py

    K = oracles.tf_keras()
    L = K.layers
    F, u = 4, 5
    rng = np.random.default_rng(27)
    fw = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((F, 4 * u), (u, 4 * u), (8 * u,))]
    bw = [rng.uniform(-0.5, 0.5, s).astype(np.float32) for s in ((F, 4 * u), (u, 4 * u), (8 * u,))]
    inner = {"class_name": "CuDNNLSTM", "config": {"name": "cu_dnnlstm_1", "units": u, "return_sequences": True,
                                                   "return_state": False, "go_backwards": False, "stateful": False}}
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Bidirectional", "config": {"name": "bidirectional_1", "layer": inner, "merge_mode": "concat",
                                                   "batch_input_shape": [None, 7, F], "dtype": "float32"}}]}
    with h5py.File(tmp_path / "bi.h5", "w") as f:
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["keras_version"] = b"2.1.5"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"bidirectional_1"]
        g = mw.create_group("bidirectional_1")
        names = [f"bidirectional_1/{d}_cu_dnnlstm_1/{n}:0" for d in ("forward", "backward")
                 for n in ("kernel", "recurrent_kernel", "bias")]
        g.attrs["weight_names"] = [n.encode() for n in names]
        for n, arr in zip(names, fw + bw):
            g.create_dataset(n, data=arr)
    model = K.Sequential([L.InputLayer(input_shape=(7, F)),
                          L.Bidirectional(L.LSTM(u, return_sequences=True, recurrent_activation="sigmoid"))])
    summed = [w[2][:4 * u] + w[2][4 * u:] for w in (fw, bw)]  # cuDNN's two biases add up
    model.layers[0].set_weights([fw[0], fw[1], summed[0], bw[0], bw[1], summed[1]])
    x = rng.normal(size=(2, 7, F)).astype(np.float32)
    got = engine_outputs(tmp_path / "bi.h5", {"bidirectional_1_input": x}, tmp_path / "bi.onnx")
    assert max_err(got["bidirectional_1"], model(x).numpy()) <= TOL


def test_bidirectional_return_state(tmp_path):
    K = oracles.tf_keras()
    L = K.layers
    inp = K.Input((None, 4), name="x")
    y, fh, fc, bh, bc = L.Bidirectional(L.LSTM(5, return_sequences=True, return_state=True), merge_mode="sum",
                                        name="bilstm")(inp)
    z, gf, gb = L.Bidirectional(L.GRU(3, return_state=True), name="bigru")(y)
    model = K.Model(inp, [y, fh, fc, bh, bc, z, gf, gb])
    fill(model, 29)
    model.save(tmp_path / "bs.h5")
    x = np.random.default_rng(30).normal(size=(2, 7, 4)).astype(np.float32)
    engine = tf2rt.convert(tmp_path / "bs.h5", states=False)
    got = engine.run({"x": x})
    refs = [np.asarray(t) for t in model(x)]
    errs = {n: max_err(got[n], r) for n, r in zip(engine.output_names, refs)}
    assert len(errs) == 8 and max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("pattern", ["right", "left", "holes"])
def test_go_backwards_masked_fixed_length(pattern, tmp_path):
    K = oracles.keras()
    L = K.layers
    inp = K.Input((T_MASK,), dtype="int32", name="tokens")
    e = L.Embedding(V_MASK, 5, mask_zero=True, name="embed")(inp)
    seq = L.LSTM(4, go_backwards=True, return_sequences=True, name="back_seq")(e)
    last = L.GRU(3, go_backwards=True, name="back_last")(e)
    model = K.Model(inp, [seq, last])
    fill(model, 31)
    model.save(tmp_path / "gb.keras")
    ids = _padded(pattern)
    got = engine_outputs(tmp_path / "gb.keras", {"tokens": ids}, tmp_path / "gb.onnx")
    refs = [np.asarray(t) for t in model(ids)]
    errs = {n: max_err(got[n], r) for n, r in zip(["back_seq", "back_last"], refs)}
    assert max(errs.values()) <= TOL, errs
