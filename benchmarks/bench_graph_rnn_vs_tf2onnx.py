"""Recurrent TF graphs: tf2rt's engine vs tf2onnx + ONNX Runtime, in one run, on the CPU.

For each model (a frozen TF1 `dynamic_rnn` under TF1 control flow and under TF2 `While`, an
unrolled `static_rnn`, a Keras 3 `model.export()` LSTM) both converters run on the same
file; both ONNX files run on onnxruntime with the same session options (tf2rt's own thread
choice is used for both) on the same inputs, and their outputs are compared with
TensorFlow's. A tf2onnx model that onnxruntime refuses to load, or that gives other numbers
than TensorFlow, is reported as such. Also: what `engine.run` adds over a plain
onnxruntime session on the same engine file.

    python benchmarks/bench_graph_rnn_vs_tf2onnx.py [--quick] [--out benchmarks/results/graph_rnn_vs_tf2onnx]

Needs TensorFlow and tf2onnx (`pip install tf2onnx`), which tf2rt itself never imports.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tf2onnx_peer import median_time, ort_session, tf2onnx_convert  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _freeze(tf, build, path: Path, seed: int) -> tuple[dict, np.ndarray, list[str], list[str]]:
    tf1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    g = tf.Graph()
    with g.as_default():
        feeds_spec, y = build(tf, tf1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            for v in tf1.trainable_variables():
                v.load(rng.uniform(-0.5, 0.5, v.shape.as_list()).astype(np.float32), sess)
            gd = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), [y.op.name])
            feeds = {name: fn(rng) for name, fn in feeds_spec.items()}
            want = sess.run(y, {f"{k}:0": v for k, v in feeds.items()})
    path.write_bytes(gd.SerializeToString())
    return feeds, want, [f"{k}:0" for k in feeds], [f"{y.op.name}:0"]


def _dynamic(cell_kind: str, v2: bool, batch: int, T: int, H: int):
    def build(tf, tf1):
        (tf1.enable_control_flow_v2 if v2 else tf1.disable_control_flow_v2)()
        x = tf1.placeholder(tf.float32, [None, None, 32], name="x")
        r = tf1.nn.rnn_cell
        make = {"lstm": lambda: r.LSTMCell(H), "gru": lambda: r.GRUCell(H)}[cell_kind]
        out, _ = tf1.nn.dynamic_rnn(r.MultiRNNCell([make(), make()]), x, dtype=tf.float32)
        return {"x": lambda rng: rng.standard_normal((batch, T, 32)).astype(np.float32)}, tf.identity(out, name="y")
    return build


def _static(batch: int, T: int, H: int):
    def build(tf, tf1):
        tf1.enable_control_flow_v2()
        x = tf1.placeholder(tf.float32, [batch, T, 32], name="x")
        out, _ = tf1.nn.static_rnn(tf1.nn.rnn_cell.LSTMCell(H), tf.unstack(x, axis=1), dtype=tf.float32)
        return {"x": lambda rng: rng.standard_normal((batch, T, 32)).astype(np.float32)}, \
            tf.identity(tf.stack(out, axis=1), name="y")
    return build


def _keras_export(path: Path, batch: int, T: int, H: int, seed: int):
    import keras

    inp = keras.Input((T, 32), name="x")
    out = keras.layers.LSTM(H, return_sequences=True)(inp)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.uniform(-0.5, 0.5, tuple(w.shape)).astype("float32"))
    model.export(str(path), verbose=False)
    x = rng.standard_normal((batch, T, 32)).astype(np.float32)
    return {"x": x}, model.predict(x, verbose=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    ap.add_argument("--out", default="benchmarks/results/graph_rnn_vs_tf2onnx")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads for both (default 1)")
    args = ap.parse_args()
    import tensorflow as tf

    import tf2rt

    shapes = [(1, 100, 128), (16, 100, 128)] if not args.quick else [(1, 50, 64)]
    repeats = 20 if args.quick else 50
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        for batch, T, H in shapes:
            cases = [("dynamic_rnn 2x LSTM (TF1 control flow)", _dynamic("lstm", False, batch, T, H)),
                     ("dynamic_rnn 2x GRU (TF2 While)", _dynamic("gru", True, batch, T, H)),
                     ("static_rnn LSTM (unrolled)", _static(batch, T, H)),
                     ("Keras 3 LSTM, model.export()", None)]
            for k, (label, build) in enumerate(cases):
                src = tmp_p / f"m{k}_{batch}.pb"
                if build is None:
                    src = tmp_p / f"keras{batch}"
                    feeds, want = _keras_export(src, batch, T, H, k)
                    ins = outs = None
                else:
                    feeds, want, ins, outs = _freeze(tf, build, src, k)
                ours_path = tmp_p / f"ours{k}_{batch}.onnx"
                engine = tf2rt.convert(src, ours_path)
                state_ins = {i for i, _o in engine.states}
                name_in = [n for n in engine.input_names if n not in state_ins][0]
                feeds_ours = {name_in: next(iter(feeds.values()))}
                state_outs = {o for _i, o in engine.states}
                main_out = [o for o in engine.output_names if o not in state_outs][-1]
                got = engine.run(feeds_ours)[main_out]
                ours_err = float(np.abs(got - want).max())
                from tf2rt.engine.stream import zero_states

                full = {**zero_states(engine, feeds_ours), **feeds_ours}  # a plain session needs every input
                sess = ort_session(ours_path, args.threads, inter_op=1)
                ours_t = median_time(lambda: sess.run(None, full), repeats)
                runner = engine.runner("onnxruntime", threads=args.threads)
                api_t = median_time(lambda: runner.run(feeds_ours), repeats)
                row = {"model": label, "batch": batch, "T": T, "H": H, "tf2rt_ms": ours_t * 1e3,
                       "tf2rt_engine_run_ms": api_t * 1e3, "tf2rt_max_err": ours_err,
                       "tf2rt_ops": sorted({n.op_type for n in engine.onnx.graph.node} & {"LSTM", "GRU", "RNN"})}
                theirs_path = tmp_p / f"theirs{k}_{batch}.onnx"
                problem = tf2onnx_convert(src, theirs_path, ins, outs, timeout=900)
                if problem is None:
                    import onnx

                    m = onnx.load(str(theirs_path))
                    row["tf2onnx_ops"] = sorted({n.op_type for n in m.graph.node} &
                                                {"LSTM", "GRU", "RNN", "Loop", "Scan"})
                    try:
                        ts = ort_session(theirs_path, args.threads, inter_op=1)
                        tin = {i.name: next(iter(feeds.values())) for i in ts.get_inputs()}
                        theirs = ts.run(None, tin)[0]
                        row["tf2onnx_max_err"] = float(np.abs(theirs.reshape(want.shape) - want).max())
                        row["tf2onnx_ms"] = median_time(lambda: ts.run(None, tin), repeats) * 1e3
                        row["speedup"] = row["tf2onnx_ms"] / row["tf2rt_ms"]
                    except Exception as exc:  # noqa: BLE001 - what onnxruntime says is the result
                        row["tf2onnx_problem"] = "onnxruntime refuses the model: " + str(exc).splitlines()[0][:160]
                else:
                    row["tf2onnx_problem"] = "tf2onnx failed: " + problem
                rows.append(row)
                print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    lines = ["| model | batch x T x H | tf2onnx + ORT | tf2rt engine | speed-up | tf2rt `engine.run` | max error vs TF (tf2rt / tf2onnx) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        theirs = f"{r['tf2onnx_ms']:.3f} ms ({', '.join(r['tf2onnx_ops']) or 'unrolled'})" if "tf2onnx_ms" in r \
            else r.get("tf2onnx_problem", "-")
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        err2 = f"{r['tf2onnx_max_err']:.1e}" if "tf2onnx_max_err" in r else "-"
        lines.append(f"| {r['model']} | {r['batch']}x{r['T']}x{r['H']} | {theirs} | {r['tf2rt_ms']:.3f} ms "
                     f"({', '.join(r['tf2rt_ops'])}) | {speed} | {r['tf2rt_engine_run_ms']:.3f} ms | "
                     f"{r['tf2rt_max_err']:.1e} / {err2} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
