"""Graphs with control flow: tf2rt vs tf2onnx + ONNX Runtime vs TensorFlow, in one run, on the CPU.

Each graph is built with TensorFlow and frozen (a `.pb`, as published graphs are); tf2rt and
tf2onnx convert the same file, both ONNX files run on onnxruntime with the same session
options, and TensorFlow runs the graph in a session. Contenders are timed in blocks (A B C,
then C B A; the lower of each one's two block medians). Both converters' largest differences
from TensorFlow's outputs are reported.

    python benchmarks/bench_control_flow_vs_tf2onnx.py [--rounds 30] [--threads 1] [--out benchmarks/results/control_flow_vs_tf2onnx]

Needs TensorFlow and tf2onnx (`pip install --no-deps tf2onnx`), which tf2rt itself never imports.
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
from tf2onnx_peer import block_times, ort_session, tf2onnx_convert, write_results  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _detections(tf, x, n: int, classes: int, k: int):
    """Per image (map_fn): NMS per class, the top k across classes, padded to k rows."""
    boxes, scores = x

    def one(args):
        b, s = args
        bs, ss, cs = [], [], []
        for c in range(classes):
            sel, sc = tf.image.non_max_suppression_with_scores(b, s[:, c], k, iou_threshold=0.5, score_threshold=0.3)
            bs.append(tf.gather(b, sel))
            ss.append(sc)
            cs.append(tf.fill(tf.shape(sc), float(c)))
        bb, ss, cc = tf.concat(bs, 0), tf.concat(ss, 0), tf.concat(cs, 0)
        top = tf.math.top_k(ss, k=tf.minimum(k, tf.shape(ss)[0]))
        pad = k - tf.shape(top.indices)[0]
        return (tf.pad(tf.gather(bb, top.indices), [[0, pad], [0, 0]]), tf.pad(top.values, [[0, pad]]),
                tf.pad(tf.gather(cc, top.indices), [[0, pad]]))
    return list(tf.map_fn(one, (boxes, scores), fn_output_signature=(tf.float32, tf.float32, tf.float32)))


def _clipped_lstm(tf, x):
    out, _ = tf.compat.v1.nn.dynamic_rnn(tf.compat.v1.nn.rnn_cell.LSTMCell(64, cell_clip=1.0), x[0], dtype=tf.float32)
    return [out]


def _row_mlp(tf, x):
    w1 = tf.constant(np.random.default_rng(1).standard_normal((32, 64)).astype(np.float32) / 6)
    w2 = tf.constant(np.random.default_rng(2).standard_normal((64, 8)).astype(np.float32) / 8)
    return [tf.map_fn(lambda r: tf.matmul(tf.nn.relu(tf.matmul(r[None], w1)), w2)[0], x[0])]


def _cases(rng):
    b, n, c = 8, 300, 5
    ctr, size = rng.uniform(0.1, 0.9, (b, n, 2)), rng.uniform(0.02, 0.2, (b, n, 2))
    boxes = np.concatenate([ctr - size / 2, ctr + size / 2], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (b, n, c)).astype(np.float32)
    det = {"boxes": (boxes, [None, n, 4]), "scores": (scores, [None, n, c])}
    lstm = {"x": (rng.standard_normal((1, 50, 16)).astype(np.float32), [None, None, 16])}
    rows = {"x": (rng.standard_normal((64, 32)).astype(np.float32), [None, 32])}
    for v2 in (True, False):
        form = "TF2 While" if v2 else "TF1 frames"
        yield f"detection post-processing, map_fn ({form})", v2, det, lambda tf, x: _detections(tf, x, n, c, 20)
    yield "LSTM with cell_clip, dynamic_rnn (TF1 frames)", False, lstm, _clipped_lstm
    yield "per-row MLP, map_fn (TF2 While)", True, rows, _row_mlp


def _build(tf, path: Path, v2: bool, feeds: dict, fn):
    tf1 = tf.compat.v1
    (tf1.enable_control_flow_v2 if v2 else tf1.disable_control_flow_v2)()
    try:
        g = tf.Graph()
        with g.as_default():
            phs = [tf1.placeholder(tf.float32, shape, name=k) for k, (_v, shape) in feeds.items()]
            outs = [tf.identity(o, name=f"out{i}") for i, o in enumerate(fn(tf, phs))]
            sess = tf1.Session(graph=g)
            sess.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), [o.op.name for o in outs])
    finally:
        tf1.enable_control_flow_v2()
    path.write_bytes(frozen.SerializeToString())
    fd = {ph: v for ph, (v, _s) in zip(phs, feeds.values())}
    return sess, outs, fd, [o.op.name for o in outs]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads for both (0: its default)")
    ap.add_argument("--out", default="benchmarks/results/control_flow_vs_tf2onnx")
    args = ap.parse_args()
    import tensorflow as tf

    import tf2rt

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, v2, feeds, fn) in enumerate(_cases(np.random.default_rng(0))):
            pb = Path(tmp) / f"g{k}.pb"
            sess, outs, fd, names = _build(tf, pb, v2, feeds, fn)
            want = sess.run(outs, fd)
            x = {name: v for name, (v, _s) in feeds.items()}
            ours_path = Path(tmp) / f"g{k}_tf2rt.onnx"
            tf2rt.convert(pb, ours_path, outputs=names)
            ours = ort_session(ours_path, args.threads)
            got = ours.run(names, x)
            row = {"graph": label, "tf2rt_max_err": max(float(np.abs(g - w).max()) for g, w in zip(got, want))}
            calls = {"tf2rt": lambda: ours.run(None, x), "tensorflow": lambda: sess.run(outs, fd)}
            theirs_path = Path(tmp) / f"g{k}_tf2onnx.onnx"
            problem = tf2onnx_convert(pb, theirs_path, [f"{n}:0" for n in feeds], [f"{n}:0" for n in names])
            if problem is None:
                try:
                    theirs = ort_session(theirs_path, args.threads)
                    tx = {i.name: x[i.name.split(":")[0]] for i in theirs.get_inputs()}
                    t_out = theirs.run(None, tx)
                    row["tf2onnx_max_err"] = max(float(np.abs(np.asarray(g).reshape(w.shape) - w).max())
                                                 for g, w in zip(t_out, want))
                    calls["tf2onnx"] = lambda: theirs.run(None, tx)
                except Exception as exc:  # noqa: BLE001 - what onnxruntime says is the result
                    row["tf2onnx_problem"] = "its model does not load in onnxruntime"
                    row["tf2onnx_detail"] = str(exc).splitlines()[0][:300]
            else:
                row["tf2onnx_problem"] = "tf2onnx: " + problem[:120]
            for name, sec in block_times(calls, args.rounds).items():
                row[f"{name}_ms"] = sec * 1e3
            sess.close()
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(write_results(rows, Path(args.out), "graph", [r["graph"] for r in rows], digits=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
