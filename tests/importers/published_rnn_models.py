"""TF1 recurrent models written the way popular public projects write theirs.

Each writer builds a *training* graph the way such a project does (fixed-size placeholders,
a learning-rate variable, loss monitors, optimizer slots, dense projections, state
placeholders, unrolled or `dynamic_rnn` loops), gives every weight distinct random values,
saves a checkpoint with its `.meta` graph, and returns TensorFlow's own outputs for a
random batch: the oracle the converted engine is compared with.

Patterns (written from the projects' published descriptions, not copied):
* `char_rnn_unrolled`: a char-rnn trainer that splits the embedded batch into time steps
  and calls the cell once per step in one variable scope (what `legacy_seq2seq.rnn_decoder`
  does); `lr` is a non-trainable scalar variable; placeholders are [batch, seq].
* `char_rnn_monitors`: one-hot inputs, `forget_bias=0.0`, `dynamic_rnn`, and loss/perplexity
  monitor variables (`evaluation/loss_monitor/count`, ...) plus a learning-rate variable.
* `projected_lstm`: dense input and output projections stored as plain `W_in`/`b_in`/
  `W_out`/`b_out` variables, a cell created with `name="cell_1"`, and its initial state fed
  through a placeholder (`istate`, [batch, 2H]) split into (c, h).
* `seq2seq`: an encoder `dynamic_rnn` whose final state starts a decoder `dynamic_rnn`.
* `word_rnn_pointers`: the char-rnn trainer at word level with GRU cells, plus the stray
  bookkeeping a word-rnn fork of it keeps in the checkpoint: int `batch_pointer` and
  `epoch_pointer` variables with their assign ops, and summary histograms of the weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _fill_and_save(tf, sess, out: Path, rng, matrix_scale: float = 2.0, bias_scale: float = 0.5) -> str:
    tf1 = tf.compat.v1
    for v in tf1.global_variables():
        if v.dtype.base_dtype != tf.float32 or not v.shape.as_list() or "Adam" in v.op.name:
            continue
        shape = v.shape.as_list()
        scale = bias_scale if len(shape) == 1 else matrix_scale / np.sqrt(shape[0])
        v.load(rng.uniform(-scale, scale, shape).astype(np.float32), sess)
    return tf1.train.Saver().save(sess, str(out / "model.ckpt"))


def _train_step(tf, loss: Any, lr: Any, global_step: Any = None) -> Any:
    return tf.compat.v1.train.AdamOptimizer(lr).minimize(loss, global_step=global_step)


UNROLLED = {"vocab": 13, "size": 16, "layers": 2}


def _unrolled_graph(tf, batch: int, seq: int, gru: bool = False, vocab: int = UNROLLED["vocab"]) -> dict:
    """The char-rnn model: embedded ids split into steps, one cell call per step."""
    tf1 = tf.compat.v1
    size = UNROLLED["size"]
    kind = tf1.nn.rnn_cell.GRUCell if gru else tf1.nn.rnn_cell.BasicLSTMCell
    cell = tf1.nn.rnn_cell.MultiRNNCell([kind(size) for _ in range(UNROLLED["layers"])])
    input_data = tf1.placeholder(tf.int32, [batch, seq], name="input_data")
    state = initial = cell.zero_state(batch, tf.float32)
    with tf1.variable_scope("rnnlm"):
        softmax_w = tf1.get_variable("softmax_w", [size, vocab])
        softmax_b = tf1.get_variable("softmax_b", [vocab])
        embedding = tf1.get_variable("embedding", [vocab, size])
        steps = [tf.squeeze(s, [1]) for s in tf.split(tf1.nn.embedding_lookup(embedding, input_data), seq, 1)]
    outputs = []
    with tf1.variable_scope("rnnlm"):
        for i, x in enumerate(steps):
            if i > 0:
                tf1.get_variable_scope().reuse_variables()
            h, state = cell(x, state)
            outputs.append(h)
    flat = tf.reshape(tf.concat(outputs, 1), [-1, size])
    logits = tf.add(tf.matmul(flat, softmax_w), softmax_b, name="logits")
    return {"input_data": input_data, "initial": initial, "final": state, "logits": logits,
            "probs": tf.nn.softmax(logits, name="probs")}


def _unrolled_checkpoint(tf, out: Path, seed: int, batch: int, seq: int, vocab: int, gru: bool = False,
                         lr_value: float = 0.002, bookkeeping: Any = None) -> dict:
    """The unrolled trainer saved after one step; `bookkeeping(tf)` adds a project's own ops:
    (ops run with the training step, ops run after it)."""
    tf1 = tf.compat.v1
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    g = tf.Graph()
    with g.as_default():
        m = _unrolled_graph(tf, batch, seq, gru=gru, vocab=vocab)
        targets = tf1.placeholder(tf.int32, [batch, seq], name="targets")
        loss = tf.reduce_mean(tf1.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.reshape(targets, [-1]), logits=m["logits"]))
        lr = tf1.Variable(lr_value, trainable=False, name="lr")
        with_step, after = bookkeeping(tf, loss) if bookkeeping else ([], [])
        train = _train_step(tf, loss, lr)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            ids = rng.integers(0, vocab, (batch, seq)).astype(np.int32)
            sess.run([train, *with_step], {m["input_data"]: ids, targets: np.roll(ids, -1, 1)})
            sess.run(after)
            prefix = _fill_and_save(tf, sess, out, rng)
            ids = rng.integers(0, vocab, (batch, seq)).astype(np.int32)
            oracle = dict(zip(["logits", "probs"], sess.run([m["logits"], m["probs"]], {m["input_data"]: ids})))
    return {"prefix": prefix, "feeds": {"input_data": ids}, "oracle": oracle}


def char_rnn_unrolled(tf, out: Path, seed: int = 0) -> dict:
    return _unrolled_checkpoint(tf, out, seed, 4, 6, UNROLLED["vocab"])


def unrolled_greedy(tf, prefix: str, prime: list[int], length: int) -> tuple[list[int], np.ndarray]:
    """TensorFlow's greedy text: the model rebuilt for sampling (batch 1, one char per call,
    state fed back), restored from the checkpoint - as char-rnn sampling scripts do."""
    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        m = _unrolled_graph(tf, 1, 1)
        with tf1.Session(graph=g) as sess:
            tf1.train.Saver().restore(sess, prefix)
            state = sess.run(m["initial"])
            logits_all, out = [], []
            c = prime[0]
            for t in range(len(prime) - 1 + length):
                logits, state = sess.run([m["logits"], m["final"]], {m["input_data"]: [[c]], m["initial"]: state})
                logits_all.append(logits[0])
                if t + 1 < len(prime):
                    c = prime[t + 1]
                else:
                    c = int(np.argmax(logits[0]))
                    out.append(c)
    return out, np.stack(logits_all)


def char_rnn_monitors(tf, out: Path, seed: int = 1) -> dict:
    tf1 = tf.compat.v1
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batch, seq, vocab, size = 3, 5, 11, 12
    g = tf.Graph()
    with g.as_default():
        input_ids = tf1.placeholder(tf.int64, [batch, seq], name="input")
        targets = tf1.placeholder(tf.int64, [batch, seq], name="targets")
        cells = [tf1.nn.rnn_cell.BasicLSTMCell(size, forget_bias=0.0) for _ in range(2)]
        cell = tf1.nn.rnn_cell.MultiRNNCell(cells)
        x = tf.one_hot(input_ids, vocab)
        with tf1.variable_scope("rnn"):
            outputs, _final = tf1.nn.dynamic_rnn(cell, x, initial_state=cell.zero_state(batch, tf.float32))
        with tf1.variable_scope("softmax"):
            w = tf1.get_variable("softmax_w", [size, vocab])
            b = tf1.get_variable("softmax_b", [vocab])
        logits = tf.add(tf.matmul(tf.reshape(outputs, [-1, size]), w), b, name="logits")
        probs = tf.nn.softmax(logits, name="probs")
        loss = tf.reduce_mean(tf1.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tf.reshape(targets, [-1]), logits=logits))
        with tf1.variable_scope("evaluation"):  # running means for the progress display
            with tf1.variable_scope("loss_monitor"):
                count = tf1.Variable(1.0, name="count", trainable=False)
                total = tf1.Variable(1.0, name="sum", trainable=False)
                tf.identity(total / count, name="average_loss")
        lr = tf1.Variable(0.01, name="learning_rate", trainable=False)
        global_step = tf1.Variable(0, name="global_step", trainable=False)
        train = _train_step(tf, loss, lr, global_step)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            ids = rng.integers(0, vocab, (batch, seq))
            sess.run(train, {input_ids: ids, targets: np.roll(ids, -1, 1)})
            prefix = _fill_and_save(tf, sess, out, rng)
            ids = rng.integers(0, vocab, (batch, seq))
            oracle = dict(zip(["logits", "probs"], sess.run([logits, probs], {input_ids: ids})))
    return {"prefix": prefix, "feeds": {"input": ids}, "oracle": oracle}


def projected_lstm(tf, out: Path, seed: int = 2) -> dict:
    tf1 = tf.compat.v1
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batch, seq, n_in, size, n_out = 2, 7, 5, 8, 3
    g = tf.Graph()
    with g.as_default():
        x = tf1.placeholder(tf.float32, [None, seq, n_in], name="x")
        istate = tf1.placeholder(tf.float32, [None, 2 * size], name="istate")
        W_in = tf1.Variable(tf1.random_normal([n_in, size]), name="W_in")
        b_in = tf1.Variable(tf1.random_normal([size]), name="b_in")
        W_out = tf1.Variable(tf1.random_normal([size, n_out]), name="W_out")
        b_out = tf1.Variable(tf1.random_normal([n_out]), name="b_out")
        hidden = tf.reshape(tf.matmul(tf.reshape(x, [-1, n_in]), W_in) + b_in, [-1, seq, size])
        cell = tf1.nn.rnn_cell.LSTMCell(size, name="cell_1")
        c0, h0 = tf.split(istate, 2, axis=1)
        outputs, state = tf1.nn.dynamic_rnn(cell, hidden, initial_state=tf1.nn.rnn_cell.LSTMStateTuple(c0, h0))
        last = outputs[:, -1, :]
        pred = tf.nn.softmax(tf.matmul(last, W_out) + b_out, name="pred")
        y = tf1.placeholder(tf.float32, [None, n_out], name="y")
        loss = tf.reduce_mean(tf.square(pred - y))
        train = tf1.train.GradientDescentOptimizer(0.1).minimize(loss)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(train, {x: rng.standard_normal((batch, seq, n_in)), y: np.eye(n_out)[:batch],
                             istate: np.zeros((batch, 2 * size))})
            prefix = _fill_and_save(tf, sess, out, rng)
            feeds = {"x": rng.standard_normal((batch, seq, n_in)).astype(np.float32),
                     "istate": rng.uniform(-1, 1, (batch, 2 * size)).astype(np.float32)}
            oracle = {"pred": sess.run(pred, {x: feeds["x"], istate: feeds["istate"]})}
    return {"prefix": prefix, "feeds": feeds, "oracle": oracle}


def seq2seq(tf, out: Path, seed: int = 3) -> dict:
    tf1 = tf.compat.v1
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab, emb, size = 9, 6, 10
    g = tf.Graph()
    with g.as_default():
        enc_in = tf1.placeholder(tf.int32, [None, None], name="encoder_inputs")
        dec_in = tf1.placeholder(tf.int32, [None, None], name="decoder_inputs")
        embeddings = tf1.get_variable("embeddings", [vocab, emb])
        with tf1.variable_scope("encoder"):
            _eo, enc_state = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.GRUCell(size), tf1.nn.embedding_lookup(embeddings, enc_in),
                                                dtype=tf.float32)
        with tf1.variable_scope("decoder"):
            dec_out, _ds = tf1.nn.dynamic_rnn(tf1.nn.rnn_cell.GRUCell(size),
                                              tf1.nn.embedding_lookup(embeddings, dec_in), initial_state=enc_state)
        with tf1.variable_scope("projection"):
            w = tf1.get_variable("w", [size, vocab])
            b = tf1.get_variable("b", [vocab])
        logits = tf.add(tf.matmul(tf.reshape(dec_out, [-1, size]), w), b, name="logits")
        probs = tf.nn.softmax(logits, name="probs")
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = _fill_and_save(tf, sess, out, rng)
            feeds = {"encoder_inputs": rng.integers(0, vocab, (2, 5)).astype(np.int32),
                     "decoder_inputs": rng.integers(0, vocab, (2, 4)).astype(np.int32)}
            oracle = {"probs": sess.run(probs, {enc_in: feeds["encoder_inputs"], dec_in: feeds["decoder_inputs"]})}
    return {"prefix": prefix, "feeds": feeds, "oracle": oracle}


PTB = {"vocab": 17, "size": 12, "layers": 2}


def _ptb_model(tf, x, batch: int, steps: int, training: bool) -> dict:
    """The PTB language-model tutorial's model: embedding, optional dropout, a hand-written
    loop calling the cell on x[:, t, :] once per step, xw_plus_b, logits [batch, steps, V]."""
    tf1 = tf.compat.v1
    vocab, size = PTB["vocab"], PTB["size"]
    cell = tf1.nn.rnn_cell.MultiRNNCell([tf1.nn.rnn_cell.BasicLSTMCell(size, forget_bias=0.0)
                                         for _ in range(PTB["layers"])])
    initial = cell.zero_state(batch, tf.float32)
    embedding = tf1.get_variable("embedding", [vocab, size])
    inputs = tf1.nn.embedding_lookup(embedding, x)
    if training:
        inputs = tf1.nn.dropout(inputs, rate=0.5)
    outputs, state = [], initial
    with tf1.variable_scope("RNN"):
        for t in range(steps):
            if t > 0:
                tf1.get_variable_scope().reuse_variables()
            out, state = cell(inputs[:, t, :], state)
            outputs.append(out)
    output = tf.reshape(tf.concat(outputs, 1), [-1, size])
    w = tf1.get_variable("softmax_w", [size, vocab])
    b = tf1.get_variable("softmax_b", [vocab])
    logits = tf.reshape(tf1.nn.xw_plus_b(output, w, b), [batch, steps, vocab], name="logits")
    return {"x": x, "initial": initial, "final": state, "logits": logits}


def _ptb_input(tf, data: np.ndarray, batch: int, steps: int, name: str):
    """Batches cut from one id stream by a queue (the tutorial's reader): no placeholder."""
    tf1 = tf.compat.v1
    with tf1.name_scope(name):
        raw = tf.reshape(tf.constant(data, tf.int32), [batch, -1])
        epochs = (len(data) // batch - 1) // steps
        i = tf1.train.range_input_producer(epochs, shuffle=False).dequeue()
        x = tf.strided_slice(raw, [0, i * steps], [batch, (i + 1) * steps], name="x")
        x.set_shape([batch, steps])
        y = tf.strided_slice(raw, [0, i * steps + 1], [batch, (i + 1) * steps + 1], name="y")
        y.set_shape([batch, steps])
    return x, y


def ptb_style(tf, out: Path, seed: int = 4) -> dict:
    """Train (batch 4 x 5 steps, dropout, a learning-rate variable with its assign) and Test
    (batch 1 x 1 step) models sharing their variables, inputs from queues; saved mid-training."""
    tf1 = tf.compat.v1
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, PTB["vocab"], 400)
    g = tf.Graph()
    with g.as_default():
        init = tf1.random_uniform_initializer(-0.1, 0.1)
        with tf1.name_scope("Train"):
            x, y = _ptb_input(tf, data, 4, 5, "TrainInput")
            with tf1.variable_scope("Model", reuse=None, initializer=init):
                m = _ptb_model(tf, x, 4, 5, training=True)
            loss = tf.reduce_mean(tf1.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=m["logits"]))
            lr = tf1.Variable(0.0, trainable=False, name="lr")
            new_lr = tf1.placeholder(tf.float32, [], name="new_lr")
            tf1.assign(lr, new_lr, name="lr_update")
            tf1.train.GradientDescentOptimizer(lr).minimize(loss)
        with tf1.name_scope("Test"):
            xt, _yt = _ptb_input(tf, data, 1, 1, "TestInput")
            with tf1.variable_scope("Model", reuse=True, initializer=init):
                test = _ptb_model(tf, xt, 1, 1, training=False)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            prefix = _fill_and_save(tf, sess, out, rng, matrix_scale=6.0, bias_scale=0.1)
            # TensorFlow's greedy text from the Test model, one word per call, state carried
            state = sess.run(test["initial"])
            c, words = 3, []
            for _ in range(40):
                logits, state = sess.run([test["logits"], test["final"]], {xt: [[c]], test["initial"]: state})
                c = int(np.argmax(logits[0, -1]))
                words.append(c)
    return {"prefix": prefix, "greedy": words, "start": 3, "input": xt.op.name, "output": test["logits"].op.name}


def word_rnn_pointers(tf, out: Path, seed: int = 5) -> dict:
    def bookkeeping(tf, loss):
        tf1 = tf.compat.v1
        batch_pointer = tf1.Variable(0, name="batch_pointer", trainable=False, dtype=tf.int32)
        epoch_pointer = tf1.Variable(0, name="epoch_pointer", trainable=False)
        for v in tf1.trainable_variables():
            tf1.summary.histogram(v.op.name, v)
        tf1.summary.scalar("train_loss", loss)
        return [tf1.assign(batch_pointer, batch_pointer + 1), tf1.summary.merge_all()], \
            [tf1.assign(epoch_pointer, 3)]

    return _unrolled_checkpoint(tf, out, seed, 3, 5, 37, gru=True, lr_value=0.0, bookkeeping=bookkeeping)


WRITERS = {"char_rnn_unrolled": char_rnn_unrolled, "char_rnn_monitors": char_rnn_monitors,
           "projected_lstm": projected_lstm, "seq2seq": seq2seq, "word_rnn_pointers": word_rnn_pointers}
