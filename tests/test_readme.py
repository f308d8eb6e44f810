"""The README's Python workflow example runs as written and matches TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _workflow_block() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"## The workflow in Python\n\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its '## The workflow in Python' code block"
    return match.group(1)


def test_readme_workflow_matches_tensorflow(tf1, tmp_path, monkeypatch):
    rng = np.random.RandomState(7)
    graph = tf1.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf1.float32, [1, 100, 65])
        cells = [tf1.nn.rnn_cell.BasicLSTMCell(128) for _ in range(2)]  # forget_bias 1.0
        y, _ = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.MultiRNNCell(cells), x, dtype=tf1.float32, scope="rnn")
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for v in tf1.global_variables():  # distinct values in every gate and bias
                sess.run(v.assign(rng.uniform(-0.3, 0.3, v.shape).astype(np.float32)))
            xs = rng.randn(1, 100, 65).astype(np.float32)
            expected = sess.run(y, {x: xs})
            (tmp_path / "ckpt").mkdir()
            tf1.train.Saver().save(sess, str(tmp_path / "ckpt" / "model.ckpt"), global_step=1000)

    monkeypatch.chdir(tmp_path)
    namespace = {"xs": xs}
    exec(compile(_workflow_block(), str(README), "exec"), namespace)
    err = float(np.abs(namespace["y"] - expected).max())
    assert err <= 1e-5, f"README workflow differs from TensorFlow by {err:g}"
    assert (tmp_path / "lm.onnx").is_file()
