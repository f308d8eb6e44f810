"""cuDNN RNN ops (CudnnRNN, CudnnRNNV2, CudnnRNNV3) in TF graphs, compared with Keras on CPU.

TensorFlow has no CPU kernel for these ops, so the oracle is Keras 3: LSTM / GRU / SimpleRNN
layers (stacked, Bidirectional, with initial states and masks) with distinct random values
in every weight and bias. The opaque params vector is packed here, from those Keras weights,
following cuDNN's documented weight-space layout — written independently of tf2rt:

* all matrices first, pseudo-layer by pseudo-layer (layer-major, forward before backward);
  per pseudo-layer the input matrix of each gate, then the recurrent matrix of each gate,
  each row-major [H, in] (used as W·x);
* then all biases in the same order: input bias of each gate, then recurrent bias;
* gates: LSTM i, f, c, o; GRU r, z, h (Keras stores z, r, h); RNN one.

(Seen on an H100 with cuDNN 9.19: PyTorch's flattened cuDNN weight buffer puts every
weight_ih / weight_hh of every layer and direction before the first bias.)

The graphs call `tf.raw_ops.CudnnRNNV3` (batch- or time-major, with sequence lengths) and
the time-major `tf.raw_ops.CudnnRNN` / `tf.raw_ops.CudnnRNNV2`; building a graph needs no
kernel. A Keras 3 model exported with Keras's cuDNN path switched on (as on a GPU machine)
is the realistic case.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import oracles

CUDNN_GATES = {"lstm": "ifco", "gru": "rzh", "rnn": "h"}
KERAS_GATES = {"lstm": "ifco", "gru": "zrh", "rnn": "h"}
MODES = {"lstm": ("lstm", "tanh"), "gru": ("gru", "tanh"), "rnn_tanh": ("rnn", "tanh"), "rnn_relu": ("rnn", "relu")}


# --- the opaque params, packed from Keras weights -------------------------------------------
def _pseudo_layer(kind: str, keras_weights: list[np.ndarray], rng) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """cuDNN's matrices (W per gate, then R per gate; [H, in]) and biases (b_W, then b_R) of one
    direction of one layer, from Keras' kernel [in, G*H], recurrent_kernel [H, G*H] and bias."""
    kernel, recurrent, bias = keras_weights
    H = recurrent.shape[0]

    def block(m: np.ndarray, gate: str) -> np.ndarray:
        k = KERAS_GATES[kind].index(gate)
        return m[..., k * H:(k + 1) * H]

    if kind == "gru":  # reset_after: bias [2, 3H] = input bias, recurrent bias
        b_in, b_rec = bias[0], bias[1]
    else:  # one Keras bias: split it in two distinct halves that add up to it
        b_rec = rng.uniform(-0.5, 0.5, bias.shape).astype(np.float32)
        b_in = bias - b_rec
    mats = [block(kernel, g).T for g in CUDNN_GATES[kind]] + [block(recurrent, g).T for g in CUDNN_GATES[kind]]
    biases = [block(b_in, g) for g in CUDNN_GATES[kind]] + [block(b_rec, g) for g in CUDNN_GATES[kind]]
    return mats, biases


def _pack(pseudo_layers: list) -> np.ndarray:
    """Every matrix (row-major) of every pseudo-layer, then every bias, in one vector."""
    mats = [m.reshape(-1) for ms, _bs in pseudo_layers for m in ms]
    biases = [b.reshape(-1) for _ms, bs in pseudo_layers for b in bs]
    return np.concatenate(mats + biases).astype(np.float32)


# --- the Keras oracle -----------------------------------------------------------------------
def _keras_layer(K, kind: str, act: str, H: int):
    L = K.layers
    if kind == "lstm":
        return L.LSTM(H, return_sequences=True, return_state=True)
    if kind == "gru":
        return L.GRU(H, return_sequences=True, return_state=True, reset_after=True)
    return L.SimpleRNN(H, activation=act, return_sequences=True, return_state=True)


def _oracle(mode: str, E: int, H: int, layers: int, bi: bool, B: int, T: int, seed: int,
            given_states: bool, lengths: np.ndarray | None) -> dict:
    """Keras' outputs (cuDNN's contract: zeros past each length), final states [L*dirs, B, H]
    and the params vector of the same weights."""
    K = oracles.keras()
    kind, act = MODES[mode]
    rng = np.random.default_rng(seed)
    dirs = 2 if bi else 1
    x = rng.standard_normal((B, T, E)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (layers * dirs, B, H)).astype(np.float32) if given_states else \
        np.zeros((layers * dirs, B, H), np.float32)
    c0 = rng.uniform(-1, 1, h0.shape).astype(np.float32) if given_states else np.zeros_like(h0)
    mask = None if lengths is None else np.arange(T)[None, :] < lengths[:, None]
    y, pseudo, finals_h, finals_c = x, [], [], []
    for layer in range(layers):
        rnn = _keras_layer(K, kind, act, H)
        if bi:
            rnn = K.layers.Bidirectional(rnn)
        init = []
        for d in range(dirs):
            p = layer * dirs + d
            init += [h0[p], c0[p]] if kind == "lstm" else [h0[p]]
        rnn(y, initial_state=init, mask=mask)  # builds the weights
        subs = [rnn.forward_layer, rnn.backward_layer] if bi else [rnn]
        for sub in subs:
            sub.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in sub.get_weights()])
            pseudo.append(_pseudo_layer(kind, sub.get_weights(), rng))
        out = [np.asarray(o) for o in rnn(y, initial_state=init, mask=mask)]
        y, states = out[0], out[1:]
        per = 2 if kind == "lstm" else 1
        for d in range(dirs):
            finals_h.append(states[d * per])
            if kind == "lstm":
                finals_c.append(states[d * per + 1])
    want_y = y if mask is None else y * mask[:, :, None]
    return {"x": x, "h0": h0, "c0": c0, "y": want_y, "h": np.stack(finals_h),
            "c": np.stack(finals_c) if finals_c else None, "params": _pack(pseudo)}


# --- graphs with the raw ops ----------------------------------------------------------------
def _write_graph(tf, path, op: str, o: dict, mode: str, H: int, bi: bool, time_major: bool, given_states: bool,
                 lengths: str, **attrs) -> None:
    """A frozen graph: placeholders x (and h, c, lengths), params a constant, one cuDNN op.
    lengths: "none", "given" (a placeholder) or "full" (Fill of the time dimension, as Keras)."""
    tf1 = tf.compat.v1
    kind = MODES[mode][0]
    E = o["x"].shape[-1]
    LK = o["h0"].shape[0]
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, None, E], name="x")
        b_axis, t_axis = (1, 0) if time_major else (0, 1)
        state_shape = [LK, None, H] if time_major else [None, LK, H]
        if given_states:
            h = tf1.placeholder(tf.float32, state_shape, name="h")
            c = tf1.placeholder(tf.float32, state_shape, name="c") if kind == "lstm" else tf.constant(0.0)
        else:  # zeros of the run-time batch size, as Keras builds them
            dims = [LK, tf.shape(x)[b_axis], H] if time_major else [tf.shape(x)[b_axis], LK, H]
            h = tf.zeros(tf.stack(dims))
            c = tf.zeros(tf.stack(dims)) if kind == "lstm" else tf.constant(0.0)
        params = tf.constant(o["params"], name="params")
        args = dict(input=x, input_h=h, input_c=c, params=params, rnn_mode=mode,
                    direction="bidirectional" if bi else "unidirectional", is_training=False, **attrs)
        if op == "CudnnRNNV3":
            if lengths == "given":
                seq = tf1.placeholder(tf.int32, [None], name="lengths")
            else:
                seq = tf.fill([tf.shape(x)[b_axis]], tf.shape(x)[t_axis])
            outs = tf.raw_ops.CudnnRNNV3(sequence_lengths=seq, time_major=time_major, **args)
        else:
            outs = getattr(tf.raw_ops, op)(**args)
        tf.identity(outs[0], name="y")
        tf.identity(outs[1], name="h_n")
        if kind == "lstm":
            tf.identity(outs[2], name="c_n")
    path.write_bytes(g.as_graph_def().SerializeToString())


def _feeds(o: dict, mode: str, time_major: bool, given_states: bool, lengths: np.ndarray | None) -> dict:
    tm = (lambda a: a) if time_major else (lambda a: a.transpose(1, 0, 2))  # states are [L*dirs, B, H]
    feeds = {"x": o["x"].transpose(1, 0, 2) if time_major else o["x"]}
    if given_states:
        feeds["h"] = tm(o["h0"])
        if MODES[mode][0] == "lstm":
            feeds["c"] = tm(o["c0"])
    if lengths is not None:
        feeds["lengths"] = lengths.astype(np.int32)
    return feeds


def _check(engine, o: dict, mode: str, time_major: bool, feeds: dict, backend: str = "onnxruntime") -> None:
    got = engine.run(feeds, backend=backend)
    tm = (lambda a: a) if time_major else (lambda a: a.transpose(1, 0, 2))
    want = {"y": o["y"].transpose(1, 0, 2) if time_major else o["y"], "h_n": tm(o["h"])}
    if MODES[mode][0] == "lstm":
        want["c_n"] = tm(o["c"])
    for k, w in want.items():
        assert got[k].shape == w.shape, (k, got[k].shape, w.shape)
        err = float(np.abs(got[k] - w).max())
        assert err <= 1e-5, (k, err)
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert {"LSTM", "GRU", "RNN"} & set(ops) and "Loop" not in ops and "Scan" not in ops


# (op, mode, layers, bidirectional, time_major, given states, lengths)
CASES = {
    "v3-lstm": ("CudnnRNNV3", "lstm", 1, False, False, True, "full"),
    "v3-gru-reset-after": ("CudnnRNNV3", "gru", 1, False, False, True, "full"),
    "v3-lstm-2-layers-lengths": ("CudnnRNNV3", "lstm", 2, False, False, True, "given"),
    "v3-gru-bidirectional-lengths": ("CudnnRNNV3", "gru", 1, True, False, True, "given"),
    "v3-lstm-bidirectional-2-layers-zero-states": ("CudnnRNNV3", "lstm", 2, True, False, False, "given"),
    "v3-gru-2-layers-time-major-lengths": ("CudnnRNNV3", "gru", 2, False, True, True, "given"),
    "v3-rnn-relu-2-layers": ("CudnnRNNV3", "rnn_relu", 2, False, False, True, "full"),
    "v3-rnn-tanh-bidirectional-zero-states": ("CudnnRNNV3", "rnn_tanh", 1, True, False, False, "full"),
    "v3-lstm-2-layers-zero-states-streaming": ("CudnnRNNV3", "lstm", 2, False, False, False, "full"),
    "v1-lstm-bidirectional-2-layers": ("CudnnRNN", "lstm", 2, True, True, True, "none"),
    "v1-gru-zero-states": ("CudnnRNN", "gru", 1, False, True, False, "none"),
    "v2-lstm": ("CudnnRNNV2", "lstm", 1, False, True, True, "none"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cudnn_op_matches_keras(tf, tmp_path, case):
    from tf2rt import convert

    op, mode, layers, bi, time_major, given, lengths = CASES[case]
    E, H, B, T = 3, 4, 3, 6
    lens = np.array([6, 2, 4]) if lengths == "given" else None
    o = _oracle(mode, E, H, layers, bi, B, T, seed=len(case), given_states=given, lengths=lens)
    _write_graph(tf, tmp_path / "m.pb", op, o, mode, H, bi, time_major, given, lengths)
    engine = convert(tmp_path / "m.pb")
    feeds = _feeds(o, mode, time_major, given, lens)
    assert sorted(n for n in engine.input_names if "/initial_" not in n) == sorted(feeds)
    _check(engine, o, mode, time_major, feeds)
    n_rnn = sum(n.op_type in ("LSTM", "GRU", "RNN") for n in engine.onnx.graph.node)
    assert n_rnn == layers  # one native node per layer (both directions in one)
    if not given:  # zeros built at run time: optional streaming states of a forward, batch-major RNN
        streams = not bi and not time_major
        assert len(engine.states) == (2 if MODES[mode][0] == "lstm" else 1) * streams
    if not given and engine.states and lengths == "full":  # step by step, states carried: the same sequence
        stream = engine.stream()
        steps = [stream.step({"x": feeds["x"][:, t:t + 1]})["y"] for t in range(T)]
        assert float(np.abs(np.concatenate(steps, axis=1) - o["y"]).max()) <= 1e-5


def test_reference_backend_and_auto_select(tf, tmp_path):
    """auto_select with input size != hidden size is linear_input; the reference backend agrees."""
    from tf2rt import convert

    o = _oracle("gru", 3, 4, 2, True, 3, 5, seed=11, given_states=True, lengths=np.array([5, 1, 3]))
    _write_graph(tf, tmp_path / "m.pb", "CudnnRNNV3", o, "gru", 4, True, False, True, "given",
                 input_mode="auto_select")
    engine = convert(tmp_path / "m.pb")
    for backend in ("onnxruntime", "reference"):
        _check(engine, o, "gru", False, _feeds(o, "gru", False, True, np.array([5, 1, 3])), backend)


def test_params_from_a_checkpoint_variable(tf, tmp_path):
    """TF1 graph whose opaque params are a variable, restored from its checkpoint (.meta)."""
    tf1 = tf.compat.v1
    from tf2rt import convert

    o = _oracle("lstm", 3, 4, 2, False, 2, 5, seed=5, given_states=True, lengths=None)

    def params_variable():
        return tf1.get_variable("cudnn_lstm/opaque_kernel", initializer=tf.constant(o["params"]), use_resource=False)

    with tf.Graph().as_default():  # the checkpoint (no session can place a cuDNN op on CPU)
        params_variable()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = tf1.train.Saver().save(sess, str(tmp_path / "model"), write_meta_graph=False)
    with tf.Graph().as_default():  # the inference graph reading it, as its .meta
        x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
        h = tf1.placeholder(tf.float32, [2, None, 4], name="h")
        c = tf1.placeholder(tf.float32, [2, None, 4], name="c")
        outs = tf.raw_ops.CudnnRNN(input=x, input_h=h, input_c=c, params=params_variable(), rnn_mode="lstm",
                                   is_training=False)
        tf.identity(outs[0], name="y")
        tf.identity(outs[1], name="h_n")
        tf.identity(outs[2], name="c_n")
        tf1.train.Saver()
        tf1.train.export_meta_graph(prefix + ".meta")
    engine = convert(prefix, inputs=["x", "h", "c"], outputs=["y", "h_n", "c_n"])
    _check(engine, o, "lstm", True, _feeds(o, "lstm", True, True, None))


@pytest.mark.parametrize("bad", ["params_length", "num_proj", "skip_input"])
def test_refused_with_a_one_line_error(tf, tmp_path, bad):
    from tf2rt import convert
    from tf2rt.errors import Tf2rtError

    o = _oracle("lstm", 4 if bad == "skip_input" else 3, 4, 1, False, 2, 3, seed=1, given_states=True, lengths=None)
    attrs = {"num_proj": 2} if bad == "num_proj" else {"input_mode": "skip_input"} if bad == "skip_input" else {}
    if bad == "params_length":
        o["params"] = o["params"][:-3]
    _write_graph(tf, tmp_path / "m.pb", "CudnnRNNV3", o, "lstm", 4, False, False, True, "full", **attrs)
    with pytest.raises(Tf2rtError) as info:
        convert(tmp_path / "m.pb")
    msg = str(info.value)
    assert "\n" not in msg and "CudnnRNNV3" in msg
    assert {"params_length": f"params has {o['params'].size} values, which fits no lstm stack",
            "num_proj": "num_proj=2", "skip_input": "skip_input"}[bad] in msg


# --- a Keras 3 model exported with its cuDNN path -------------------------------------------
def test_keras_export_traced_on_the_cudnn_path(tmp_path):
    """Keras 3 picks CudnnRNNV3 when it sees a GPU; with that check switched on during
    `model.export()` the SavedModel is what a GPU machine writes (LSTM; Bidirectional GRU, whose
    backward half runs over ReverseSequence; a mask, i.e. sequence lengths). Compared with the
    same model run by Keras on CPU."""
    K = oracles.keras()
    L = K.layers
    inp = K.Input((7,), dtype="int32", name="ids")
    x = L.Embedding(20, 6, mask_zero=True, name="embed")(inp)
    x = L.LSTM(5, return_sequences=True, name="lstm")(x)
    x = L.Bidirectional(L.GRU(4, return_sequences=True), name="bi_gru")(x)
    model = K.Model(inp, L.Dense(3, name="probs")(x))
    rng = np.random.default_rng(3)
    for w in model.weights:
        w.assign(rng.uniform(-0.8, 0.8, tuple(w.shape)).astype("float32"))
    rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
    saved = rnn._is_gpu_available
    rnn._is_gpu_available = lambda: True
    try:
        model.export(str(tmp_path / "exported"), verbose=False)
    finally:
        rnn._is_gpu_available = saved
    graph = (tmp_path / "exported" / "saved_model.pb").read_bytes()
    assert graph.count(b"CudnnRNNV3") >= 3 and b"ReverseSequence" in graph
    ids = rng.integers(1, 20, (3, 7)).astype(np.int32)
    ids[1, 4:] = 0
    ids[2, 2:] = 0
    want = model.predict(ids, verbose=0)
    import tf2rt

    engine = tf2rt.convert(tmp_path / "exported")
    got = engine.run({"ids": ids})["output_0"]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-5
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert ops.count("LSTM") == 1 and ops.count("GRU") == 2
    assert len(engine.states) == 2  # the LSTM's zero initial states; not those of the bidirectional GRU
