"""A port of TensorRT's sampleCharRNN, built with tf2rt's Network API from a TF1 checkpoint.

The checkpoint is written by TensorFlow in the test with the variables the sample expects
(`embedding`, `rnn/multi_rnn_cell/cell_{0,1}/basic_lstm_cell/{kernel,bias}`,
`softmax/softmax_w`, `softmax/softmax_b`; BasicLSTMCell x2 with forget_bias=0, as the model
the sample shipped was trained), every variable holding distinct random values.
The network follows the sample: embedding lookup -> 2-layer LSTM (one step, h/c carried
between calls) -> FC (softmax_w transposed with transposeSubBuffers, matrix multiply,
+ softmax_b) -> top-1. Greedy generation of 200 characters must equal what TensorFlow's
own graph generates from the same checkpoint, on both backends.
"""

from __future__ import annotations

import numpy as np
import pytest

from tf2rt import Network, build_engine, load_engine, load_weights
from tf2rt.layouts import LSTM_GATES, TF_LSTM, split_gates, tf_stack, transpose_sub_buffers

# The 65 characters of tiny-shakespeare (the sample's vocabulary size).
VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
V, H, E, LAYERS = len(VOCAB), 128, 128, 2  # the sample uses H = E = 512; the layout is the same
PRIME = "ROMEO"
STEPS = 200


@pytest.fixture(scope="module")
def charrnn(tf, tmp_path_factory):
    """Write the checkpoint and generate with TensorFlow's own graph: (prefix, generated text)."""
    v1 = tf.compat.v1
    prefix = str(tmp_path_factory.mktemp("charrnn") / "model-20080")
    g = tf.Graph()
    with g.as_default():
        ids = v1.placeholder(tf.int32, [1, 1], name="char")
        h_in = v1.placeholder(tf.float32, [LAYERS, 1, H], name="hiddenIn")
        c_in = v1.placeholder(tf.float32, [LAYERS, 1, H], name="cellIn")
        embedding = v1.get_variable("embedding", [V, E])
        x = tf.nn.embedding_lookup(embedding, ids)
        cells = [v1.nn.rnn_cell.BasicLSTMCell(H, forget_bias=0.0, state_is_tuple=True) for _ in range(LAYERS)]
        cell = v1.nn.rnn_cell.MultiRNNCell(cells, state_is_tuple=True)
        init = tuple(v1.nn.rnn_cell.LSTMStateTuple(c_in[l], h_in[l]) for l in range(LAYERS))
        y, state = v1.nn.dynamic_rnn(cell, x, initial_state=init, scope="rnn")
        with v1.variable_scope("softmax"):
            w = v1.get_variable("softmax_w", [H, V])
            b = v1.get_variable("softmax_b", [V])
        logits = tf.matmul(y[:, 0], w) + b
        pred = tf.argmax(logits, axis=1)
        h_out = tf.stack([s.h for s in state])
        c_out = tf.stack([s.c for s in state])
        rng = np.random.default_rng(2019)
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            # Distinct random values everywhere, scaled so that greedy generation neither settles
            # on one character nor turns chaotic (which would amplify float rounding differences).
            scale = {"embedding": 1.0, "kernel": 0.25, "bias": 0.3, "softmax_w": 0.5, "softmax_b": 0.3}
            for var in v1.global_variables():
                std = scale[var.op.name.rsplit("/", 1)[-1]]
                var.load((rng.standard_normal(var.shape.as_list()) * std).astype(np.float32), sess)
            v1.train.Saver().save(sess, prefix, write_meta_graph=False)
            h = np.zeros((LAYERS, 1, H), np.float32)
            c = np.zeros((LAYERS, 1, H), np.float32)
            text = ""
            feed = list(PRIME)
            for step in range(len(PRIME) - 1 + STEPS):
                ch = feed[step] if step < len(PRIME) else text[-1]
                p, h, c = sess.run((pred, h_out, c_out), {ids: [[VOCAB.index(ch)]], h_in: h, c_in: c})
                if step >= len(PRIME) - 1:
                    text += VOCAB[int(p[0])]
    return prefix, text


def convert_rnn_weights(kernel: np.ndarray, data_size: int) -> np.ndarray:
    """sampleCharRNN's convertRNNWeights: transpose the input [E, 4H] and recurrent [H, 4H]
    halves of a TF kernel separately -> Wi Wc Wf Wo Ri Rc Rf Ro, each row-major [H, in]."""
    hidden = kernel.shape[1] // 4
    buf = kernel.ravel()
    w = transpose_sub_buffers(buf[: data_size * 4 * hidden], 1, data_size, 4 * hidden)
    r = transpose_sub_buffers(buf[data_size * 4 * hidden:], 1, hidden, 4 * hidden)
    return np.concatenate([w, r])


def build_charrnn_network(weights: dict) -> Network:
    """The sample's network, with the embedding lookup inside it (a gather)."""
    arr = {k: v.array for k, v in weights.items()}
    net = Network("charrnn")
    char = net.add_input("char", "int32", (1, 1))
    hidden_in = net.add_input("hiddenIn", "float32", (1, LAYERS, H))
    cell_in = net.add_input("cellIn", "float32", (1, LAYERS, H))
    table = net.add_constant((V, E), arr["embedding"], name="embedding").output
    data = net.add_gather(table, char, axis=0, name="embedding_lookup").output  # [1, 1, E]
    rnn = net.add_rnn_v2(data, LAYERS, H, 1, "lstm", name="rnn")
    gate_order = TF_LSTM.gates  # the sample's {kINPUT, kCELL, kFORGET, kOUTPUT}
    for layer in range(LAYERS):
        scope = f"rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell"
        in_size = E if layer == 0 else H
        slabs = convert_rnn_weights(arr[f"{scope}/kernel"], in_size)
        w_part, r_part = slabs[: 4 * H * in_size], slabs[4 * H * in_size:]
        for g, gate in enumerate(gate_order):
            rnn.set_weights_for_gate(layer, gate, True, w_part[g * H * in_size:(g + 1) * H * in_size].reshape(H, in_size))
            rnn.set_weights_for_gate(layer, gate, False, r_part[g * H * H:(g + 1) * H * H].reshape(H, H))
        # convertRNNBias: TF's single bias goes to Wb, Rb = 0 (forget_bias 0: nothing to add)
        for gate, bias in split_gates(arr[f"{scope}/bias"], TF_LSTM).items():
            rnn.set_bias_for_gate(layer, gate, True, bias)
            rnn.set_bias_for_gate(layer, gate, False, np.zeros(H, np.float32))
    rnn.hidden_state = hidden_in
    rnn.cell_state = cell_in
    out = net.add_shuffle(rnn.get_output(0), reshape_dims=(1, H), name="rnn_out").output  # [1, H]
    fc_w = transpose_sub_buffers(arr["softmax/softmax_w"].ravel(), 1, H, V).reshape(V, H)
    fc = net.add_constant((V, H), fc_w, name="softmax/softmax_w").output
    mm = net.add_matrix_multiply(fc, "none", out, "transpose", name="fc").output  # [V, 1]
    bias = net.add_constant((V, 1), arr["softmax/softmax_b"].reshape(V, 1), name="softmax/softmax_b").output
    logits = net.add_elementwise(mm, bias, "sum", name="logits").output
    top = net.add_topk(logits, "max", 1, axis=0, name="top1")
    net.mark_output(top.get_output(1), "pred")
    net.mark_output(rnn.get_output(1), "hiddenOut")
    net.mark_output(rnn.get_output(2), "cellOut")
    return net


def test_sample_conversion_equals_layouts_conversion(charrnn):
    """The sample's buffer-level conversion gives the same per-gate slabs as tf2rt.layouts."""
    prefix, _ = charrnn
    weights = load_weights(prefix)
    stack = tf_stack({k: v.array for k, v in weights.items()}, "rnn", forget_bias=0.0)
    for layer in range(LAYERS):
        kernel = weights[f"rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell/kernel"].array
        slabs = convert_rnn_weights(kernel, kernel.shape[0] - H)
        cell = stack[layer][0]
        expected = np.concatenate([cell.W[g].ravel() for g in TF_LSTM.gates] + [cell.R[g].ravel() for g in TF_LSTM.gates])
        assert np.array_equal(slabs, expected)
        assert set(LSTM_GATES) == set(TF_LSTM.gates)


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_generates_the_same_200_characters_as_tensorflow(charrnn, backend, tmp_path):
    prefix, expected = charrnn
    engine = build_engine(build_charrnn_network(load_weights(prefix)))
    engine = load_engine(engine.save(tmp_path / "charrnn.onnx"))  # through the engine file
    stream = engine.stream(backend)
    text = ""
    for step in range(len(PRIME) - 1 + STEPS):
        ch = PRIME[step] if step < len(PRIME) else text[-1]
        out = stream.step({"char": np.array([[VOCAB.index(ch)]], np.int32)})
        if step >= len(PRIME) - 1:
            text += VOCAB[int(out["pred"].reshape(-1)[0])]
    stream.close()
    assert len(text) == STEPS
    assert len(set(text)) > 3, "degenerate generation would not test much"
    assert text == expected
