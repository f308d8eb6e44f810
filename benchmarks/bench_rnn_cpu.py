"""2-layer LSTM (H=512, batch 1) on the CPU: tf2rt's default backend vs TensorFlow's own inference.

    .venv/bin/python benchmarks/bench_rnn_cpu.py [--hidden 512 --input 512 --layers 2 --seq 100]

Same weights everywhere (a Keras model's weights, converted with tf2rt.layouts for tf2rt and
for the TF1 cells); outputs are checked to agree before timing. Two workloads:

* step: one time step per call with carried h/c state (streaming; what a char-RNN sampler does).
  tf2rt: Engine.stream-style loop on the onnxruntime runner's low-overhead path, numpy in/out.
  Keras: the model called through a tf.function with the states passed back as tensors
  (TF's best case: no numpy round trip for the state). TF1: Session.run with a feed_dict.
* sequence: a whole sequence of --seq steps per call (Keras model in a tf.function,
  TF1 tf.compat.v1.nn.dynamic_rnn in a Session).

Every call is timed with time.perf_counter; blocks of calls alternate between the systems
(--rounds) so background load hits all of them alike. Prints a Markdown table (min, median
and p90 ms per call; ratio = TF median / tf2rt median, > 1 means tf2rt is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.compat.v1 RNN cells need tf_keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def keras_models(tf, E: int, H: int, L: int, S: int):
    """Per-step model (x, states) -> (y, states) and whole-sequence model x -> y, sharing weights."""
    K = tf.keras
    layers = [K.layers.LSTM(H, return_sequences=True, return_state=True, name=f"lstm_{i}") for i in range(L)]
    x1 = K.Input((1, E), batch_size=1)
    states = [K.Input((H,), batch_size=1) for _ in range(2 * L)]
    y, outs = x1, []
    for i, lyr in enumerate(layers):
        y, h, c = lyr(y, initial_state=[states[2 * i], states[2 * i + 1]])
        outs += [h, c]
    step = K.Model([x1] + states, [y] + outs)
    xs = K.Input((S, E), batch_size=1)
    y = xs
    for lyr in layers:
        y = lyr(y)[0]
    seq = K.Model(xs, y)
    rng = np.random.default_rng(0)
    for lyr in layers:  # distinct values in every gate
        lyr.set_weights([(rng.standard_normal(w.shape) * 0.05).astype(np.float32) for w in lyr.get_weights()])
    return step, seq, layers


def tf2rt_engines(cells, E: int, H: int, L: int, S: int):
    from tf2rt.engine import build_engine
    from tf2rt.network import Network

    def build(seq_len: int, with_state: bool):
        net = Network(f"lstm{L}x{H}")
        x = net.add_input("x", "float32", (1, seq_len, E))
        rnn = net.add_rnn_v2(x, L, H, seq_len, "lstm", name="rnn")
        for i, cell in enumerate(cells):
            rnn.set_cell(i, cell, name=f"lstm_{i}")
        net.mark_output(rnn.get_output(0), "y")
        if with_state:
            rnn.hidden_state = net.add_input("h0", "float32", (1, L, H))
            rnn.cell_state = net.add_input("c0", "float32", (1, L, H))
            net.mark_output(rnn.get_output(1), "h")
            net.mark_output(rnn.get_output(2), "c")
        return build_engine(net)

    return build(1, True), build(S, False)


def tf1_graph(tf, cells, E: int, H: int, L: int, S: int, threads=None):
    """TF1 graph: per-step cell call with state placeholders, and dynamic_rnn over S steps."""
    from tf2rt.layouts import to_tf_lstm

    v1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        mcell = v1.nn.rnn_cell.MultiRNNCell([v1.nn.rnn_cell.LSTMCell(H, forget_bias=1.0) for _ in range(L)])
        x = v1.placeholder(tf.float32, (1, E), name="x")
        st_ph = tuple(v1.nn.rnn_cell.LSTMStateTuple(v1.placeholder(tf.float32, (1, H)), v1.placeholder(tf.float32, (1, H)))
                      for _ in range(L))
        with v1.variable_scope("rnn"):
            y1, st1 = mcell(x, st_ph)
        xs = v1.placeholder(tf.float32, (1, S, E), name="xs")
        with v1.variable_scope("rnn", reuse=True):
            ys, _ = v1.nn.dynamic_rnn(mcell, xs, dtype=tf.float32)
        cfg = None
        if threads is not None:
            cfg = v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
        sess = v1.Session(graph=g, config=cfg)
        variables = {v.name: v for v in v1.global_variables()}
        for i, cell in enumerate(cells):
            tfw = to_tf_lstm(cell, forget_bias=1.0)
            variables[f"rnn/multi_rnn_cell/cell_{i}/lstm_cell/kernel:0"].load(tfw["kernel"], sess)
            variables[f"rnn/multi_rnn_cell/cell_{i}/lstm_cell/bias:0"].load(tfw["bias"], sess)
    return sess, x, st_ph, y1, st1, xs, ys


def timed(fn, n: int) -> list[float]:
    out = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--input", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=100, help="steps per call in the sequence workload")
    ap.add_argument("--steps", type=int, default=300, help="timed calls per system per round (step workload)")
    ap.add_argument("--seq-calls", type=int, default=10, help="timed calls per system per round (sequence workload)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads for every system (default: each library's own choice)")
    ap.add_argument("--json", help="write raw results as JSON")
    args = ap.parse_args()
    E, H, L, S = args.input, args.hidden, args.layers, args.seq

    import tensorflow as tf

    from tf2rt.layouts import from_keras_lstm

    if args.threads is not None:  # same thread budget for TF (eager and TF1 sessions) as for onnxruntime
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    step_model, seq_model, layers = keras_models(tf, E, H, L, S)
    cells = [from_keras_lstm(*lyr.get_weights(), name=lyr.name) for lyr in layers]
    eng_step, eng_seq = tf2rt_engines(cells, E, H, L, S)
    opts = {} if args.threads is None else {"threads": args.threads}
    r_step, r_seq = eng_step.runner(**opts), eng_seq.runner(**opts)
    sess, x_ph, st_ph, y1, st1, xs_ph, ys = tf1_graph(tf, cells, E, H, L, S, args.threads)

    sig_step = [tf.TensorSpec((1, 1, E), tf.float32)] + [tf.TensorSpec((1, H), tf.float32)] * (2 * L)
    keras_step = tf.function(lambda *a: step_model(list(a), training=False), input_signature=sig_step)
    keras_seq = tf.function(lambda a: seq_model(a, training=False), input_signature=[tf.TensorSpec((1, S, E), tf.float32)])

    rng = np.random.default_rng(1)
    xseq = rng.standard_normal((1, S, E)).astype(np.float32)

    # --- correctness: all three agree on the whole sequence and on 5 carried steps -------------
    want = keras_seq(tf.constant(xseq)).numpy()
    got = r_seq.run({"x": xseq})["y"]
    tf1_seq = sess.run(ys, {xs_ph: xseq})
    feeds = {"x": xseq[:, :1], "h0": np.zeros((1, L, H), np.float32), "c0": np.zeros((1, L, H), np.float32)}
    st = [tf.zeros((1, H))] * (2 * L)
    for t in range(5):
        feeds["x"] = xseq[:, t:t + 1]
        y_ours, h, c = r_step.run_list(feeds)
        feeds["h0"], feeds["c0"] = h, c
        ks = keras_step(tf.constant(xseq[:, t:t + 1]), *st)
        st = list(ks[1:])
    agree = {"sequence_tf2rt_vs_keras": float(np.abs(got - want).max()),
             "sequence_tf1_vs_keras": float(np.abs(tf1_seq - want).max()),
             "step5_tf2rt_vs_keras": float(np.abs(y_ours - ks[0].numpy()).max())}
    assert max(agree.values()) < 1e-4, agree

    # --- step workload ------------------------------------------------------------------------
    def ours_step_loop():
        f = {"x": xseq[:, :1], "h0": np.zeros((1, L, H), np.float32), "c0": np.zeros((1, L, H), np.float32)}
        run = r_step.run_list

        def one():
            _, f["h0"], f["c0"] = run(f)
        return one

    def keras_step_loop():
        state = {"s": [tf.zeros((1, H))] * (2 * L)}
        x = tf.constant(xseq[:, :1])

        def one():
            out = keras_step(x, *state["s"])
            out[0].numpy()
            state["s"] = list(out[1:])
        return one

    def tf1_step_loop():
        zeros = np.zeros((1, H), np.float32)
        state = {"s": [(zeros, zeros)] * L}
        x = xseq[0, :1]

        def one():
            fd = {x_ph: x}
            for ph, (h, c) in zip(st_ph, state["s"]):
                fd[ph.h], fd[ph.c] = h, c
            _, s = sess.run((y1, st1), fd)
            state["s"] = [(t.h, t.c) for t in s]
        return one

    xt = tf.constant(xseq)
    systems_step = {"tf2rt (onnxruntime)": ours_step_loop(), "TF2 Keras (tf.function)": keras_step_loop(),
                    "TF1 Session": tf1_step_loop()}
    systems_seq = {"tf2rt (onnxruntime)": lambda: r_seq.run_list({"x": xseq}),
                   "TF2 Keras (tf.function)": lambda: keras_seq(xt).numpy(),
                   "TF1 Session": lambda: sess.run(ys, {xs_ph: xseq})}
    times: dict[str, dict[str, list[float]]] = {"step": {k: [] for k in systems_step},
                                                "sequence": {k: [] for k in systems_seq}}
    for fn in list(systems_step.values()) + list(systems_seq.values()):  # warm-up
        timed(fn, 20)
    for _ in range(args.rounds):
        for k, fn in systems_step.items():
            times["step"][k] += timed(fn, args.steps)
        for k, fn in systems_seq.items():
            times["sequence"][k] += timed(fn, args.seq_calls)

    import onnxruntime as ort

    rows = []
    for work, per in times.items():
        base = float(np.median(per["tf2rt (onnxruntime)"]))
        for k, ts in per.items():
            med, p90 = float(np.median(ts)) * 1e3, float(np.percentile(ts, 90)) * 1e3
            rows.append({"workload": work, "system": k, "median_ms": med, "p90_ms": p90, "min_ms": float(min(ts)) * 1e3,
                         "ratio": med / (base * 1e3), "calls": len(ts)})
    label = {"step": "step (T=1, carried h/c)", "sequence": f"sequence (T={S})"}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{L}-layer LSTM, H={H}, input {E}, batch 1, fp32; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs (load average {load:.1f}), threads {args.threads or 'library default'}; "
          f"onnxruntime {ort.__version__}, TensorFlow {tf.__version__}")
    print(f"max |diff| vs Keras: {', '.join(f'{k} {v:.1e}' for k, v in agree.items())}\n")
    print("| workload | system | min ms/call | median ms/call | p90 ms/call | TF median / tf2rt median |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "1.00 (baseline)" if r["system"].startswith("tf2rt") else f"{r['ratio']:.2f}x"
        print(f"| {label[r['workload']]} | {r['system']} | {r['min_ms']:.3f} | {r['median_ms']:.3f} | "
              f"{r['p90_ms']:.3f} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": vars(args), "agreement": agree, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
