"""Small TensorFlow / Keras models saved for the format, API, detection and CLI tests.

Each maker takes an output directory and returns the path to open. Values are random so
every gate and bias differs. Cells that current TensorFlow no longer ships (tf.contrib's
cuDNN-compatible and block cells) are recreated as variables with the names and shapes
their savers used (see docs/weights.md and the layout reference).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

SEED = 99


def _session(tf1, graph):
    config = tf1.ConfigProto(inter_op_parallelism_threads=1, intra_op_parallelism_threads=1)
    return tf1.Session(graph=graph, config=config)


def tf1_multi_rnn(tf, out: Path) -> Path:
    """TF1: MultiRNNCell(BasicLSTMCell(5), GRUCell(4)) over input 3, a softmax layer, Adam slots."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(SEED)
        x = tf1.placeholder(tf.float32, [2, 4, 3], name="x")
        cell = tf1.nn.rnn_cell.MultiRNNCell([tf1.nn.rnn_cell.BasicLSTMCell(5), tf1.nn.rnn_cell.GRUCell(4)])
        y, _ = tf1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        w = tf1.get_variable("softmax/softmax_w", [4, 6])
        b = tf1.get_variable("softmax/softmax_b", [6], initializer=tf1.random_normal_initializer())
        loss = tf.reduce_sum(tf.matmul(y[:, -1], w) + b)
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        with _session(tf1, g) as sess:
            sess.run(tf1.global_variables_initializer())
            # random biases so no gate looks like another
            for v in tf1.trainable_variables():
                if "bias" in v.name:
                    sess.run(v.assign(tf1.random_normal(v.shape)))
            sess.run(train, {x: np.random.default_rng(SEED).normal(size=(2, 4, 3))})
            return Path(tf1.train.Saver().save(sess, str(out / "multi.ckpt"), global_step=3))


def tf1_cell_zoo(tf, out: Path) -> Path:
    """TF1: BasicRNNCell, LSTMCell with peepholes + projection, a bidirectional LSTM, and the
    variable layouts of tf.contrib cells (cuDNN-compatible in both historic namings, GRUBlockCell,
    an opaque CudnnLSTM buffer)."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(SEED)
        x = tf1.placeholder(tf.float32, [2, 4, 3], name="x")
        with tf1.variable_scope("plain"):
            tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.BasicRNNCell(6), x, dtype=tf.float32)
        with tf1.variable_scope("peep"):
            tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.LSTMCell(5, use_peepholes=True, num_proj=2), x, dtype=tf.float32)
        with tf1.variable_scope("bi"):
            tf1.nn.bidirectional_dynamic_rnn(tf1.nn.rnn_cell.BasicLSTMCell(3), tf1.nn.rnn_cell.BasicLSTMCell(3),
                                             x, dtype=tf.float32)
        gv = tf1.get_variable
        # later cuDNN saveable: summed biases, candidate split into input/hidden projections
        p = "cudnn/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
        gv(p + "/kernel", [3 + 7, 28]), gv(p + "/bias", [28])
        p = "cudnn/rnn/multi_rnn_cell/cell_1/cudnn_compatible_gru_cell"
        gv(p + "/gates/kernel", [7 + 4, 8]), gv(p + "/gates/bias", [8])
        gv(p + "/candidate/input_projection/kernel", [7, 4]), gv(p + "/candidate/input_projection/bias", [4])
        gv(p + "/candidate/hidden_projection/kernel", [4, 4]), gv(p + "/candidate/hidden_projection/bias", [4])
        # earlier cuDNN saveable: extra bias_cudnn_0/1 with the separate biases
        p = "multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
        gv(p + "/kernel", [2 + 3, 12]), gv(p + "/bias", [12])
        gv(p + "/bias_cudnn_0", [12]), gv(p + "/bias_cudnn_1", [12])
        # GRUBlockCell: gate kernel saved as w_ru here ([in+H, 2H]) and candidate as w_c
        p = "block/gru_cell"
        gv(p + "/w_ru", [3 + 2, 4]), gv(p + "/b_ru", [4]), gv(p + "/w_c", [3 + 2, 2]), gv(p + "/b_c", [2])
        gv("opaque/cudnn_lstm/opaque_kernel", [1000])
        with _session(tf1, g) as sess:
            sess.run(tf1.global_variables_initializer())
            return Path(tf1.train.Saver().save(sess, str(out / "zoo.ckpt"), write_meta_graph=False))


def keras_lstm_tf2(tf, keras, out: Path) -> Path:
    """TF2 object-based checkpoint (tf.train.Checkpoint) of a Keras LSTM + GRU model after an Adam step."""
    inputs = keras.Input((4, 3))
    h = keras.layers.LSTM(5, return_sequences=True, name="lstm")(inputs)
    h = keras.layers.GRU(2, name="gru")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(h))
    opt = keras.optimizers.Adam(0.01)
    model.compile(optimizer=opt, loss="mse")
    rng = np.random.default_rng(SEED)
    model.fit(rng.normal(size=(4, 4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32),
              verbose=0, epochs=1)
    return Path(tf.train.Checkpoint(model=model, optimizer=opt).write(str(out / "keras_tf2")))


def keras_model(keras, out: Path, name: str) -> tuple[Path, object]:
    """A Keras model (Bidirectional LSTM, GRU, SimpleRNN, Dense) saved as `name` (.keras or .h5)."""
    inputs = keras.Input((4, 3))
    h = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True), name="bi")(inputs)
    h = keras.layers.GRU(4, return_sequences=True, reset_after=False, name="gru_old")(h)
    h = keras.layers.SimpleRNN(2, name="simple")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="dense")(h))
    rng = np.random.default_rng(SEED)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    path = out / name
    model.save(str(path))
    return path, model


def dumptfwts_reference(tensors: dict[str, np.ndarray], v1: bool) -> bytes:
    """dumpTFWts.py's writing loop (TensorRT samples/common), on a dict instead of a TF reader,
    with the v2 blob written in binary as Python 2 did."""
    out = [b"%d\n" % len(tensors)]
    for key in sorted(tensors):
        tensor = tensors[key]
        val = tensor.size if v1 else tensor.shape
        out.append(("%s 0 %s " % (key.replace("/", "_"), val)).encode())
        if v1:
            for weight in tensor.flatten():
                out.append(("%s " % hex(struct.unpack("<I", struct.pack("<f", float(weight)))[0])[2:]).encode())
        else:
            out.append(tensor.flatten().tobytes())
        out.append(b"\n")
    return b"".join(out)


_CACHE: dict[str, Path] = {}


def cached(name: str, tmp_path_factory, tf) -> Path:
    """Make one of the checkpoints above once per test session (they take seconds each)."""
    if name not in _CACHE:
        out = tmp_path_factory.mktemp(name)
        if name == "tf1_multi_rnn":
            _CACHE[name] = tf1_multi_rnn(tf, out)
        elif name == "tf1_cell_zoo":
            _CACHE[name] = tf1_cell_zoo(tf, out)
        elif name in ("keras_lstm_tf2", "keras3_lstm_tf2"):
            import oracles

            keras = oracles.tf_keras() if name == "keras_lstm_tf2" else oracles.keras()
            _CACHE[name] = keras_lstm_tf2(tf, keras, out)
        else:
            raise KeyError(name)
    return _CACHE[name]
