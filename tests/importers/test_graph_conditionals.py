"""tf.cond fixed at conversion: an `is_training` PlaceholderWithDefault left at its default
picks the inference branch (TF1 Switch/Merge and TF2 If alike); a condition computed at run
time is a clear error."""

from __future__ import annotations

import numpy as np
import pytest


def _graph(tf, v2: bool, tmp_path, runtime_pred: bool = False):
    tf1 = tf.compat.v1
    (tf1.enable_control_flow_v2 if v2 else tf1.disable_control_flow_v2)()
    rng = np.random.default_rng(1)
    try:
        g = tf.Graph()
        with g.as_default():
            x = tf1.placeholder(tf.float32, [None, 6], name="x")
            if runtime_pred:
                pred = tf.reduce_sum(x) > 0
            else:
                pred = tf1.placeholder_with_default(False, [], name="is_training")
            w = tf1.get_variable("w", [6, 4])
            h = tf.matmul(x, w)
            # training: noise-like branch; inference: a scaled activation
            y = tf.cond(pred, lambda: tf.nn.relu(h) * 3.0 - 1.0, lambda: tf.tanh(h) * 0.5 + 0.25)
            out = tf.nn.softmax(y, name="probs")
            with tf1.Session() as sess:
                sess.run(tf1.global_variables_initializer())
                w.load(rng.uniform(-1, 1, (6, 4)).astype(np.float32), sess)
                gd = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["probs"])
                xv = rng.standard_normal((3, 6)).astype(np.float32)
                want = sess.run(out, {x: xv})
                other = None if runtime_pred else sess.run(out, {x: xv, pred: True})
    finally:
        tf1.enable_control_flow_v2()
    (tmp_path / "m.pb").write_bytes(gd.SerializeToString())
    return tmp_path / "m.pb", xv, want, other


@pytest.mark.parametrize("v2", [False, True], ids=["tf1-switch-merge", "tf2-if"])
def test_cond_on_a_default_placeholder_takes_the_inference_branch(tf, tmp_path, v2):
    from tf2rt import convert

    path, xv, want, _other = _graph(tf, v2, tmp_path)
    engine = convert(path, outputs=["probs"])
    assert engine.input_names == ["x"]
    got = engine.run({"x": xv})["probs"]
    assert float(np.abs(got - want).max()) <= 1e-6


def test_cond_on_a_runtime_value_is_named(tf, tmp_path):
    from tf2rt import convert
    from tf2rt.errors import UnsupportedError

    path, _xv, _want, _other = _graph(tf, False, tmp_path, runtime_pred=True)
    with pytest.raises(UnsupportedError, match="computed at run time"):
        convert(path, outputs=["probs"])


def test_named_placeholder_keeps_the_condition_at_run_time(tf, tmp_path):
    """Naming the is_training placeholder as an input means the caller decides: the condition
    is not folded at its default; the TF2 If becomes an ONNX If that follows the fed value."""
    from tf2rt import convert

    path, xv, want, other = _graph(tf, True, tmp_path)
    engine = convert(path, inputs=["x", "is_training"], outputs=["probs"],
                     input_shapes={"x": [-1, 6], "is_training": []})
    assert "If" in {n.op_type for n in engine.onnx.graph.node}
    assert not np.allclose(want, other)  # the branches differ, so the check below can fail
    for flag, ref in ((False, want), (True, other)):
        for backend in ("onnxruntime", "reference"):
            got = engine.run({"x": xv, "is_training": np.array(flag)}, backend=backend)["probs"]
            assert float(np.abs(got - ref).max()) <= 1e-6
