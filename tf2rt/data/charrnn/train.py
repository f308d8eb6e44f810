"""Train the bundled demo char-RNN with TensorFlow (TF1-style graph, as common char-rnn code does).

    python examples/charrnn/train.py            # writes examples/charrnn/model/ and vocab.json

The text is the opening of Shakespeare's "Coriolanus" (public domain), in coriolanus.txt.
The model: embedding 48 -> MultiRNNCell of 2 BasicLSTMCell(192) (forget_bias 1.0, the TF
default) -> softmax_w/softmax_b. Only the model variables are saved (no optimizer slots),
with the .meta graph, so `tf2rt convert` reads forget_bias and names from it.
Needs TensorFlow (and tf_keras for the TF1 cells); tf2rt itself does not.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def build(tf, vocab: int, batch: int | None, seq: int | None, embed: int, hidden: int, layers: int):
    tf1 = tf.compat.v1
    cell = tf1.nn.rnn_cell.MultiRNNCell(
        [tf1.nn.rnn_cell.BasicLSTMCell(hidden) for _ in range(layers)], state_is_tuple=True)
    input_data = tf1.placeholder(tf.int32, [batch, seq], name="input_data")
    targets = tf1.placeholder(tf.int32, [batch, seq], name="targets")
    initial_state = cell.zero_state(tf.shape(input_data)[0], tf.float32)
    with tf1.variable_scope("rnnlm"):
        softmax_w = tf1.get_variable("softmax_w", [hidden, vocab])
        softmax_b = tf1.get_variable("softmax_b", [vocab])
        embedding = tf1.get_variable("embedding", [vocab, embed])
        inputs = tf1.nn.embedding_lookup(embedding, input_data)
    outputs, final_state = tf1.nn.dynamic_rnn(cell, inputs, initial_state=initial_state, scope="rnnlm")
    logits = tf.add(tf.matmul(tf.reshape(outputs, [-1, hidden]), softmax_w), softmax_b, name="logits")
    probs = tf.nn.softmax(logits, name="probs")
    loss = tf1.losses.sparse_softmax_cross_entropy(tf.reshape(targets, [-1]), logits)
    return dict(input_data=input_data, targets=targets, initial_state=initial_state,
                final_state=final_state, logits=logits, probs=probs, loss=loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=str(HERE / "coriolanus.txt"))
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--embed", type=int, default=48)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import tensorflow as tf

    tf1 = tf.compat.v1
    text = Path(args.text).read_text(encoding="utf-8")
    chars = sorted(set(text))  # vocabulary: the text's characters in code-point order
    vocab = {c: i for i, c in enumerate(chars)}
    data = np.array([vocab[c] for c in text], np.int32)
    out = Path(args.out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")

    rng = np.random.default_rng(args.seed)
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(args.seed)
        m = build(tf, len(chars), None, None, args.embed, args.hidden, args.layers)
        step = tf1.train.get_or_create_global_step()
        lr = tf1.train.exponential_decay(3e-3, step, 500, 0.7)
        opt = tf1.train.AdamOptimizer(lr)
        grads, tvars = zip(*opt.compute_gradients(m["loss"]))
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        train_op = opt.apply_gradients(zip(grads, tvars), global_step=step)
        saver = tf1.train.Saver(var_list=tf1.trainable_variables(), max_to_keep=1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            t0 = time.time()
            n = len(data) - args.seq - 1
            for i in range(args.steps):
                starts = rng.integers(0, n, args.batch)
                x = np.stack([data[s:s + args.seq] for s in starts])
                y = np.stack([data[s + 1:s + args.seq + 1] for s in starts])
                loss, _ = sess.run([m["loss"], train_op], {m["input_data"]: x, m["targets"]: y})
                if i % 100 == 0 or i == args.steps - 1:
                    print(f"step {i:5d}  loss {loss:.3f}  ({time.time() - t0:.0f} s)", flush=True)
            prefix = saver.save(sess, str(out / "model" / "charrnn"), write_meta_graph=True)
    # Relative paths in the state file keep the bundled checkpoint usable wherever the repo lives.
    (out / "model" / "checkpoint").write_text(
        'model_checkpoint_path: "charrnn"\nall_model_checkpoint_paths: "charrnn"\n')
    print("saved", prefix, "and", out / "vocab.json")


if __name__ == "__main__":
    main()
