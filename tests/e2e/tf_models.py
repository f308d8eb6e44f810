"""Small TensorFlow recurrent models for end-to-end tests, and the tf2rt Networks built from them.

Each `TFCase` builds a TF1 graph (tf.compat.v1 cells under dynamic_rnn /
bidirectional_dynamic_rnn) or a Keras layer, fills EVERY variable with distinct random
values, runs it, and returns the variables by name with TensorFlow's outputs and final
states. `build_network` turns a CellWeights stack into a Network with the public API.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

import oracles

B, S, E = 3, 6, 5


@dataclasses.dataclass
class TFResult:
    """What TensorFlow computed: y [B, S, dirs*H], h/c [B, L, H] (L = layers*dirs)."""

    values: dict[str, np.ndarray]
    y: np.ndarray
    h: np.ndarray
    c: np.ndarray | None = None


def _fill(sess: Any, variables: list, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {}
    for v in variables:
        val = (rng.standard_normal(v.shape.as_list()) * 0.5).astype(np.float32)
        v.load(val, sess)
        values[v.op.name] = val
    return values


def _stack_states(states: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """[per-layer state] -> h [B, L, H], c [B, L, H] (or None)."""
    hs, cs = [], []
    for s in states:
        if hasattr(s, "h"):
            hs.append(s.h)
            cs.append(s.c)
        else:
            hs.append(s)
    h = np.stack(hs, axis=1)
    return h, (np.stack(cs, axis=1) if cs else None)


def run_tf1(
    make_cell: Callable[[Any], Any], x: np.ndarray, *, layers: int = 1, bidirectional: bool = False,
    seq_lengths: np.ndarray | None = None, seed: int = 0,
) -> TFResult:
    """dynamic_rnn over MultiRNNCell(layers) (scope "rnn"), or `layers` stacked
    bidirectional_dynamic_rnn calls (scopes "bi_<l>", each layer fed the concatenated outputs)."""
    tf = oracles.tf()
    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        xp = v1.placeholder(tf.float32, x.shape, name="x")
        lens = None if seq_lengths is None else tf.constant(seq_lengths.astype(np.int32))
        if bidirectional:
            inp, states = xp, []
            for l in range(layers):
                (yf, yb), (sf, sb) = v1.nn.bidirectional_dynamic_rnn(
                    make_cell(tf), make_cell(tf), inp, sequence_length=lens, dtype=tf.float32, scope=f"bi_{l}")
                inp = tf.concat([yf, yb], axis=-1)
                states += [sf, sb]
            fetch = (inp, states)
        else:
            cell = make_cell(tf) if layers == 1 else v1.nn.rnn_cell.MultiRNNCell([make_cell(tf) for _ in range(layers)])
            y, st = v1.nn.dynamic_rnn(cell, xp, sequence_length=lens, dtype=tf.float32, scope="rnn")
            fetch = (y, list(st) if layers > 1 else [st])
        with v1.Session(graph=g) as sess:
            sess.run(v1.global_variables_initializer())
            values = _fill(sess, v1.global_variables(), seed)
            y, states = sess.run(fetch, {xp: x})
    h, c = _stack_states(states)
    return TFResult(values, y, h, c)


def run_keras(make_layer: Callable[[Any], Any], x: np.ndarray, seed: int = 0):
    """A Keras 3 recurrent layer (return_sequences, return_state) with distinct random weights.
    Returns (layer, TFResult with values = {"weights": [...]})."""
    keras = oracles.keras()
    layer = make_layer(keras)
    layer(x)
    rng = np.random.default_rng(seed)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in layer.get_weights()])
    out = [np.asarray(o) for o in layer(x)]
    y, h = out[0], out[1][:, None, :]
    c = out[2][:, None, :] if len(out) > 2 else None
    return layer, TFResult({}, y, h, c)


def build_network(stack: list, *, batch: int, seq: int, input_size: int, seq_lengths: bool = False,
                  per_gate: bool = False, initial_state: bool = False, name: str = "rnn"):
    """A Network: input x [batch, seq, input_size] -> add_rnn_v2 -> outputs y, h_n (, c_n).

    per_gate=True sets weights with set_weights_for_gate / set_bias_for_gate from
    tf2rt.layouts.to_rnnv2; otherwise set_cell with each CellWeights."""
    from tf2rt import Network
    from tf2rt.layouts import layer_index, to_rnnv2

    first = stack[0][0]
    dirs = len(stack[0])
    op = first.activation if first.kind == "rnn" else first.kind
    net = Network(name)
    x = net.add_input("x", "float32", (batch, seq, input_size))
    rnn = net.add_rnn_v2(x, len(stack), first.hidden_size, seq, op,
                         direction="bidirection" if dirs == 2 else "unidirection", name=name)
    if per_gate:
        t = to_rnnv2(stack)
        for (li, gate, is_w), w in t.weights.items():
            rnn.set_weights_for_gate(li, gate, is_w, w)
        for (li, gate, is_w), b in t.biases.items():
            rnn.set_bias_for_gate(li, gate, is_w, b)
    else:
        for l, layer in enumerate(stack):
            for d, cell in enumerate(layer):
                rnn.set_cell(layer_index(l, d, dirs == 2), cell)
    if seq_lengths:
        rnn.seq_lengths = net.add_input("seq_lengths", "int32", (batch,))
    L = len(stack) * dirs
    if initial_state:
        rnn.hidden_state = net.add_input("h0", "float32", (batch, L, first.hidden_size))
        if first.kind == "lstm":
            rnn.cell_state = net.add_input("c0", "float32", (batch, L, first.hidden_size))
    net.mark_output(rnn.get_output(0), "y")
    net.mark_output(rnn.get_output(1), "h_n")
    if first.kind == "lstm":
        net.mark_output(rnn.get_output(2), "c_n")
    return net
