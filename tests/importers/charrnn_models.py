"""TensorFlow char-RNN models written the way common char-rnn training code writes them.

Each writer builds a TF1 graph (placeholders, `MultiRNNCell`, `dynamic_rnn`, an embedding
or a one-hot input, a `softmax_w`/`softmax_b` head, an Adam optimizer so the checkpoint
holds slots), fills EVERY variable (biases included) with distinct random values, and
saves a name-based checkpoint with or without its `.meta` graph. `TFSampler` rebuilds the
same model for sampling (batch 1, one character per call, state fed back), as char-rnn
sampling scripts do; it is the oracle the converted engines are compared with.

Run as a script to write one model: `python tests/importers/charrnn_models.py OUT_DIR`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclasses.dataclass(frozen=True)
class CharRNNSpec:
    """What one test char-RNN looks like."""

    cell: str = "lstm"  # "lstm" (BasicLSTMCell), "lstm_cell" (LSTMCell), "gru", "rnn"
    layers: int = 2
    hidden: int = 16
    vocab: int = 11
    embedding: int | None = 8  # None = one-hot input
    forget_bias: float = 1.0
    activation: str | None = None  # None = the cell's default (tanh)
    scope: str = "rnnlm"
    seed: int = 0
    hidden_sizes: tuple[int, ...] = ()  # per-layer sizes (the last one must equal `hidden`)
    legacy_graph: bool = False  # TF 1.x-era graph: ref variables (VariableV2) and Enter/Exit loops
    peepholes: bool = False  # LSTMCell(use_peepholes=True)
    cell_clip: float | None = None  # LSTMCell(cell_clip=...)
    scale: float = 2.5  # weights ~ U(+-scale/sqrt(fan_in)): large enough for non-trivial greedy text

    @property
    def label(self) -> str:
        inp = f"emb{self.embedding}" if self.embedding else "onehot"
        return f"{self.cell}x{self.layers}-h{self.hidden}-{inp}-fb{self.forget_bias:g}"


def _make_cell(tf1, spec: CharRNNSpec, layer: int = -1):
    rnn_cell = tf1.nn.rnn_cell
    act = {"relu": tf1.nn.relu, "tanh": tf1.tanh, None: None}[spec.activation]
    if layer >= 0 and spec.hidden_sizes:
        spec = dataclasses.replace(spec, hidden=spec.hidden_sizes[layer])
    if spec.cell == "lstm":
        return rnn_cell.BasicLSTMCell(spec.hidden, forget_bias=spec.forget_bias, activation=act)
    if spec.cell == "lstm_cell":
        return rnn_cell.LSTMCell(spec.hidden, forget_bias=spec.forget_bias, activation=act,
                                 use_peepholes=spec.peepholes, cell_clip=spec.cell_clip)
    if spec.cell == "gru":
        return rnn_cell.GRUCell(spec.hidden, activation=act)
    if spec.cell == "rnn":
        return rnn_cell.BasicRNNCell(spec.hidden, activation=act)
    raise ValueError(spec.cell)


class CharRNNGraph:
    """The char-rnn model graph (batch x seq placeholders), in the usual training-code style."""

    def __init__(self, tf, spec: CharRNNSpec, batch: int | None, seq: int | None, training: bool):
        tf1 = tf.compat.v1
        self.spec = spec
        cells = [_make_cell(tf1, spec, l) for l in range(spec.layers)]
        self.cell = tf1.nn.rnn_cell.MultiRNNCell(cells, state_is_tuple=True)
        self.input_data = tf1.placeholder(tf.int32, [batch, seq], name="input_data")
        self.targets = tf1.placeholder(tf.int32, [batch, seq], name="targets")
        n = 1 if batch is None else batch
        self.initial_state = self.cell.zero_state(n if batch else tf.shape(self.input_data)[0], tf.float32)
        with tf1.variable_scope(spec.scope):
            softmax_w = tf1.get_variable("softmax_w", [spec.hidden, spec.vocab])
            softmax_b = tf1.get_variable("softmax_b", [spec.vocab])
            if spec.embedding:
                embedding = tf1.get_variable("embedding", [spec.vocab, spec.embedding])
                inputs = tf1.nn.embedding_lookup(embedding, self.input_data)
            else:
                inputs = tf.one_hot(self.input_data, spec.vocab, dtype=tf.float32)
        outputs, self.final_state = tf1.nn.dynamic_rnn(
            self.cell, inputs, initial_state=self.initial_state, scope=spec.scope
        )
        output = tf.reshape(outputs, [-1, spec.hidden])
        self.logits = tf.add(tf.matmul(output, softmax_w), softmax_b, name="logits")
        self.probs = tf.nn.softmax(self.logits, name="probs")
        if training:
            loss = tf1.losses.sparse_softmax_cross_entropy(tf.reshape(self.targets, [-1]), self.logits)
            self.train_op = tf1.train.AdamOptimizer(1e-3).minimize(
                loss, global_step=tf1.train.get_or_create_global_step()
            )


def write_charrnn(tf, spec: CharRNNSpec, out_dir: str | Path, meta: bool = True, rename=None) -> Path:
    """Write a checkpoint (prefix `out_dir/model.ckpt`) of `spec` with distinct random weights.

    `rename(name) -> name` saves the variables under other names (e.g. the names TF's
    cuDNN-compatible cells use), which also leaves out the optimizer slots.
    """
    tf1 = tf.compat.v1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    if spec.legacy_graph:
        tf1.disable_control_flow_v2()
        tf1.disable_resource_variables()
    try:
        return _write(tf, tf1, spec, out, rng, meta, rename)
    finally:
        if spec.legacy_graph:
            tf1.enable_control_flow_v2()
            tf1.enable_resource_variables()


def _write(tf, tf1, spec: CharRNNSpec, out: Path, rng, meta: bool, rename) -> Path:
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(spec.seed)
        model = CharRNNGraph(tf, spec, batch=4, seq=7, training=True)
        if rename is None:
            saver = tf1.train.Saver()
        else:
            saver = tf1.train.Saver({rename(v.op.name): v for v in tf1.trainable_variables()})
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            # One real training step creates non-trivial optimizer slots ...
            x = rng.integers(0, spec.vocab, (4, 7)).astype(np.int32)
            sess.run(model.train_op, {model.input_data: x, model.targets: np.roll(x, -1, axis=1)})
            # ... then every model weight gets its own distinct values (biases included).
            for v in tf1.trainable_variables():
                shape = v.shape.as_list()
                scale = 0.6 if len(shape) == 1 else spec.scale / np.sqrt(shape[0])
                v.load(rng.uniform(-scale, scale, shape).astype(np.float32), sess)
            prefix = saver.save(sess, str(out / "model.ckpt"), write_meta_graph=meta)
    return Path(prefix)


class TFSampler:
    """The same model rebuilt for sampling (batch 1, one char per call), restored from a checkpoint."""

    def __init__(self, tf, spec: CharRNNSpec, prefix: str | Path):
        tf1 = tf.compat.v1
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.model = CharRNNGraph(tf, spec, batch=1, seq=1, training=False)
            self.sess = tf1.Session(graph=self.graph)
            tf1.train.Saver().restore(self.sess, str(prefix))

    def zero_state(self):
        return self.sess.run(self.model.initial_state)

    def step(self, char_id: int, state):
        """Feed one id; return (logits [V], new state)."""
        m = self.model
        logits, state = self.sess.run(
            [m.logits, m.final_state], {m.input_data: [[char_id]], m.initial_state: state}
        )
        return logits[0], state

    def greedy(self, prime: list[int], length: int) -> tuple[list[int], np.ndarray]:
        """Greedy generation after `prime`; returns (generated ids, logits of every step)."""
        state = self.zero_state()
        all_logits = []
        for c in prime[:-1]:
            logits, state = self.step(c, state)
            all_logits.append(logits)
        out: list[int] = []
        c = prime[-1]
        for _ in range(length):
            logits, state = self.step(c, state)
            all_logits.append(logits)
            c = int(np.argmax(logits))
            out.append(c)
        return out, np.stack(all_logits)

    def close(self) -> None:
        self.sess.close()


def write_tagger(tf, out_dir: str | Path, cell: str = "lstm_cell", layers: int = 2, hidden: int = 6,
                 vocab: int = 13, embedding: int = 5, tags: int = 4, seed: int = 3,
                 stack: bool = True) -> tuple[Path, dict]:
    """A bidirectional sequence tagger (stack_bidirectional_dynamic_rnn layout, sequence lengths).

    Returns (checkpoint prefix, {"ids", "lengths", "logits"}): TensorFlow's logits for a
    random padded batch, the oracle for the converted engine.
    """
    tf1 = tf.compat.v1
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spec = CharRNNSpec(cell=cell, hidden=hidden, vocab=vocab, embedding=embedding)
    graph = tf.Graph()
    with graph.as_default():
        ids = tf1.placeholder(tf.int32, [None, None], name="word_ids")
        lengths = tf1.placeholder(tf.int32, [None], name="lengths")
        with tf1.variable_scope("words"):
            table = tf1.get_variable("embedding", [vocab, embedding])
        x = tf1.nn.embedding_lookup(table, ids)
        if not stack:  # one plain bidirectional_dynamic_rnn layer (scope "bidirectional_rnn")
            (fw, bw), _ = tf1.nn.bidirectional_dynamic_rnn(
                _make_cell(tf1, spec), _make_cell(tf1, spec), x, sequence_length=lengths, dtype=tf.float32)
            x = tf.concat([fw, bw], axis=2)
            layers = 0
        # What tf.contrib.rnn.stack_bidirectional_dynamic_rnn did (it is gone from TF 2).
        with tf1.variable_scope("stack_bidirectional_rnn"):
            for i in range(layers):
                with tf1.variable_scope(f"cell_{i}"):
                    (fw, bw), _ = tf1.nn.bidirectional_dynamic_rnn(
                        _make_cell(tf1, spec), _make_cell(tf1, spec), x, sequence_length=lengths, dtype=tf.float32)
                    x = tf.concat([fw, bw], axis=2)
        with tf1.variable_scope("tagger"):
            w = tf1.get_variable("softmax_w", [2 * hidden, tags])
            b = tf1.get_variable("softmax_b", [tags])
        logits = tf.add(tf.einsum("nsh,ht->nst", x, w), b, name="tag_logits")
        tf.nn.softmax(logits, name="tag_probs")
        saver = tf1.train.Saver()
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for v in tf1.trainable_variables():
                shape = v.shape.as_list()
                scale = 0.6 if len(shape) == 1 else 2.0 / np.sqrt(shape[0])
                v.load(rng.uniform(-scale, scale, shape).astype(np.float32), sess)
            prefix = saver.save(sess, str(out / "tagger.ckpt"))
            feed_ids = rng.integers(0, vocab, (3, 9)).astype(np.int32)
            feed_len = np.array([9, 4, 6], np.int32)
            oracle = sess.run(logits, {ids: feed_ids, lengths: feed_len})
    return Path(prefix), {"ids": feed_ids, "lengths": feed_len, "logits": oracle}


if __name__ == "__main__":  # pragma: no cover - manual fixture writing
    import tensorflow as tf

    print(write_charrnn(tf, CharRNNSpec(), sys.argv[1] if len(sys.argv) > 1 else "/tmp/charrnn"))
