"""RNN while loops recognised in frozen graphs: TF1 control flow (Enter/Merge/Switch/Exit)
and TF2 `While` functions, every cell TF1 builds, sequence lengths, several layers of
different kinds in one loop. Every variable (biases included) gets distinct random values,
and the frozen engine is compared with TensorFlow within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.graphdef_cases import control_flow

CELLS = {
    "basic_lstm_fb0.5": lambda r, n: r.BasicLSTMCell(n, forget_bias=0.5),
    "lstm_cell": lambda r, n: r.LSTMCell(n),
    "gru": lambda r, n: r.GRUCell(n),
    "rnn_relu": lambda r, n: r.BasicRNNCell(n, activation=__import__("tensorflow").nn.relu),
    "lstm_peepholes_fb0.7": lambda r, n: r.LSTMCell(n, use_peepholes=True, forget_bias=0.7),
    "lstm+gru": None,  # two layers of different kinds in one MultiRNNCell
}


def _fill_and_freeze(tf, sess, graph, rng, outputs: list[str]):
    """Every variable gets distinct random values (biases included); the frozen GraphDef."""
    tf1 = tf.compat.v1
    sess.run(tf1.global_variables_initializer())
    for v in tf1.trainable_variables():
        v.load(rng.uniform(-0.9, 0.9, v.shape.as_list()).astype(np.float32), sess)
    return tf1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)


def _freeze(tf, cell_name: str, v2: bool, seq_lengths: bool, tmp_path):
    tf1 = tf.compat.v1
    rng = np.random.default_rng(len(cell_name) + 10 * v2 + 100 * seq_lengths)
    with control_flow(tf, v2):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
            lengths = tf1.placeholder(tf.int32, [None], name="lengths") if seq_lengths else None
            r = tf1.nn.rnn_cell
            if CELLS[cell_name] is None:
                cell = r.MultiRNNCell([r.LSTMCell(5), r.GRUCell(4)])
            else:
                cell = r.MultiRNNCell([CELLS[cell_name](r, 5), CELLS[cell_name](r, 5)])
            out, _ = tf1.nn.dynamic_rnn(cell, x, sequence_length=lengths, dtype=tf.float32)
            y = tf.identity(out, name="y")
            with tf1.Session() as sess:
                gd = _fill_and_freeze(tf, sess, g, rng, ["y"])
                feeds = {"x": rng.standard_normal((3, 6, 3)).astype(np.float32)}
                tf_feeds = {x: feeds["x"]}
                if seq_lengths:
                    feeds["lengths"] = np.array([6, 2, 4], np.int32)
                    tf_feeds[lengths] = feeds["lengths"]
                want = sess.run(y, tf_feeds)
    path = tmp_path / "model.pb"
    path.write_bytes(gd.SerializeToString())
    return path, feeds, want


@pytest.mark.parametrize("v2", [False, True], ids=["tf1-control-flow", "tf2-while"])
@pytest.mark.parametrize("cell_name", list(CELLS))
def test_frozen_dynamic_rnn_matches_tensorflow(tf, tmp_path, cell_name, v2):
    from tf2rt import convert

    path, feeds, want = _freeze(tf, cell_name, v2, False, tmp_path)
    engine = convert(path)
    got = engine.run(feeds)["y"]
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= 1e-5
    # the loop became native recurrent nodes, not an unrolled or Loop graph
    ops = {n.op_type for n in engine.onnx.graph.node}
    assert ops & {"LSTM", "GRU", "RNN"} and "Loop" not in ops and "Scan" not in ops


@pytest.mark.parametrize("v2", [False, True], ids=["tf1-control-flow", "tf2-while"])
def test_sequence_lengths(tf, tmp_path, v2):
    from tf2rt import convert

    path, feeds, want = _freeze(tf, "gru", v2, True, tmp_path)
    engine = convert(path)
    assert "lengths" in engine.input_names
    got = engine.run(feeds)["y"]
    assert float(np.abs(got - want).max()) <= 1e-5


def test_streaming_states_are_optional_and_carry(tf, tmp_path):
    """Zero-initialised states become optional inputs paired with final-state outputs."""
    from tf2rt import convert

    path, feeds, want = _freeze(tf, "basic_lstm_fb0.5", False, False, tmp_path)
    engine = convert(path)
    assert len(engine.states) == 2
    full = engine.run(feeds)["y"]
    stream = engine.stream()
    parts = [stream.step({"x": feeds["x"][:, t:t + 1]})["y"] for t in range(feeds["x"].shape[1])]
    assert float(np.abs(np.concatenate(parts, axis=1) - want).max()) <= 1e-5
    assert float(np.abs(full - want).max()) <= 1e-5


@pytest.mark.parametrize("cell_name", ["basic_lstm_fb0.5", "lstm_cell", "gru", "rnn_relu"])
def test_frozen_static_rnn_becomes_one_native_layer(tf, tmp_path, cell_name):
    """static_rnn unrolls the cell once per step; the engine holds one native RNN node and no
    per-step ops, and matches TensorFlow."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(3)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [2, 5, 3], name="x")
        out, state = tf1.nn.static_rnn(CELLS[cell_name](tf1.nn.rnn_cell, 4), tf.unstack(x, axis=1),
                                       dtype=tf.float32)
        tf.identity(tf.stack(out, axis=1), name="y")
        last = state.h if hasattr(state, "h") else state
        tf.identity(last, name="last")
        with tf1.Session() as sess:
            gd = _fill_and_freeze(tf, sess, g, rng, ["y", "last"])
            xv = rng.standard_normal((2, 5, 3)).astype(np.float32)
            want_y, want_last = sess.run(["y:0", "last:0"], {x: xv})
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb")  # default outputs: the graph's own sinks, nothing of the unrolled steps
    assert set(engine.output_names) - {o for _i, o in engine.states} == {"y", "last"}
    out = engine.run({"x": xv})
    assert float(np.abs(out["y"] - want_y).max()) <= 1e-5
    assert float(np.abs(out["last"] - want_last).max()) <= 1e-5
    ops = [n.op_type for n in engine.onnx.graph.node]
    assert sum(op in ("LSTM", "GRU", "RNN") for op in ops) == 1
    assert not {"Sigmoid", "Tanh", "MatMul", "Split"} & set(ops)


def test_dense_on_rnn_outputs_with_dynamic_sizes(tf, tmp_path):
    """tf.layers.dense on [batch, time, H] writes a tensordot whose reshape back reads sizes
    from Shape() at run time; it becomes one product over the last axis."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(9)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
        out, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.GRUCell(4), x, dtype=tf.float32)
        tf.identity(tf1.layers.dense(out, 5, name="proj"), name="y")
        with tf1.Session() as sess:
            gd = _fill_and_freeze(tf, sess, g, rng, ["y"])
            feeds = [rng.standard_normal((2, 5, 3)).astype(np.float32), rng.standard_normal((3, 8, 3)).astype(np.float32)]
            wants = [sess.run("y:0", {x: f}) for f in feeds]
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb")
    for f, want in zip(feeds, wants):  # two batch and time sizes through one engine
        assert float(np.abs(engine.run({"x": f})["y"] - want).max()) <= 1e-5


@pytest.mark.parametrize("lengths", [True, False], ids=["sequence-lengths", "no-lengths"])
@pytest.mark.parametrize("v2", [False, True], ids=["tf1-control-flow", "tf2-while"])
def test_bidirectional_dynamic_rnn_is_one_bidirectional_layer(tf, tmp_path, v2, lengths):
    """bidirectional_dynamic_rnn reverses the input for its backward loop (ReverseSequence with
    lengths, ReverseV2 without) and its output back; both loops become one bidirectional layer
    that runs any length."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(5)
    with control_flow(tf, v2):
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
            L = tf1.placeholder(tf.int32, [None], name="lengths") if lengths else None
            r = tf1.nn.rnn_cell
            (fw, bw), (sf, sb) = tf1.nn.bidirectional_dynamic_rnn(r.LSTMCell(4), r.LSTMCell(4), x, sequence_length=L,
                                                                  dtype=tf.float32)
            tf.identity(tf.concat([fw, bw], 2), name="y")
            tf.identity(tf.concat([sf.h, sb.h], 1), name="h")
            with tf1.Session() as sess:
                gd = _fill_and_freeze(tf, sess, g, rng, ["y", "h"])
                cases = []
                for B, T in ((3, 6), (2, 9)):
                    feeds = {"x": rng.standard_normal((B, T, 3)).astype(np.float32)}
                    tf_feeds = {x: feeds["x"]}
                    if lengths:
                        feeds["lengths"] = rng.integers(1, T + 1, B).astype(np.int32)
                        tf_feeds[L] = feeds["lengths"]
                    cases.append((feeds, sess.run(["y:0", "h:0"], tf_feeds)))
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb")
    assert [n.op_type for n in engine.onnx.graph.node].count("LSTM") == 1
    for feeds, (want_y, want_h) in cases:
        out = engine.run(feeds)
        assert float(np.abs(out["y"] - want_y).max()) <= 1e-5
        assert float(np.abs(out["h"] - want_h).max()) <= 1e-5


@pytest.mark.parametrize("lengths", [True, False], ids=["sequence-lengths", "no-lengths"])
def test_bidirectional_with_stacks_in_each_direction(tf, tmp_path, lengths):
    """MultiRNNCell stacks in both directions of bidirectional_dynamic_rnn: the forward stack
    and a reverse-direction stack (each layer reading the one below in the input's order)."""
    tf1 = tf.compat.v1
    rng = np.random.default_rng(6)
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, None, 3], name="x")
        L = tf1.placeholder(tf.int32, [None], name="lengths") if lengths else None
        r = tf1.nn.rnn_cell
        stack = lambda: r.MultiRNNCell([r.GRUCell(4), r.GRUCell(4)])  # noqa: E731
        (fw, bw), _ = tf1.nn.bidirectional_dynamic_rnn(stack(), stack(), x, sequence_length=L, dtype=tf.float32)
        tf.identity(tf.concat([fw, bw], 2), name="y")
        with tf1.Session() as sess:
            gd = _fill_and_freeze(tf, sess, g, rng, ["y"])
            feeds = {"x": rng.standard_normal((3, 7, 3)).astype(np.float32)}
            tf_feeds = {x: feeds["x"]}
            if lengths:
                feeds["lengths"] = np.array([7, 3, 5], np.int32)
                tf_feeds[L] = feeds["lengths"]
            want = sess.run("y:0", tf_feeds)
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    from tf2rt import convert

    engine = convert(tmp_path / "m.pb")
    directions = [a.s.decode() for n in engine.onnx.graph.node if n.op_type == "GRU"
                  for a in n.attribute if a.name == "direction"]
    assert sorted(directions) == ["forward", "forward", "reverse", "reverse"]
    got = engine.run(feeds)["y"]
    assert float(np.abs(got - want).max()) <= 1e-5
    for backend in ("reference",):
        assert float(np.abs(engine.run(feeds, backend=backend)["y"] - want).max()) <= 1e-5
