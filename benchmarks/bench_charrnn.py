"""Char-RNN inference speed: tf2rt engine vs TensorFlow vs tf2onnx + ONNX Runtime, same model, same run.

    python benchmarks/bench_charrnn.py [--steps 300] [--seq 100] [--repeats 5] [--json out.json]

Model: embedding 128 -> 2x BasicLSTMCell(512) -> dense 65 (TF1 char-rnn style, random
weights), written by tests/importers/charrnn_models.py. Measured, batch 1:
* streaming: one character per call with the recurrent state carried (chars/s, ms/step);
* whole sequence: T=100 characters in one call (ms).
Peers: TensorFlow 1-style Session (the graph the model was trained with: sampling graph
with state placeholders for streaming, seq-100 graph for whole sequences), and
tf2onnx + ONNX Runtime on the frozen graph (tf2onnx installed apart from the project's
environment: pip install --target DIR tf2onnx --no-deps; pass --tf2onnx-path DIR).
Prints a Markdown table with ratios (peer time / tf2rt time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "importers"))

E, H, V, LAYERS = 128, 512, 65, 2


CLOCK = time.perf_counter


def timeit(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` runs (after one warm-up run), on CLOCK."""
    fn()
    times = []
    for _ in range(repeats):
        t = CLOCK()
        fn()
        times.append(CLOCK() - t)
    return float(np.median(times))


def tf_graphs(tf, prefix: Path, seq: int, threads: int | None):
    """(streaming session + tensors, whole-sequence session + tensors, frozen graph bytes)."""
    tf1 = tf.compat.v1

    def build(batch, steps, state_placeholders):
        cells = [tf1.nn.rnn_cell.BasicLSTMCell(H) for _ in range(LAYERS)]
        cell = tf1.nn.rnn_cell.MultiRNNCell(cells)
        ids = tf1.placeholder(tf.int32, [batch, steps], name="input_data")
        if state_placeholders:
            init = tuple(tf1.nn.rnn_cell.LSTMStateTuple(tf1.placeholder(tf.float32, [batch, H], name=f"c{i}"),
                                                        tf1.placeholder(tf.float32, [batch, H], name=f"h{i}"))
                         for i in range(LAYERS))
        else:
            init = cell.zero_state(batch, tf.float32)
        with tf1.variable_scope("rnnlm"):
            w = tf1.get_variable("softmax_w", [H, V])
            b = tf1.get_variable("softmax_b", [V])
            emb = tf1.get_variable("embedding", [V, E])
            x = tf1.nn.embedding_lookup(emb, ids)
        out, final = tf1.nn.dynamic_rnn(cell, x, initial_state=init, scope="rnnlm")
        logits = tf.add(tf.matmul(tf.reshape(out, [-1, H]), w), b, name="logits")
        finals = [tf.identity(t, name=f"final_{k}_{i}") for i, st in enumerate(final) for k, t in (("c", st.c), ("h", st.h))]
        return ids, init, logits, finals

    # TF1 control flow (Enter/Exit/Merge loops), as TF1 training code produced: tf2onnx's LSTM
    # rewriter recognises dynamic_rnn in that form.
    tf1.disable_control_flow_v2()
    graphs = {}
    for key, steps, ph in (("stream", 1, True), ("seq", seq, False)):
        g = tf.Graph()
        with g.as_default():
            ids, init, logits, finals = build(1, steps, ph)
            n = threads or 0
            sess = tf1.Session(graph=g, config=tf1.ConfigProto(intra_op_parallelism_threads=n,
                                                               inter_op_parallelism_threads=n))
            tf1.train.Saver().restore(sess, str(prefix))
            frozen = tf1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), ["logits"] + [f.op.name for f in finals])
            graphs[key] = (sess, ids, init, logits, finals, frozen.SerializeToString())
    return graphs


def keras_tf_function(tf, prefix: Path, stream_ids, seq_ids, args) -> tuple[dict, np.ndarray]:
    """Streaming and whole-sequence times of a Keras LSTM model with the checkpoint's weights."""
    import keras

    from tf2rt.layouts.keras import to_keras
    from tf2rt.layouts.tf import from_tf_lstm

    reader = tf.train.load_checkpoint(str(prefix))
    L = keras.layers
    ids = keras.Input((None,), dtype="int32", batch_size=1)
    states_in = [keras.Input((H,), batch_size=1) for _ in range(2 * LAYERS)]
    x = L.Embedding(V, E, name="embedding")(ids)
    states_out = []
    for i in range(LAYERS):
        x, h, c = L.LSTM(H, return_sequences=True, return_state=True, name=f"lstm{i}")(
            x, initial_state=[states_in[2 * i], states_in[2 * i + 1]])
        states_out += [h, c]
    logits = L.Dense(V, name="head")(x)
    model = keras.Model([ids] + states_in, [logits] + states_out)
    model.get_layer("embedding").set_weights([reader.get_tensor("rnnlm/embedding")])
    for i in range(LAYERS):
        base = f"rnnlm/multi_rnn_cell/cell_{i}/basic_lstm_cell/"
        cell = from_tf_lstm(reader.get_tensor(base + "kernel"), reader.get_tensor(base + "bias"), forget_bias=1.0)
        model.get_layer(f"lstm{i}").set_weights(to_keras(cell))
    model.get_layer("head").set_weights([reader.get_tensor("rnnlm/softmax_w"), reader.get_tensor("rnnlm/softmax_b")])
    fn = tf.function(lambda *a: model(list(a)), reduce_retracing=True)
    zero = [tf.zeros((1, H))] * (2 * LAYERS)
    seq_logits = fn(tf.constant(seq_ids), *zero)[0].numpy()
    one = [tf.constant([[int(c)]], tf.int32) for c in stream_ids]

    def stream():
        state = zero
        for c in one:
            res = fn(c, *state)
            state = res[1:]
            res[0].numpy()  # a sampler needs the logits on the host every step

    seq = tf.constant(seq_ids)
    return {"stream_ms": timeit(stream, args.repeats) / args.steps * 1e3,
            "seq_ms": timeit(lambda: fn(seq, *zero)[0].numpy(), args.repeats * 4) * 1e3}, seq_logits


def run_tf2onnx(frozen: bytes, inputs: list[str], outputs: list[str], path: str | None, out: Path) -> str | None:
    """Convert a frozen graph with tf2onnx in a subprocess; returns an error text or None."""
    if not path:
        return "not installed (pass --tf2onnx-path)"
    pb = out.with_suffix(".pb")
    pb.write_bytes(frozen)
    env = dict(os.environ, PYTHONPATH=path)
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--graphdef", str(pb), "--output", str(out), "--opset", "17",
           "--inputs", ",".join(inputs), "--outputs", ",".join(outputs)]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "tf2onnx timed out"
    if r.returncode != 0 or not out.is_file():
        return "tf2onnx failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="streaming steps per timed run")
    ap.add_argument("--seq", type=int, default=100, help="whole-sequence length")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for every runtime (onnxruntime intra-op, TF intra/inter-op; default: their choice)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or this process's CPU time (robust on a busy shared machine; use with --threads 1)")
    ap.add_argument("--tf2onnx-path", default=os.environ.get("TF2ONNX_PATH"),
                    help="directory where tf2onnx is installed (pip install --target DIR tf2onnx --no-deps)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    import onnxruntime as ort
    import tensorflow as tf

    if args.threads:  # before TensorFlow initialises its runtime
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import charrnn_models as cm
    from tf2rt import convert
    from tf2rt.apps.charrnn import CharRNN, Vocab

    tmp = Path(tempfile.mkdtemp(prefix="bench_charrnn_"))
    spec = cm.CharRNNSpec("lstm", LAYERS, hidden=H, vocab=V, embedding=E, scale=1.2)
    prefix = cm.write_charrnn(tf, spec, tmp / "ckpt")
    engine = convert(prefix, tmp / "charrnn.onnx", states=True)
    vocab = Vocab([chr(0x100 + i) for i in range(V)])
    opts = {} if args.threads is None else {"threads": args.threads}
    gen = CharRNN(engine, vocab, backend_options=opts)
    rng = np.random.default_rng(0)
    stream_ids = rng.integers(0, V, args.steps)
    seq_ids = rng.integers(0, V, (1, args.seq)).astype(np.int32)
    results: dict[str, dict[str, float | str]] = {}

    # --- tf2rt -------------------------------------------------------------------------------
    def ours_stream():
        gen.reset()
        for c in stream_ids:
            gen.step(int(c))

    runner = engine.runner("onnxruntime", **opts)
    feeds = {engine.input_names[0]: seq_ids}
    for s in engine.inputs[1:]:
        feeds[s.name] = np.zeros((1, LAYERS, H), np.float32)
    results["tf2rt (onnxruntime)"] = {
        "stream_ms": timeit(ours_stream, args.repeats) / args.steps * 1e3,
        "seq_ms": timeit(lambda: runner.run_list(feeds), args.repeats * 4) * 1e3,
    }

    # --- TensorFlow 2 (before the TF1 graphs switch control flow to v1) --------------------------
    keras_result, keras_logits = keras_tf_function(tf, prefix, stream_ids, seq_ids, args)

    # --- TensorFlow 1 ---------------------------------------------------------------------------
    g = tf_graphs(tf, prefix, args.seq, args.threads)
    sess, ids, init, logits, finals, frozen_stream = g["stream"]
    zero = [np.zeros((1, H), np.float32)] * (2 * LAYERS)
    init_flat = [t for st in init for t in (st.c, st.h)]

    def tf_stream():
        state = zero
        for c in stream_ids:
            out = sess.run([logits] + finals, {ids: [[c]], **dict(zip(init_flat, state))})
            state = out[1:]

    s_sess, s_ids, _, s_logits, _, frozen_seq = g["seq"]
    results["TensorFlow 1 Session"] = {
        "stream_ms": timeit(tf_stream, args.repeats) / args.steps * 1e3,
        "seq_ms": timeit(lambda: s_sess.run(s_logits, {s_ids: seq_ids}), args.repeats * 4) * 1e3,
    }

    # check the engine against TF before trusting any timing
    ref = s_sess.run(s_logits, {s_ids: seq_ids})
    got = runner.run_list(feeds)[engine.output_names.index("logits")].reshape(ref.shape)
    max_err = float(np.abs(got - ref).max())

    keras_err = float(np.abs(keras_logits.reshape(ref.shape) - ref).max())
    if keras_err > 1e-4:  # the peer must compute the same function to be a peer
        keras_result = {"stream_ms": f"weights do not match (err {keras_err:.1e})", "seq_ms": ""}
    results["TensorFlow 2 tf.function (Keras)"] = keras_result

    # --- tf2onnx + ONNX Runtime -----------------------------------------------------------------
    so = ort.SessionOptions()
    if args.threads is not None:
        so.intra_op_num_threads = args.threads
    peer: dict[str, float | str] = {}
    err = run_tf2onnx(frozen_seq, ["input_data:0"], ["logits:0"], args.tf2onnx_path, tmp / "seq.onnx")
    if err is None:
        try:
            s = ort.InferenceSession(str(tmp / "seq.onnx"), so, providers=["CPUExecutionProvider"])
            peer["seq_ms"] = timeit(lambda: s.run(None, {"input_data:0": seq_ids}), args.repeats * 4) * 1e3
            peer["ops"] = ",".join(sorted({n.op_type for n in __import__("onnx").load(str(tmp / "seq.onnx")).graph.node}))
        except Exception as exc:  # a model ONNX Runtime cannot load is a result to report
            peer["seq_ms"] = f"ONNX Runtime cannot load tf2onnx's model: {str(exc)[:120]}"
    else:
        peer["seq_ms"] = err
    names_in = ["input_data:0"] + [f"{k}{i}:0" for i in range(LAYERS) for k in ("c", "h")]
    names_out = ["logits:0"] + [f.name for f in finals]
    err = run_tf2onnx(frozen_stream, names_in, names_out, args.tf2onnx_path, tmp / "stream.onnx")
    s2 = None
    if err is None:
        try:
            s2 = ort.InferenceSession(str(tmp / "stream.onnx"), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a model ONNX Runtime cannot load is a result to report
            err = f"ONNX Runtime cannot load tf2onnx's model: {str(exc)[:120]}"
    if s2 is not None:
        in_names = [i.name for i in s2.get_inputs()]

        def peer_stream():
            state = zero
            for c in stream_ids:
                out = s2.run(None, dict(zip(in_names, [np.array([[c]], np.int32)] + list(state))))
                state = out[1:]

        peer["stream_ms"] = timeit(peer_stream, args.repeats) / args.steps * 1e3
    else:
        peer["stream_ms"] = str(err)
    results["tf2onnx + ONNX Runtime"] = peer

    # --- report -------------------------------------------------------------------------------
    base = results["tf2rt (onnxruntime)"]
    print(f"char-RNN embedding {E} -> {LAYERS}x LSTM {H} -> dense {V}, batch 1, fp32, {os.cpu_count()} CPUs, "
          f"threads={args.threads or 'default'}, clock={args.clock}, load average {os.getloadavg()[0]:.1f}, "
          f"max |logits - TF| = {max_err:.2e}")
    print()
    print("| runtime | streaming ms/step | chars/s | vs tf2rt | whole sequence T=%d ms | vs tf2rt |" % args.seq)
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        cells = [name]
        for key in ("stream_ms", "seq_ms"):
            v = r.get(key)
            if isinstance(v, float):
                cells.append(f"{v:.3f}")
                if key == "stream_ms":
                    cells.append(f"{1e3 / v:,.0f}")
                cells.append(f"{v / base[key]:.2f}x")  # type: ignore[operator]
            else:
                cells += [str(v), ""] + ([""] if key == "stream_ms" else [])
        print("| " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "max_abs_err_vs_tf": max_err}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
